package accountgraphql

import (
	"context"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/store"
)

// Resolver implements the schema over the account service: each resolver
// converts its arguments, calls one service method with the caller the
// handler authenticated, and converts the answer. Every rule lives in the
// service.
type Resolver struct {
	svc *account.Service
	log logger
}

var _ ResolverRoot = (*Resolver)(nil)

func (r *Resolver) Query() QueryResolver       { return queryResolver{r} }
func (r *Resolver) Mutation() MutationResolver { return mutationResolver{r} }

type queryResolver struct{ *Resolver }

func (q queryResolver) Account(ctx context.Context) (*Account, error) {
	a, err := q.svc.Account(ctx, callerFrom(ctx))
	if err != nil {
		return nil, err
	}
	out := &Account{ID: a.ID, Name: a.Name, KeyID: a.KeyID, KeyName: a.KeyName, Scope: a.Scope,
		Operations: make([]*AccountOperation, len(a.Operations))}
	for i, op := range a.Operations {
		out.Operations[i] = &AccountOperation{Name: op.Name, Kind: op.Kind}
	}
	return out, nil
}

func (q queryResolver) Apps(ctx context.Context, first *int64, after *string) (*AppConnection, error) {
	apps, next, err := q.svc.ListApps(ctx, callerFrom(ctx), page(first, after))
	if err != nil {
		return nil, err
	}
	out := &AppConnection{PageInfo: pageInfo(next), Nodes: make([]*App, len(apps)), Edges: make([]*AppEdge, len(apps))}
	for i, a := range apps {
		out.Nodes[i] = appOf(a)
		out.Edges[i] = &AppEdge{Cursor: cursor(a.CreatedAt, a.ID), Node: out.Nodes[i]}
	}
	return out, nil
}

func (q queryResolver) App(ctx context.Context, id string) (*App, error) {
	a, err := q.svc.GetApp(ctx, callerFrom(ctx), id)
	if err != nil {
		return nil, err
	}
	return appOf(a), nil
}

func (q queryResolver) Tenants(ctx context.Context, first *int64, after *string) (*TenantConnection, error) {
	ts, next, err := q.svc.ListTenants(ctx, callerFrom(ctx), page(first, after))
	if err != nil {
		return nil, err
	}
	out := &TenantConnection{PageInfo: pageInfo(next), Nodes: make([]*Tenant, len(ts)), Edges: make([]*TenantEdge, len(ts))}
	for i, t := range ts {
		out.Nodes[i] = tenantOf(t)
		out.Edges[i] = &TenantEdge{Cursor: cursor(t.CreatedAt, t.ID), Node: out.Nodes[i]}
	}
	return out, nil
}

func (q queryResolver) Tenant(ctx context.Context, id string) (*Tenant, error) {
	c := callerFrom(ctx)
	t, err := q.svc.GetTenant(ctx, c, id)
	if err != nil {
		return nil, err
	}
	out := tenantOf(t)
	st, err := q.svc.TenantQuota(ctx, c, t)
	if err != nil {
		return nil, err
	}
	if st != nil {
		out.QuotaStatus = quotaStatusOf(*st)
	}
	return out, nil
}

// keyFilterFrom converts ListKeys' filters (nil: every key).
func keyFilterFrom(f *KeyFilter) account.KeyFilter {
	if f == nil {
		return account.KeyFilter{}
	}
	out := account.KeyFilter{
		AppID: orEmpty(f.AppID), TenantID: orEmpty(f.TenantID), Group: orEmpty(f.Group),
		Name: orEmpty(f.Name), NameContains: orEmpty(f.NameContains), RoleID: orEmpty(f.RoleID), Active: f.Active,
		ExpiringBefore: zeroIfNil(f.ExpiringBefore), UnusedSince: zeroIfNil(f.UnusedSince),
	}
	if f.Type != nil {
		out.Type = keyTypeFrom(*f.Type)
	}
	return out
}

// keyOrderFrom is the keys list's order of orderBy (nil: the default).
func keyOrderFrom(o *KeyOrder) store.KeyOrder {
	if o == nil {
		return store.KeyOrder{}
	}
	by := map[KeySortField]store.KeySort{KeySortFieldCreated: "", KeySortFieldName: store.SortName,
		KeySortFieldExpires: store.SortExpires, KeySortFieldLastUsed: store.SortLastUsed}[o.Field]
	return store.KeyOrder{By: by, Desc: o.Descending != nil && *o.Descending}
}

