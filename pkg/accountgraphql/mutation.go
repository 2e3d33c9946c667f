package accountgraphql

import (
	"context"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

type mutationResolver struct{ *Resolver }

func (m mutationResolver) CreateApp(ctx context.Context, in CreateAppInput) (*AppPayload, error) {
	a, err := m.svc.CreateApp(ctx, callerFrom(ctx), account.OwnerInput{ID: orEmpty(in.ID), Name: in.Name, Description: orEmpty(in.Description)})
	if err != nil {
		return nil, err
	}
	return &AppPayload{App: appOf(a), ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) UpdateApp(ctx context.Context, id string, in UpdateAppInput) (*AppPayload, error) {
	a, err := m.svc.UpdateApp(ctx, callerFrom(ctx), id, account.OwnerUpdate{Name: in.Name, Description: in.Description, Active: in.Active})
	if err != nil {
		return nil, err
	}
	return &AppPayload{App: appOf(a), ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) DeleteApp(ctx context.Context, id string, cascade *bool) (*AppPayload, error) {
	a, err := m.svc.DeleteApp(ctx, callerFrom(ctx), account.DeleteInput{ID: id, Cascade: isTrue(cascade)})
	if err != nil {
		return nil, err
	}
	return &AppPayload{App: appOf(a), ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) CreateTenant(ctx context.Context, in CreateTenantInput) (*TenantPayload, error) {
	var v account.Violations
	quota := quotaFrom(in.Quota)
	if err := v.Err(); err != nil {
		return nil, err
	}
	t, err := m.svc.CreateTenant(ctx, callerFrom(ctx), account.OwnerInput{ID: orEmpty(in.ID), Name: in.Name, Description: orEmpty(in.Description), Quota: quota})
	if err != nil {
		return nil, err
	}
	return &TenantPayload{Tenant: tenantOf(t), ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) UpdateTenant(ctx context.Context, id string, in UpdateTenantInput) (*TenantPayload, error) {
	var v account.Violations
	quota := quotaUpdate(&v, in.Quota, in.ClearQuota)
	if err := v.Err(); err != nil {
		return nil, err
	}
	t, err := m.svc.UpdateTenant(ctx, callerFrom(ctx), id, account.OwnerUpdate{Name: in.Name, Description: in.Description, Active: in.Active, Quota: quota})
	if err != nil {
		return nil, err
	}
	return &TenantPayload{Tenant: tenantOf(t), ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) DeleteTenant(ctx context.Context, id string, cascade *bool) (*TenantPayload, error) {
	t, err := m.svc.DeleteTenant(ctx, callerFrom(ctx), account.DeleteInput{ID: id, Cascade: isTrue(cascade)})
	if err != nil {
		return nil, err
	}
	return &TenantPayload{Tenant: tenantOf(t), ChangeNumber: changeNumber(ctx)}, nil
}

// keyFields are the fields every key input shares.
type keyFields struct {
	active                *bool
	id, name, description *string
	group, scope          *string
	notBefore, expiresAt  *time.Time
	ipFilters, roleIDs    []string
	responseHeaders       []*ResponseHeaderInput
	rateLimit             *RateLimitInput
	quota                 *QuotaInput
	typ                   authz.KeyType
	appID, tenantID       string
}

func (f keyFields) input() (account.KeyInput, error) {
	var v account.Violations
	in := account.KeyInput{
		Type: f.typ, AppID: f.appID, TenantID: f.tenantID, Active: f.active,
		ID: orEmpty(f.id), Name: orEmpty(f.name), Description: orEmpty(f.description), Group: orEmpty(f.group), Scope: orEmpty(f.scope),
		NotBefore: truncated(f.notBefore), ExpiresAt: truncated(f.expiresAt),
		IPFilters: f.ipFilters, ResponseHeaders: headersFrom(f.responseHeaders), RoleIDs: f.roleIDs,
	}
	in.RateLimit = rateLimitFrom(&v, "rateLimit", f.rateLimit)
	in.Quota = quotaFrom(f.quota)
	return in, v.Err()
}

// generate creates a key with a new secret: the one payload, with
// regenerateKey's, that carries a secret.
func (m mutationResolver) generate(ctx context.Context, f keyFields) (*GeneratedKeyPayload, error) {
	in, err := f.input()
	if err != nil {
		return nil, err
	}
	secret, k, w, err := m.svc.GenerateKey(ctx, callerFrom(ctx), in)
	if err != nil {
		return nil, err
	}
	return generated(secret, keyOf(k, m.svc.Now()), w, changeNumber(ctx)), nil
}

func generated(secret account.Secret, k *Key, w account.Warnings, cn int64) *GeneratedKeyPayload {
	return &GeneratedKeyPayload{PrivateKey: secret.Reveal(), PublicKey: k.ID, Scope: k.Scope, Description: k.Description,
		Key: k, Warnings: warnings(w), ChangeNumber: cn}
}

func warnings(w account.Warnings) []string {
	if w == nil {
		return []string{}
	}
	return w
}

func (m mutationResolver) GenerateServiceAccessKey(ctx context.Context, in GenerateServiceAccessKeyInput) (*GeneratedKeyPayload, error) {
	return m.generate(ctx, keyFields{typ: authz.KeyTypeService, appID: in.AppID, tenantID: in.TenantID,
		active: in.Active, id: in.ID, name: in.Name, description: in.Description, group: in.Group, scope: in.Scope,
		notBefore: in.NotBefore, expiresAt: in.ExpiresAt, ipFilters: in.IPFilters, responseHeaders: in.ResponseHeaders,
		roleIDs: in.RoleIds, rateLimit: in.RateLimit, quota: in.Quota})
}

func (m mutationResolver) GenerateAppAccessKey(ctx context.Context, in GenerateAppAccessKeyInput) (*GeneratedKeyPayload, error) {
	return m.generate(ctx, keyFields{typ: authz.KeyTypeApp, appID: in.AppID,
		active: in.Active, id: in.ID, name: in.Name, description: in.Description, group: in.Group, scope: in.Scope,
		notBefore: in.NotBefore, expiresAt: in.ExpiresAt, ipFilters: in.IPFilters, responseHeaders: in.ResponseHeaders,
		roleIDs: in.RoleIds, rateLimit: in.RateLimit, quota: in.Quota})
}

func (m mutationResolver) GenerateAccountAccessKey(ctx context.Context, in GenerateAccountAccessKeyInput) (*GeneratedKeyPayload, error) {
	return m.generate(ctx, keyFields{typ: authz.KeyTypeAccount,
		active: in.Active, id: in.ID, name: in.Name, description: in.Description, group: in.Group, scope: in.Scope,
		notBefore: in.NotBefore, expiresAt: in.ExpiresAt, ipFilters: in.IPFilters, responseHeaders: in.ResponseHeaders,
		roleIDs: in.RoleIds, rateLimit: in.RateLimit, quota: in.Quota})
}

func (m mutationResolver) ImportKey(ctx context.Context, in ImportKeyInput) (*KeyPayload, error) {
	ki, err := keyFields{typ: keyTypeFrom(in.Type), appID: orEmpty(in.AppID), tenantID: orEmpty(in.TenantID),
		active: in.Active, id: in.ID, name: in.Name, description: in.Description, group: in.Group, scope: in.Scope,
		notBefore: in.NotBefore, expiresAt: in.ExpiresAt, ipFilters: in.IPFilters, responseHeaders: in.ResponseHeaders,
		roleIDs: in.RoleIds, rateLimit: in.RateLimit, quota: in.Quota}.input()
	if err != nil {
		return nil, err
	}
	k, w, err := m.svc.ImportKey(ctx, callerFrom(ctx), ki, in.PrivateKey)
	if err != nil {
		return nil, err
	}
	return &KeyPayload{Key: keyOf(k, m.svc.Now()), Warnings: warnings(w), ChangeNumber: changeNumber(ctx)}, nil
}

// keyUpdateFrom converts an update: fields left out stay; a list given
// replaces the key's.
func keyUpdateFrom(in UpdateKeyInput) (account.KeyUpdate, error) {
	var v account.Violations
	u := account.KeyUpdate{Name: in.Name, Description: in.Description, Group: in.Group, Scope: in.Scope, Active: in.Active}
	u.NotBefore = timeUpdate(&v, "notBefore", in.NotBefore, in.ClearNotBefore)
	u.ExpiresAt = timeUpdate(&v, "expiresAt", in.ExpiresAt, in.ClearExpiresAt)
	if in.IPFilters != nil {
		f := append([]string{}, in.IPFilters...)
		u.IPFilters = &f
	}
	if in.ResponseHeaders != nil {
		h := headersFrom(in.ResponseHeaders)
		u.ResponseHeaders = &h
	}
	if in.RoleIds != nil {
		ids := append([]string{}, in.RoleIds...)
		u.RoleIDs = &ids
	}
	u.RateLimit = rateLimitUpdate(&v, in.RateLimit, in.ClearRateLimit)
	u.Quota = quotaUpdate(&v, in.Quota, in.ClearQuota)
	return u, v.Err()
}

// timeUpdate is an update's time: nil unchanged, the zero time cleared.
func timeUpdate(v *account.Violations, field string, t *time.Time, clear *bool) *time.Time {
	switch {
	case t != nil && isTrue(clear):
		v.Add(field, "set together with clear%s", upperFirst(field))
	case t != nil && t.IsZero():
		v.Add(field, "must be after 0001-01-01T00:00:00Z")
	case t != nil:
		return truncated(t)
	case isTrue(clear):
		return &time.Time{}
	}
	return nil
}

func (m mutationResolver) UpdateKey(ctx context.Context, id string, in UpdateKeyInput) (*KeyPayload, error) {
	u, err := keyUpdateFrom(in)
	if err != nil {
		return nil, err
	}
	k, w, err := m.svc.UpdateKey(ctx, callerFrom(ctx), id, u)
	if err != nil {
		return nil, err
	}
	return &KeyPayload{Key: keyOf(k, m.svc.Now()), Warnings: warnings(w), ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) RegenerateKey(ctx context.Context, id string, in *RegenerateKeyInput) (*GeneratedKeyPayload, error) {
	var v account.Violations
	var grace time.Duration
	if in != nil {
		grace = durationOf(&v, "gracePeriod", in.GracePeriod)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	secret, k, err := m.svc.RegenerateKey(ctx, callerFrom(ctx), id, grace)
	if err != nil {
		return nil, err
	}
	return generated(secret, keyOf(k, m.svc.Now()), nil, changeNumber(ctx)), nil
}

func (m mutationResolver) DeleteKey(ctx context.Context, id string) (*KeyPayload, error) {
	k, err := m.svc.DeleteKey(ctx, callerFrom(ctx), id)
	if err != nil {
		return nil, err
	}
	return &KeyPayload{Key: keyOf(k, m.svc.Now()), Warnings: []string{}, ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) UpdateKeys(ctx context.Context, in UpdateKeysInput) (*UpdateKeysPayload, error) {
	var v account.Violations
	bu := account.BulkKeyUpdate{All: isTrue(in.All), DryRun: isTrue(in.DryRun), Filter: keyFilterFrom(in.Filter),
		Update: account.KeyUpdate{Description: in.Description, Group: in.Group, Scope: in.Scope, Active: in.Active}}
	bu.Update.ExpiresAt = timeUpdate(&v, "expiresAt", in.ExpiresAt, in.ClearExpiresAt)
	if in.ExpectedCount != nil {
		n := int(max(min(*in.ExpectedCount, 1<<31-1), -1))
		bu.ExpectedCount = &n
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	res, err := m.svc.UpdateKeys(ctx, callerFrom(ctx), bu)
	if err != nil {
		return nil, err
	}
	ids := res.IDs
	if ids == nil {
		ids = []string{}
	}
	return &UpdateKeysPayload{Count: int64(res.Count), KeyIds: ids, DryRun: res.DryRun, Warnings: warnings(res.Warnings),
		ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) CreateServiceAccessRole(ctx context.Context, in CreateServiceAccessRoleInput) (*ServiceAccessRolePayload, error) {
	var v account.Violations
	rl := rateLimitFrom(&v, "rateLimit", in.RateLimit)
	if err := v.Err(); err != nil {
		return nil, err
	}
	r, err := m.svc.CreateServiceAccessRole(ctx, callerFrom(ctx), account.RoleInput{
		ID: orEmpty(in.ID), Name: in.Name, Description: orEmpty(in.Description), Scope: in.Scope, RateLimit: rl})
	if err != nil {
		return nil, err
	}
	return &ServiceAccessRolePayload{Role: roleOf(r), ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) UpdateServiceAccessRole(ctx context.Context, id string, in UpdateServiceAccessRoleInput) (*ServiceAccessRolePayload, error) {
	var v account.Violations
	rl := rateLimitUpdate(&v, in.RateLimit, in.ClearRateLimit)
	if err := v.Err(); err != nil {
		return nil, err
	}
	r, err := m.svc.UpdateServiceAccessRole(ctx, callerFrom(ctx), id,
		account.RoleUpdate{Name: in.Name, Description: in.Description, Scope: in.Scope, RateLimit: rl})
	if err != nil {
		return nil, err
	}
	return &ServiceAccessRolePayload{Role: roleOf(r), ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) DeleteServiceAccessRole(ctx context.Context, id string, force *bool) (*DeletePayload, error) {
	if err := m.svc.DeleteServiceAccessRole(ctx, callerFrom(ctx), id, isTrue(force)); err != nil {
		return nil, err
	}
	return &DeletePayload{ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) CreateServiceAccessDenial(ctx context.Context, in CreateServiceAccessDenialInput) (*ServiceAccessDenialPayload, error) {
	d, err := m.svc.CreateServiceAccessDenial(ctx, callerFrom(ctx), account.DenialInput{
		ID: orEmpty(in.ID), TenantID: in.TenantID, AppID: in.AppID, Scope: in.Scope, Reason: orEmpty(in.Reason)})
	if err != nil {
		return nil, err
	}
	return &ServiceAccessDenialPayload{Denial: denialOf(d), ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) UpdateServiceAccessDenial(ctx context.Context, id string, in UpdateServiceAccessDenialInput) (*ServiceAccessDenialPayload, error) {
	d, err := m.svc.UpdateServiceAccessDenial(ctx, callerFrom(ctx), id, account.DenialUpdate{Scope: in.Scope, Reason: in.Reason})
	if err != nil {
		return nil, err
	}
	return &ServiceAccessDenialPayload{Denial: denialOf(d), ChangeNumber: changeNumber(ctx)}, nil
}

func (m mutationResolver) DeleteServiceAccessDenial(ctx context.Context, id string) (*DeletePayload, error) {
	if err := m.svc.DeleteServiceAccessDenial(ctx, callerFrom(ctx), id); err != nil {
		return nil, err
	}
	return &DeletePayload{ChangeNumber: changeNumber(ctx)}, nil
}

// upperFirst is field with its first letter upper case (expiresAt →
// ExpiresAt, for clearExpiresAt).
func upperFirst(field string) string {
	if field == "" {
		return field
	}
	return strings.ToUpper(field[:1]) + field[1:]
}
