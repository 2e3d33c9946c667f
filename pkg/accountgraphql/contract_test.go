package accountgraphql_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgraphql"
)

// view is what the contract compares of an answer: the same facts,
// whichever transport carried them. IDs the two runs chose are made
// alike ("g-x" and "q-x" both become "x").
type view map[string]any

// keyView is the facts of a key both transports show.
func keyView(id, name, typ, appID, tenantID, scope, description, group, origin string, active bool, ips, roles []string, expires string) view {
	return view{"id": same(id), "name": same(name), "type": strings.ToLower(typ), "app": same(appID), "tenant": same(tenantID),
		"scope": scope, "description": description, "group": group, "origin": strings.ToLower(origin), "active": active,
		"ips": strings.Join(ips, ","), "roles": strings.Join(roles, ","), "expires": expires}
}

func same(id string) string {
	for _, p := range []string{"g-", "q-"} {
		id = strings.ReplaceAll(id, p, "")
	}
	return id
}

func rfc(t interface{ AsTime() time.Time }) string {
	if reflect.ValueOf(t).IsNil() {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339Nano)
}

func keyOfProto(k *accountv1.Key) view {
	typ := strings.TrimPrefix(k.GetType().String(), "KEY_TYPE_")
	origin := strings.TrimPrefix(k.GetOrigin().String(), "KEY_ORIGIN_")
	return keyView(k.GetId(), k.GetName(), typ, k.GetAppId(), k.GetTenantId(), k.GetScope(), k.GetDescription(), k.GetGroup(),
		origin, k.GetActive(), k.GetIpFilters(), k.GetRoleIds(), rfc(k.GetExpiresAt()))
}

type gqlKey struct {
	ID, Name, Type, Scope, Description, Group, Origin string
	AppID, TenantID, ExpiresAt                        *string
	Active                                            bool
	IPFilters, RoleIds                                []string
}

const keyFields = `id name type appId tenantId scope description group origin active ipFilters roleIds expiresAt`

func keyOfGQL(k gqlKey) view {
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	exp := deref(k.ExpiresAt)
	if exp != "" {
		t, _ := time.Parse(time.RFC3339Nano, exp)
		exp = t.UTC().Format(time.RFC3339Nano)
	}
	return keyView(k.ID, k.Name, k.Type, deref(k.AppID), deref(k.TenantID), k.Scope, k.Description, k.Group, k.Origin,
		k.Active, k.IPFilters, k.RoleIds, exp)
}

func ownerView(id, name, description string, active bool) view {
	return view{"id": same(id), "name": same(name), "description": description, "active": active}
}

// contractOp is one operation run through both transports: grpc and gql
// each return the view of their answer, or the error code.
type contractOp struct {
	name string
	grpc func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error)
	// gql is the document (p is the id prefix of the run) and the view
	// of its answer's data.
	gql      func(p string) string
	gqlView  func(data json.RawMessage) view
	wantCode string // both transports refuse with this code
}

// TestContract runs one table of operations through the gRPC and the
// GraphQL adapter over the same account service and compares what they
// answer: the two transports cannot drift apart. It runs on the fake
// store and on PostgreSQL (contractBackends).
func TestContract(t *testing.T) {
	for _, b := range contractBackends {
		t.Run(b.name, func(t *testing.T) { testContract(t, b.start(t)) })
	}
}

