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

// TestAccountKeyRolesCount: an account key's rights on the Account API
// are its effective scope, its own and its roles' (SPEC §11): a role lets
// the key call an operation its own scope does not name, the escalation
// rule measures what it may give by the effective scope, and a key it
// would manage is measured by that key's effective scope too (a held role
// counts; an empty own scope beside roles adds nothing).
func TestAccountKeyRolesCount(t *testing.T) {
	s := accounttest.Start(t)
	ctx := context.Background()
	auth := func(secret, op string) (account.Caller, error) {
		t.Helper()
		o, ok := account.OperationNamed(op)
		if !ok {
			t.Fatalf("no operation %s", op)
		}
		return s.Service.Authenticate(ctx, account.Credentials{Keys: []string{secret}}, o)
	}
	root, err := auth(s.RootKey, "createServiceAccessRole")
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []account.RoleInput{
		{ID: "key-admin", Name: "Key admin", Scope: "account-api:mutation:generateAccountAccessKey account-api:mutation:updateKey account-api:mutation:regenerateKey account-api:mutation:createApp"},
		{ID: "everything", Name: "Everything", Scope: "account-api"},
		{ID: "apps", Name: "Apps", Scope: "account-api:mutation:createApp"},
	} {
		_, err := s.Service.CreateServiceAccessRole(ctx, root, r)
		must(err)
	}
	gen := func(c account.Caller, in account.KeyInput) (string, error) {
		t.Helper()
		in.Type = authz.KeyTypeAccount
		secret, _, _, err := s.Service.GenerateKey(ctx, c, in)
		return string(secret), err
	}
	// The key's own scope only reads keys; its role manages them.
	admin, err := gen(root, account.KeyInput{ID: "admin", Scope: "account-api:query:keys", RoleIDs: []string{"key-admin"}})
	must(err)
	if _, err := gen(root, account.KeyInput{ID: "strong", Group: "g", Scope: "account-api:query:keys", RoleIDs: []string{"everything"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := gen(root, account.KeyInput{ID: "by-role", Group: "h", RoleIDs: []string{"apps"}}); err != nil {
		t.Fatal(err)
	}

	c, err := auth(admin, "generateAccountAccessKey")
	if err != nil {
		t.Fatalf("an account key whose role allows generateAccountAccessKey: %v", err)
	}
	if _, err := auth(admin, "deleteApp"); err == nil || !strings.Contains(err.Error(), "scope_denied") {
		t.Errorf("deleteApp, allowed by neither the key nor its role: %v", err)
	}
	refused := func(what string, err error) {
		t.Helper()
		var e *account.Error
		if !errors.As(err, &e) || e.Code != account.PermissionDenied || !strings.Contains(e.Message, "scope_exceeds_caller") {
			t.Errorf("%s: %v, want scope_exceeds_caller", what, err)
		}
	}

	// What it may give: its effective scope.
	if _, err := gen(c, account.KeyInput{Scope: "account-api:mutation:createApp"}); err != nil {
		t.Errorf("a key within the caller's role: %v", err)
	}
	_, err = gen(c, account.KeyInput{Scope: "account-api:mutation:deleteApp"})
	refused("a key beyond the caller's effective scope", err)
	_, err = gen(c, account.KeyInput{Scope: "account-api:query:keys", RoleIDs: []string{"everything"}})
	refused("a key given a role beyond the caller", err)

	// What it may manage: the other key's effective scope.
	desc := "touched"
	_, _, err = s.Service.UpdateKey(ctx, c, "strong", account.KeyUpdate{Description: &desc})
	refused("updating a key whose role exceeds the caller", err)
	_, _, err = s.Service.RegenerateKey(ctx, c, "strong", 0)
	refused("regenerating a key whose role exceeds the caller", err)
	if _, _, err := s.Service.UpdateKey(ctx, c, "by-role", account.KeyUpdate{Description: &desc}); err != nil {
		t.Errorf("updating a key with an empty own scope whose role is within the caller's: %v", err)
	}
	_, _, err = s.Service.UpdateKey(ctx, c, "by-role", account.KeyUpdate{RoleIDs: &[]string{"apps", "everything"}})
	refused("giving a managed key a role beyond the caller", err)
	if _, _, err := s.Service.UpdateKey(ctx, c, "by-role", account.KeyUpdate{RoleIDs: &[]string{}}); err == nil {
		t.Error("taking the roles off a key with an empty own scope (which then allows everything): allowed")
	}

	// A bulk change judges each account key the same way.
	_, err = s.Service.UpdateKeys(ctx, c, account.BulkKeyUpdate{Filter: account.KeyFilter{Group: "g"}, DryRun: true, Update: account.KeyUpdate{Description: &desc}})
	refused("a bulk change reaching a key whose role exceeds the caller", err)
	if _, err := s.Service.UpdateKeys(ctx, c, account.BulkKeyUpdate{Filter: account.KeyFilter{Group: "h"}, DryRun: true, Update: account.KeyUpdate{Description: &desc}}); err != nil {
		t.Errorf("a bulk change of a key with an empty own scope whose role is within the caller's: %v", err)
	}
}
