package account

import (
	"context"
	"fmt"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/store"
)

// ownerInput is what CreateApp and CreateTenant share.
type ownerInput interface {
	GetId() string
	GetName() string
	GetDescription() string
}

func checkOwnerCreate(r ownerInput) error {
	var v violations
	v.checkID("id", r.GetId(), false)
	v.checkName("name", r.GetName(), true)
	v.checkDescription("description", r.GetDescription())
	return v.err()
}

// checkOwnerUpdate checks UpdateApp/UpdateTenant: nil fields are absent.
func checkOwnerUpdate(id string, name, description *string, active *bool) (store.AppUpdate, error) {
	var v violations
	v.checkRef("id", id)
	if name != nil {
		v.checkName("name", *name, true)
	}
	if description != nil {
		v.checkDescription("description", *description)
	}
	return store.AppUpdate{Name: name, Description: description, Active: active}, v.err()
}

func ptr[T any](v T) *T { return &v }

func emptyUpdate(u store.AppUpdate) bool {
	return u.Name == nil && u.Description == nil && u.Active == nil
}

func refError(field, id string) error {
	var v violations
	v.checkRef(field, id)
	return v.err()
}

func pageError(size int32, token string) error {
	var v violations
	v.checkPage(size, token)
	return v.err()
}

func quoted(kind, id string) string { return fmt.Sprintf("%s %q", kind, id) }

// label names an object being created: by id when chosen, else by name.
func (s *Server) label(kind, id, name string) string {
	if id != "" {
		return quoted(kind, id)
	}
	return fmt.Sprintf("%s named %q", kind, name)
}

// owner is one of the two kinds of key owner, apps and tenants, which the
// Account API manages alike: its store calls and its API form.
type owner[T, P any] struct {
	kind, op string // "app", "App": in messages and store error labels
	from     func(store.App) T
	proto    func(T) P
	create   func(context.Context, store.Actor, T) (T, error)
	get      func(ctx context.Context, accountID, id string) (T, error)
	list     func(ctx context.Context, accountID string, p store.Page) ([]T, string, error)
	update   func(ctx context.Context, a store.Actor, accountID, id string, u store.AppUpdate) (T, error)
	remove   func(ctx context.Context, a store.Actor, accountID, id string) error
}

func (s *Server) apps() owner[store.App, *accountv1.App] {
	return owner[store.App, *accountv1.App]{kind: "app", op: "App",
		from: func(a store.App) store.App { return a }, proto: appProto,
		create: s.store.CreateApp, get: s.store.GetApp, list: s.store.ListApps,
		update: s.store.UpdateApp, remove: s.store.DeleteApp}
}

func (s *Server) tenants() owner[store.Tenant, *accountv1.Tenant] {
	return owner[store.Tenant, *accountv1.Tenant]{kind: "tenant", op: "Tenant",
		from: func(a store.App) store.Tenant { return store.Tenant(a) }, proto: tenantProto,
		create: s.store.CreateTenant, get: s.store.GetTenant, list: s.store.ListTenants,
		update: s.store.UpdateTenant, remove: s.store.DeleteTenant}
}

// createOwner adds an active app or tenant.
func createOwner[T, P any](ctx context.Context, s *Server, o owner[T, P], r ownerInput) (P, error) {
	var zero P
	c, err := s.callerFrom(ctx)
	if err != nil {
		return zero, err
	}
	if err := checkOwnerCreate(r); err != nil {
		return zero, err
	}
	now := s.now()
	v, err := o.create(ctx, c.actor, o.from(store.App{
		AccountID: c.accountID, ID: r.GetId(), Name: r.GetName(), Description: r.GetDescription(),
		Active: true, CreatedAt: now, UpdatedAt: now,
	}))
	if err != nil {
		return zero, s.storeError(ctx, "Create"+o.op, s.label(o.kind, r.GetId(), r.GetName()), err)
	}
	return o.proto(v), nil
}

// getOwner returns one app or tenant of the caller's account.
func getOwner[T, P any](ctx context.Context, s *Server, o owner[T, P], id string) (P, error) {
	var zero P
	c, err := s.callerFrom(ctx)
	if err != nil {
		return zero, err
	}
	if err := refError("id", id); err != nil {
		return zero, err
	}
	v, err := o.get(ctx, c.accountID, id)
	if err != nil {
		return zero, s.storeError(ctx, "Get"+o.op, quoted(o.kind, id), err)
	}
	return o.proto(v), nil
}

// listOwners returns one page of the caller's apps or tenants.
func listOwners[T, P any](ctx context.Context, s *Server, o owner[T, P], size int32, token string) ([]P, string, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, "", err
	}
	if err := pageError(size, token); err != nil {
		return nil, "", err
	}
	vs, next, err := o.list(ctx, c.accountID, store.Page{Size: int(size), Token: token})
	if err != nil {
		return nil, "", s.storeError(ctx, "List"+o.op+"s", "page", err)
	}
	out := make([]P, len(vs))
	for i, v := range vs {
		out[i] = o.proto(v)
	}
	return out, next, nil
}

