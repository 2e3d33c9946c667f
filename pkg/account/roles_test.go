package account_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// TestRoleAndDenialRules drives the service without a transport: each
// rule of SPEC §11 on roles and denials answers its code, field and
// message.
func TestRoleAndDenialRules(t *testing.T) {
	s := accounttest.Start(t)
	ctx := context.Background()
	op, _ := account.OperationNamed("createServiceAccessRole")
	c, err := s.Service.Authenticate(ctx, account.Credentials{Keys: []string{s.RootKey}}, op)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.Service.CreateApp(ctx, c, account.OwnerInput{ID: "billing", Name: "Billing"})
	must(err)
	_, err = s.Service.CreateTenant(ctx, c, account.OwnerInput{ID: "acme", Name: "ACME"})
	must(err)
	_, err = s.Service.CreateServiceAccessRole(ctx, c, account.RoleInput{ID: "admin", Name: "Admin", Scope: "account-api"})
	must(err)
	_, _, _, err = s.Service.GenerateKey(ctx, c, account.KeyInput{Type: authz.KeyTypeService, AppID: "billing", TenantID: "acme", ID: "k", RoleIDs: []string{"admin"}})
	must(err)
	limited := account.Caller{AccountID: c.AccountID, Actor: c.Actor, Scope: mustScope(t, "account-api:query:* account-api:mutation:createServiceAccessRole")}

	for _, tc := range []struct {
		name  string
		err   error
		code  account.Code
		field string
		msg   string
	}{
		{"role without scope", second(s.Service.CreateServiceAccessRole(ctx, c, account.RoleInput{Name: "x"})), account.InvalidArgument, "scope", "required"},
		{"role scope grammar", second(s.Service.CreateServiceAccessRole(ctx, c, account.RoleInput{Name: "x", Scope: "a::b"})), account.InvalidArgument, "scope", "pattern 1"},
		{"role scope too long", second(s.Service.CreateServiceAccessRole(ctx, c, account.RoleInput{Name: "x", Scope: strings.Repeat("a", account.MaxScopeLen+1)})), account.ResourceExhausted, "scope", "longer than 4096 bytes"},
		{"role name too long", second(s.Service.CreateServiceAccessRole(ctx, c, account.RoleInput{Name: strings.Repeat("n", account.MaxNameLen+1), Scope: "x"})), account.ResourceExhausted, "name", "longer than 200 bytes"},
		{"role beyond the caller", second(s.Service.CreateServiceAccessRole(ctx, limited, account.RoleInput{Name: "x", Scope: "account-api:mutation:createApp"})), account.PermissionDenied, "", "scope_exceeds_caller"},
		{"held role", s.Service.DeleteServiceAccessRole(ctx, c, "admin", false), account.FailedPrecondition, "force", `role "admin": 1 key holds it`},
		{"unknown role on a key", third(s.Service.UpdateKey(ctx, c, "k", account.KeyUpdate{RoleIDs: &[]string{"nope"}})), account.NotFound, "role_ids", `role "nope" not found`},
		{"too many roles", third(s.Service.UpdateKey(ctx, c, "k", account.KeyUpdate{RoleIDs: ptrTo(make([]string, account.MaxRoleIDs+1))})), account.ResourceExhausted, "role_ids", "more than 50"},
		{"denial without tenant", second(s.Service.CreateServiceAccessDenial(ctx, c, account.DenialInput{AppID: "billing", Scope: "x", Reason: "r"})), account.InvalidArgument, "tenant_id", "required"},
		{"denial with a deny pattern", second(s.Service.CreateServiceAccessDenial(ctx, c, account.DenialInput{TenantID: "acme", AppID: "billing", Scope: "!x", Reason: "r"})), account.InvalidArgument, "scope", "deny patterns"},
		{"denial reason too long", second(s.Service.CreateServiceAccessDenial(ctx, c, account.DenialInput{TenantID: "acme", AppID: "billing", Scope: "x", Reason: strings.Repeat("r", 501)})), account.ResourceExhausted, "reason", "longer than 500 bytes"},
		{"denial reason control", second(s.Service.CreateServiceAccessDenial(ctx, c, account.DenialInput{TenantID: "acme", AppID: "billing", Scope: "x", Reason: "a\x00b"})), account.InvalidArgument, "reason", "control character"},
		{"denial of an unknown app", second(s.Service.CreateServiceAccessDenial(ctx, c, account.DenialInput{TenantID: "acme", AppID: "nope", Scope: "x", Reason: "r"})), account.NotFound, "app_id", `app "nope" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *account.Error
			if !errors.As(tc.err, &e) || e.Code != tc.code || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("error %v (%#v), want code %s field %q containing %q", tc.err, e, tc.code, tc.field, tc.msg)
			}
		})
	}
	// Quotas: the account's limit of roles, ResourceExhausted naming it.
	if _, err := s.Store.SetAccountLimits(ctx, store.Actor{KeyName: "operator"}, s.AccountID, store.LimitsUpdate{store.QuotaRoles: ptrTo(int64(1))}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Service.CreateServiceAccessRole(ctx, c, account.RoleInput{Name: "second", Scope: "x"})
	var e *account.Error
	if !errors.As(err, &e) || e.Code != account.ResourceExhausted || e.Field != "max_roles" {
		t.Fatalf("role past the quota: %v", err)
	}
}

func ptrTo[T any](v T) *T { return &v }

func mustScope(t *testing.T, s string) *scope.Scope {
	t.Helper()
	sc, err := scope.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}
