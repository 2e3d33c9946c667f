package accountgraphql_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/account/accountv1"
)

// moreContractOps are TestContract's rows for the operations its first
// rows leave out; they run after those, on what they made (for each
// prefix p: app p+billing with keys, tenant p+acme with a quota, role
// p+reader, denial p+deny). It seeds what replicas and usage read.
func moreContractOps(t *testing.T, s *gqlServer) []contractOp {
	seedReplicasAndUsage(t, s)
	// A list both runs read whole (they list the same rows, made by
	// both): keyed by the real id.
	ownerOfProto := func(id, name, description string, active bool, created, updated interface{ AsTime() time.Time }) view {
		v := ownerView(id, name, description, active)
		v["created"], v["updated"] = rfc(created), rfc(updated)
		return v
	}
	type gqlOwner struct {
		ID, Name, Description string
		Active                bool
		CreatedAt, UpdatedAt  *string
		Quota                 *struct{ Requests int64 }
	}
	ownerOfGQL := func(o gqlOwner) view {
		v := ownerView(o.ID, o.Name, o.Description, o.Active)
		v["created"], v["updated"] = gqlTime(o.CreatedAt), gqlTime(o.UpdatedAt)
		return v
	}
	const ownerFields = `id name description active createdAt updatedAt`
	ownersAt := func(path string, withQuota bool) func(json.RawMessage) view {
		return func(d json.RawMessage) view {
			var os []gqlOwner
			decodePath(t, d, path, &os)
			out := view{}
			for _, o := range os {
				out[o.ID] = ownerOfGQL(o)
				if withQuota && o.Quota != nil {
					out[o.ID].(view)["quota"] = o.Quota.Requests
				}
			}
			return out
		}
	}
	ownerAt := func(path string) func(json.RawMessage) view {
		return func(d json.RawMessage) view {
			var o gqlOwner
			decodePath(t, d, path, &o)
			v := ownerOfGQL(o)
			delete(v, "created") // the two runs made theirs at different times
			delete(v, "updated")
			return v
		}
	}
	appOf := func(a *accountv1.App) view {
		return ownerView(a.GetId(), a.GetName(), a.GetDescription(), a.GetActive())
	}
	tenantOf := func(a *accountv1.Tenant) view {
		return ownerView(a.GetId(), a.GetName(), a.GetDescription(), a.GetActive())
	}
	changed := func(d json.RawMessage, path string) view {
		var n int64
		decodePath(t, d, path, &n)
		return view{"changed": n > 0}
	}
	const roleFields = `id name description scope rateLimit { requestsPerUnit unit }`
	roleOfProto := func(r *accountv1.ServiceAccessRole) view {
		return view{"id": same(r.GetId()), "name": same(r.GetName()), "description": r.GetDescription(), "scope": r.GetScope(),
			"rate": int64(r.GetRateLimit().GetRequestsPerUnit()), "unit": strings.TrimPrefix(r.GetRateLimit().GetUnit().String(), "RATE_LIMIT_UNIT_")}
	}
	roleAt := func(path string) func(json.RawMessage) view {
		return func(d json.RawMessage) view {
			var r struct {
				ID, Name, Description, Scope string
				RateLimit                    struct {
					RequestsPerUnit int64
					Unit            string
				}
			}
			decodePath(t, d, path, &r)
			unit := r.RateLimit.Unit
			if unit == "" {
				unit = "UNSPECIFIED" // gRPC's zero enum for no rate limit, GraphQL's null
			}
			return view{"id": same(r.ID), "name": same(r.Name), "description": r.Description, "scope": r.Scope,
				"rate": r.RateLimit.RequestsPerUnit, "unit": unit}
		}
	}
	const denialFields = `id tenantId appId scope reason`
	denialOfProto := func(d *accountv1.ServiceAccessDenial) view {
		return view{"id": same(d.GetId()), "tenant": same(d.GetTenantId()), "app": same(d.GetAppId()), "scope": d.GetScope(), "reason": d.GetReason()}
	}
	type gqlDenial struct{ ID, TenantID, AppID, Scope, Reason string }
	denialOfGQL := func(r gqlDenial) view {
		return view{"id": same(r.ID), "tenant": same(r.TenantID), "app": same(r.AppID), "scope": r.Scope, "reason": r.Reason}
	}
	denialAt := func(path string) func(json.RawMessage) view {
		return func(d json.RawMessage) view {
			var r gqlDenial
			decodePath(t, d, path, &r)
			return denialOfGQL(r)
		}
	}
	return []contractOp{
		{name: "apps",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ListApps(ctx, &accountv1.ListAppsRequest{})
				out := view{"more": r.GetNextPageToken() != ""}
				for _, a := range r.GetApps() {
					out[a.GetId()] = ownerOfProto(a.GetId(), a.GetName(), a.GetDescription(), a.GetActive(), a.GetCreateTime(), a.GetUpdateTime())
				}
				return out, err
			},
			gql: func(p string) string {
				return `{ apps { nodes { ` + ownerFields + ` } pageInfo { hasNextPage } } }`
			},
			gqlView: func(d json.RawMessage) view {
				out := ownersAt("apps.nodes", false)(d)
				var more bool
				decodePath(t, d, "apps.pageInfo.hasNextPage", &more)
				out["more"] = more
				return out
			}},
		{name: "tenants",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ListTenants(ctx, &accountv1.ListTenantsRequest{})
				out := view{}
				for _, a := range r.GetTenants() {
					v := ownerOfProto(a.GetId(), a.GetName(), a.GetDescription(), a.GetActive(), a.GetCreateTime(), a.GetUpdateTime())
					if a.GetQuota() != nil {
						v["quota"] = a.GetQuota().GetRequests()
					}
					out[a.GetId()] = v
				}
				return out, err
			},
			gql: func(p string) string {
				return `{ tenants { nodes { ` + ownerFields + ` quota { requests } } } }`
			},
			gqlView: ownersAt("tenants.nodes", true)},
		{name: "tenants with a bad page token", wantCode: "INVALID_ARGUMENT",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.ListTenants(ctx, &accountv1.ListTenantsRequest{PageToken: "not-a-token"})
				return nil, err
			},
			gql: func(p string) string { return `{ tenants(after: "not-a-token") { nodes { id } } }` }},
		{name: "tenant with its quota's state",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GetTenant(ctx, &accountv1.GetTenantRequest{Id: p + "acme"})
				v := tenantOf(r.GetTenant())
				v["quota"] = r.GetTenant().GetQuota().GetRequests()
				// Absent where the store keeps no counts (the fake).
				if qs := r.GetQuotaStatus(); qs != nil {
					v["status"] = view{"subject": qs.GetSubject(), "id": same(qs.GetId()), "requests": qs.GetQuota().GetRequests(),
						"used": qs.GetUsed(), "remaining": qs.GetRemaining(), "exceeded": qs.GetExceeded(),
						"start": rfc(qs.GetPeriodStartTime()), "reset": rfc(qs.GetResetTime())}
				}
				return v, err
			},
			gql: func(p string) string {
				return `{ tenant(id: "` + p + `acme") { id name description active quota { requests }
					quotaStatus { subject id quota { requests } used remaining exceeded periodStart resetsAt } } }`
			},
			gqlView: func(d json.RawMessage) view {
				v := ownerAt("tenant")(d)
				var q struct{ Requests int64 }
				decodePath(t, d, "tenant.quota", &q)
				v["quota"] = q.Requests
				var qs *struct {
					Subject, ID           string
					Quota                 struct{ Requests int64 }
					Used, Remaining       int64
					Exceeded              bool
					PeriodStart, ResetsAt *string
				}
				if decodePath(t, d, "tenant.quotaStatus", &qs); qs != nil {
					v["status"] = view{"subject": qs.Subject, "id": same(qs.ID), "requests": qs.Quota.Requests, "used": qs.Used,
						"remaining": qs.Remaining, "exceeded": qs.Exceeded, "start": gqlTime(qs.PeriodStart), "reset": gqlTime(qs.ResetsAt)}
				}
				return v
			}},
		{name: "tenant not found", wantCode: "NOT_FOUND",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.GetTenant(ctx, &accountv1.GetTenantRequest{Id: p + "nope"})
				return nil, err
			},
			gql: func(p string) string { return `{ tenant(id: "` + p + `nope") { id } }` }},
		{name: "updateApp",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				n, d := p+"Billing EU", "invoices"
				r, err := c.UpdateApp(ctx, &accountv1.UpdateAppRequest{Id: p + "billing", Name: &n, Description: &d})
				return appOf(r.GetApp()), err
			},
			gql: func(p string) string {
				return `mutation { updateApp(id: "` + p + `billing", input: {name: "` + p + `Billing EU", description: "invoices"}) { app { ` + ownerFields + ` } } }`
			},
			gqlView: ownerAt("updateApp.app")},
		{name: "updateApp not found", wantCode: "NOT_FOUND",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				d := "x"
				_, err := c.UpdateApp(ctx, &accountv1.UpdateAppRequest{Id: p + "nope", Description: &d})
				return nil, err
			},
			gql: func(p string) string {
				return `mutation { updateApp(id: "` + p + `nope", input: {description: "x"}) { app { id } } }`
			}},
		{name: "auditEvents of apps",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ListAuditEvents(ctx, &accountv1.ListAuditEventsRequest{Action: "app.*"})
				out := view{}
				for _, e := range r.GetEvents() {
					out[strconv.FormatInt(e.GetId(), 10)] = view{"time": rfc(e.GetTime()), "actor": e.GetActorKeyId(), "actorName": e.GetActorKeyName(),
						"action": e.GetAction(), "type": e.GetObjectType(), "object": e.GetObjectId(), "before": e.GetBefore().AsMap(),
						"after": e.GetAfter().AsMap(), "outcome": e.GetOutcome(), "reason": e.GetReason()}
				}
				return out, err
			},
			gql: func(p string) string {
				return `{ auditEvents(filter: {action: "app.*"}) { nodes { id time actorKeyId actorKeyName action objectType objectId before after outcome reason } } }`
			},
			gqlView: func(d json.RawMessage) view {
				var es []struct {
					ID, ActorKeyID, ActorKeyName, Action, ObjectType, ObjectID, Outcome, Reason string
					Time                                                                        *string
					Before, After                                                               map[string]any
				}
				decodePath(t, d, "auditEvents.nodes", &es)
				out := view{}
				for _, e := range es {
					// A proto Struct with no fields is an empty map, GraphQL's
					// JSON null a nil one: the same absent record.
					for _, m := range []*map[string]any{&e.Before, &e.After} {
						if *m == nil {
							*m = map[string]any{}
						}
					}
					out[e.ID] = view{"time": gqlTime(e.Time), "actor": e.ActorKeyID, "actorName": e.ActorKeyName, "action": e.Action,
						"type": e.ObjectType, "object": e.ObjectID, "before": e.Before, "after": e.After, "outcome": e.Outcome, "reason": e.Reason}
				}
				return out
			}},
		{name: "auditEvents with an unknown outcome", wantCode: "INVALID_ARGUMENT",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.ListAuditEvents(ctx, &accountv1.ListAuditEventsRequest{Outcome: "maybe"})
				return nil, err
			},
			gql: func(p string) string { return `{ auditEvents(filter: {outcome: "maybe"}) { nodes { id } } }` }},
		{name: "serviceAccessRole",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GetServiceAccessRole(ctx, &accountv1.GetServiceAccessRoleRequest{Id: p + "reader"})
				return roleOfProto(r.GetRole()), err
			},
			gql:     func(p string) string { return `{ serviceAccessRole(id: "` + p + `reader") { ` + roleFields + ` } }` },
			gqlView: roleAt("serviceAccessRole")},
		{name: "updateServiceAccessRole",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				d := "reads mail"
				r, err := c.UpdateServiceAccessRole(ctx, &accountv1.UpdateServiceAccessRoleRequest{Id: p + "reader", Description: &d,
					RateLimit: &accountv1.RateLimit{RequestsPerUnit: 60, Unit: accountv1.RateLimitUnit_RATE_LIMIT_UNIT_MINUTE}})
				return roleOfProto(r.GetRole()), err
			},
			gql: func(p string) string {
				return `mutation { updateServiceAccessRole(id: "` + p + `reader", input: {description: "reads mail", rateLimit: {requestsPerUnit: 60, unit: MINUTE}}) { role { ` + roleFields + ` } } }`
			},
			gqlView: roleAt("updateServiceAccessRole.role")},
		{name: "updateServiceAccessRole clearing its rate limit",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.UpdateServiceAccessRole(ctx, &accountv1.UpdateServiceAccessRoleRequest{Id: p + "reader", ClearRateLimit: true})
				return roleOfProto(r.GetRole()), err
			},
			gql: func(p string) string {
				return `mutation { updateServiceAccessRole(id: "` + p + `reader", input: {clearRateLimit: true}) { role { ` + roleFields + ` } } }`
			},
			gqlView: roleAt("updateServiceAccessRole.role")},
		{name: "serviceAccessDenial",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GetServiceAccessDenial(ctx, &accountv1.GetServiceAccessDenialRequest{Id: p + "deny"})
				return denialOfProto(r.GetDenial()), err
			},
			gql:     func(p string) string { return `{ serviceAccessDenial(id: "` + p + `deny") { ` + denialFields + ` } }` },
			gqlView: denialAt("serviceAccessDenial")},
		{name: "serviceAccessDenials of a tenant",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ListServiceAccessDenials(ctx, &accountv1.ListServiceAccessDenialsRequest{TenantId: p + "acme"})
				out := view{}
				for _, d := range r.GetDenials() {
					out[same(d.GetId())] = denialOfProto(d)
				}
				return out, err
			},
			gql: func(p string) string {
				return `{ serviceAccessDenials(tenantId: "` + p + `acme") { nodes { ` + denialFields + ` } } }`
			},
			gqlView: func(d json.RawMessage) view {
				var ds []gqlDenial
				decodePath(t, d, "serviceAccessDenials.nodes", &ds)
				out := view{}
				for _, r := range ds {
					out[same(r.ID)] = denialOfGQL(r)
				}
				return out
			}},
		{name: "updateServiceAccessDenial",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				sc, why := "email-api", "overdue"
				r, err := c.UpdateServiceAccessDenial(ctx, &accountv1.UpdateServiceAccessDenialRequest{Id: p + "deny", Scope: &sc, Reason: &why})
				return denialOfProto(r.GetDenial()), err
			},
			gql: func(p string) string {
				return `mutation { updateServiceAccessDenial(id: "` + p + `deny", input: {scope: "email-api", reason: "overdue"}) { denial { ` + denialFields + ` } } }`
			},
			gqlView: denialAt("updateServiceAccessDenial.denial")},
		{name: "deleteServiceAccessDenial",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.DeleteServiceAccessDenial(ctx, &accountv1.DeleteServiceAccessDenialRequest{Id: p + "deny"})
				return view{"changed": r.GetChangeNumber() > 0}, err
			},
			gql: func(p string) string {
				return `mutation { deleteServiceAccessDenial(id: "` + p + `deny") { changeNumber } }`
			},
			gqlView: func(d json.RawMessage) view { return changed(d, "deleteServiceAccessDenial.changeNumber") }},
		{name: "serviceAccessDenial deleted", wantCode: "NOT_FOUND",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.GetServiceAccessDenial(ctx, &accountv1.GetServiceAccessDenialRequest{Id: p + "deny"})
				return nil, err
			},
			gql: func(p string) string { return `{ serviceAccessDenial(id: "` + p + `deny") { id } }` }},
		{name: "deleteServiceAccessRole",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.DeleteServiceAccessRole(ctx, &accountv1.DeleteServiceAccessRoleRequest{Id: p + "reader"})
				return view{"changed": r.GetChangeNumber() > 0}, err
			},
			gql: func(p string) string {
				return `mutation { deleteServiceAccessRole(id: "` + p + `reader") { changeNumber } }`
			},
			gqlView: func(d json.RawMessage) view { return changed(d, "deleteServiceAccessRole.changeNumber") }},
		{name: "deleteServiceAccessRole not found", wantCode: "NOT_FOUND",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.DeleteServiceAccessRole(ctx, &accountv1.DeleteServiceAccessRoleRequest{Id: p + "reader"})
				return nil, err
			},
			gql: func(p string) string {
				return `mutation { deleteServiceAccessRole(id: "` + p + `reader") { changeNumber } }`
			}},
		{name: "replicas",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ListReplicas(ctx, &accountv1.ListReplicasRequest{})
				out := view{"head": r.GetHead()}
				for _, rp := range r.GetReplicas() {
					out[rp.GetId()] = view{"version": rp.GetVersion(), "started": rfc(rp.GetStartedAt()), "applied": rp.GetAppliedChange(),
						"appliedAt": rfc(rp.GetAppliedAt()), "heartbeat": rfc(rp.GetHeartbeatAt()), "live": rp.GetLive(),
						"stopped": rp.GetStopped(), "behind": rp.GetChangesBehind(), "lag": lagMinutes(rp.GetLag().AsDuration().Seconds())}
				}
				return out, err
			},
			gql: func(p string) string {
				return `{ replicas { head replicas { id version startedAt appliedChange appliedAt heartbeatAt live stopped changesBehind lagSeconds } } }`
			},
			gqlView: func(d json.RawMessage) view {
				var rs struct {
					Head     int64
					Replicas []struct {
						ID, Version                       string
						StartedAt, AppliedAt, HeartbeatAt *string
						AppliedChange, ChangesBehind      int64
						Live, Stopped                     bool
						LagSeconds                        float64
					}
				}
				decodePath(t, d, "replicas", &rs)
				out := view{"head": rs.Head}
				for _, rp := range rs.Replicas {
					out[rp.ID] = view{"version": rp.Version, "started": gqlTime(rp.StartedAt), "applied": rp.AppliedChange,
						"appliedAt": gqlTime(rp.AppliedAt), "heartbeat": gqlTime(rp.HeartbeatAt), "live": rp.Live,
						"stopped": rp.Stopped, "behind": rp.ChangesBehind, "lag": lagMinutes(rp.LagSeconds)}
				}
				return out
			}},
		{name: "usage by key and outcome",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GetUsage(ctx, &accountv1.GetUsageRequest{Since: timestamp(accounttest.T0.Add(-72 * time.Hour)),
					Until: timestamp(accounttest.T0), GroupBy: []string{"key", "outcome"}, Granularity: "day"})
				out := view{"granularity": r.GetGranularity(), "since": rfc(r.GetSince()), "until": rfc(r.GetUntil())}
				for _, se := range r.GetSeries() {
					var pts []string
					for _, pt := range se.GetPoints() {
						pts = append(pts, rfc(pt.GetTime())+"="+strconv.FormatInt(pt.GetCount(), 10))
					}
					out[se.GetGroup()["key"]+"/"+se.GetGroup()["outcome"]] = view{"points": strings.Join(pts, ","), "total": se.GetTotal(), "fields": len(se.GetGroup())}
				}
				return out, err
			},
			gql: func(p string) string {
				return `{ usage(input: {since: "` + accounttest.T0.Add(-72*time.Hour).Format(time.RFC3339) + `", until: "` + accounttest.T0.Format(time.RFC3339) + `",
					groupBy: ["key", "outcome"], granularity: "day"}) { granularity since until series { group { field value } points { time count } total } } }`
			},
			gqlView: func(d json.RawMessage) view {
				var u struct {
					Granularity  string
					Since, Until *string
					Series       []struct {
						Group  []struct{ Field, Value string }
						Points []struct {
							Time  *string
							Count int64
						}
						Total int64
					}
				}
				decodePath(t, d, "usage", &u)
				out := view{"granularity": u.Granularity, "since": gqlTime(u.Since), "until": gqlTime(u.Until)}
				for _, se := range u.Series {
					g := map[string]string{}
					for _, f := range se.Group {
						g[f.Field] = f.Value
					}
					var pts []string
					for _, pt := range se.Points {
						pts = append(pts, gqlTime(pt.Time)+"="+strconv.FormatInt(pt.Count, 10))
					}
					out[g["key"]+"/"+g["outcome"]] = view{"points": strings.Join(pts, ","), "total": se.Total, "fields": len(g)}
				}
				return out
			}},
		{name: "usage by week refused", wantCode: "INVALID_ARGUMENT",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.GetUsage(ctx, &accountv1.GetUsageRequest{Since: timestamp(accounttest.T0.Add(-time.Hour)), Granularity: "week"})
				return nil, err
			},
			gql: func(p string) string {
				return `{ usage(input: {since: "` + accounttest.T0.Add(-time.Hour).Format(time.RFC3339) + `", granularity: "week"}) { granularity } }`
			}},
		{name: "deleteApp with its keys (cascade)",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: p + "billing", Cascade: true})
				v := appOf(r.GetApp())
				v["changed"] = r.GetChangeNumber() > 0
				return v, err
			},
			gql: func(p string) string {
				return `mutation { deleteApp(id: "` + p + `billing", cascade: true) { app { ` + ownerFields + ` } changeNumber } }`
			},
			gqlView: func(d json.RawMessage) view {
				v := ownerAt("deleteApp.app")(d)
				v["changed"] = changed(d, "deleteApp.changeNumber")["changed"]
				return v
			}},
		{name: "deleteTenant",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.DeleteTenant(ctx, &accountv1.DeleteTenantRequest{Id: p + "acme"})
				v := tenantOf(r.GetTenant())
				v["changed"] = r.GetChangeNumber() > 0
				return v, err
			},
			gql: func(p string) string {
				return `mutation { deleteTenant(id: "` + p + `acme") { tenant { ` + ownerFields + ` } changeNumber } }`
			},
			gqlView: func(d json.RawMessage) view {
				v := ownerAt("deleteTenant.tenant")(d)
				v["changed"] = changed(d, "deleteTenant.changeNumber")["changed"]
				return v
			}},
		{name: "deleteTenant not found", wantCode: "NOT_FOUND",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.DeleteTenant(ctx, &accountv1.DeleteTenantRequest{Id: p + "acme"})
				return nil, err
			},
			gql: func(p string) string { return `mutation { deleteTenant(id: "` + p + `acme") { tenant { id } } }` }},
	}
}