// updateOwner changes the fields present (non-nil) of an app or tenant.
func updateOwner[T, P any](ctx context.Context, s *Server, o owner[T, P], id string, name, description *string, active *bool) (P, error) {
	var zero P
	c, err := s.callerFrom(ctx)
	if err != nil {
		return zero, err
	}
	u, err := checkOwnerUpdate(id, name, description, active)
	if err != nil {
		return zero, err
	}
	var v T
	if emptyUpdate(u) {
		v, err = o.get(ctx, c.accountID, id)
	} else {
		v, err = o.update(ctx, c.actor, c.accountID, id, u)
	}
	if err != nil {
		return zero, s.storeError(ctx, "Update"+o.op, quoted(o.kind, id), err)
	}
	return o.proto(v), nil
}

// deleteOwner removes an app or tenant.
func deleteOwner[T, P any](ctx context.Context, s *Server, o owner[T, P], id string) error {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return err
	}
	if err := refError("id", id); err != nil {
		return err
	}
	if err := o.remove(ctx, c.actor, c.accountID, id); err != nil {
		return s.storeError(ctx, "Delete"+o.op, quoted(o.kind, id), err)
	}
	return nil
}

// CreateApp adds an active app.
func (s *Server) CreateApp(ctx context.Context, r *accountv1.CreateAppRequest) (*accountv1.CreateAppResponse, error) {
	a, err := createOwner(ctx, s, s.apps(), r)
	if err != nil {
		return nil, err
	}
	return &accountv1.CreateAppResponse{App: a}, nil
}

// GetApp returns one app of the caller's account.
func (s *Server) GetApp(ctx context.Context, r *accountv1.GetAppRequest) (*accountv1.GetAppResponse, error) {
	a, err := getOwner(ctx, s, s.apps(), r.GetId())
	if err != nil {
		return nil, err
	}
	return &accountv1.GetAppResponse{App: a}, nil
}

// ListApps returns one page of the caller's apps.
func (s *Server) ListApps(ctx context.Context, r *accountv1.ListAppsRequest) (*accountv1.ListAppsResponse, error) {
	apps, next, err := listOwners(ctx, s, s.apps(), r.GetPageSize(), r.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &accountv1.ListAppsResponse{Apps: apps, NextPageToken: next}, nil
}

// UpdateApp changes the fields present in the request.
func (s *Server) UpdateApp(ctx context.Context, r *accountv1.UpdateAppRequest) (*accountv1.UpdateAppResponse, error) {
	a, err := updateOwner(ctx, s, s.apps(), r.GetId(), r.Name, r.Description, r.Active)
	if err != nil {
		return nil, err
	}
	return &accountv1.UpdateAppResponse{App: a}, nil
}

// DeleteApp removes an app.
func (s *Server) DeleteApp(ctx context.Context, r *accountv1.DeleteAppRequest) (*accountv1.DeleteAppResponse, error) {
	if err := deleteOwner(ctx, s, s.apps(), r.GetId()); err != nil {
		return nil, err
	}
	return &accountv1.DeleteAppResponse{}, nil
}

// CreateTenant adds an active tenant.
func (s *Server) CreateTenant(ctx context.Context, r *accountv1.CreateTenantRequest) (*accountv1.CreateTenantResponse, error) {
	t, err := createOwner(ctx, s, s.tenants(), r)
	if err != nil {
		return nil, err
	}
	return &accountv1.CreateTenantResponse{Tenant: t}, nil
}

// GetTenant returns one tenant of the caller's account.
func (s *Server) GetTenant(ctx context.Context, r *accountv1.GetTenantRequest) (*accountv1.GetTenantResponse, error) {
	t, err := getOwner(ctx, s, s.tenants(), r.GetId())
	if err != nil {
		return nil, err
	}
	return &accountv1.GetTenantResponse{Tenant: t}, nil
}

// ListTenants returns one page of the caller's tenants.
func (s *Server) ListTenants(ctx context.Context, r *accountv1.ListTenantsRequest) (*accountv1.ListTenantsResponse, error) {
	ts, next, err := listOwners(ctx, s, s.tenants(), r.GetPageSize(), r.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &accountv1.ListTenantsResponse{Tenants: ts, NextPageToken: next}, nil
}

// UpdateTenant changes the fields present in the request.
func (s *Server) UpdateTenant(ctx context.Context, r *accountv1.UpdateTenantRequest) (*accountv1.UpdateTenantResponse, error) {
	t, err := updateOwner(ctx, s, s.tenants(), r.GetId(), r.Name, r.Description, r.Active)
	if err != nil {
		return nil, err
	}
	return &accountv1.UpdateTenantResponse{Tenant: t}, nil
}

// DeleteTenant removes a tenant.
func (s *Server) DeleteTenant(ctx context.Context, r *accountv1.DeleteTenantRequest) (*accountv1.DeleteTenantResponse, error) {
	if err := deleteOwner(ctx, s, s.tenants(), r.GetId()); err != nil {
		return nil, err
	}
	return &accountv1.DeleteTenantResponse{}, nil
}
