package accountcli_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

func TestKeysByName(t *testing.T) {
	s := setup(t)
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k1", "--name", "ci-deploy"))
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k2", "--name", "k1"))
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k3"))

	if got := field(t, ok(t, cli(t, s, "", "keys", "get", "ci-deploy")).stdout, "ID"); got != "k1" {
		t.Errorf("get by name: id %q", got)
	}
	if got := field(t, ok(t, cli(t, s, "", "keys", "get", "k3")).stdout, "ID"); got != "k3" {
		t.Errorf("get by id: id %q", got)
	}
	// "k1" is k1's id and k2's name: refused, asking for the id.
	for _, cmd := range [][]string{{"get"}, {"update", "--description", "x"}, {"regenerate"}, {"delete"}} {
		args := append([]string{"keys", cmd[0], "k1"}, cmd[1:]...)
		wantErr(t, cli(t, s, "", args...), `"k1" is the id of key k1 (ci-deploy) and the name of key k2 (k1): give the id of the one you mean`)
	}
	for _, cmd := range [][]string{{"get"}, {"update", "--description", "x"}, {"regenerate"}, {"delete"}} {
		args := append([]string{"keys", cmd[0], "no such key"}, cmd[1:]...)
		wantErr(t, cli(t, s, "", args...), `NotFound: no key has the id or name "no such key": list the keys with keygate keys list`)
	}
	// Every key command takes the name.
	r := ok(t, cli(t, s, "", "keys", "update", "ci-deploy", "--description", "deploys"))
	if field(t, r.stdout, "ID") != "k1" || field(t, r.stdout, "DESCRIPTION") != "deploys" {
		t.Errorf("update by name:\n%s", r.stdout)
	}
	ok(t, cli(t, s, "", "keys", "regenerate", "ci-deploy", "--grace", "7d"))
	r = ok(t, cli(t, s, "", "keys", "list", "--name", "ci-deploy", "-o", "json"))
	var list []struct{ ID string }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].ID != "k1" {
		t.Errorf("list --name: %v %s", err, r.stdout)
	}
	if r := ok(t, cli(t, s, "", "keys", "delete", "ci-deploy")); r.stdout != "deleted key k1\n" {
		t.Errorf("delete by name: %q", r.stdout)
	}
	// Once k1 is gone, "k1" is only k2's name.
	if got := field(t, ok(t, cli(t, s, "", "keys", "get", "k1")).stdout, "ID"); got != "k2" {
		t.Errorf("get k1 after the delete: id %q", got)
	}
}

func TestDurationAndDateFlags(t *testing.T) {
	s := setup(t)
	// The test server's clock is at accounttest.T0 (2026-06-01T12:00Z).
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k1", "--expires-at", "2027-01-01", "--not-before", "2026-07-01"))
	r := ok(t, cli(t, s, "", "keys", "get", "k1"))
	if got := field(t, r.stdout, "EXPIRES"); got != "2027-01-01T00:00:00Z" {
		t.Errorf("expires at %q\n%s", got, r.stdout)
	}
	wantErr(t, cli(t, s, "", "keys", "regenerate", "k1", "--grace", "7days"), "--grace", "days (7d, 1d12h)")
	wantErr(t, cli(t, s, "", "keys", "regenerate", "k1", "--grace=-1d"), "--grace: must not be negative")
	wantErr(t, cli(t, s, "", "keys", "list", "--expiring-before", "soon"), "--expiring-before: want", "2027-01-01", "30d")
	ok(t, cli(t, s, "", "keys", "list", "--expiring-before", "3650d", "--unused-since", "1d12h", "--timeout", "1d"))
	wantErr(t, cli(t, s, "", "keys", "update", "k1", "--expires-at", "next week"), "--expires-at: want an RFC 3339 time", "or a date (2027-01-01, midnight UTC)")
}

