package account_test

import (
	"context"
	"testing"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

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
