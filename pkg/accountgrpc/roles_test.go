package accountgrpc_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// TestRoles: a role's life through the Account API — create, get, list,
// update; keys holding it (generate, import, update replaces, get, list
// by role); delete refused while held (FailedPrecondition with the count)
// and forced.
func TestRoles(t *testing.T) {
	s, root := setup(t)
	c := s.Client
	r := must(c.CreateServiceAccessRole(root, &accountv1.CreateServiceAccessRoleRequest{
		Id: "reader", Name: "Reader", Description: "reads mail", Scope: "email-api:query:*"})).GetRole()
	if r.GetId() != "reader" || r.GetScope() != "email-api:query:*" || r.GetCreateTime() == nil {
		t.Fatalf("created %v", r)
	}
	must(c.CreateServiceAccessRole(root, &accountv1.CreateServiceAccessRoleRequest{Id: "sender", Name: "Sender", Scope: "email-api:mutation:send"}))
	if got := must(c.GetServiceAccessRole(root, &accountv1.GetServiceAccessRoleRequest{Id: "reader"})).GetRole(); !proto.Equal(got, r) {
		t.Errorf("get %v, want %v", got, r)
	}
	list := must(c.ListServiceAccessRoles(root, &accountv1.ListServiceAccessRolesRequest{})).GetRoles()
	if len(list) != 2 || !slices.ContainsFunc(list, func(r *accountv1.ServiceAccessRole) bool { return r.GetId() == "sender" }) {
		t.Errorf("list %v", list)
	}
	// Another account sees none of them.
	other := accounttest.Ctx(t.Context(), s.OtherKey)
	_, err := c.GetServiceAccessRole(other, &accountv1.GetServiceAccessRoleRequest{Id: "reader"})
	wantCode(t, err, codes.NotFound, `role "reader" not found`)

	k := must(c.GenerateServiceAccessKey(root, &accountv1.GenerateServiceAccessKeyRequest{
		AppId: "billing", TenantId: "acme", Name: "k1", RoleIds: []string{"sender", "reader"}})).GetKey()
	if !slices.Equal(k.GetRoleIds(), []string{"reader", "sender"}) {
		t.Errorf("generated key roles %v", k.GetRoleIds())
	}
	imp := must(c.ImportKey(root, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "billing",
		Name: "k2", PrivateKey: "Imported-Secret-0123456789abcdefXYZ", RoleIds: []string{"reader"}})).GetKey()
	if !slices.Equal(imp.GetRoleIds(), []string{"reader"}) {
		t.Errorf("imported key roles %v", imp.GetRoleIds())
	}
	_, err = c.GenerateServiceAccessKey(root, &accountv1.GenerateServiceAccessKeyRequest{
		AppId: "billing", TenantId: "acme", Name: "k3", RoleIds: []string{"nope"}})
	wantCode(t, err, codes.NotFound, `role "nope" not found`)

	byRole := func(role string) []string {
		var ids []string
		for _, k := range must(c.ListKeys(root, &accountv1.ListKeysRequest{RoleId: role})).GetKeys() {
			ids = append(ids, k.GetName())
		}
		slices.Sort(ids) // the test clock stands still: creation ties
		return ids
	}
	if got := byRole("reader"); !slices.Equal(got, []string{"k1", "k2"}) {
		t.Errorf("keys holding reader: %v", got)
	}
	up := must(c.UpdateKey(root, &accountv1.UpdateKeyRequest{Id: k.GetId(), RoleIds: &accountv1.RoleIDs{Ids: []string{"sender"}}})).GetKey()
	if !slices.Equal(up.GetRoleIds(), []string{"sender"}) {
		t.Errorf("replaced roles %v", up.GetRoleIds())
	}
	if got := must(c.GetKey(root, &accountv1.GetKeyRequest{Id: k.GetId()})).GetKey().GetRoleIds(); !slices.Equal(got, []string{"sender"}) {
		t.Errorf("get key roles %v", got)
	}
	if got := byRole("reader"); !slices.Equal(got, []string{"k2"}) {
		t.Errorf("keys holding reader after replace: %v", got)
	}

	up2 := must(c.UpdateServiceAccessRole(root, &accountv1.UpdateServiceAccessRoleRequest{Id: "reader", Scope: proto.String("email-api:query:list")})).GetRole()
	if up2.GetScope() != "email-api:query:list" || up2.GetName() != "Reader" {
		t.Errorf("updated role %v", up2)
	}

	_, err = c.DeleteServiceAccessRole(root, &accountv1.DeleteServiceAccessRoleRequest{Id: "reader"})
	wantCode(t, err, codes.FailedPrecondition, `role "reader": 1 key holds it`, "--force")
	must(c.DeleteServiceAccessRole(root, &accountv1.DeleteServiceAccessRoleRequest{Id: "reader", Force: true}))
	if got := must(c.GetKey(root, &accountv1.GetKeyRequest{Id: imp.GetId()})).GetKey().GetRoleIds(); len(got) != 0 {
		t.Errorf("roles of k2 after forced delete: %v", got)
	}
	_, err = c.GetServiceAccessRole(root, &accountv1.GetServiceAccessRoleRequest{Id: "reader"})
	wantCode(t, err, codes.NotFound)
}

