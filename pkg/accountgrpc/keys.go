package accountgrpc

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// keyRequest is what every key-creating request carries.
type keyRequest interface {
	GetId() string
	GetName() string
	GetDescription() string
	GetGroup() string
	GetScope() string
	GetNotBefore() *timestamppb.Timestamp
	GetExpiresAt() *timestamppb.Timestamp
	GetIpFilters() []string
	GetResponseHeaders() []*accountv1.ResponseHeader
	GetRoleIds() []string
	GetRateLimit() *accountv1.RateLimit
	GetQuota() *accountv1.Quota
}

// keyInput converts a key-creating request; active is the request's
// optional active field.
func keyInput(typ authz.KeyType, appID, tenantID string, active *bool, r keyRequest) (account.KeyInput, error) {
	var v account.Violations
	in := account.KeyInput{
		Type: typ, AppID: appID, TenantID: tenantID, Active: active,
		ID: r.GetId(), Name: r.GetName(), Description: r.GetDescription(), Group: r.GetGroup(), Scope: r.GetScope(),
		NotBefore:       timeOf(&v, "not_before", r.GetNotBefore()),
		ExpiresAt:       timeOf(&v, "expires_at", r.GetExpiresAt()),
		IPFilters:       r.GetIpFilters(),
		ResponseHeaders: headersFromProto(r.GetResponseHeaders()),
		RoleIDs:         r.GetRoleIds(),
	}
	in.RateLimit = rateLimitOf(&v, "rate_limit", r.GetRateLimit())
	in.Quota = quotaOf(&v, "quota", r.GetQuota())
	return in, v.Err()
}

func (s *Server) generate(ctx context.Context, typ authz.KeyType, appID, tenantID string, active *bool, r keyRequest) (string, *accountv1.Key, []string, error) {
	in, err := keyInput(typ, appID, tenantID, active, r)
	if err != nil {
		return "", nil, nil, grpcError(err)
	}
	secret, k, w, err := s.svc.GenerateKey(ctx, callerFrom(ctx), in)
	if err != nil {
		return "", nil, nil, grpcError(err)
	}
	return secret.Reveal(), keyProto(k, s.svc.Now()), w, nil
}

// GenerateServiceAccessKey creates a tenant-level service key.
func (s *Server) GenerateServiceAccessKey(ctx context.Context, r *accountv1.GenerateServiceAccessKeyRequest) (*accountv1.GenerateServiceAccessKeyResponse, error) {
	secret, k, w, err := s.generate(ctx, authz.KeyTypeService, r.GetAppId(), r.GetTenantId(), r.Active, r)
	if err != nil {
		return nil, err
	}
	return &accountv1.GenerateServiceAccessKeyResponse{PrivateKey: secret, Key: k, Warnings: w}, nil
}

// GenerateAppAccessKey creates an app-level key.
func (s *Server) GenerateAppAccessKey(ctx context.Context, r *accountv1.GenerateAppAccessKeyRequest) (*accountv1.GenerateAppAccessKeyResponse, error) {
	secret, k, w, err := s.generate(ctx, authz.KeyTypeApp, r.GetAppId(), "", r.Active, r)
	if err != nil {
		return nil, err
	}
	return &accountv1.GenerateAppAccessKeyResponse{PrivateKey: secret, Key: k, Warnings: w}, nil
}

// GenerateAccountAccessKey creates an account key.
func (s *Server) GenerateAccountAccessKey(ctx context.Context, r *accountv1.GenerateAccountAccessKeyRequest) (*accountv1.GenerateAccountAccessKeyResponse, error) {
	secret, k, w, err := s.generate(ctx, authz.KeyTypeAccount, "", "", r.Active, r)
	if err != nil {
		return nil, err
	}
	return &accountv1.GenerateAccountAccessKeyResponse{PrivateKey: secret, Key: k, Warnings: w}, nil
}

// ImportKey creates a key whose secret the caller supplies (origin custom).
func (s *Server) ImportKey(ctx context.Context, r *accountv1.ImportKeyRequest) (*accountv1.ImportKeyResponse, error) {
	typ, _ := KeyTypeFromProto(r.GetType()) // unknown: the service refuses it
	in, err := keyInput(typ, r.GetAppId(), r.GetTenantId(), r.Active, r)
	if err != nil {
		return nil, grpcError(err)
	}
	k, w, err := s.svc.ImportKey(ctx, callerFrom(ctx), in, r.GetPrivateKey())
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.ImportKeyResponse{Key: keyProto(k, s.svc.Now()), Warnings: w}, nil
}

