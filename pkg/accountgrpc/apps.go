package accountgrpc

import (
	"context"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
)

// CreateApp adds an active app.
func (s *Server) CreateApp(ctx context.Context, r *accountv1.CreateAppRequest) (*accountv1.CreateAppResponse, error) {
	a, err := s.svc.CreateApp(ctx, callerFrom(ctx), account.OwnerInput{ID: r.GetId(), Name: r.GetName(), Description: r.GetDescription()})
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.CreateAppResponse{App: appProto(a)}, nil
}

// GetApp returns one app of the caller's account.
func (s *Server) GetApp(ctx context.Context, r *accountv1.GetAppRequest) (*accountv1.GetAppResponse, error) {
	a, err := s.svc.GetApp(ctx, callerFrom(ctx), r.GetId())
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.GetAppResponse{App: appProto(a)}, nil
}

// ListApps returns one page of the caller's apps.
func (s *Server) ListApps(ctx context.Context, r *accountv1.ListAppsRequest) (*accountv1.ListAppsResponse, error) {
	apps, next, err := s.svc.ListApps(ctx, callerFrom(ctx), page(r.GetPageSize(), r.GetPageToken()))
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.ListAppsResponse{NextPageToken: next, Apps: make([]*accountv1.App, len(apps))}
	for i, a := range apps {
		out.Apps[i] = appProto(a)
	}
	return out, nil
}

// UpdateApp changes the fields present in the request.
func (s *Server) UpdateApp(ctx context.Context, r *accountv1.UpdateAppRequest) (*accountv1.UpdateAppResponse, error) {
	a, err := s.svc.UpdateApp(ctx, callerFrom(ctx), r.GetId(), account.OwnerUpdate{Name: r.Name, Description: r.Description, Active: r.Active})
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.UpdateAppResponse{App: appProto(a)}, nil
}

// DeleteApp removes an app; one with keys only with cascade.
func (s *Server) DeleteApp(ctx context.Context, r *accountv1.DeleteAppRequest) (*accountv1.DeleteAppResponse, error) {
	a, err := s.svc.DeleteApp(ctx, callerFrom(ctx), account.DeleteInput{ID: r.GetId(), Cascade: r.GetCascade()})
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.DeleteAppResponse{App: appProto(a)}, nil
}

// CreateTenant adds an active tenant.
func (s *Server) CreateTenant(ctx context.Context, r *accountv1.CreateTenantRequest) (*accountv1.CreateTenantResponse, error) {
	var v account.Violations
	quota := quotaOf(&v, "quota", r.GetQuota())
	if err := v.Err(); err != nil {
		return nil, grpcError(err)
	}
	t, err := s.svc.CreateTenant(ctx, callerFrom(ctx), account.OwnerInput{ID: r.GetId(), Name: r.GetName(), Description: r.GetDescription(), Quota: quota})
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.CreateTenantResponse{Tenant: tenantProto(t)}, nil
}

// GetTenant returns one tenant of the caller's account.
func (s *Server) GetTenant(ctx context.Context, r *accountv1.GetTenantRequest) (*accountv1.GetTenantResponse, error) {
	c := callerFrom(ctx)
	t, err := s.svc.GetTenant(ctx, c, r.GetId())
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.GetTenantResponse{Tenant: tenantProto(t)}
	q, err := s.svc.TenantQuota(ctx, c, t)
	if err != nil {
		return nil, grpcError(err)
	}
	if q != nil {
		out.QuotaStatus = quotaStatusProto(*q)
	}
	return out, nil
}

// ListTenants returns one page of the caller's tenants.
func (s *Server) ListTenants(ctx context.Context, r *accountv1.ListTenantsRequest) (*accountv1.ListTenantsResponse, error) {
	ts, next, err := s.svc.ListTenants(ctx, callerFrom(ctx), page(r.GetPageSize(), r.GetPageToken()))
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.ListTenantsResponse{NextPageToken: next, Tenants: make([]*accountv1.Tenant, len(ts))}
	for i, t := range ts {
		out.Tenants[i] = tenantProto(t)
	}
	return out, nil
}

// UpdateTenant changes the fields present in the request.
func (s *Server) UpdateTenant(ctx context.Context, r *accountv1.UpdateTenantRequest) (*accountv1.UpdateTenantResponse, error) {
	var v account.Violations
	quota := quotaUpdate(&v, r.GetQuota(), r.GetClearQuota())
	if err := v.Err(); err != nil {
		return nil, grpcError(err)
	}
	t, err := s.svc.UpdateTenant(ctx, callerFrom(ctx), r.GetId(), account.OwnerUpdate{Name: r.Name, Description: r.Description, Active: r.Active, Quota: quota})
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.UpdateTenantResponse{Tenant: tenantProto(t)}, nil
}

// DeleteTenant removes a tenant; one with keys only with cascade.
func (s *Server) DeleteTenant(ctx context.Context, r *accountv1.DeleteTenantRequest) (*accountv1.DeleteTenantResponse, error) {
	t, err := s.svc.DeleteTenant(ctx, callerFrom(ctx), account.DeleteInput{ID: r.GetId(), Cascade: r.GetCascade()})
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.DeleteTenantResponse{Tenant: tenantProto(t)}, nil
}

func page(size int32, token string) account.PageInput {
	return account.PageInput{Size: int(size), Token: token}
}
