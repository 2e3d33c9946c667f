package account_test

import (
	"context"
	"testing"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
)

// canonicalCases is shared with the migration's test
// (pkg/store/postgres), which checks keygate_canonical_scope against it.
var canonicalCases = account.CanonicalScopeCases

// TestCanonicalScope: scopes with the Account API's earlier operation
// names allow and deny after the rewrite exactly what they did before.
func TestCanonicalScope(t *testing.T) {
	for _, tc := range canonicalCases {
		if got := account.CanonicalScope(tc.In); got != tc.Want {
			t.Errorf("CanonicalScope(%q) = %q, want %q", tc.In, got, tc.Want)
		}
		if _, err := scope.Parse(account.CanonicalScope(tc.In)); err != nil {
			t.Errorf("CanonicalScope(%q) does not parse: %v", tc.In, err)
		}
	}
	// Every old name allowed before is the new name allowed after.
	for _, r := range account.RenamedOperations {
		for _, in := range []string{"account-api:query:" + r.Old, "*:*:" + r.Old, "account-api:*:" + r.Old[:2] + "*"} {
			sc, err := scope.Parse(account.CanonicalScope(in))
			if err != nil {
				t.Fatal(err)
			}
			if !sc.Allows("account-api", "query", r.New) {
				t.Errorf("%q rewritten as %q does not allow %s", in, sc.String(), r.New)
			}
		}
	}
}

// TestEarlierNamesOnInput: a key or role scope given with the earlier
// names is stored with the new ones.
func TestEarlierNamesOnInput(t *testing.T) {
	_, svc, c := withRoutes(t)
	ctx := context.Background()
	_, k, _, err := svc.GenerateKey(ctx, c, account.KeyInput{Type: authz.KeyTypeAccount, ID: "old-names", Scope: "account-api:query:listApps !account-api:query:getKey"})
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Spec.Scope; got != "account-api:query:apps !account-api:query:key" {
		t.Errorf("generated scope %q", got)
	}
	old := "account-api:query:listTenants"
	u, _, err := svc.UpdateKey(ctx, c, "old-names", account.KeyUpdate{Scope: &old})
	if err != nil {
		t.Fatal(err)
	}
	if u.Spec.Scope != "account-api:query:tenants" {
		t.Errorf("updated scope %q", u.Spec.Scope)
	}
	r, err := svc.CreateServiceAccessRole(ctx, c, account.RoleInput{ID: "auditor", Name: "auditor", Scope: "account-api:query:listAuditEvents"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Scope != "account-api:query:auditEvents" {
		t.Errorf("role scope %q", r.Scope)
	}
}
