// ScopeCache: keys compiled with one share their effective scopes, owners
// and accesses, and a scope's text cannot spell another key's access.

package authz_test

import (
	"fmt"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

// TestScopeCacheSharesUnions: keys with the same own scope and roles share
// one compiled effective scope when compiled with a ScopeCache; other
// combinations get their own.
func TestScopeCacheSharesUnions(t *testing.T) {
	cache := &authz.ScopeCache{}
	compile := func(id, own string, roles ...string) *authz.Key {
		spec := serviceKey("")
		spec.ID, spec.Hash = id, hasher.HashString("a-custom-secret-"+id+"-0001")
		spec.Scope, spec.Roles = own, roles
		k, err := authz.Compile(spec, authz.CompileOptions{Roles: testRoles, Scopes: cache})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b := compile("a", "sms-api", "r-read", "r-send"), compile("b", "sms-api", "r-read", "r-send")
	c, d := compile("c", "sms-api", "r-send", "r-read"), compile("d", "", "r-read", "r-send")
	if a.Scope() != b.Scope() {
		t.Error("same own scope and roles: not shared")
	}
	if a.Scope() == c.Scope() || a.Scope() == d.Scope() {
		t.Error("another combination shares a union")
	}
	if got := d.Scope().String(); got != "email-api:query:* email-api:mutation:sendEmail" {
		t.Errorf("d's union %q", got)
	}
	if plain := compile("e", "sms-api"); plain.Scope() != plain.OwnScope() {
		t.Error("a key without roles does not use its own scope")
	}
}

// TestScopeCacheSharesOwnersAndAccess: keys of one tenant share one owner,
// keys with one scope and the same role records one access (KeyInfo); a
// role replaced by an edit is a new record, so a key compiled against it
// gets an access of its own, with the edited scope, while the keys
// compiled before keep theirs.
func TestScopeCacheSharesOwnersAndAccess(t *testing.T) {
	cache := &authz.ScopeCache{}
	compile := func(id, tenant string, roles authz.RoleMap, ids ...string) *authz.Key {
		spec := serviceKey("")
		spec.ID, spec.Hash = id, hasher.HashString("a-custom-secret-"+id+"-0001")
		spec.TenantID, spec.Scope, spec.Roles = tenant, "sms-api", ids
		k, err := authz.Compile(spec, authz.CompileOptions{Roles: roles, Scopes: cache})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b := compile("a", "acme", testRoles, "r-read"), compile("b", "acme", testRoles, "r-read")
	other := compile("c", "globex", testRoles, "r-read")
	if a.Spec.KeyOwner != b.Spec.KeyOwner || a.Spec.KeyAccess != b.Spec.KeyAccess {
		t.Error("same tenant, scope and roles: owner or access not shared")
	}
	if a.Spec.KeyOwner == other.Spec.KeyOwner || other.Spec.TenantID != "globex" {
		t.Errorf("another tenant shares an owner (tenant %q)", other.Spec.TenantID)
	}
	if a.Spec.KeyAccess != other.Spec.KeyAccess {
		t.Error("same scope and roles in another tenant: access not shared")
	}

	edited := authz.RoleMap{}
	for id, r := range testRoles {
		edited[id] = r
	}
	read := *testRoles["r-read"]
	read.Scope = "users-api:query:*"
	edited["r-read"] = &read
	after := compile("d", "acme", edited, "r-read")
	if after.Spec.KeyAccess == a.Spec.KeyAccess {
		t.Fatal("a key compiled against an edited role shares the access of one compiled before")
	}
	if !after.Scope().Allows("users-api", "query", "listUsers") || after.Scope().Allows("email-api", "query", "listEmails") {
		t.Errorf("compiled against the edited role: effective scope %q", after.Scope())
	}
	if !a.Scope().Allows("email-api", "query", "listEmails") {
		t.Errorf("compiled before the edit: effective scope %q changed", a.Scope())
	}
	if got := a.Spec.KeySpec().Roles; len(got) != 1 || got[0] != "r-read" {
		t.Errorf("KeySpec().Roles %q", got)
	}
}

// TestScopeCacheAccessNotSpelledByScope: a stored scope that is not valid
// (here holding NUL, which no valid scope does) fails to compile through
// the data plane's cache even when its text spells the cache's name for
// another key's scope and roles; it never gets their access.
func TestScopeCacheAccessNotSpelledByScope(t *testing.T) {
	cache := &authz.ScopeCache{}
	spec := serviceKey("")
	spec.Hash, spec.Scope, spec.Roles = hasher.HashString("a-custom-secret-with-roles-0001"), "sms-api", []string{"r-read"}
	withRoles, err := authz.Compile(spec, authz.CompileOptions{Roles: testRoles, Scopes: cache})
	if err != nil {
		t.Fatal(err)
	}
	for _, forged := range []string{
		"sms-api\x00r-read\x00" + fmt.Sprintf("%p", testRoles["r-read"]),
		"7\x00sms-api\x00r-read\x00" + fmt.Sprintf("%p", testRoles["r-read"]),
	} {
		spec := serviceKey("")
		spec.ID, spec.Hash, spec.Scope = "forged", hasher.HashString("a-custom-secret-forged-0001"), forged
		k, _, err := authz.CompileStored(spec, authz.CompileOptions{Roles: testRoles, Scopes: cache})
		if err == nil {
			t.Errorf("scope %q compiled (effective %q, shared: %v)", forged, k.Scope(), k.Spec.KeyAccess == withRoles.Spec.KeyAccess)
		}
	}
}