// TestRoleValidation: each bad request is refused naming its field, and
// nothing is written.
func TestRoleValidation(t *testing.T) {
	s, root := setup(t)
	c := s.Client
	must(c.CreateServiceAccessRole(root, &accountv1.CreateServiceAccessRoleRequest{Id: "r", Name: "R", Scope: "x"}))
	for _, tc := range []struct {
		name string
		req  *accountv1.CreateServiceAccessRoleRequest
		code codes.Code
		want string
	}{
		{"no scope", &accountv1.CreateServiceAccessRoleRequest{Name: "a"}, codes.InvalidArgument, "scope: required"},
		{"blank scope", &accountv1.CreateServiceAccessRoleRequest{Name: "a", Scope: "  "}, codes.InvalidArgument, "scope: required"},
		{"bad scope", &accountv1.CreateServiceAccessRoleRequest{Name: "a", Scope: "a:b:c:d"}, codes.InvalidArgument, "scope: "},
		{"no name", &accountv1.CreateServiceAccessRoleRequest{Scope: "x"}, codes.InvalidArgument, "name: required"},
		{"bad id", &accountv1.CreateServiceAccessRoleRequest{Id: "a b", Name: "a", Scope: "x"}, codes.InvalidArgument, "id: "},
		{"too many patterns", &accountv1.CreateServiceAccessRoleRequest{Name: "a", Scope: strings.Repeat("x ", 201)}, codes.ResourceExhausted, "scope: 201 patterns"},
		{"name taken", &accountv1.CreateServiceAccessRoleRequest{Name: "R", Scope: "x"}, codes.AlreadyExists, `name "R"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateServiceAccessRole(root, tc.req)
			wantCode(t, err, tc.code, tc.want)
		})
	}
	if n := len(must(c.ListServiceAccessRoles(root, &accountv1.ListServiceAccessRolesRequest{})).GetRoles()); n != 1 {
		t.Errorf("%d roles after refusals, want 1", n)
	}
	_, err := c.UpdateServiceAccessRole(root, &accountv1.UpdateServiceAccessRoleRequest{Id: "r", Scope: proto.String("")})
	wantCode(t, err, codes.InvalidArgument, "scope: required")
	_, err = c.GenerateServiceAccessKey(root, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme",
		RoleIds: []string{""}})
	wantCode(t, err, codes.InvalidArgument, "role_ids[0]: required")
}

// TestRoleEscalation: the escalation rule covers roles. A caller limited
// in the Account API may neither create nor widen a role beyond its own
// rights, nor give an account key a role whose scope it could not give
// itself, nor change or delete a stronger role; a service key may hold
// any role (its scope grants nothing in the Account API).
func TestRoleEscalation(t *testing.T) {
	s, root := setup(t)
	c := s.Client
	limited := accounttest.Ctx(t.Context(), s.AddKey(t, authz.KeySpec{ID: "limited", Name: "limited", AccountID: "acct-1",
		Type: authz.KeyTypeAccount, Active: true,
		Scope: "account-api:query:* account-api:mutation:generate* account-api:mutation:updateKey account-api:mutation:createServiceAccessRole account-api:mutation:updateServiceAccessRole account-api:mutation:deleteServiceAccessRole"}))
	must(c.CreateServiceAccessRole(root, &accountv1.CreateServiceAccessRoleRequest{Id: "admin", Name: "Admin", Scope: "account-api"}))
	must(c.CreateServiceAccessRole(root, &accountv1.CreateServiceAccessRoleRequest{Id: "mail", Name: "Mail", Scope: "email-api"}))
	weak := must(c.GenerateAccountAccessKey(root, &accountv1.GenerateAccountAccessKeyRequest{Name: "weak", Scope: "account-api:query:*"})).GetKey()

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"create a role with all of account-api", func() error {
			_, err := c.CreateServiceAccessRole(limited, &accountv1.CreateServiceAccessRoleRequest{Name: "x", Scope: "account-api"})
			return err
		}},
		{"widen a role", func() error {
			_, err := c.UpdateServiceAccessRole(limited, &accountv1.UpdateServiceAccessRoleRequest{Id: "mail", Scope: proto.String("account-api:mutation:createApp")})
			return err
		}},
		{"change a stronger role", func() error {
			_, err := c.UpdateServiceAccessRole(limited, &accountv1.UpdateServiceAccessRoleRequest{Id: "admin", Description: proto.String("mine")})
			return err
		}},
		{"delete a stronger role", func() error {
			_, err := c.DeleteServiceAccessRole(limited, &accountv1.DeleteServiceAccessRoleRequest{Id: "admin"})
			return err
		}},
		{"generate an account key holding a stronger role", func() error {
			_, err := c.GenerateAccountAccessKey(limited, &accountv1.GenerateAccountAccessKeyRequest{Name: "x", Scope: "account-api:query:*", RoleIds: []string{"admin"}})
			return err
		}},
		{"give an account key a stronger role", func() error {
			_, err := c.UpdateKey(limited, &accountv1.UpdateKeyRequest{Id: weak.GetId(), RoleIds: &accountv1.RoleIDs{Ids: []string{"admin"}}})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.call(), codes.PermissionDenied, "scope_exceeds_caller")
		})
	}
	if got := must(c.GetKey(root, &accountv1.GetKeyRequest{Id: weak.GetId()})).GetKey().GetRoleIds(); len(got) != 0 {
		t.Errorf("refused update gave roles %v", got)
	}
	if got := must(c.GetServiceAccessRole(root, &accountv1.GetServiceAccessRoleRequest{Id: "mail"})).GetRole().GetScope(); got != "email-api" {
		t.Errorf("refused update changed the scope to %q", got)
	}
	// Allowed: roles within the caller's rights, on any key; any role on a
	// service key.
	must(c.CreateServiceAccessRole(limited, &accountv1.CreateServiceAccessRoleRequest{Id: "ro", Name: "RO", Scope: "account-api:query:*"}))
	must(c.UpdateKey(limited, &accountv1.UpdateKeyRequest{Id: weak.GetId(), RoleIds: &accountv1.RoleIDs{Ids: []string{"ro", "mail"}}}))
	must(c.GenerateServiceAccessKey(limited, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Name: "svc", RoleIds: []string{"admin"}}))
}

// TestDenials: a denial's life through the Account API, its validation and
// its filters.
func TestDenials(t *testing.T) {
	s, root := setup(t)
	c := s.Client
	must(c.CreateApp(root, &accountv1.CreateAppRequest{Id: "shop", Name: "Shop"}))
	d := must(c.CreateServiceAccessDenial(root, &accountv1.CreateServiceAccessDenialRequest{
		Id: "unpaid", TenantId: "acme", AppId: "billing", Scope: "email-api:mutation:send", Reason: "invoice overdue"})).GetDenial()
	if d.GetReason() != "invoice overdue" || d.GetTenantId() != "acme" || d.GetAppId() != "billing" {
		t.Fatalf("created %v", d)
	}
	must(c.CreateServiceAccessDenial(root, &accountv1.CreateServiceAccessDenialRequest{Id: "shop-block", TenantId: "acme", AppId: "shop", Scope: "email-api", Reason: "shop closed"}))
	for _, tc := range []struct {
		name string
		req  *accountv1.CreateServiceAccessDenialRequest
		code codes.Code
		want string
	}{
		{"no tenant", &accountv1.CreateServiceAccessDenialRequest{AppId: "billing", Scope: "x", Reason: "r"}, codes.InvalidArgument, "tenant_id: required"},
		{"no app", &accountv1.CreateServiceAccessDenialRequest{TenantId: "acme", Scope: "x", Reason: "r"}, codes.InvalidArgument, "app_id: required"},
		{"no scope", &accountv1.CreateServiceAccessDenialRequest{TenantId: "acme", AppId: "billing", Reason: "r"}, codes.InvalidArgument, "scope: required"},
		{"deny pattern", &accountv1.CreateServiceAccessDenialRequest{TenantId: "acme", AppId: "billing", Scope: "email-api !email-api:query", Reason: "r"}, codes.InvalidArgument, `pattern 2 "!email-api:query"`},
		{"long reason", &accountv1.CreateServiceAccessDenialRequest{TenantId: "acme", AppId: "billing", Scope: "x", Reason: strings.Repeat("a", 501)}, codes.ResourceExhausted, "reason: longer than 500 bytes"},
		{"unknown tenant", &accountv1.CreateServiceAccessDenialRequest{TenantId: "nope", AppId: "billing", Scope: "x", Reason: "r"}, codes.NotFound, `tenant "nope" not found`},
		{"unknown app", &accountv1.CreateServiceAccessDenialRequest{TenantId: "acme", AppId: "nope", Scope: "x", Reason: "r"}, codes.NotFound, `app "nope" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateServiceAccessDenial(root, tc.req)
			wantCode(t, err, tc.code, tc.want)
		})
	}
	ids := func(r *accountv1.ListServiceAccessDenialsRequest) []string {
		var out []string
		for _, d := range must(c.ListServiceAccessDenials(root, r)).GetDenials() {
			out = append(out, d.GetId())
		}
		slices.Sort(out) // the test clock stands still: creation ties
		return out
	}
	if got := ids(&accountv1.ListServiceAccessDenialsRequest{}); !slices.Equal(got, []string{"shop-block", "unpaid"}) {
		t.Errorf("list %v", got)
	}
	if got := ids(&accountv1.ListServiceAccessDenialsRequest{AppId: "shop"}); !slices.Equal(got, []string{"shop-block"}) {
		t.Errorf("list app shop %v", got)
	}
	if got := ids(&accountv1.ListServiceAccessDenialsRequest{TenantId: "acme", AppId: "billing"}); !slices.Equal(got, []string{"unpaid"}) {
		t.Errorf("list acme/billing %v", got)
	}
	up := must(c.UpdateServiceAccessDenial(root, &accountv1.UpdateServiceAccessDenialRequest{Id: "unpaid", Reason: proto.String("fraud")})).GetDenial()
	if up.GetReason() != "fraud" || up.GetScope() != "email-api:mutation:send" {
		t.Errorf("updated %v", up)
	}
	_, err := c.UpdateServiceAccessDenial(root, &accountv1.UpdateServiceAccessDenialRequest{Id: "unpaid", Scope: proto.String("!x")})
	wantCode(t, err, codes.InvalidArgument, "deny patterns (!) are not allowed")
	must(c.DeleteServiceAccessDenial(root, &accountv1.DeleteServiceAccessDenialRequest{Id: "unpaid"}))
	_, err = c.GetServiceAccessDenial(root, &accountv1.GetServiceAccessDenialRequest{Id: "unpaid"})
	wantCode(t, err, codes.NotFound, `denial "unpaid" not found`)
}