func testContract(t *testing.T, s *gqlServer) {
	ctx := s.Root(context.Background())
	appView := func(a *accountv1.App) view {
		return ownerView(a.GetId(), a.GetName(), a.GetDescription(), a.GetActive())
	}
	tenantView := func(a *accountv1.Tenant) view {
		return ownerView(a.GetId(), a.GetName(), a.GetDescription(), a.GetActive())
	}
	var owner struct {
		ID, Name, Description string
		Active                bool
	}
	ownerOf := func(path string) func(json.RawMessage) view {
		return func(d json.RawMessage) view {
			decodePath(t, d, path, &owner)
			return ownerView(owner.ID, owner.Name, owner.Description, owner.Active)
		}
	}
	keyAt := func(path string) func(json.RawMessage) view {
		return func(d json.RawMessage) view {
			var k gqlKey
			decodePath(t, d, path, &k)
			return keyOfGQL(k)
		}
	}
	keysAt := func(path string) func(json.RawMessage) view {
		return func(d json.RawMessage) view {
			var ks []gqlKey
			decodePath(t, d, path, &ks)
			out := view{}
			for _, k := range ks {
				out[same(k.ID)] = keyOfGQL(k)
			}
			return out
		}
	}
	keysOfProto := func(ks []*accountv1.Key) view {
		out := view{}
		for _, k := range ks {
			out[same(k.GetId())] = keyOfProto(k)
		}
		return out
	}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ops := []contractOp{
		{name: "createApp",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: p + "billing", Name: p + "Billing", Description: "bills"})
				return appView(r.GetApp()), err
			},
			gql: func(p string) string {
				return `mutation { createApp(input: {id: "` + p + `billing", name: "` + p + `Billing", description: "bills"}) { app { id name description active } } }`
			},
			gqlView: ownerOf("createApp.app")},
		{name: "createTenant",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.CreateTenant(ctx, &accountv1.CreateTenantRequest{Id: p + "acme", Name: p + "Acme"})
				return tenantView(r.GetTenant()), err
			},
			gql: func(p string) string {
				return `mutation { createTenant(input: {id: "` + p + `acme", name: "` + p + `Acme"}) { tenant { id name description active } } }`
			},
			gqlView: ownerOf("createTenant.tenant")},
		{name: "updateTenant",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				d := "customer"
				r, err := c.UpdateTenant(ctx, &accountv1.UpdateTenantRequest{Id: p + "acme", Description: &d})
				return tenantView(r.GetTenant()), err
			},
			gql: func(p string) string {
				return `mutation { updateTenant(id: "` + p + `acme", input: {description: "customer"}) { tenant { id name description active } } }`
			},
			gqlView: ownerOf("updateTenant.tenant")},
		{name: "updateTenant quota",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.UpdateTenant(ctx, &accountv1.UpdateTenantRequest{Id: p + "acme",
					Quota: &accountv1.Quota{Requests: 500, Period: accountv1.QuotaPeriod_QUOTA_PERIOD_MONTH}})
				q := r.GetTenant().GetQuota()
				return view{"requests": float64(q.GetRequests()), "monthly": q.GetPeriod() == accountv1.QuotaPeriod_QUOTA_PERIOD_MONTH}, err
			},
			gql: func(p string) string {
				return `mutation { updateTenant(id: "` + p + `acme", input: {quota: {requests: 500, period: MONTH}}) { tenant { quota { requests period } } } }`
			},
			gqlView: func(d json.RawMessage) view {
				var q struct {
					Requests float64
					Period   string
				}
				decodePath(t, d, "updateTenant.tenant.quota", &q)
				return view{"requests": q.Requests, "monthly": q.Period == "MONTH"}
			}},
		{name: "updateTenant with a quota of a day refused", wantCode: "INVALID_ARGUMENT",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.UpdateTenant(ctx, &accountv1.UpdateTenantRequest{Id: p + "acme",
					Quota: &accountv1.Quota{Requests: 5, Period: accountv1.QuotaPeriod_QUOTA_PERIOD_DAY}})
				return nil, err
			},
			gql: func(p string) string {
				return `mutation { updateTenant(id: "` + p + `acme", input: {quota: {requests: 5, period: DAY}}) { tenant { id } } }`
			}},
		{name: "app",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GetApp(ctx, &accountv1.GetAppRequest{Id: p + "billing"})
				return appView(r.GetApp()), err
			},
			gql:     func(p string) string { return `{ app(id: "` + p + `billing") { id name description active } }` },
			gqlView: ownerOf("app")},
		{name: "app not found", wantCode: "NOT_FOUND",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.GetApp(ctx, &accountv1.GetAppRequest{Id: p + "nope"})
				return nil, err
			},
			gql: func(p string) string { return `{ app(id: "` + p + `nope") { id } }` }},
		{name: "generateServiceAccessKey",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{Id: p + "sak", Name: p + "sak",
					AppId: p + "billing", TenantId: p + "acme", Scope: "email-api:query:*", Description: "d", Group: "ci",
					IpFilters: []string{"10.0.0.0/8"}, ExpiresAt: timestamp(exp)})
				v := keyOfProto(r.GetKey())
				v["secret"] = strings.HasPrefix(r.GetPrivateKey(), "kg_sak_")
				return v, err
			},
			gql: func(p string) string {
				return `mutation { generateServiceAccessKey(input: {id: "` + p + `sak", name: "` + p + `sak", appId: "` + p + `billing", tenantId: "` + p + `acme",
					scope: "email-api:query:*", description: "d", group: "ci", ipFilters: ["10.0.0.0/8"], expiresAt: "2030-01-02T03:04:05Z"}) {
					privateKey key { ` + keyFields + ` } } }`
			},
			gqlView: func(d json.RawMessage) view {
				v := keyAt("generateServiceAccessKey.key")(d)
				var pk string
				decodePath(t, d, "generateServiceAccessKey.privateKey", &pk)
				v["secret"] = strings.HasPrefix(pk, "kg_sak_")
				return v
			}},
		{name: "generateAppAccessKey",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{Id: p + "alsak", Name: p + "alsak", AppId: p + "billing"})
				return keyOfProto(r.GetKey()), err
			},
			gql: func(p string) string {
				return `mutation { generateAppAccessKey(input: {id: "` + p + `alsak", name: "` + p + `alsak", appId: "` + p + `billing"}) { key { ` + keyFields + ` } } }`
			},
			gqlView: keyAt("generateAppAccessKey.key")},
		{name: "generateAccountAccessKey with an earlier operation name",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GenerateAccountAccessKey(ctx, &accountv1.GenerateAccountAccessKeyRequest{Id: p + "aak", Name: p + "aak", Scope: "account-api:query:listApps"})
				return keyOfProto(r.GetKey()), err
			},
			gql: func(p string) string {
				return `mutation { generateAccountAccessKey(input: {id: "` + p + `aak", name: "` + p + `aak", scope: "account-api:query:listApps"}) { key { ` + keyFields + ` } } }`
			},
			gqlView: keyAt("generateAccountAccessKey.key")},
		{name: "importKey",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ImportKey(ctx, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, Id: p + "custom", Name: p + "custom",
					AppId: p + "billing", PrivateKey: p + "custom-secret-0123456789abcdef"})
				return keyOfProto(r.GetKey()), err
			},
			gql: func(p string) string {
				return `mutation { importKey(input: {type: APP, id: "` + p + `custom", name: "` + p + `custom", appId: "` + p + `billing", privateKey: "` + p + `custom-secret-0123456789abcdef"}) { key { ` + keyFields + ` } } }`
			},
			gqlView: keyAt("importKey.key")},
		{name: "importKey of an account key", wantCode: "INVALID_ARGUMENT",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.ImportKey(ctx, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_ACCOUNT, PrivateKey: "secret-0123456789abcdef"})
				return nil, err
			},
			gql: func(p string) string {
				return `mutation { importKey(input: {type: ACCOUNT, privateKey: "secret-0123456789abcdef"}) { key { id } } }`
			}},
		{name: "updateKey",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				d, sc := "rotated", "email-api"
				r, err := c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: p + "sak", Description: &d, Scope: &sc, ClearExpiresAt: true,
					IpFilters: &accountv1.IPFilters{}})
				return keyOfProto(r.GetKey()), err
			},
			gql: func(p string) string {
				return `mutation { updateKey(id: "` + p + `sak", input: {description: "rotated", scope: "email-api", clearExpiresAt: true, ipFilters: []}) { key { ` + keyFields + ` } } }`
			},
			gqlView: keyAt("updateKey.key")},
		{name: "key",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GetKey(ctx, &accountv1.GetKeyRequest{Id: p + "sak"})
				return keyOfProto(r.GetKey()), err
			},
			gql:     func(p string) string { return `{ key(id: "` + p + `sak") { ` + keyFields + ` } }` },
			gqlView: keyAt("key")},
		{name: "keys of an app",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ListKeys(ctx, &accountv1.ListKeysRequest{AppId: p + "billing"})
				return keysOfProto(r.GetKeys()), err
			},
			gql: func(p string) string {
				return `{ keys(filter: {appId: "` + p + `billing"}) { nodes { ` + keyFields + ` } pageInfo { hasNextPage } } }`
			},
			gqlView: keysAt("keys.nodes")},
		{name: "keys searched by name, sorted by name descending",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ListKeys(ctx, &accountv1.ListKeysRequest{AppId: p + "billing", NameContains: strings.ToUpper(p + "SAK"), OrderBy: "-name"})
				return keysOfProto(r.GetKeys()), err
			},
			gql: func(p string) string {
				return `{ keys(filter: {appId: "` + p + `billing", nameContains: "` + strings.ToUpper(p+"SAK") + `"}, orderBy: {field: NAME, descending: true}) { nodes { ` + keyFields + ` } pageInfo { hasNextPage } } }`
			},
			gqlView: keysAt("keys.nodes")},
		{name: "keys by last use",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ListKeys(ctx, &accountv1.ListKeysRequest{AppId: p + "billing", OrderBy: "last_used"})
				return keysOfProto(r.GetKeys()), err
			},
			gql: func(p string) string {
				return `{ keys(filter: {appId: "` + p + `billing"}, orderBy: {field: LAST_USED}) { nodes { ` + keyFields + ` } pageInfo { hasNextPage } } }`
			},
			gqlView: keysAt("keys.nodes")},
		{name: "keys with a bad page size", wantCode: "INVALID_ARGUMENT",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.ListKeys(ctx, &accountv1.ListKeysRequest{PageSize: -1})
				return nil, err
			},
			gql: func(p string) string { return `{ keys(first: -1) { nodes { id } } }` }},
		{name: "regenerateKey",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: p + "alsak", GracePeriod: durationpb.New(time.Hour)})
				v := keyOfProto(r.GetKey())
				v["secret"] = strings.HasPrefix(r.GetPrivateKey(), "kg_alsak_")
				return v, err
			},
			gql: func(p string) string {
				return `mutation { regenerateKey(id: "` + p + `alsak", input: {gracePeriod: "1h"}) { privateKey key { ` + keyFields + ` } } }`
			},
			gqlView: func(d json.RawMessage) view {
				v := keyAt("regenerateKey.key")(d)
				var pk string
				decodePath(t, d, "regenerateKey.privateKey", &pk)
				v["secret"] = strings.HasPrefix(pk, "kg_alsak_")
				return v
			}},
		{name: "updateKeys dry run",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				g := "batch"
				r, err := c.UpdateKeys(ctx, &accountv1.UpdateKeysRequest{Filter: &accountv1.KeyFilter{AppId: p + "billing"}, Group: &g, DryRun: true})
				ids := slices.Clone(r.GetKeyIds())
				for i := range ids {
					ids[i] = same(ids[i])
				}
				slices.Sort(ids)
				return view{"count": int(r.GetCount()), "ids": strings.Join(ids, ","), "dry": r.GetDryRun()}, err
			},
			gql: func(p string) string {
				return `mutation { updateKeys(input: {filter: {appId: "` + p + `billing"}, group: "batch", dryRun: true}) { count keyIds dryRun } }`
			},
			gqlView: func(d json.RawMessage) view {
				var r struct {
					Count  int
					KeyIds []string
					DryRun bool
				}
				decodePath(t, d, "updateKeys", &r)
				for i := range r.KeyIds {
					r.KeyIds[i] = same(r.KeyIds[i])
				}
				slices.Sort(r.KeyIds)
				return view{"count": r.Count, "ids": strings.Join(r.KeyIds, ","), "dry": r.DryRun}
			}},
		{name: "createServiceAccessRole",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.CreateServiceAccessRole(ctx, &accountv1.CreateServiceAccessRoleRequest{Id: p + "reader", Name: p + "reader", Scope: "email-api:query:*",
					RateLimit: &accountv1.RateLimit{RequestsPerUnit: 5, Unit: accountv1.RateLimitUnit_RATE_LIMIT_UNIT_SECOND}})
				return view{"id": same(r.GetRole().GetId()), "scope": r.GetRole().GetScope(), "rate": r.GetRole().GetRateLimit().GetRequestsPerUnit()}, err
			},
			gql: func(p string) string {
				return `mutation { createServiceAccessRole(input: {id: "` + p + `reader", name: "` + p + `reader", scope: "email-api:query:*", rateLimit: {requestsPerUnit: 5, unit: SECOND}}) { role { id scope rateLimit { requestsPerUnit } } } }`
			},
			gqlView: func(d json.RawMessage) view {
				var r struct {
					ID, Scope string
					RateLimit struct{ RequestsPerUnit uint32 }
				}
				decodePath(t, d, "createServiceAccessRole.role", &r)
				return view{"id": same(r.ID), "scope": r.Scope, "rate": r.RateLimit.RequestsPerUnit}
			}},
		{name: "serviceAccessRoles",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ListServiceAccessRoles(ctx, &accountv1.ListServiceAccessRolesRequest{})
				return view{"n": len(r.GetRoles()) > 0}, err
			},
			gql: func(p string) string { return `{ serviceAccessRoles { nodes { id } } }` },
			gqlView: func(d json.RawMessage) view {
				var ids []struct{ ID string }
				decodePath(t, d, "serviceAccessRoles.nodes", &ids)
				return view{"n": len(ids) > 0}
			}},
		{name: "createServiceAccessDenial",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.CreateServiceAccessDenial(ctx, &accountv1.CreateServiceAccessDenialRequest{Id: p + "deny", TenantId: p + "acme", AppId: p + "billing", Scope: "email-api:mutation:*", Reason: "unpaid"})
				return view{"id": same(r.GetDenial().GetId()), "tenant": same(r.GetDenial().GetTenantId()), "scope": r.GetDenial().GetScope(), "reason": r.GetDenial().GetReason()}, err
			},
			gql: func(p string) string {
				return `mutation { createServiceAccessDenial(input: {id: "` + p + `deny", tenantId: "` + p + `acme", appId: "` + p + `billing", scope: "email-api:mutation:*", reason: "unpaid"}) { denial { id tenantId scope reason } } }`
			},
			gqlView: func(d json.RawMessage) view {
				var r struct{ ID, TenantID, Scope, Reason string }
				decodePath(t, d, "createServiceAccessDenial.denial", &r)
				return view{"id": same(r.ID), "tenant": same(r.TenantID), "scope": r.Scope, "reason": r.Reason}
			}},
		{name: "services",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.ListServices(ctx, &accountv1.ListServicesRequest{})
				out := view{}
				for _, s := range r.GetServices() {
					for _, k := range s.GetKinds() {
						out[s.GetName()+":"+k.GetName()] = strings.Join(k.GetOperations(), ",")
					}
				}
				return out, err
			},
			gql: func(p string) string { return `{ services { name kinds { name operations } } }` },
			gqlView: func(d json.RawMessage) view {
				var ss []struct {
					Name  string
					Kinds []struct {
						Name       string
						Operations []string
					}
				}
				decodePath(t, d, "services", &ss)
				out := view{}
				for _, s := range ss {
					for _, k := range s.Kinds {
						out[s.Name+":"+k.Name] = strings.Join(k.Operations, ",")
					}
				}
				return out
			}},
		{name: "account",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GetAccount(ctx, &accountv1.GetAccountRequest{})
				return view{"id": r.GetAccountId(), "key": r.GetKeyId(), "scope": r.GetScope(), "ops": len(r.GetOperations())}, err
			},
			gql: func(p string) string { return `{ account { id keyId scope operations { name } } }` },
			gqlView: func(d json.RawMessage) view {
				var a struct {
					ID, KeyID, Scope string
					Operations       []struct{ Name string }
				}
				decodePath(t, d, "account", &a)
				return view{"id": a.ID, "key": a.KeyID, "scope": a.Scope, "ops": len(a.Operations)}
			}},
		{name: "syncStatus of a key",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.GetSyncStatus(ctx, &accountv1.GetSyncStatusRequest{KeyId: p + "sak"})
				return view{"live": int(r.GetLive()), "behind": len(r.GetBehind())}, err
			},
			gql: func(p string) string { return `{ syncStatus(keyId: "` + p + `sak") { live behind { id } } }` },
			gqlView: func(d json.RawMessage) view {
				var st struct {
					Live   int
					Behind []struct{ ID string }
				}
				decodePath(t, d, "syncStatus", &st)
				return view{"live": st.Live, "behind": len(st.Behind)}
			}},
		{name: "deleteKey",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				r, err := c.DeleteKey(ctx, &accountv1.DeleteKeyRequest{Id: p + "custom"})
				return keyOfProto(r.GetKey()), err
			},
			gql: func(p string) string {
				return `mutation { deleteKey(id: "` + p + `custom") { key { ` + keyFields + ` } } }`
			},
			gqlView: keyAt("deleteKey.key")},
		{name: "deleteApp with keys", wantCode: "FAILED_PRECONDITION",
			grpc: func(ctx context.Context, c accountv1.AccountServiceClient, p string) (view, error) {
				_, err := c.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: p + "billing"})
				return nil, err
			},
			gql: func(p string) string { return `mutation { deleteApp(id: "` + p + `billing") { app { id } } }` }},
	}
	ops = append(ops, moreContractOps(t, s)...)
	if missing, unknown := contractGaps(ops); len(missing)+len(unknown) > 0 {
		t.Errorf("contract rows missing for %s (a row compares a success of each operation of account.Operations); rows naming no operation: %q",
			strings.Join(missing, ", "), unknown)
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			gv, gerr := op.grpc(ctx, s.Client, "g-")
			r := s.post(t, s.RootKey, op.gql("q-"), nil)
			if op.wantCode != "" {
				st, _ := status.FromError(gerr)
				if grpcName := strings.ToUpper(toSnake(st.Code().String())); grpcName != op.wantCode || r.Code(0) != op.wantCode {
					t.Fatalf("gRPC %v (%s), GraphQL %+v; want both %s", gerr, grpcName, r.Errors, op.wantCode)
				}
				return
			}
			if gerr != nil || len(r.Errors) > 0 {
				t.Fatalf("gRPC: %v; GraphQL: %+v", gerr, r.Errors)
			}
			data, _ := json.Marshal(r.Data)
			if qv := op.gqlView(data); !reflect.DeepEqual(gv, qv) {
				t.Errorf("the transports disagree:\ngRPC    %v\nGraphQL %v", gv, qv)
			}
		})
	}
	if len(accountgraphql.Codes) != 11 {
		t.Errorf("%d error codes named; the service has 11", len(accountgraphql.Codes))
	}
}

// toSnake turns gRPC's code names (InvalidArgument) into their canonical
// form's words (Invalid_Argument; Canceled is CANCELLED).
func toSnake(s string) string {
	if s == "Canceled" {
		return "Cancelled"
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && 'A' <= r && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// decodePath decodes the value at a dotted path of a JSON object.
func decodePath(t *testing.T, data json.RawMessage, path string, dst any) {
	t.Helper()
	cur := data
	for _, p := range strings.Split(path, ".") {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil {
			t.Fatalf("%s: %v in %s", path, err, data)
		}
		cur = m[p]
	}
	if err := json.Unmarshal(cur, dst); err != nil {
		t.Fatalf("%s: %v in %s", path, err, data)
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