func (q queryResolver) Keys(ctx context.Context, filter *KeyFilter, orderBy *KeyOrder, first *int64, after *string) (*KeyConnection, error) {
	f := keyFilterFrom(filter)
	f.Order = keyOrderFrom(orderBy)
	keys, next, err := q.svc.ListKeys(ctx, callerFrom(ctx), f, page(first, after))
	if err != nil {
		return nil, err
	}
	now := q.svc.Now()
	out := &KeyConnection{PageInfo: pageInfo(next), Nodes: make([]*Key, len(keys)), Edges: make([]*KeyEdge, len(keys))}
	for i, k := range keys {
		out.Nodes[i] = keyOf(k, now)
		out.Edges[i] = &KeyEdge{Cursor: store.KeyToken(k, f.Order), Node: out.Nodes[i]}
	}
	return out, nil
}

func (q queryResolver) Key(ctx context.Context, id string) (*Key, error) {
	c := callerFrom(ctx)
	k, err := q.svc.GetKey(ctx, c, id)
	if err != nil {
		return nil, err
	}
	out := keyOf(k, q.svc.Now())
	qs, err := q.svc.KeyQuotas(ctx, c, k)
	if err != nil {
		return nil, err
	}
	for _, st := range qs {
		out.QuotaStatus = append(out.QuotaStatus, quotaStatusOf(st))
	}
	return out, nil
}

func (q queryResolver) ServiceAccessRoles(ctx context.Context, first *int64, after *string) (*ServiceAccessRoleConnection, error) {
	roles, next, err := q.svc.ListServiceAccessRoles(ctx, callerFrom(ctx), page(first, after))
	if err != nil {
		return nil, err
	}
	out := &ServiceAccessRoleConnection{PageInfo: pageInfo(next), Nodes: make([]*ServiceAccessRole, len(roles)),
		Edges: make([]*ServiceAccessRoleEdge, len(roles))}
	for i, r := range roles {
		out.Nodes[i] = roleOf(r)
		out.Edges[i] = &ServiceAccessRoleEdge{Cursor: cursor(r.CreatedAt, r.ID), Node: out.Nodes[i]}
	}
	return out, nil
}

func (q queryResolver) ServiceAccessRole(ctx context.Context, id string) (*ServiceAccessRole, error) {
	r, err := q.svc.GetServiceAccessRole(ctx, callerFrom(ctx), id)
	if err != nil {
		return nil, err
	}
	return roleOf(r), nil
}

func (q queryResolver) ServiceAccessDenials(ctx context.Context, tenantID, appID *string, first *int64, after *string) (*ServiceAccessDenialConnection, error) {
	ds, next, err := q.svc.ListServiceAccessDenials(ctx, callerFrom(ctx),
		account.DenialFilter{TenantID: orEmpty(tenantID), AppID: orEmpty(appID)}, page(first, after))
	if err != nil {
		return nil, err
	}
	out := &ServiceAccessDenialConnection{PageInfo: pageInfo(next), Nodes: make([]*ServiceAccessDenial, len(ds)),
		Edges: make([]*ServiceAccessDenialEdge, len(ds))}
	for i, d := range ds {
		out.Nodes[i] = denialOf(d)
		out.Edges[i] = &ServiceAccessDenialEdge{Cursor: cursor(d.CreatedAt, d.ID), Node: out.Nodes[i]}
	}
	return out, nil
}

func (q queryResolver) ServiceAccessDenial(ctx context.Context, id string) (*ServiceAccessDenial, error) {
	d, err := q.svc.GetServiceAccessDenial(ctx, callerFrom(ctx), id)
	if err != nil {
		return nil, err
	}
	return denialOf(d), nil
}

func (q queryResolver) Usage(ctx context.Context, input UsageInput) (*Usage, error) {
	in := account.UsageInput{Filters: map[store.UsageField]string{}, Granularity: store.Granularity(orEmpty(input.Granularity)),
		Since: input.Since, Until: zeroIfNil(input.Until)}
	for _, f := range []struct {
		field store.UsageField
		val   *string
	}{{store.UsageTenant, input.TenantID}, {store.UsageApp, input.AppID}, {store.UsageKey, input.KeyID},
		{store.UsageService, input.Service}, {store.UsageOperation, input.Operation}, {store.UsageOutcome, input.Outcome}} {
		if f.val != nil {
			in.Filters[f.field] = *f.val
		}
	}
	for _, g := range input.GroupBy {
		in.GroupBy = append(in.GroupBy, store.UsageField(g))
	}
	series, uq, err := q.svc.GetUsageQuery(ctx, callerFrom(ctx), in)
	if err != nil {
		return nil, err
	}
	out := &Usage{Granularity: string(uq.Granularity), Since: uq.From, Until: uq.Until, Series: make([]*UsageSeries, len(series))}
	for i, s := range series {
		gs := &UsageSeries{Total: s.Total, Group: []*UsageGroupValue{}, Points: make([]*UsagePoint, len(s.Points))}
		// In the order of the fields, as the gRPC map's keys sort.
		for _, f := range store.UsageFields {
			if v, ok := s.Group[f]; ok {
				gs.Group = append(gs.Group, &UsageGroupValue{Field: string(f), Value: v})
			}
		}
		for j, p := range s.Points {
			gs.Points[j] = &UsagePoint{Time: p.Time, Count: p.Count}
		}
		out.Series[i] = gs
	}
	return out, nil
}

