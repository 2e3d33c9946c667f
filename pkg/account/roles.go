package account

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// RoleInput creates a role (SPEC §11). ID is optional (the store picks
// one); Scope is required.
type RoleInput struct {
	ID, Name, Description, Scope string
	// RateLimit is the role's rate limit (SPEC §12), zero for none.
	RateLimit authz.RateLimit
}

// RoleUpdate changes the fields of a role that are set.
type RoleUpdate = store.RoleUpdate

// DenialInput creates a service access denial: TenantID and AppID both
// required, Scope of allow-form patterns, Reason required
// (authz.CheckDenialReason).
type DenialInput struct {
	ID, TenantID, AppID, Scope, Reason string
}

// DenialUpdate changes a denial's scope or reason.
type DenialUpdate = store.DenialUpdate

// DenialFilter selects denials by tenant and app.
type DenialFilter = store.DenialFilter

// MaxRoleIDs bounds the roles one key holds.
const MaxRoleIDs = 50

// ReasonRoleHeld is the reason of a role delete refused because keys hold
// the role.
const ReasonRoleHeld = "role_held"

// checkRoleScope checks a role's scope: required, within the size limits,
// in the scope grammar; it returns the compiled scope.
func (v *Violations) checkRoleScope(field, s string) *scope.Scope {
	if strings.TrimSpace(s) == "" {
		v.add(field, "required: a role grants what its scope allows (e.g. email-api:query:*)")
		return nil
	}
	n := len(v.list) + len(v.size)
	v.checkScope(field, s)
	if len(v.list)+len(v.size) > n {
		return nil
	}
	sc, err := scope.Parse(s)
	if err != nil {
		v.add(field, "%s", oneLine(err.Error()))
		return nil
	}
	return sc
}

// checkDenialScope checks a denial's scope: a role scope of allow-form
// patterns only (a denial names what it blocks; "!" has no meaning there).
func (v *Violations) checkDenialScope(field, s string) {
	if strings.TrimSpace(s) == "" {
		v.add(field, "required: the operations the denial blocks (e.g. email-api or email-api:mutation:send)")
		return
	}
	if v.checkRoleScope(field, s) == nil {
		return
	}
	for i, w := range strings.Fields(s) {
		if strings.HasPrefix(w, "!") {
			v.add(field, "pattern %d %q: a denial lists what it blocks; deny patterns (!) are not allowed", i+1, w)
			return
		}
	}
}

// checkReason checks a denial's reason with the data plane's rule
// (authz.CheckDenialReason: required, newlines and tabs allowed, no
// control, bidirectional or invisible characters), so that every reason
// stored through the Account API is one serve shows as written.
func (v *Violations) checkReason(field, r string) {
	err := authz.CheckDenialReason(r)
	switch {
	case err == nil:
	case errors.Is(err, authz.ErrDenialReasonTooLong):
		v.tooLarge(field, "longer than %d bytes", authz.MaxDenialReasonBytes)
	default:
		v.add(field, "%s", oneLine(err.Error()))
	}
}

func (v *Violations) checkRoleIDs(field string, ids []string) {
	if len(ids) > MaxRoleIDs {
		v.tooLarge(field, "%d roles, more than %d", len(ids), MaxRoleIDs)
		return
	}
	for i, id := range ids {
		v.checkRef(fmt.Sprintf("%s[%d]", field, i), id)
	}
}

// roleWithinCaller is the escalation rule for roles: a role may be given
// to account keys, so its scope may allow no Account API operation the
// caller's does not (as an account key the caller creates).
func roleWithinCaller(c Caller, sc *scope.Scope) error {
	return withinCaller(c, authz.KeyTypeAccount, sc)
}

