package accountgrpc

import (
	"context"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/store"
)

func roleProto(r store.Role) *accountv1.ServiceAccessRole {
	return &accountv1.ServiceAccessRole{Id: r.ID, Name: r.Name, Description: r.Description, Scope: r.Scope,
		CreateTime: ts(r.CreatedAt), UpdateTime: ts(r.UpdatedAt), RateLimit: rateLimitProto(r.RateLimit)}
}

func denialProto(d store.Denial) *accountv1.ServiceAccessDenial {
	return &accountv1.ServiceAccessDenial{Id: d.ID, TenantId: d.TenantID, AppId: d.AppID, Scope: d.Scope, Reason: d.Reason,
		CreateTime: ts(d.CreatedAt), UpdateTime: ts(d.UpdatedAt)}
}

// CreateServiceAccessRole creates a role.
func (s *Server) CreateServiceAccessRole(ctx context.Context, r *accountv1.CreateServiceAccessRoleRequest) (*accountv1.CreateServiceAccessRoleResponse, error) {
	var v account.Violations
	rl := rateLimitOf(&v, "rate_limit", r.GetRateLimit())
	if err := v.Err(); err != nil {
		return nil, grpcError(err)
	}
	role, err := s.svc.CreateServiceAccessRole(ctx, callerFrom(ctx), account.RoleInput{
		ID: r.GetId(), Name: r.GetName(), Description: r.GetDescription(), Scope: r.GetScope(), RateLimit: rl})
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.CreateServiceAccessRoleResponse{Role: roleProto(role)}, nil
}

// GetServiceAccessRole returns one role.
func (s *Server) GetServiceAccessRole(ctx context.Context, r *accountv1.GetServiceAccessRoleRequest) (*accountv1.GetServiceAccessRoleResponse, error) {
	role, err := s.svc.GetServiceAccessRole(ctx, callerFrom(ctx), r.GetId())
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.GetServiceAccessRoleResponse{Role: roleProto(role)}, nil
}

// ListServiceAccessRoles returns one page of roles.
func (s *Server) ListServiceAccessRoles(ctx context.Context, r *accountv1.ListServiceAccessRolesRequest) (*accountv1.ListServiceAccessRolesResponse, error) {
	roles, next, err := s.svc.ListServiceAccessRoles(ctx, callerFrom(ctx), page(r.GetPageSize(), r.GetPageToken()))
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.ListServiceAccessRolesResponse{NextPageToken: next, Roles: make([]*accountv1.ServiceAccessRole, len(roles))}
	for i, role := range roles {
		out.Roles[i] = roleProto(role)
	}
	return out, nil
}

// UpdateServiceAccessRole changes the fields present.
func (s *Server) UpdateServiceAccessRole(ctx context.Context, r *accountv1.UpdateServiceAccessRoleRequest) (*accountv1.UpdateServiceAccessRoleResponse, error) {
	var v account.Violations
	rl := rateLimitUpdate(&v, r.GetRateLimit(), r.GetClearRateLimit())
	if err := v.Err(); err != nil {
		return nil, grpcError(err)
	}
	role, err := s.svc.UpdateServiceAccessRole(ctx, callerFrom(ctx), r.GetId(),
		account.RoleUpdate{Name: r.Name, Description: r.Description, Scope: r.Scope, RateLimit: rl})
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.UpdateServiceAccessRoleResponse{Role: roleProto(role)}, nil
}

// DeleteServiceAccessRole deletes a role; one keys hold only with force.
func (s *Server) DeleteServiceAccessRole(ctx context.Context, r *accountv1.DeleteServiceAccessRoleRequest) (*accountv1.DeleteServiceAccessRoleResponse, error) {
	if err := s.svc.DeleteServiceAccessRole(ctx, callerFrom(ctx), r.GetId(), r.GetForce()); err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.DeleteServiceAccessRoleResponse{}, nil
}

// CreateServiceAccessDenial creates a denial.
func (s *Server) CreateServiceAccessDenial(ctx context.Context, r *accountv1.CreateServiceAccessDenialRequest) (*accountv1.CreateServiceAccessDenialResponse, error) {
	d, err := s.svc.CreateServiceAccessDenial(ctx, callerFrom(ctx), account.DenialInput{
		ID: r.GetId(), TenantID: r.GetTenantId(), AppID: r.GetAppId(), Scope: r.GetScope(), Reason: r.GetReason()})
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.CreateServiceAccessDenialResponse{Denial: denialProto(d)}, nil
}

// GetServiceAccessDenial returns one denial.
func (s *Server) GetServiceAccessDenial(ctx context.Context, r *accountv1.GetServiceAccessDenialRequest) (*accountv1.GetServiceAccessDenialResponse, error) {
	d, err := s.svc.GetServiceAccessDenial(ctx, callerFrom(ctx), r.GetId())
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.GetServiceAccessDenialResponse{Denial: denialProto(d)}, nil
}

// ListServiceAccessDenials returns one page of denials, filtered by tenant
// and app.
func (s *Server) ListServiceAccessDenials(ctx context.Context, r *accountv1.ListServiceAccessDenialsRequest) (*accountv1.ListServiceAccessDenialsResponse, error) {
	ds, next, err := s.svc.ListServiceAccessDenials(ctx, callerFrom(ctx),
		account.DenialFilter{TenantID: r.GetTenantId(), AppID: r.GetAppId()}, page(r.GetPageSize(), r.GetPageToken()))
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.ListServiceAccessDenialsResponse{NextPageToken: next, Denials: make([]*accountv1.ServiceAccessDenial, len(ds))}
	for i, d := range ds {
		out.Denials[i] = denialProto(d)
	}
	return out, nil
}

// UpdateServiceAccessDenial changes a denial's scope or reason.
func (s *Server) UpdateServiceAccessDenial(ctx context.Context, r *accountv1.UpdateServiceAccessDenialRequest) (*accountv1.UpdateServiceAccessDenialResponse, error) {
	d, err := s.svc.UpdateServiceAccessDenial(ctx, callerFrom(ctx), r.GetId(), account.DenialUpdate{Scope: r.Scope, Reason: r.Reason})
	if err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.UpdateServiceAccessDenialResponse{Denial: denialProto(d)}, nil
}

// DeleteServiceAccessDenial deletes a denial.
func (s *Server) DeleteServiceAccessDenial(ctx context.Context, r *accountv1.DeleteServiceAccessDenialRequest) (*accountv1.DeleteServiceAccessDenialResponse, error) {
	if err := s.svc.DeleteServiceAccessDenial(ctx, callerFrom(ctx), r.GetId()); err != nil {
		return nil, grpcError(err)
	}
	return &accountv1.DeleteServiceAccessDenialResponse{}, nil
}
