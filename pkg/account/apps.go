package account

import (
	"context"
	"fmt"
	"github.com/keygate/keygate/pkg/authz"

	"github.com/keygate/keygate/pkg/store"
)

// OwnerInput creates an app or a tenant. ID is optional (the store picks
// one).
type OwnerInput struct {
	ID, Name, Description string
	// Quota is a tenant's monthly request quota (SPEC §12), zero for
	// none; apps have none.
	Quota authz.Quota
}

// OwnerUpdate changes the fields of an app or tenant that are set.
type OwnerUpdate struct {
	Name, Description *string
	Active            *bool
	// Quota replaces a tenant's monthly quota (the zero value: none).
	Quota *authz.Quota
}

// DeleteInput deletes an app or tenant: while keys belong to it, only
// with Cascade, which deletes them too (each audited as key.delete).
type DeleteInput struct {
	ID      string
	Cascade bool
}

// PageInput asks for one page of a list: Size 0 is the store's default,
// Token the previous page's next token ("" for the first).
type PageInput struct {
	Size  int
	Token string
}

func checkOwnerCreate(kind string, in OwnerInput) error {
	var v Violations
	v.checkID("id", in.ID, false)
	v.checkName("name", in.Name, true)
	v.checkDescription("description", in.Description)
	v.checkOwnerQuota(kind, in.Quota)
	return v.err()
}

// checkOwnerQuota checks a tenant's quota, which is monthly (SPEC §12):
// apps have none. Every transport's tenant quota is checked here.
func (v *Violations) checkOwnerQuota(kind string, q authz.Quota) {
	switch {
	case q.IsZero():
	case kind != "tenant":
		v.add("quota", "an %s has no quota: set it on its tenants, or on its keys", kind)
	case q.Period != authz.QuotaPeriodMonth:
		v.add("quota.period", "a tenant's quota is monthly: give the period month")
	default:
		v.checkQuota("quota", q)
	}
}

// checkOwnerUpdate checks an app or tenant update: nil fields are absent.
func checkOwnerUpdate(kind, id string, u OwnerUpdate) (store.AppUpdate, error) {
	var v Violations
	v.checkRef("id", id)
	if u.Name != nil {
		v.checkName("name", *u.Name, true)
	}
	if u.Description != nil {
		v.checkDescription("description", *u.Description)
	}
	if u.Quota != nil {
		v.checkOwnerQuota(kind, *u.Quota)
	}
	out := store.AppUpdate{Name: u.Name, Description: u.Description, Active: u.Active}
	if u.Quota != nil {
		out.Quota = &u.Quota.Requests
	}
	return out, v.err()
}

func emptyUpdate(u store.AppUpdate) bool {
	return u.Name == nil && u.Description == nil && u.Active == nil && u.Quota == nil
}

func refError(field, id string) error {
	var v Violations
	v.checkRef(field, id)
	return v.err()
}

func pageError(p PageInput) error {
	var v Violations
	v.checkPage(p.Size, p.Token)
	return v.err()
}

func quoted(kind, id string) string { return fmt.Sprintf("%s %q", kind, id) }

// label names an object being created: by id when chosen, else by name.
func label(kind, id, name string) string {
	if id != "" {
		return quoted(kind, id)
	}
	return fmt.Sprintf("%s named %q", kind, name)
}

// owner is one of the two kinds of key owner, apps and tenants, which the
// account service manages alike: its store calls.
type owner[T any] struct {
	kind, op string // "app", "App": in messages and store error labels
	from     func(store.App) T
	app      func(T) store.App // from's inverse
	create   func(context.Context, store.Actor, T) (T, error)
	get      func(ctx context.Context, accountID, id string) (T, error)
	list     func(ctx context.Context, accountID string, p store.Page) ([]T, string, error)
	update   func(ctx context.Context, a store.Actor, accountID, id string, u store.AppUpdate) (T, error)
	remove   func(ctx context.Context, a store.Actor, accountID, id string, cascade bool) error
}

func (s *Service) apps() owner[store.App] {
	return owner[store.App]{kind: "app", op: "App",
		from:   func(a store.App) store.App { return a },
		app:    func(a store.App) store.App { return a },
		create: s.store.CreateApp, get: s.store.GetApp, list: s.store.ListApps,
		update: s.store.UpdateApp, remove: s.store.DeleteApp}
}

func (s *Service) tenants() owner[store.Tenant] {
	return owner[store.Tenant]{kind: "tenant", op: "Tenant",
		from:   func(a store.App) store.Tenant { return store.Tenant(a) },
		app:    func(t store.Tenant) store.App { return store.App(t) },
		create: s.store.CreateTenant, get: s.store.GetTenant, list: s.store.ListTenants,
		update: s.store.UpdateTenant, remove: s.store.DeleteTenant}
}

// createOwner adds an active app or tenant.
func createOwner[T any](ctx context.Context, s *Service, o owner[T], c Caller, in OwnerInput) (T, error) {
	var zero T
	if err := s.check(c); err != nil {
		return zero, err
	}
	if err := checkOwnerCreate(o.kind, in); err != nil {
		return zero, err
	}
	now := s.now()
	v, err := o.create(ctx, c.Actor, o.from(store.App{
		AccountID: c.AccountID, ID: in.ID, Name: in.Name, Description: in.Description,
		Active: true, Quota: in.Quota.Requests, CreatedAt: now, UpdatedAt: now,
	}))
	if err != nil {
		return zero, s.storeError(ctx, "Create"+o.op, label(o.kind, in.ID, in.Name), err)
	}
	return v, nil
}