// GetKey returns one key of the caller's account.
func (s *Server) GetKey(ctx context.Context, r *accountv1.GetKeyRequest) (*accountv1.GetKeyResponse, error) {
	c := callerFrom(ctx)
	k, err := s.svc.GetKey(ctx, c, r.GetId())
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.GetKeyResponse{Key: keyProto(k, s.svc.Now())}
	qs, err := s.svc.KeyQuotas(ctx, c, k)
	if err != nil {
		return nil, grpcError(err)
	}
	for _, q := range qs {
		out.QuotaStatus = append(out.QuotaStatus, quotaStatusProto(q))
	}
	return out, nil
}

// ListKeys returns one page of the caller's keys that pass the filters.
func (s *Server) ListKeys(ctx context.Context, r *accountv1.ListKeysRequest) (*accountv1.ListKeysResponse, error) {
	var v account.Violations
	f := keyFilter(&v, "", r, r.Active)
	if o, err := store.ParseKeyOrder(r.GetOrderBy()); err != nil {
		v.Add("order_by", "%q is not an order: give created, name, expires or last_used, with \"-\" first for descending", r.GetOrderBy())
	} else {
		f.Order = o
	}
	if err := v.Err(); err != nil {
		return nil, grpcError(err)
	}
	keys, next, err := s.svc.ListKeys(ctx, callerFrom(ctx), f, page(r.GetPageSize(), r.GetPageToken()))
	if err != nil {
		return nil, grpcError(err)
	}
	now := s.svc.Now()
	out := &accountv1.ListKeysResponse{NextPageToken: next, Keys: make([]*accountv1.Key, len(keys))}
	for i, k := range keys {
		out.Keys[i] = keyProto(k, now)
	}
	return out, nil
}

// keyUpdate converts an UpdateKeyRequest: set fields, and the clear_*
// flags as the zero time.
func keyUpdate(r *accountv1.UpdateKeyRequest) (account.KeyUpdate, error) {
	var v account.Violations
	u := account.KeyUpdate{Name: r.Name, Description: r.Description, Group: r.Group, Scope: r.Scope, Active: r.Active}
	switch {
	case r.NotBefore != nil && r.GetClearNotBefore():
		v.Add("not_before", "set together with clear_not_before")
	case r.NotBefore != nil:
		if u.NotBefore = timeOf(&v, "not_before", r.NotBefore); u.NotBefore != nil && u.NotBefore.IsZero() {
			v.Add("not_before", "must be after 0001-01-01T00:00:00Z")
		}
	case r.GetClearNotBefore():
		u.NotBefore = &time.Time{}
	}
	switch {
	case r.ExpiresAt != nil && r.GetClearExpiresAt():
		v.Add("expires_at", "set together with clear_expires_at")
	case r.ExpiresAt != nil:
		if u.ExpiresAt = timeOf(&v, "expires_at", r.ExpiresAt); u.ExpiresAt != nil && u.ExpiresAt.IsZero() {
			v.Add("expires_at", "must be after 0001-01-01T00:00:00Z")
		}
	case r.GetClearExpiresAt():
		u.ExpiresAt = &time.Time{}
	}
	if r.IpFilters != nil {
		f := append([]string{}, r.IpFilters.GetFilters()...)
		u.IPFilters = &f
	}
	if r.ResponseHeaders != nil {
		h := headersFromProto(r.ResponseHeaders.GetHeaders())
		if h == nil {
			h = []authz.HeaderSpec{}
		}
		u.ResponseHeaders = &h
	}
	if r.RoleIds != nil {
		ids := append([]string{}, r.RoleIds.GetIds()...)
		u.RoleIDs = &ids
	}
	u.RateLimit = rateLimitUpdate(&v, r.GetRateLimit(), r.GetClearRateLimit())
	u.Quota = quotaUpdate(&v, r.GetQuota(), r.GetClearQuota())
	return u, v.Err()
}

// UpdateKey changes the fields present.
func (s *Server) UpdateKey(ctx context.Context, r *accountv1.UpdateKeyRequest) (*accountv1.UpdateKeyResponse, error) {
	u, err := keyUpdate(r)
	if err != nil {
		return nil, grpcError(err)
	}
	k, w, err := s.svc.UpdateKey(ctx, callerFrom(ctx), r.GetId(), u)
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.UpdateKeyResponse{Key: keyProto(k, s.svc.Now()), Warnings: w}, nil
}

// keyFilter converts the filter fields ListKeys and UpdateKeys share.
func keyFilter(v *account.Violations, prefix string, r interface {
	GetAppId() string
	GetTenantId() string
	GetGroup() string
	GetType() accountv1.KeyType
	GetExpiringBefore() *timestamppb.Timestamp
	GetUnusedSince() *timestamppb.Timestamp
	GetName() string
	GetRoleId() string
	GetNameContains() string
}, active *bool) account.KeyFilter {
	f := account.KeyFilter{
		NameContains:   r.GetNameContains(),
		AppID:          r.GetAppId(),
		TenantID:       r.GetTenantId(),
		Group:          r.GetGroup(),
		Name:           r.GetName(),
		RoleID:         r.GetRoleId(),
		Active:         active,
		ExpiringBefore: zeroIfNil(timeOf(v, prefix+"expiring_before", r.GetExpiringBefore())),
		UnusedSince:    zeroIfNil(timeOf(v, prefix+"unused_since", r.GetUnusedSince())),
	}
	if r.GetType() != accountv1.KeyType_KEY_TYPE_UNSPECIFIED {
		t, ok := KeyTypeFromProto(r.GetType())
		if !ok {
			v.Add(prefix+"type", "unknown key type %d", r.GetType())
		}
		f.Type = t
	}
	return f
}

