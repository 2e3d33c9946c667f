package accountgrpc

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// ts converts a time; the zero time is an unset timestamp.
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func appProto(a store.App) *accountv1.App {
	return &accountv1.App{
		Id:          a.ID,
		Name:        a.Name,
		Description: a.Description,
		Active:      a.Active,
		CreateTime:  ts(a.CreatedAt),
		UpdateTime:  ts(a.UpdatedAt),
	}
}

func tenantProto(t store.Tenant) *accountv1.Tenant {
	return &accountv1.Tenant{
		Id:          t.ID,
		Name:        t.Name,
		Description: t.Description,
		Active:      t.Active,
		CreateTime:  ts(t.CreatedAt),
		UpdateTime:  ts(t.UpdatedAt),
		Quota:       quotaProto(authz.Monthly(t.Quota)),
	}
}

// KeyTypeProto converts a key type to its API enum.
func KeyTypeProto(t authz.KeyType) accountv1.KeyType {
	switch t {
	case authz.KeyTypeService:
		return accountv1.KeyType_KEY_TYPE_SERVICE
	case authz.KeyTypeApp:
		return accountv1.KeyType_KEY_TYPE_APP
	case authz.KeyTypeAccount:
		return accountv1.KeyType_KEY_TYPE_ACCOUNT
	}
	return accountv1.KeyType_KEY_TYPE_UNSPECIFIED
}

// KeyTypeFromProto converts the API enum; false for unspecified or
// unknown values.
func KeyTypeFromProto(t accountv1.KeyType) (authz.KeyType, bool) {
	switch t {
	case accountv1.KeyType_KEY_TYPE_SERVICE:
		return authz.KeyTypeService, true
	case accountv1.KeyType_KEY_TYPE_APP:
		return authz.KeyTypeApp, true
	case accountv1.KeyType_KEY_TYPE_ACCOUNT:
		return authz.KeyTypeAccount, true
	}
	return authz.KeyTypeUnknown, false
}

func originProto(o store.Origin) accountv1.KeyOrigin {
	switch o {
	case store.OriginGenerated:
		return accountv1.KeyOrigin_KEY_ORIGIN_GENERATED
	case store.OriginCustom:
		return accountv1.KeyOrigin_KEY_ORIGIN_CUSTOM
	}
	return accountv1.KeyOrigin_KEY_ORIGIN_UNSPECIFIED
}

func headersProto(hs []authz.HeaderSpec) []*accountv1.ResponseHeader {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*accountv1.ResponseHeader, len(hs))
	for i, h := range hs {
		out[i] = &accountv1.ResponseHeader{Name: h.Name, Value: h.Value, Disabled: h.Disabled}
	}
	return out
}

func headersFromProto(hs []*accountv1.ResponseHeader) []authz.HeaderSpec {
	if len(hs) == 0 {
		return nil
	}
	out := make([]authz.HeaderSpec, len(hs))
	for i, h := range hs {
		out[i] = authz.HeaderSpec{Name: h.GetName(), Value: h.GetValue(), Disabled: h.GetDisabled()}
	}
	return out
}

// keyProto converts a stored key. It never copies the hash nor the
// previous hash: the API has no field for them.
func keyProto(k store.Key, now time.Time) *accountv1.Key {
	sp := &k.Spec
	out := &accountv1.Key{
		Id:              sp.ID,
		Name:            sp.Name,
		Type:            KeyTypeProto(sp.Type),
		AppId:           sp.AppID,
		TenantId:        sp.TenantID,
		Scope:           sp.Scope,
		Active:          sp.Active,
		Description:     sp.Description,
		Group:           sp.Group,
		NotBefore:       ts(sp.NotBefore),
		ExpiresAt:       ts(sp.ExpiresAt),
		IpFilters:       append([]string(nil), sp.IPFilters...),
		ResponseHeaders: headersProto(sp.ResponseHeaders),
		Origin:          originProto(k.Origin),
		CreateTime:      ts(k.CreatedAt),
		UpdateTime:      ts(k.UpdatedAt),
		LastUsedTime:    ts(k.LastUsedAt),
		AppName:         sp.AppName,
		TenantName:      sp.TenantName,
		RoleIds:         append([]string(nil), k.RoleIDs...),
		RateLimit:       rateLimitProto(sp.RateLimit),
		Quota:           quotaProto(sp.Quota),
	}
	if sp.PreviousHash != "" && now.Before(sp.PreviousValidUntil) {
		out.PreviousSecretExpireTime = ts(sp.PreviousValidUntil)
	}
	return out
}

// jsonStruct converts an audit before/after JSON object; nil when absent
// or not an object.
func jsonStruct(raw json.RawMessage) (*structpb.Struct, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, nil
	}
	return structpb.NewStruct(m)
}

// timeOf converts an optional timestamp: nil when absent. Times are kept
// to the microsecond, as a database keeps them. A timestamp that is not
// valid is a violation of field.
func timeOf(v *account.Violations, field string, t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	if err := t.CheckValid(); err != nil {
		v.Add(field, "not a valid timestamp")
		return nil
	}
	out := t.AsTime().Truncate(time.Microsecond)
	return &out
}

// zeroIfNil is timeOf's time for a store field whose zero is "unset".
func zeroIfNil(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func auditProto(e store.AuditEvent) (*accountv1.AuditEvent, []error) {
	pe := &accountv1.AuditEvent{
		Id:           e.ID,
		Time:         ts(e.At),
		ActorKeyId:   e.Actor.KeyID,
		ActorKeyName: e.Actor.KeyName,
		Action:       e.Action,
		ObjectType:   e.ObjectType,
		ObjectId:     e.ObjectID,
		Outcome:      e.Outcome,
		Reason:       e.Reason,
	}
	var errs []error
	var err error
	if pe.Before, err = jsonStruct(e.Before); err != nil {
		errs = append(errs, err)
	}
	if pe.After, err = jsonStruct(e.After); err != nil {
		errs = append(errs, err)
	}
	return pe, errs
}