func (q queryResolver) Replicas(ctx context.Context) (*Replicas, error) {
	rs, head, err := q.svc.ListReplicas(ctx, callerFrom(ctx))
	if err != nil {
		return nil, err
	}
	out := &Replicas{Head: head, Replicas: make([]*Replica, len(rs))}
	for i, r := range rs {
		out.Replicas[i] = replicaOf(r)
	}
	return out, nil
}

func (q queryResolver) SyncStatus(ctx context.Context, changeNumber *int64, keyID *string) (*SyncStatus, error) {
	var cn int64
	if changeNumber != nil {
		cn = *changeNumber
	}
	st, err := q.svc.GetSyncStatus(ctx, callerFrom(ctx), account.SyncInput{ChangeNumber: cn, KeyID: orEmpty(keyID)})
	if err != nil {
		return nil, err
	}
	out := &SyncStatus{ChangeNumber: st.ChangeNumber, Head: st.Head, Live: int64(st.Live), Synced: int64(st.Synced),
		Behind: make([]*Replica, len(st.Behind))}
	for i, b := range st.Behind {
		out.Behind[i] = replicaOf(b)
	}
	return out, nil
}

func (q queryResolver) AuditEvents(ctx context.Context, filter *AuditEventFilter, first *int64, after *string) (*AuditEventConnection, error) {
	var f account.AuditFilter
	if filter != nil {
		f = account.AuditFilter{KeyID: orEmpty(filter.KeyID), ActorKeyID: orEmpty(filter.ActorKeyID), Action: orEmpty(filter.Action),
			Outcome: orEmpty(filter.Outcome), Since: zeroIfNil(filter.Since), Until: zeroIfNil(filter.Until)}
	}
	evs, next, err := q.svc.ListAuditEvents(ctx, callerFrom(ctx), f, page(first, after))
	if err != nil {
		return nil, err
	}
	out := &AuditEventConnection{PageInfo: pageInfo(next), Nodes: make([]*AuditEvent, len(evs)), Edges: make([]*AuditEventEdge, len(evs))}
	for i, e := range evs {
		var cerr error
		if out.Nodes[i], cerr = auditEventOf(e); cerr != nil {
			q.log.Warn("account API: audit event whose before or after is not a JSON object", "event_id", e.ID, "err", cerr)
		}
		out.Edges[i] = &AuditEventEdge{Cursor: store.AuditToken(e), Node: out.Nodes[i]}
	}
	return out, nil
}

func (q queryResolver) Services(ctx context.Context) ([]*Service, error) {
	svcs, err := q.svc.Services(ctx, callerFrom(ctx))
	if err != nil {
		return nil, err
	}
	out := make([]*Service, len(svcs))
	for i, s := range svcs {
		gs := &Service{Name: s.Name, AnyKind: s.AnyKind, KeyTypes: []KeyType{}, Kinds: make([]*ServiceKind, len(s.Kinds))}
		for _, t := range s.KeyTypes {
			gs.KeyTypes = append(gs.KeyTypes, KeyType(strings.ToUpper(t)))
		}
		for j, k := range s.Kinds {
			gs.Kinds[j] = &ServiceKind{Name: k.Name, Operations: append([]string{}, k.Operations...), AnyOperation: k.AnyOperation}
		}
		out[i] = gs
	}
	return out, nil
}

// durationOf reads a grace period such as 24h; "" is none.
func durationOf(v *account.Violations, field string, s *string) time.Duration {
	if s == nil || *s == "" {
		return 0
	}
	d, err := time.ParseDuration(*s)
	if err != nil {
		v.Add(field, "%q is not a duration (e.g. 90s, 24h)", *s)
		return 0
	}
	return d
}
