package account_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/authz"
)

// TestCounts: CountKeys, CountApps and CountTenants count what the lists
// list, authorised as the lists are: a key whose scope does not allow
// the list gets PermissionDenied, not a count.
func TestCounts(t *testing.T) {
	s := accounttest.Start(t)
	ctx := context.Background()
	caller := func(t *testing.T, scope string, op string) account.Caller {
		t.Helper()
		secret := s.AddKey(t, authz.KeySpec{ID: "k-" + strings.NewReplacer(":", "-", "*", "all", " ", "_").Replace(scope),
			Name: "caller " + scope, Type: authz.KeyTypeAccount, AccountID: s.AccountID, Active: true, Scope: scope})
		o, _ := account.OperationNamed(op)
		c, err := s.Service.Authenticate(ctx, account.Credentials{Keys: []string{secret}}, o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	root := caller(t, "account-api", "keys")
	if _, err := s.Service.CreateApp(ctx, root, account.OwnerInput{ID: "shop", Name: "Shop"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"acme", "globex"} {
		if _, err := s.Service.CreateTenant(ctx, root, account.OwnerInput{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"s1", "s2", "s3"} {
		s.AddKey(t, authz.KeySpec{ID: id, Name: id, Type: authz.KeyTypeService, AccountID: s.AccountID, AppID: "shop",
			TenantID: "acme", Active: true, IPFilters: map[bool][]string{true: {"10.0.0.0/8"}}[id == "s3"]})
	}
	keysOnly := caller(t, "account-api:query:keys", "keys")
	appsOnly := caller(t, "account-api:query:apps", "apps")
	listAll := func(c account.Caller, f account.KeyFilter) int {
		n, token := 0, ""
		for {
			keys, next, err := s.Service.ListKeys(ctx, c, f, account.PageInput{Size: 2, Token: token})
			if err != nil {
				t.Fatal(err)
			}
			n += len(keys)
			if next == "" {
				return n
			}
			token = next
		}
	}
	for _, tc := range []struct {
		name  string
		count func() (int, error)
		want  int // -1: listed by the caller with the same filter
		code  account.Code
		field string
	}{
		{"keys", func() (int, error) { return s.Service.CountKeys(ctx, root, account.KeyFilter{}) }, -1, 0, ""},
		{"keys of a tenant", func() (int, error) { return s.Service.CountKeys(ctx, root, account.KeyFilter{TenantID: "acme"}) }, 3, 0, ""},
		{"keys without IP filters", func() (int, error) {
			return s.Service.CountKeys(ctx, keysOnly, account.KeyFilter{NoIPFilters: true, TenantID: "acme"})
		}, 2, 0, ""},
		{"keys, by a key that may list keys only", func() (int, error) { return s.Service.CountKeys(ctx, keysOnly, account.KeyFilter{}) }, -1, 0, ""},
		{"keys, by a key that may not list keys", func() (int, error) { return s.Service.CountKeys(ctx, appsOnly, account.KeyFilter{}) }, 0, account.PermissionDenied, ""},
		{"keys, no caller", func() (int, error) { return s.Service.CountKeys(ctx, account.Caller{}, account.KeyFilter{}) }, 0, account.Unauthenticated, ""},
		{"keys, a filter ListKeys refuses", func() (int, error) {
			return s.Service.CountKeys(ctx, root, account.KeyFilter{AppID: strings.Repeat("a", account.MaxIDLen+1)})
		}, 0, account.InvalidArgument, "app_id"},
		{"apps", func() (int, error) { return s.Service.CountApps(ctx, root) }, 1, 0, ""},
		{"apps, by a key that may list apps only", func() (int, error) { return s.Service.CountApps(ctx, appsOnly) }, 1, 0, ""},
		{"apps, by a key that may not list apps", func() (int, error) { return s.Service.CountApps(ctx, keysOnly) }, 0, account.PermissionDenied, ""},
		{"tenants", func() (int, error) { return s.Service.CountTenants(ctx, root) }, 2, 0, ""},
		{"tenants, by a key that may not list tenants", func() (int, error) { return s.Service.CountTenants(ctx, appsOnly) }, 0, account.PermissionDenied, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.count()
			if tc.code != 0 {
				var e *account.Error
				if !errors.As(err, &e) || e.Code != tc.code || e.Field != tc.field || n != 0 {
					t.Fatalf("count %d, error %v; want code %s field %q", n, err, tc.code, tc.field)
				}
				return
			}
			want := tc.want
			if want < 0 {
				want = listAll(root, account.KeyFilter{})
			}
			if err != nil || n != want {
				t.Fatalf("count = %d, %v; want %d", n, err, want)
			}
		})
	}
}