// TestRoleAndDenialQuotas: creates past an account's quota of roles or
// denials are ResourceExhausted naming the limit (SPEC §10).
func TestRoleAndDenialQuotas(t *testing.T) {
	s, root := setup(t)
	c := s.Client
	if _, err := s.Store.SetAccountLimits(context.Background(), store.Actor{KeyName: "operator"}, s.AccountID,
		store.LimitsUpdate{store.QuotaRoles: ptr(int64(1)), store.QuotaDenials: ptr(int64(1))}); err != nil {
		t.Fatal(err)
	}
	must(c.CreateServiceAccessRole(root, &accountv1.CreateServiceAccessRoleRequest{Name: "a", Scope: "x"}))
	_, err := c.CreateServiceAccessRole(root, &accountv1.CreateServiceAccessRoleRequest{Name: "b", Scope: "x"})
	wantCode(t, err, codes.ResourceExhausted, "max_roles = 1")
	must(c.CreateServiceAccessDenial(root, &accountv1.CreateServiceAccessDenialRequest{TenantId: "acme", AppId: "billing", Scope: "x", Reason: "r"}))
	_, err = c.CreateServiceAccessDenial(root, &accountv1.CreateServiceAccessDenialRequest{TenantId: "acme", AppId: "billing", Scope: "y", Reason: "r"})
	wantCode(t, err, codes.ResourceExhausted, "max_denials = 1")
}
