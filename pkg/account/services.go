package account

import (
	"context"
	"slices"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/route"
)

// ServiceInfo is one service a key of the caller's account can be scoped
// to (the services operation): what a scope editor's permission picker
// offers.
type ServiceInfo struct {
	Name string
	// KeyTypes are the key types the service accepts: service, app or
	// account (the Account API alone).
	KeyTypes []string
	Kinds    []KindInfo
	// AnyKind: a route of the service leaves the kind open, so a scope
	// may name kinds beyond Kinds.
	AnyKind bool
}

// KindInfo is one kind of a service and its operations.
type KindInfo struct {
	Name       string
	Operations []string
	// AnyOperation: the routes leave operations open (a GraphQL route's
	// fields, a gRPC service's methods, a route without an operation), so
	// a scope may name operations beyond Operations.
	AnyOperation bool
}

// Services returns the services of the routes being served that accept
// keys of the caller's account, the Account API's own first, with their
// key types, kinds and operations. A service limited to other accounts is
// left out: its name, like its accounts, is none of the caller's business.
func (s *Service) Services(ctx context.Context, c Caller) ([]ServiceInfo, error) {
	if err := s.check(c); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	out := []ServiceInfo{accountAPIInfo()}
	if s.routes == nil {
		return out, nil
	}
	for _, r := range s.routes.Services() {
		if r.Accounts != nil && !slices.Contains(r.Accounts, c.AccountID) {
			continue
		}
		info := ServiceInfo{Name: r.Name, KeyTypes: keyTypeNames(r.Accepts), AnyKind: r.AnyKind}
		for _, k := range r.Kinds {
			info.Kinds = append(info.Kinds, KindInfo{Name: k.Name, Operations: k.Operations, AnyOperation: k.AnyOperation})
		}
		out = append(out, info)
	}
	return out, nil
}

// accountAPIInfo is the Account API as a service: account keys only, its
// catalogue's operations by kind.
func accountAPIInfo() ServiceInfo {
	info := ServiceInfo{Name: authz.AccountAPIService, KeyTypes: []string{authz.KeyTypeAccount.String()}}
	for _, kind := range []string{kindQuery, kindMutation} {
		k := KindInfo{Name: kind}
		for _, op := range Operations {
			if op.Kind == kind {
				k.Operations = append(k.Operations, op.Name)
			}
		}
		info.Kinds = append(info.Kinds, k)
	}
	return info
}

func keyTypeNames(ts authz.KeyTypes) []string {
	var out []string
	for _, t := range []authz.KeyType{authz.KeyTypeService, authz.KeyTypeApp, authz.KeyTypeAccount} {
		if ts.Has(t) {
			out = append(out, t.String())
		}
	}
	return out
}

// AccountInfo is the caller's account and calling key (the account
// operation): who the API thinks is calling and what it may do.
type AccountInfo struct {
	ID      string
	Name    string
	KeyID   string
	KeyName string
	// Scope is the calling key's effective scope (its own and its roles',
	// SPEC §11); "" allows every Account API operation.
	Scope string
	// Operations are the Account API operations that scope allows, in
	// catalogue order: what a console shows buttons for.
	Operations []Operation
}

// Account returns the caller's account and key.
func (s *Service) Account(ctx context.Context, c Caller) (AccountInfo, error) {
	if err := s.check(c); err != nil {
		return AccountInfo{}, err
	}
	a, err := s.store.GetAccount(ctx, c.AccountID)
	if err != nil {
		return AccountInfo{}, s.storeError(ctx, "account", "account", err)
	}
	info := AccountInfo{ID: a.ID, Name: a.Name, KeyID: c.Actor.KeyID, KeyName: c.Actor.KeyName, Scope: c.Scope.String()}
	for _, op := range Operations {
		if c.Scope.Allows(authz.AccountAPIService, op.Kind, op.Name) {
			info.Operations = append(info.Operations, op)
		}
	}
	return info, nil
}

var _ Routes = (*route.Router)(nil)