// getOwner returns one app or tenant of the caller's account.
func getOwner[T any](ctx context.Context, s *Service, o owner[T], c Caller, id string) (T, error) {
	var zero T
	if err := s.check(c); err != nil {
		return zero, err
	}
	if err := refError("id", id); err != nil {
		return zero, err
	}
	v, err := o.get(ctx, c.AccountID, id)
	if err != nil {
		return zero, s.storeError(ctx, "Get"+o.op, quoted(o.kind, id), err)
	}
	return v, nil
}

// listOwners returns one page of the caller's apps or tenants, stopping
// early at MaxListBytes.
func listOwners[T any](ctx context.Context, s *Service, o owner[T], c Caller, p PageInput) ([]T, string, error) {
	if err := s.check(c); err != nil {
		return nil, "", err
	}
	if err := pageError(p); err != nil {
		return nil, "", err
	}
	vs, next, err := pageOf(p, func(pg store.Page) ([]T, string, error) {
		return o.list(ctx, c.AccountID, pg)
	}, func(v T) int { return ownerBytes(o.app(v)) }, func(v T) string {
		a := o.app(v)
		return keysetToken(a.CreatedAt.UnixMicro(), a.ID)
	})
	if err != nil {
		return nil, "", s.storeError(ctx, "List"+o.op+"s", "page", err)
	}
	return vs, next, nil
}

// updateOwner changes the fields present (non-nil) of an app or tenant.
func updateOwner[T any](ctx context.Context, s *Service, o owner[T], c Caller, id string, in OwnerUpdate) (T, error) {
	var zero T
	if err := s.check(c); err != nil {
		return zero, err
	}
	u, err := checkOwnerUpdate(o.kind, id, in)
	if err != nil {
		return zero, err
	}
	var v T
	if emptyUpdate(u) {
		v, err = o.get(ctx, c.AccountID, id)
	} else {
		v, err = o.update(ctx, c.Actor, c.AccountID, id, u)
	}
	if err != nil {
		return zero, s.storeError(ctx, "Update"+o.op, quoted(o.kind, id), err)
	}
	return v, nil
}

// deleteOwner removes an app or tenant; one that still has keys only with
// in.Cascade (FailedPrecondition has_keys otherwise, with the count).
// deleteOwner returns the app or tenant as it was read just before the
// delete, so that callers can show what went (a concurrent update between
// the read and the delete is not reflected: the delete itself is atomic).
func deleteOwner[T any](ctx context.Context, s *Service, o owner[T], c Caller, in DeleteInput) (T, error) {
	var zero T
	if err := s.check(c); err != nil {
		return zero, err
	}
	if err := refError("id", in.ID); err != nil {
		return zero, err
	}
	cur, err := o.get(ctx, c.AccountID, in.ID)
	if err != nil {
		return zero, s.storeError(ctx, "Delete"+o.op, quoted(o.kind, in.ID), err)
	}
	if err := o.remove(ctx, c.Actor, c.AccountID, in.ID, in.Cascade); err != nil {
		return zero, s.storeError(ctx, "Delete"+o.op, quoted(o.kind, in.ID), err)
	}
	return cur, nil
}

// CreateApp adds an active app.
func (s *Service) CreateApp(ctx context.Context, c Caller, in OwnerInput) (store.App, error) {
	return createOwner(ctx, s, s.apps(), c, in)
}

// GetApp returns one app of the caller's account.
func (s *Service) GetApp(ctx context.Context, c Caller, id string) (store.App, error) {
	return getOwner(ctx, s, s.apps(), c, id)
}

// ListApps returns one page of the caller's apps and the next page's token.
func (s *Service) ListApps(ctx context.Context, c Caller, p PageInput) ([]store.App, string, error) {
	return listOwners(ctx, s, s.apps(), c, p)
}

// UpdateApp changes the fields set in u.
func (s *Service) UpdateApp(ctx context.Context, c Caller, id string, u OwnerUpdate) (store.App, error) {
	return updateOwner(ctx, s, s.apps(), c, id, u)
}

// DeleteApp removes an app: one with keys only with in.Cascade. It returns
// the app as it was.
func (s *Service) DeleteApp(ctx context.Context, c Caller, in DeleteInput) (store.App, error) {
	return deleteOwner(ctx, s, s.apps(), c, in)
}

// CreateTenant adds an active tenant.
func (s *Service) CreateTenant(ctx context.Context, c Caller, in OwnerInput) (store.Tenant, error) {
	return createOwner(ctx, s, s.tenants(), c, in)
}

// GetTenant returns one tenant of the caller's account.
func (s *Service) GetTenant(ctx context.Context, c Caller, id string) (store.Tenant, error) {
	return getOwner(ctx, s, s.tenants(), c, id)
}

// ListTenants returns one page of the caller's tenants and the next
// page's token.
func (s *Service) ListTenants(ctx context.Context, c Caller, p PageInput) ([]store.Tenant, string, error) {
	return listOwners(ctx, s, s.tenants(), c, p)
}

// UpdateTenant changes the fields set in u.
func (s *Service) UpdateTenant(ctx context.Context, c Caller, id string, u OwnerUpdate) (store.Tenant, error) {
	return updateOwner(ctx, s, s.tenants(), c, id, u)
}

// DeleteTenant removes a tenant: one with keys only with in.Cascade. It
// returns the tenant as it was.
func (s *Service) DeleteTenant(ctx context.Context, c Caller, in DeleteInput) (store.Tenant, error) {
	return deleteOwner(ctx, s, s.tenants(), c, in)
}