// keyRoles checks that the caller may give a key of type typ the roles
// ids: each exists in the account (NotFound naming it) and its scope is
// one the caller could give the key itself (withinCaller).
func (s *Service) keyRoles(ctx context.Context, c Caller, typ authz.KeyType, field string, ids []string) error {
	for _, id := range store.NormalizeRoleIDs(ids) {
		r, err := s.store.GetRole(ctx, c.AccountID, id)
		if errors.Is(err, store.ErrNotFound) {
			return fieldError(NotFound, field, "role %q not found", id)
		} else if err != nil {
			return s.storeError(ctx, "GetRole", quoted("role", id), err)
		}
		sc, err := scope.Parse(r.Scope)
		if err != nil { // stored scopes were checked when written
			return s.storeError(ctx, "GetRole", quoted("role", id), err)
		}
		if err := withinCaller(c, typ, sc); err != nil {
			e := err.(*Error)
			e.Field = field
			// The reason code stays first: refused records the attempt
			// when the message starts with it.
			detail, _ := strings.CutPrefix(e.Message, reasonScopeExceedsCaller+": ")
			e.Message = fmt.Sprintf("%s: role %q: %s", reasonScopeExceedsCaller, id, detail)
			return e
		}
	}
	return nil
}

// CreateServiceAccessRole creates a role.
func (s *Service) CreateServiceAccessRole(ctx context.Context, c Caller, in RoleInput) (store.Role, error) {
	if err := s.check(c); err != nil {
		return store.Role{}, err
	}
	in.Scope = authz.CanonicalScope(in.Scope) // earlier operation names accepted (SPEC §14)
	var v Violations
	v.checkID("id", in.ID, false)
	v.checkName("name", in.Name, true)
	v.checkDescription("description", in.Description)
	sc := v.checkRoleScope("scope", in.Scope)
	v.checkRateLimit("rate_limit", in.RateLimit)
	if err := v.err(); err != nil {
		return store.Role{}, err
	}
	if err := roleWithinCaller(c, sc); err != nil {
		return store.Role{}, err
	}
	now := s.now()
	r, err := s.store.CreateRole(ctx, c.Actor, store.Role{AccountID: c.AccountID, ID: in.ID, Name: in.Name,
		Description: in.Description, Scope: in.Scope, RateLimit: in.RateLimit, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return store.Role{}, s.storeError(ctx, "CreateServiceAccessRole", label("role", in.ID, in.Name), err)
	}
	return r, nil
}

// GetServiceAccessRole returns one role of the caller's account.
func (s *Service) GetServiceAccessRole(ctx context.Context, c Caller, id string) (store.Role, error) {
	if err := s.check(c); err != nil {
		return store.Role{}, err
	}
	if err := refError("id", id); err != nil {
		return store.Role{}, err
	}
	r, err := s.store.GetRole(ctx, c.AccountID, id)
	if err != nil {
		return store.Role{}, s.storeError(ctx, "GetServiceAccessRole", quoted("role", id), err)
	}
	return r, nil
}

// ListServiceAccessRoles returns one page of the caller's roles.
func (s *Service) ListServiceAccessRoles(ctx context.Context, c Caller, p PageInput) ([]store.Role, string, error) {
	if err := s.check(c); err != nil {
		return nil, "", err
	}
	if err := pageError(p); err != nil {
		return nil, "", err
	}
	rs, next, err := pageOf(p, func(pg store.Page) ([]store.Role, string, error) {
		return s.store.ListRoles(ctx, c.AccountID, pg)
	}, func(r store.Role) int { return recordOverhead + textBytes(r.ID, r.Name, r.Description, r.Scope) },
		func(r store.Role) string { return keysetToken(r.CreatedAt.UnixMicro(), r.ID) })
	if err != nil {
		return nil, "", s.storeError(ctx, "ListServiceAccessRoles", "page", err)
	}
	return rs, next, nil
}

// UpdateServiceAccessRole changes a role. Its scope, old and new, must be
// within the caller's (a caller may not take over nor widen a role that
// account keys may hold beyond its own rights).
func (s *Service) UpdateServiceAccessRole(ctx context.Context, c Caller, id string, u RoleUpdate) (store.Role, error) {
	if err := s.check(c); err != nil {
		return store.Role{}, err
	}
	var v Violations
	v.checkRef("id", id)
	if u.Name != nil {
		v.checkName("name", *u.Name, true)
	}
	if u.Description != nil {
		v.checkDescription("description", *u.Description)
	}
	var sc *scope.Scope
	if u.Scope != nil {
		canon := authz.CanonicalScope(*u.Scope) // earlier operation names accepted (SPEC §14)
		u.Scope = &canon
		sc = v.checkRoleScope("scope", *u.Scope)
	}
	if u.RateLimit != nil {
		v.checkRateLimit("rate_limit", *u.RateLimit)
	}
	if err := v.err(); err != nil {
		return store.Role{}, err
	}
	cur, err := s.managedRole(ctx, c, id)
	if err != nil {
		return store.Role{}, err
	}
	if u == (RoleUpdate{}) {
		return cur, nil
	}
	if sc != nil {
		if err := roleWithinCaller(c, sc); err != nil {
			return store.Role{}, err
		}
	}
	r, err := s.store.UpdateRole(ctx, c.Actor, c.AccountID, id, u)
	if err != nil {
		return store.Role{}, s.storeError(ctx, "UpdateServiceAccessRole", quoted("role", id), err)
	}
	return r, nil
}

// managedRole reads a role the caller is about to change or delete and
// refuses it when its scope exceeds the caller's rights.
func (s *Service) managedRole(ctx context.Context, c Caller, id string) (store.Role, error) {
	r, err := s.store.GetRole(ctx, c.AccountID, id)
	if err != nil {
		return r, s.storeError(ctx, "GetServiceAccessRole", quoted("role", id), err)
	}
	sc, err := scope.Parse(r.Scope)
	if err != nil {
		return r, s.storeError(ctx, "GetServiceAccessRole", quoted("role", id), err)
	}
	return r, roleWithinCaller(c, sc)
}

// DeleteServiceAccessRole deletes a role; while keys hold it only with
// force, which takes it from them.
func (s *Service) DeleteServiceAccessRole(ctx context.Context, c Caller, id string, force bool) error {
	if err := s.check(c); err != nil {
		return err
	}
	if err := refError("id", id); err != nil {
		return err
	}
	if _, err := s.managedRole(ctx, c, id); err != nil {
		return err
	}
	err := s.store.DeleteRole(ctx, c.Actor, c.AccountID, id, force)
	var held *store.RoleHeldError
	if errors.As(err, &held) {
		return roleHeld(held)
	}
	if err != nil {
		return s.storeError(ctx, "DeleteServiceAccessRole", quoted("role", id), err)
	}
	return nil
}

// roleHeld refuses to delete a role keys hold, saying how many and how to
// go on (SPEC §11: FailedPrecondition, with how many).
func roleHeld(e *store.RoleHeldError) *Error {
	noun := "keys hold"
	if e.Keys == 1 {
		noun = "key holds"
	}
	return &Error{Code: FailedPrecondition, Field: "force", Reason: ReasonRoleHeld,
		Metadata: map[string]string{"keys": strconv.Itoa(e.Keys)},
		Message: fmt.Sprintf("role %q: %d %s it: take it from them first, or delete with force, which does (keygate roles delete %s --force)",
			e.ID, e.Keys, noun, e.ID)}
}

// CreateServiceAccessDenial creates a denial for one tenant of one app.
func (s *Service) CreateServiceAccessDenial(ctx context.Context, c Caller, in DenialInput) (store.Denial, error) {
	if err := s.check(c); err != nil {
		return store.Denial{}, err
	}
	var v Violations
	v.checkID("id", in.ID, false)
	v.checkRef("tenant_id", in.TenantID)
	v.checkRef("app_id", in.AppID)
	v.checkDenialScope("scope", in.Scope)
	v.checkReason("reason", in.Reason)
	if err := v.err(); err != nil {
		return store.Denial{}, err
	}
	if _, err := s.store.GetTenant(ctx, c.AccountID, in.TenantID); errors.Is(err, store.ErrNotFound) {
		return store.Denial{}, fieldError(NotFound, "tenant_id", "tenant %q not found", in.TenantID)
	} else if err != nil {
		return store.Denial{}, s.storeError(ctx, "GetTenant", quoted("tenant", in.TenantID), err)
	}
	if _, err := s.store.GetApp(ctx, c.AccountID, in.AppID); errors.Is(err, store.ErrNotFound) {
		return store.Denial{}, fieldError(NotFound, "app_id", "app %q not found", in.AppID)
	} else if err != nil {
		return store.Denial{}, s.storeError(ctx, "GetApp", quoted("app", in.AppID), err)
	}
	now := s.now()
	d, err := s.store.CreateDenial(ctx, c.Actor, store.Denial{AccountID: c.AccountID, ID: in.ID, TenantID: in.TenantID,
		AppID: in.AppID, Scope: in.Scope, Reason: in.Reason, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		what := "denial"
		if in.ID != "" {
			what = quoted("denial", in.ID)
		}
		return store.Denial{}, s.storeError(ctx, "CreateServiceAccessDenial", what, err)
	}
	return d, nil
}

// GetServiceAccessDenial returns one denial of the caller's account.
func (s *Service) GetServiceAccessDenial(ctx context.Context, c Caller, id string) (store.Denial, error) {
	if err := s.check(c); err != nil {
		return store.Denial{}, err
	}
	if err := refError("id", id); err != nil {
		return store.Denial{}, err
	}
	d, err := s.store.GetDenial(ctx, c.AccountID, id)
	if err != nil {
		return store.Denial{}, s.storeError(ctx, "GetServiceAccessDenial", quoted("denial", id), err)
	}
	return d, nil
}

// ListServiceAccessDenials returns one page of the caller's denials that
// pass f.
func (s *Service) ListServiceAccessDenials(ctx context.Context, c Caller, f DenialFilter, p PageInput) ([]store.Denial, string, error) {
	if err := s.check(c); err != nil {
		return nil, "", err
	}
	var v Violations
	v.checkPage(p.Size, p.Token)
	if len(f.TenantID) > MaxIDLen {
		v.add("tenant_id", "longer than %d bytes", MaxIDLen)
	}
	if len(f.AppID) > MaxIDLen {
		v.add("app_id", "longer than %d bytes", MaxIDLen)
	}
	if err := v.err(); err != nil {
		return nil, "", err
	}
	ds, next, err := pageOf(p, func(pg store.Page) ([]store.Denial, string, error) {
		return s.store.ListDenials(ctx, c.AccountID, f, pg)
	}, func(d store.Denial) int {
		return recordOverhead + textBytes(d.ID, d.TenantID, d.AppID, d.Scope, d.Reason)
	}, func(d store.Denial) string { return keysetToken(d.CreatedAt.UnixMicro(), d.ID) })
	if err != nil {
		return nil, "", s.storeError(ctx, "ListServiceAccessDenials", "page", err)
	}
	return ds, next, nil
}

// UpdateServiceAccessDenial changes a denial's scope or reason.
func (s *Service) UpdateServiceAccessDenial(ctx context.Context, c Caller, id string, u DenialUpdate) (store.Denial, error) {
	if err := s.check(c); err != nil {
		return store.Denial{}, err
	}
	var v Violations
	v.checkRef("id", id)
	if u.Scope != nil {
		v.checkDenialScope("scope", *u.Scope)
	}
	if u.Reason != nil {
		v.checkReason("reason", *u.Reason)
	}
	if err := v.err(); err != nil {
		return store.Denial{}, err
	}
	d, err := s.store.UpdateDenial(ctx, c.Actor, c.AccountID, id, u)
	if err != nil {
		return store.Denial{}, s.storeError(ctx, "UpdateServiceAccessDenial", quoted("denial", id), err)
	}
	return d, nil
}

// DeleteServiceAccessDenial deletes a denial, which restores access.
func (s *Service) DeleteServiceAccessDenial(ctx context.Context, c Caller, id string) error {
	if err := s.check(c); err != nil {
		return err
	}
	if err := refError("id", id); err != nil {
		return err
	}
	if err := s.store.DeleteDenial(ctx, c.Actor, c.AccountID, id); err != nil {
		return s.storeError(ctx, "DeleteServiceAccessDenial", quoted("denial", id), err)
	}
	return nil
}

// effectiveOf is a key's effective scope (SPEC §11), as the data plane
// compiles it: its own scope with its roles' (authz.Key.Scope).
func effectiveOf(own *scope.Scope, roles []*scope.Scope) *scope.Scope {
	if len(roles) == 0 {
		return own
	}
	return scope.Union(append([]*scope.Scope{own}, roles...)...)
}

// roleScopes reads the scopes of the roles ids of the caller's account; a
// role that is not there is NotFound on field.
func (s *Service) roleScopes(ctx context.Context, c Caller, field string, ids []string) ([]*scope.Scope, error) {
	var out []*scope.Scope
	for _, id := range store.NormalizeRoleIDs(ids) {
		r, err := s.store.GetRole(ctx, c.AccountID, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fieldError(NotFound, field, "role %q not found", id)
		} else if err != nil {
			return nil, s.storeError(ctx, "GetRole", quoted("role", id), err)
		}
		sc, err := scope.Parse(r.Scope)
		if err != nil { // stored scopes were checked when written
			return nil, s.storeError(ctx, "GetRole", quoted("role", id), err)
		}
		out = append(out, sc)
	}
	return out, nil
}

// effectiveScope is the effective scope of an account key whose own scope
// is own and that holds (or will hold) the roles ids: what the escalation
// rule (withinCaller) compares with the caller's. Other key types need
// none (own is returned).
func (s *Service) effectiveScope(ctx context.Context, c Caller, typ authz.KeyType, own *scope.Scope, ids []string) (*scope.Scope, error) {
	if typ != authz.KeyTypeAccount || len(ids) == 0 {
		return own, nil
	}
	roles, err := s.roleScopes(ctx, c, "role_ids", ids)
	if err != nil {
		return nil, err
	}
	return effectiveOf(own, roles), nil
}

// accountRoleScopes reads every role of the caller's account, by id, for
// a bulk change's escalation checks (which run inside the store's
// transaction, where no further reads are made).
func (s *Service) accountRoleScopes(ctx context.Context, c Caller) (map[string]*scope.Scope, error) {
	out := map[string]*scope.Scope{}
	p := store.Page{Size: 500}
	for {
		rs, next, err := s.store.ListRoles(ctx, c.AccountID, p)
		if err != nil {
			return nil, s.storeError(ctx, "ListRoles", "roles", err)
		}
		for _, r := range rs {
			sc, err := scope.Parse(r.Scope)
			if err != nil {
				return nil, s.storeError(ctx, "ListRoles", quoted("role", r.ID), err)
			}
			out[r.ID] = sc
		}
		if next == "" || len(rs) == 0 {
			return out, nil
		}
		p.Token = next
	}
}

// checkRateLimit checks a key's or a role's rate limit (SPEC §12): none,
// or a positive count (at most authz.MaxRequestsPerUnit) per second,
// minute, hour or day.
func (v *Violations) checkQuota(field string, q authz.Quota) {
	if err := q.Check(); err != nil {
		v.add(field, "%s", err.Error())
	}
}

func (v *Violations) checkRateLimit(field string, r authz.RateLimit) {
	if err := r.Check(); err != nil {
		v.add(field, "%s", err.Error())
	}
}