func TestPastExpiryWarning(t *testing.T) {
	s := setup(t)
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k1"))
	wantErr(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--expires-at", "2020-01-01"),
		"InvalidArgument: expires_at: 2020-01-01T00:00:00Z is not in the future")
	r := ok(t, cli(t, s, "", "keys", "update", "k1", "--expires-at", "2020-01-01", "-o", "json"))
	if r.stderr != "warning: expires_at 2020-01-01T00:00:00Z is not in the future: every request with this key is now denied expired_key\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	var k struct {
		ID       string   `json:"id"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil || k.ID != "k1" {
		t.Errorf("stdout is not the key: %v\n%s", err, r.stdout)
	}
}

func TestBulkUpdate(t *testing.T) {
	s := setup(t)
	ok(t, cli(t, s, "", "tenants", "create", "--id", "other", "--name", "Other"))
	for _, k := range [][2]string{{"a", "acme"}, {"b", "acme"}, {"c", "other"}} {
		ok(t, cli(t, s, "", "keys", "generate", "--type", "service", "--app", "billing", "--tenant", k[1], "--id", k[0]))
	}
	active := func(id string) string {
		t.Helper()
		return field(t, ok(t, cli(t, s, "", "keys", "get", id)).stdout, "ACTIVE")
	}
	wantErr(t, cli(t, s, "", "keys", "update", "--no-active"), "no key and no filter", "--all")
	wantErr(t, cli(t, s, "", "keys", "update", "--tenant", "acme"), "nothing to update")
	wantErr(t, cli(t, s, "", "keys", "update", "--tenant", "acme", "--name", "x"), "--where-name")
	wantErr(t, cli(t, s, "", "keys", "update", "--tenant", "acme", "--ip-filter", "10.0.0.0/8"), "key by key")
	wantErr(t, cli(t, s, "", "keys", "update", "a", "--tenant", "acme", "--no-active"), "either a key")

	// Without a terminal and without --yes: refused, nothing changes.
	r := cli(t, s, "", "keys", "update", "--tenant", "acme", "--no-active")
	wantErr(t, r, "2 keys would change and stdin is not a terminal to confirm: add --yes")
	if !strings.Contains(r.stderr, "2 keys match (a, b)") || active("a") != "yes" {
		t.Fatalf("stderr %q, a active %s", r.stderr, active("a"))
	}
	// A dry run shows and changes nothing.
	r = ok(t, cli(t, s, "", "keys", "update", "--tenant", "acme", "--no-active", "--dry-run", "-o", "json"))
	if !strings.Contains(r.stdout, `"count": 2`) || !strings.Contains(r.stdout, `"dry_run": true`) || active("a") != "yes" {
		t.Fatalf("dry run: %s", r.stdout)
	}
	// On a terminal: asked, with the count.
	terminal := func() bool { return true }
	r = runOn(t, terminal, "n\n", "keys", "update", "--tenant", "acme", "--no-active")
	wantErr(t, r, "no key changed")
	if !strings.HasSuffix(r.stderr, "update 2 keys? [y/N] ") {
		t.Fatalf("question: %q", r.stderr)
	}
	ok(t, runOn(t, terminal, "y\n", "keys", "update", "--tenant", "acme", "--no-active"))
	if active("a") != "no" || active("b") != "no" || active("c") != "yes" {
		t.Fatalf("after: a %s b %s c %s", active("a"), active("b"), active("c"))
	}
	// --yes, JSON: count and ids.
	r = ok(t, cli(t, s, "", "keys", "update", "--where-inactive", "--active", "--scope", "email-api", "--yes", "-o", "json"))
	var res struct {
		Count  int      `json:"count"`
		KeyIDs []string `json:"key_ids"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Count != 2 || strings.Join(res.KeyIDs, " ") != "a b" {
		t.Fatalf("json: %v %s", err, r.stdout)
	}
	if active("a") != "yes" {
		t.Errorf("a not reactivated")
	}
	// Nothing matches: 0 changed, fine.
	r = ok(t, cli(t, s, "", "keys", "update", "--where-group", "nope", "--no-active", "--yes"))
	if r.stdout != "would update 0 keys\n" && r.stdout != "updated 0 keys\n" {
		t.Errorf("no match: %q", r.stdout)
	}
}

// TestBulkUpdateOverTheLimit: more keys match than one UpdateKeys may
// change: the CLI says so after the count, before asking or sending the
// change, and says how to go on; nothing changes. A dry run still counts.
func TestBulkUpdateOverTheLimit(t *testing.T) {
	s := setup(t)
	for i := range account.MaxBulkKeys + 1 {
		s.AddKey(t, authz.KeySpec{ID: fmt.Sprintf("k%04d", i), Name: fmt.Sprintf("k%04d", i), Type: authz.KeyTypeService,
			AccountID: s.AccountID, AppID: "billing", TenantID: "acme", Group: "many", Active: true})
	}
	r := cli(t, s, "", "keys", "update", "--where-group", "many", "--description", "x", "--yes")
	wantErr(t, r, "1001 keys match, more than the 1000 one call may change (max_keys_per_update); no key changed: narrow the filters")
	if got := field(t, ok(t, cli(t, s, "", "keys", "get", "k0000")).stdout, "DESCRIPTION"); got == "x" {
		t.Error("k0000 changed")
	}
	r = ok(t, cli(t, s, "", "keys", "update", "--where-group", "many", "--description", "x", "--dry-run"))
	if !strings.HasPrefix(r.stdout, "would update 1001 keys\n") {
		t.Errorf("dry run: %q", r.stdout)
	}
}

// TestKeyRefWithNarrowScopes: a key allowed to update keys but not to read
// them still updates by id (the argument is then taken as the id); with
// listKeys it updates by name too.
func TestKeyRefWithNarrowScopes(t *testing.T) {
	s := setup(t)
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k1", "--name", "ci-deploy"))
	n := 0
	as := func(scope string, args ...string) result {
		t.Helper()
		n++
		secret := s.AddKey(t, authz.KeySpec{ID: fmt.Sprintf("narrow-%d", n), Name: fmt.Sprintf("narrow %d", n),
			Type: authz.KeyTypeAccount, AccountID: s.AccountID, Active: true, Scope: scope})
		t.Setenv("KEYGATE_ACCOUNT_ADDR", s.Addr)
		t.Setenv("KEYGATE_ACCOUNT_KEY", secret)
		return runCLI(t, "", args...)
	}
	ok(t, as("account-api:mutation:updateKey", "keys", "update", "k1", "--description", "by id", "-o", "json"))
	wantErr(t, as("account-api:mutation:deleteKey", "keys", "delete", "ci-deploy"), "NotFound") // taken as an id
	ok(t, as("account-api:mutation:updateKey account-api:query:keys", "keys", "update", "ci-deploy", "--description", "by name", "-o", "json"))
	wantErr(t, as("account-api:mutation:updateKey", "keys", "get", "k1"), "scope_denied")
	if got := field(t, ok(t, cli(t, s, "", "keys", "get", "k1")).stdout, "DESCRIPTION"); got != "by name" {
		t.Errorf("description %q", got)
	}
}