// UpdateKeys applies one change to every key that passes the filter.
func (s *Server) UpdateKeys(ctx context.Context, r *accountv1.UpdateKeysRequest) (*accountv1.UpdateKeysResponse, error) {
	var v account.Violations
	in := account.BulkKeyUpdate{All: r.GetAll(), DryRun: r.GetDryRun()}
	if pf := r.GetFilter(); pf != nil {
		in.Filter = keyFilter(&v, "filter.", pf, pf.Active)
	}
	in.Update = account.KeyUpdate{Description: r.Description, Group: r.Group, Scope: r.Scope, Active: r.Active}
	switch {
	case r.ExpiresAt != nil && r.GetClearExpiresAt():
		v.Add("expires_at", "set together with clear_expires_at")
	case r.ExpiresAt != nil:
		if in.Update.ExpiresAt = timeOf(&v, "expires_at", r.ExpiresAt); in.Update.ExpiresAt != nil && in.Update.ExpiresAt.IsZero() {
			v.Add("expires_at", "must be after 0001-01-01T00:00:00Z")
		}
	case r.GetClearExpiresAt():
		in.Update.ExpiresAt = &time.Time{}
	}
	if r.ExpectedCount != nil {
		n := int(r.GetExpectedCount())
		in.ExpectedCount = &n
	}
	if err := v.Err(); err != nil {
		return nil, grpcError(err)
	}
	res, err := s.svc.UpdateKeys(ctx, callerFrom(ctx), in)
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.UpdateKeysResponse{Count: int32(res.Count), KeyIds: res.IDs, DryRun: res.DryRun, Warnings: res.Warnings}, nil
}

// RegenerateKey gives a key a new generated secret; the old one stays
// valid for the grace period.
func (s *Server) RegenerateKey(ctx context.Context, r *accountv1.RegenerateKeyRequest) (*accountv1.RegenerateKeyResponse, error) {
	var grace time.Duration
	if g := r.GetGracePeriod(); g != nil {
		if err := g.CheckValid(); err != nil {
			var v account.Violations
			v.Add("grace_period", "not a valid duration")
			return nil, grpcError(v.Err())
		}
		grace = g.AsDuration()
	}
	secret, k, err := s.svc.RegenerateKey(ctx, callerFrom(ctx), r.GetId(), grace)
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.RegenerateKeyResponse{PrivateKey: secret.Reveal(), Key: keyProto(k, s.svc.Now())}, nil
}

// DeleteKey removes a key.
func (s *Server) DeleteKey(ctx context.Context, r *accountv1.DeleteKeyRequest) (*accountv1.DeleteKeyResponse, error) {
	k, err := s.svc.DeleteKey(ctx, callerFrom(ctx), r.GetId())
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.DeleteKeyResponse{Key: keyProto(k, s.svc.Now())}, nil
}

// ListAuditEvents returns one page of the caller's audit log.
func (s *Server) ListAuditEvents(ctx context.Context, r *accountv1.ListAuditEventsRequest) (*accountv1.ListAuditEventsResponse, error) {
	f := account.AuditFilter{KeyID: r.GetKeyId(), ActorKeyID: r.GetActorKeyId(), Action: r.GetAction(), Outcome: r.GetOutcome()}
	var v account.Violations
	for _, t := range []struct {
		field string
		ts    *timestamppb.Timestamp
		dst   *time.Time
	}{{"since", r.GetSince(), &f.Since}, {"until", r.GetUntil(), &f.Until}} {
		if t.ts == nil {
			continue
		}
		if err := t.ts.CheckValid(); err != nil {
			v.Add(t.field, "not a valid time")
			continue
		}
		*t.dst = t.ts.AsTime()
	}
	if err := v.Err(); err != nil {
		return nil, grpcError(err)
	}
	evs, next, err := s.svc.ListAuditEvents(ctx, callerFrom(ctx), f, page(r.GetPageSize(), r.GetPageToken()))
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.ListAuditEventsResponse{NextPageToken: next, Events: make([]*accountv1.AuditEvent, len(evs))}
	for i, e := range evs {
		var errs []error
		if out.Events[i], errs = auditProto(e); len(errs) > 0 {
			s.log.Warn("account API: audit event whose before or after is not a JSON object", "event_id", e.ID, "err", errs[0])
		}
	}
	return out, nil
}
