package keyfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// earlierNamesFile has an account key and a role whose scopes use the
// Account API's earlier operation names (SPEC §14), and a denial whose
// scope is taken as written.
const earlierNamesFile = `apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME}]
roles:
  - {id: r-audit, name: auditors, scope: "account-api:query:listAuditEvents"}
denials:
  - {id: d-1, tenant: acme, app: billing, scope: "billing-api", reason: "Payment overdue"}
keys:
  - {id: k-old, name: old, type: account, hash: "$H1", scope: "account-api:query:listApps !account-api:query:getKey", roles: [r-audit]}
  - {id: k-new, name: new, type: account, hash: "$H2", scope: "account-api:query:apps"}
`

// TestParseEarlierOperationNames: a keys file's key and role scopes with
// the earlier operation names are read with today's (as the Account API
// and migration 0011 store them), so that serve --keys-file and
// import-file give such a key the access it was written for; a warning
// names what the scope was read as. Scopes already current are untouched
// and warn nothing.
func TestParseEarlierOperationNames(t *testing.T) {
	set, warnings, err := Parse([]byte(fill(t, earlierNamesFile)), "keys.yaml", testOpts)
	if err != nil {
		t.Fatal(err)
	}
	specs := set.Specs()
	if got := specs[0].Scope; got != "account-api:query:apps !account-api:query:key" {
		t.Errorf("k-old scope read as %q", got)
	}
	if got := specs[1].Scope; got != "account-api:query:apps" {
		t.Errorf("k-new scope read as %q", got)
	}
	if got := set.Roles()[0].Scope; got != "account-api:query:auditEvents" {
		t.Errorf("r-audit scope read as %q", got)
	}
	if got := set.Denials()[0].Scope; got != "billing-api" {
		t.Errorf("d-1 scope read as %q", got)
	}
	k := set.Keys()[0]
	for _, op := range []string{"apps", "auditEvents"} {
		if !k.Scope().Allows("account-api", "query", op) {
			t.Errorf("k-old does not allow account-api:query:%s; effective scope %q", op, k.Scope().String())
		}
	}
	if k.Scope().Allows("account-api", "query", "key") || k.Scope().Allows("account-api", "query", "tenants") {
		t.Errorf("k-old allows more than it was written for: %q", k.Scope().String())
	}
	got := warnings
	want := []string{
		`keys.yaml:4: roles[0] (id "r-audit"): scope: earlier Account API operation names are read as today's: "account-api:query:auditEvents"; write that to silence this warning`,
		`keys.yaml:8: keys[0] (id "k-old"): scope: earlier Account API operation names are read as today's: "account-api:query:apps !account-api:query:key"; write that to silence this warning`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// serve --keys-file reads the file through a Store: the key found by
	// its secret has the current names.
	path := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(path, []byte(fill(t, earlierNamesFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, testOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	served, err := s.LookupKey(context.Background(), plain.Sum(secret(1)))
	if err != nil {
		t.Fatal(err)
	}
	if !served.Scope().Allows("account-api", "query", "apps") {
		t.Errorf("served k-old does not allow apps: %q", served.Scope().String())
	}
}
