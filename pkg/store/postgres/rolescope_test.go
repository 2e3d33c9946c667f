package postgres_test

import (
	"testing"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// TestKeysCompileWithTheirRoles: every data-plane read compiles a key
// with the scopes of the roles it holds (SPEC §11's effective scope), a
// role edit reaches the keys LookupKeysOfParent reads, and a key naming a
// role that is not there (a row written past the foreign key) is
// unloadable, never compiled without the role.
func TestKeysCompileWithTheirRoles(t *testing.T) {
	e := newEnv(t)
	for _, r := range []store.Role{
		{AccountID: "acct", ID: "reader", Name: "Reader", Scope: "billing:query:*"},
		{AccountID: "acct", ID: "no-send", Name: "No send", Scope: "!email-api:mutation:send"},
	} {
		if _, err := e.store.CreateRole(e.ctx, e.actor, r); err != nil {
			t.Fatal(err)
		}
	}
	k := serviceKey("holder")
	k.RoleIDs = []string{"reader", "no-send"}
	k = e.mustCreateKey(k)
	id := k.Spec.ID

	allows := func(what string, key *authz.Key, op string, want bool) {
		t.Helper()
		if key == nil {
			t.Fatalf("%s: no key", what)
		}
		if u := key.Unloadable(); u != "" {
			t.Fatalf("%s: unloadable: %s", what, u)
		}
		svc, kind, name := splitOp(op)
		if got := key.Scope().Allows(svc, kind, name); got != want {
			t.Errorf("%s: effective scope %q allows %s = %v, want %v", what, key.Scope(), op, got, want)
		}
	}
	byID, err := e.store.LookupKeyByID(e.ctx, "acct", id)
	if err != nil {
		t.Fatal(err)
	}
	byDigest, err := e.store.LookupKey(e.ctx, digestOf("secret-holder"))
	if err != nil {
		t.Fatal(err)
	}
	var loaded *authz.Key
	if _, err := e.store.LoadAll(e.ctx, func(k *authz.Key) error {
		if k.Spec.ID == id {
			loaded = k
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for what, key := range map[string]*authz.Key{"LookupKeyByID": byID, "LookupKey": byDigest, "LoadAll": loaded} {
		allows(what, key, "email-api:query:list", true)     // own scope
		allows(what, key, "billing:query:invoices", true)   // role reader
		allows(what, key, "email-api:mutation:send", false) // role no-send's deny
		if got := len(key.Roles()); got != 2 {
			t.Errorf("%s: %d roles, want 2", what, got)
		}
	}

	if _, err := e.store.UpdateRole(e.ctx, e.actor, "acct", "reader", store.RoleUpdate{Scope: new("billing:query:list")}); err != nil {
		t.Fatal(err)
	}
	ks, err := e.store.LookupKeysOfParent(e.ctx, "acct", store.ChangeRole, "reader")
	if err != nil || len(ks) != 1 {
		t.Fatalf("LookupKeysOfParent(role): %d keys, %v", len(ks), err)
	}
	allows("after the role edit", ks[0], "billing:query:list", true)
	allows("after the role edit", ks[0], "billing:query:invoices", false)

	// A key_roles row whose role is gone, past the foreign key.
	if err := e.exec(`ALTER TABLE key_roles DISABLE TRIGGER ALL`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.exec(`ALTER TABLE key_roles ENABLE TRIGGER ALL`) })
	if err := e.exec(`DELETE FROM key_roles WHERE role_id = 'no-send'`); err != nil {
		t.Fatal(err)
	}
	if err := e.exec(`INSERT INTO key_roles (account_id, key_id, role_id) VALUES ('acct', $1, 'gone')`, id); err != nil {
		t.Fatal(err)
	}
	gone, err := e.store.LookupKeyByID(e.ctx, "acct", id)
	if err != nil {
		t.Fatal(err)
	}
	if gone.Unloadable() == "" {
		t.Errorf("a key holding a missing role compiled with scope %q; want unloadable", gone.Scope())
	}
}

func splitOp(op string) (string, string, string) {
	var parts [3]string
	i := 0
	for j, start := 0, 0; j <= len(op); j++ {
		if j == len(op) || op[j] == ':' {
			parts[i] = op[start:j]
			i++
			start = j + 1
		}
	}
	return parts[0], parts[1], parts[2]
}
