package accountgraphql

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// timeOf is an optional time: nil for the zero time (unset).
func timeOf(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// optional is nil for "" (an unset id or name).
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func orEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// truncated keeps input times to the microsecond, as the database keeps
// them (and as the gRPC adapter does), so that both transports store the
// same value.
func truncated(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.Truncate(time.Microsecond)
	return &u
}

func zeroIfNil(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond)
}

func appOf(a store.App) *App {
	return &App{ID: a.ID, Name: a.Name, Description: a.Description, Active: a.Active,
		CreatedAt: timeOf(a.CreatedAt), UpdatedAt: timeOf(a.UpdatedAt)}
}

func tenantOf(t store.Tenant) *Tenant {
	return &Tenant{ID: t.ID, Name: t.Name, Description: t.Description, Active: t.Active,
		CreatedAt: timeOf(t.CreatedAt), UpdatedAt: timeOf(t.UpdatedAt), Quota: quotaOf(authz.Monthly(t.Quota))}
}

var keyTypes = map[authz.KeyType]KeyType{
	authz.KeyTypeService: KeyTypeService,
	authz.KeyTypeApp:     KeyTypeApp,
	authz.KeyTypeAccount: KeyTypeAccount,
}

// keyTypeOf is the schema's name of a key type ("" for unknown, which no
// stored key has).
func keyTypeOf(t authz.KeyType) KeyType { return keyTypes[t] }

// keyTypeFrom converts the schema's enum (validated by gqlgen).
func keyTypeFrom(t KeyType) authz.KeyType {
	for at, gt := range keyTypes {
		if gt == t {
			return at
		}
	}
	return authz.KeyTypeUnknown
}

var rateUnits = map[authz.RateUnit]RateLimitUnit{
	authz.RateUnitSecond: RateLimitUnitSecond,
	authz.RateUnitMinute: RateLimitUnitMinute,
	authz.RateUnitHour:   RateLimitUnitHour,
	authz.RateUnitDay:    RateLimitUnitDay,
}

func rateLimitOf(r authz.RateLimit) *RateLimit {
	if r.IsZero() {
		return nil
	}
	return &RateLimit{RequestsPerUnit: int64(r.RequestsPerUnit), Unit: rateUnits[r.Unit]}
}

// rateLimitFrom converts a rate limit input; a count that does not fit is
// a violation of field (the service checks the rest).
func rateLimitFrom(v *account.Violations, field string, in *RateLimitInput) authz.RateLimit {
	if in == nil {
		return authz.RateLimit{}
	}
	if in.RequestsPerUnit < 0 || in.RequestsPerUnit > int64(^uint32(0)) {
		v.Add(field+".requestsPerUnit", "%d is out of range", in.RequestsPerUnit)
		return authz.RateLimit{}
	}
	for u, gu := range rateUnits {
		if gu == in.Unit {
			return authz.RateLimit{RequestsPerUnit: uint32(in.RequestsPerUnit), Unit: u}
		}
	}
	v.Add(field+".unit", "required: SECOND, MINUTE, HOUR or DAY")
	return authz.RateLimit{}
}

// rateLimitUpdate is an update's rate limit: nil unchanged, the zero
// limit cleared.
func rateLimitUpdate(v *account.Violations, in *RateLimitInput, clear *bool) *authz.RateLimit {
	switch {
	case in != nil && isTrue(clear):
		v.Add("rateLimit", "set together with clearRateLimit")
		return nil
	case in != nil:
		r := rateLimitFrom(v, "rateLimit", in)
		return &r
	case isTrue(clear):
		return &authz.RateLimit{}
	}
	return nil
}

func isTrue(b *bool) bool { return b != nil && *b }

func headersOf(hs []authz.HeaderSpec) []*ResponseHeader {
	out := make([]*ResponseHeader, len(hs))
	for i, h := range hs {
		out[i] = &ResponseHeader{Name: h.Name, Value: h.Value, Disabled: h.Disabled}
	}
	return out
}

func headersFrom(hs []*ResponseHeaderInput) []authz.HeaderSpec {
	if hs == nil {
		return nil
	}
	out := make([]authz.HeaderSpec, len(hs))
	for i, h := range hs {
		out[i] = authz.HeaderSpec{Name: h.Name, Value: h.Value, Disabled: isTrue(h.Disabled)}
	}
	return out
}

