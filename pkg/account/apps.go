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

// CreateApp adds an active app.
func (s *Server) CreateApp(ctx context.Context, r *accountv1.CreateAppRequest) (*accountv1.CreateAppResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkOwnerCreate(r); err != nil {
		return nil, err
	}
	now := s.now()
	a, err := s.store.CreateApp(ctx, c.actor, store.App{
		AccountID: c.accountID, ID: r.GetId(), Name: r.GetName(), Description: r.GetDescription(),
		Active: true, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return nil, s.storeError(ctx, "CreateApp", s.label("app", r.GetId(), r.GetName()), err)
	}
	return &accountv1.CreateAppResponse{App: appProto(a)}, nil
}

// label names an object being created: by id when chosen, else by name.
func (s *Server) label(kind, id, name string) string {
	if id != "" {
		return quoted(kind, id)
	}
	return fmt.Sprintf("%s named %q", kind, name)
}

// GetApp returns one app of the caller's account.
func (s *Server) GetApp(ctx context.Context, r *accountv1.GetAppRequest) (*accountv1.GetAppResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := refError("id", r.GetId()); err != nil {
		return nil, err
	}
	a, err := s.store.GetApp(ctx, c.accountID, r.GetId())
	if err != nil {
		return nil, s.storeError(ctx, "GetApp", quoted("app", r.GetId()), err)
	}
	return &accountv1.GetAppResponse{App: appProto(a)}, nil
}

// ListApps returns one page of the caller's apps.
func (s *Server) ListApps(ctx context.Context, r *accountv1.ListAppsRequest) (*accountv1.ListAppsResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := pageError(r.GetPageSize(), r.GetPageToken()); err != nil {
		return nil, err
	}
	apps, next, err := s.store.ListApps(ctx, c.accountID, store.Page{Size: int(r.GetPageSize()), Token: r.GetPageToken()})
	if err != nil {
		return nil, s.storeError(ctx, "ListApps", "page", err)
	}
	out := &accountv1.ListAppsResponse{NextPageToken: next, Apps: make([]*accountv1.App, len(apps))}
	for i, a := range apps {
		out.Apps[i] = appProto(a)
	}
	return out, nil
}

// UpdateApp changes the fields present in the request.
func (s *Server) UpdateApp(ctx context.Context, r *accountv1.UpdateAppRequest) (*accountv1.UpdateAppResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	u, err := checkOwnerUpdate(r.GetId(), r.Name, r.Description, r.Active)
	if err != nil {
		return nil, err
	}
	var a store.App
	if emptyUpdate(u) {
		a, err = s.store.GetApp(ctx, c.accountID, r.GetId())
	} else {
		a, err = s.store.UpdateApp(ctx, c.actor, c.accountID, r.GetId(), u)
	}
	if err != nil {
		return nil, s.storeError(ctx, "UpdateApp", quoted("app", r.GetId()), err)
	}
	return &accountv1.UpdateAppResponse{App: appProto(a)}, nil
}

// DeleteApp removes an app.
func (s *Server) DeleteApp(ctx context.Context, r *accountv1.DeleteAppRequest) (*accountv1.DeleteAppResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := refError("id", r.GetId()); err != nil {
		return nil, err
	}
	if err := s.store.DeleteApp(ctx, c.actor, c.accountID, r.GetId()); err != nil {
		return nil, s.storeError(ctx, "DeleteApp", quoted("app", r.GetId()), err)
	}
	return &accountv1.DeleteAppResponse{}, nil
}

// CreateTenant adds an active tenant.
func (s *Server) CreateTenant(ctx context.Context, r *accountv1.CreateTenantRequest) (*accountv1.CreateTenantResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkOwnerCreate(r); err != nil {
		return nil, err
	}
	now := s.now()
	t, err := s.store.CreateTenant(ctx, c.actor, store.Tenant{
		AccountID: c.accountID, ID: r.GetId(), Name: r.GetName(), Description: r.GetDescription(),
		Active: true, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return nil, s.storeError(ctx, "CreateTenant", s.label("tenant", r.GetId(), r.GetName()), err)
	}
	return &accountv1.CreateTenantResponse{Tenant: tenantProto(t)}, nil
}

// GetTenant returns one tenant of the caller's account.
func (s *Server) GetTenant(ctx context.Context, r *accountv1.GetTenantRequest) (*accountv1.GetTenantResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := refError("id", r.GetId()); err != nil {
		return nil, err
	}
	t, err := s.store.GetTenant(ctx, c.accountID, r.GetId())
	if err != nil {
		return nil, s.storeError(ctx, "GetTenant", quoted("tenant", r.GetId()), err)
	}
	return &accountv1.GetTenantResponse{Tenant: tenantProto(t)}, nil
}

// ListTenants returns one page of the caller's tenants.
func (s *Server) ListTenants(ctx context.Context, r *accountv1.ListTenantsRequest) (*accountv1.ListTenantsResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := pageError(r.GetPageSize(), r.GetPageToken()); err != nil {
		return nil, err
	}
	ts, next, err := s.store.ListTenants(ctx, c.accountID, store.Page{Size: int(r.GetPageSize()), Token: r.GetPageToken()})
	if err != nil {
		return nil, s.storeError(ctx, "ListTenants", "page", err)
	}
	out := &accountv1.ListTenantsResponse{NextPageToken: next, Tenants: make([]*accountv1.Tenant, len(ts))}
	for i, t := range ts {
		out.Tenants[i] = tenantProto(t)
	}
	return out, nil
}

// UpdateTenant changes the fields present in the request.
func (s *Server) UpdateTenant(ctx context.Context, r *accountv1.UpdateTenantRequest) (*accountv1.UpdateTenantResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	u, err := checkOwnerUpdate(r.GetId(), r.Name, r.Description, r.Active)
	if err != nil {
		return nil, err
	}
	var t store.Tenant
	if emptyUpdate(u) {
		t, err = s.store.GetTenant(ctx, c.accountID, r.GetId())
	} else {
		t, err = s.store.UpdateTenant(ctx, c.actor, c.accountID, r.GetId(), u)
	}
	if err != nil {
		return nil, s.storeError(ctx, "UpdateTenant", quoted("tenant", r.GetId()), err)
	}
	return &accountv1.UpdateTenantResponse{Tenant: tenantProto(t)}, nil
}

// DeleteTenant removes a tenant.
func (s *Server) DeleteTenant(ctx context.Context, r *accountv1.DeleteTenantRequest) (*accountv1.DeleteTenantResponse, error) {
	c, err := s.callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := refError("id", r.GetId()); err != nil {
		return nil, err
	}
	if err := s.store.DeleteTenant(ctx, c.actor, c.accountID, r.GetId()); err != nil {
		return nil, s.storeError(ctx, "DeleteTenant", quoted("tenant", r.GetId()), err)
	}
	return &accountv1.DeleteTenantResponse{}, nil
}
