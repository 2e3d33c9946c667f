package main

import (
	"context"
	"fmt"
	"time"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountcli"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
)

// denialReadingStore is explain's key store in database mode: it finds
// the key as serve's cache would (compiled with its roles: the effective
// scope) and then reads the stored denials of the key's tenant and app
// into the index the engine checks (row 9), since explain loads no cache.
type denialReadingStore struct {
	st      *postgres.Store
	denials *authz.DenialIndex
	err     error // reading the denials failed: row 9 is not checked
	// quotas are the fleet's counts of the key's quotas, read with the
	// key, for row 10 (quotaStates before the request); quotaErr says why
	// they could not be read.
	quotas      *authz.Quotas
	quotaStates []authz.QuotaState
	quotaErr    error
}

func (s *denialReadingStore) LookupKey(ctx context.Context, d apikey.Digest) (*authz.Key, error) {
	k, err := s.st.LookupKey(ctx, d)
	if err == nil && k.HasQuota() {
		s.quotaStates, s.quotaErr = loadQuotas(ctx, s.quotas, s.st.QuotaUsed, k, time.Now())
	}
	if err != nil || k.Spec.TenantID == "" || k.Spec.AppID == "" {
		return k, err
	}
	f := store.DenialFilter{TenantID: k.Spec.TenantID, AppID: k.Spec.AppID}
	var all []*authz.CompiledDenial
	for p := (store.Page{Size: 1000}); ; {
		ds, next, err := s.st.ListDenials(ctx, k.Spec.AccountID, f, p)
		if err != nil {
			// The key is still explained; row 9 says why it was not checked.
			s.err = err
			return k, nil
		}
		for _, d := range ds {
			all = append(all, compileExplainDenial(d.AccountID, d.ID, d.TenantID, d.AppID, d.Scope, d.Reason))
		}
		if next == "" || len(ds) == 0 {
			break
		}
		p.Token = next
	}
	s.denials.Replace(all)
	return k, nil
}

// compileExplainDenial compiles a stored denial as serve's cache does
// (authz.CompileStoredDenial), so that explain answers what serve would:
// one whose reason the rules refuse blocks its scope with a generic
// reason, one that does not compile otherwise blocks everything of its
// tenant and app.
func compileExplainDenial(account, id, tenant, app, scope, reason string) *authz.CompiledDenial {
	cd, _, _ := authz.CompileStoredDenial(authz.Denial{ID: id, AccountID: account, TenantID: tenant, AppID: app, Scope: scope, Reason: reason})
	return cd
}

// remoteAccount stands for the caller's account in explain --key-id: the
// Account API names no account on a key, and the key and its denials are
// of the same one.
const remoteAccount = "(account)"

// remoteRolesAndDenials reads, through the Account API, the roles a key
// holds (for its effective scope) and the denials of its tenant and app
// (row 9).
func remoteRolesAndDenials(ctx context.Context, api accountv1.AccountServiceClient, addr string, k *accountv1.Key) (authz.RoleMap, *authz.DenialIndex, error) {
	roles := authz.RoleMap{}
	for _, id := range k.GetRoleIds() {
		resp, err := api.GetServiceAccessRole(ctx, &accountv1.GetServiceAccessRoleRequest{Id: id})
		if err != nil {
			return nil, nil, fmt.Errorf("get role %s of key %s: %w", id, k.GetId(), accountcli.CallError(addr, err))
		}
		r := resp.GetRole()
		roles[id] = &authz.Role{ID: r.GetId(), AccountID: remoteAccount, Name: r.GetName(), Scope: r.GetScope(), Description: r.GetDescription(),
			RateLimit: rateLimitFromProto(r.GetRateLimit())}
	}
	index := authz.NewDenialIndex()
	if k.GetTenantId() == "" || k.GetAppId() == "" {
		return roles, index, nil
	}
	var all []*authz.CompiledDenial
	req := &accountv1.ListServiceAccessDenialsRequest{TenantId: k.GetTenantId(), AppId: k.GetAppId(), PageSize: 1000}
	for {
		resp, err := api.ListServiceAccessDenials(ctx, req)
		if err != nil {
			return nil, nil, fmt.Errorf("list the denials of tenant %s, app %s: %w", k.GetTenantId(), k.GetAppId(), accountcli.CallError(addr, err))
		}
		for _, d := range resp.GetDenials() {
			if cd := compileExplainDenial(remoteAccount, d.GetId(), d.GetTenantId(), d.GetAppId(), d.GetScope(), d.GetReason()); cd != nil {
				all = append(all, cd)
			}
		}
		if resp.GetNextPageToken() == "" || len(resp.GetDenials()) == 0 {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	index.Replace(all)
	return roles, index, nil
}