var origins = map[store.Origin]KeyOrigin{store.OriginGenerated: KeyOriginGenerated, store.OriginCustom: KeyOriginCustom}

// keyOf converts a stored key. Neither its hash nor its previous hash is
// copied: the schema has no field for them.
func keyOf(k store.Key, now time.Time) *Key {
	sp := &k.Spec
	out := &Key{
		ID: sp.ID, Name: sp.Name, Type: keyTypeOf(sp.Type),
		AppID: optional(sp.AppID), AppName: optional(sp.AppName),
		TenantID: optional(sp.TenantID), TenantName: optional(sp.TenantName),
		Scope: sp.Scope, Active: sp.Active, Description: sp.Description, Group: sp.Group,
		NotBefore: timeOf(sp.NotBefore), ExpiresAt: timeOf(sp.ExpiresAt),
		IPFilters:       append([]string{}, sp.IPFilters...),
		ResponseHeaders: headersOf(sp.ResponseHeaders),
		Origin:          origins[k.Origin],
		CreatedAt:       timeOf(k.CreatedAt), UpdatedAt: timeOf(k.UpdatedAt), LastUsedAt: timeOf(k.LastUsedAt),
		RoleIds:   append([]string{}, k.RoleIDs...),
		RateLimit: rateLimitOf(sp.RateLimit),
		Quota:     quotaOf(sp.Quota),
	}
	if sp.PreviousHash != "" && now.Before(sp.PreviousValidUntil) {
		out.PreviousSecretExpiresAt = timeOf(sp.PreviousValidUntil)
	}
	return out
}

func roleOf(r store.Role) *ServiceAccessRole {
	return &ServiceAccessRole{ID: r.ID, Name: r.Name, Description: r.Description, Scope: r.Scope,
		RateLimit: rateLimitOf(r.RateLimit), CreatedAt: timeOf(r.CreatedAt), UpdatedAt: timeOf(r.UpdatedAt)}
}

func denialOf(d store.Denial) *ServiceAccessDenial {
	return &ServiceAccessDenial{ID: d.ID, TenantID: d.TenantID, AppID: d.AppID, Scope: d.Scope, Reason: d.Reason,
		CreatedAt: timeOf(d.CreatedAt), UpdatedAt: timeOf(d.UpdatedAt)}
}

// jsonObject is an audit event's before or after: nil when absent or not
// a JSON object.
func jsonObject(raw json.RawMessage) (map[string]any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func auditEventOf(e store.AuditEvent) (*AuditEvent, error) {
	out := &AuditEvent{ID: strconv.FormatInt(e.ID, 10), Time: e.At, ActorKeyID: e.Actor.KeyID, ActorKeyName: e.Actor.KeyName,
		Action: e.Action, ObjectType: e.ObjectType, ObjectID: e.ObjectID, Outcome: e.Outcome, Reason: e.Reason}
	var err, err2 error
	out.Before, err = jsonObject(e.Before)
	out.After, err2 = jsonObject(e.After)
	if err == nil {
		err = err2
	}
	return out, err
}

func replicaOf(r account.ReplicaStatus) *Replica {
	return &Replica{ID: r.ID, Version: r.Version, StartedAt: timeOf(r.StartedAt), AppliedChange: r.Applied,
		AppliedAt: timeOf(r.AppliedAt), HeartbeatAt: timeOf(r.HeartbeatAt), Live: r.Live, Stopped: r.Stopped,
		ChangesBehind: r.ChangesBehind, LagSeconds: r.Lag.Seconds()}
}

// cursor is where a page after an item starts: the store's page token
// of the item (its sort key, created_at and id), which every store
// encodes alike (store.PageToken) and every list takes as after.
func cursor(createdAt time.Time, id string) string {
	return store.PageToken{CreatedAt: createdAt.UnixMicro(), ID: id}.String()
}

func pageInfo(next string) *PageInfo {
	return &PageInfo{HasNextPage: next != "", EndCursor: optional(next)}
}

// page is a list's page: first (nil: the service's default) and after.
func page(first *int64, after *string) account.PageInput {
	p := account.PageInput{Token: orEmpty(after)}
	if first != nil {
		// Out of int range stays out of range for the service's check.
		p.Size = int(max(min(*first, 1<<31-1), -1))
	}
	return p
}
