// The keys commands run through kong against an accounttest server:
// generate (table and JSON output), import (with its prompt on a
// terminal), list, get, update, delete and regenerate.

package accountcli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/store"
)

func TestKeysGenerateTable(t *testing.T) {
	s := setup(t)
	r := ok(t, cli(t, s, "", "keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme",
		"--name", "acme-billing", "--scope", "email-api !email-api:mutation:sendEmail", "--group", "prod",
		"--ip-filter", "10.0.0.0/8", "--ip-filter", "192.168.178.1/255.255.255.0",
		"--header", "x-tenant=${tenant.name}", "--disabled-header", "x-off=a=b",
		"--expires-at", "2026-12-31T00:00:00Z", "--not-before", "2026-06-01T00:00:00Z"))
	ls := lines(r.stdout)
	secret := ls[len(ls)-1]
	if kind, valid := apikey.KindOf(secret); !valid || kind != apikey.KindService {
		t.Fatalf("last line %q is not a service key secret:\n%s", secret, r.stdout)
	}
	if strings.Count(r.stdout, secret) != 1 || strings.Contains(r.stderr, secret) {
		t.Fatalf("the secret must appear once, on stdout only:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	table := strings.Join(ls[:len(ls)-1], "\n")
	for name, want := range map[string]string{
		"NAME":       "acme-billing",
		"TYPE":       "service",
		"APP":        "billing (Billing)",
		"TENANT":     "acme (ACME Corp)",
		"SCOPE":      "email-api !email-api:mutation:sendEmail",
		"GROUP":      "prod",
		"IP FILTERS": "10.0.0.0/8, 192.168.178.1/255.255.255.0",
		"HEADERS":    "x-tenant=${tenant.name}, x-off=a=b (disabled)",
		"EXPIRES":    "2026-12-31T00:00:00Z",
		"NOT BEFORE": "2026-06-01T00:00:00Z",
		"ORIGIN":     "generated",
		"ACTIVE":     "yes",
		"LAST USED":  "-",
	} {
		if got := field(t, table, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// The stored hash is the secret's.
	id := field(t, table, "ID")
	k, found := s.Store.Key("acct-1", id)
	if !found || k.Spec.Hash != s.Hasher.HashString(secret) {
		t.Fatalf("stored %+v", k)
	}

	r = ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--inactive"))
	ls = lines(r.stdout)
	if kind, _ := apikey.KindOf(ls[len(ls)-1]); kind != apikey.KindApp || field(t, r.stdout, "ACTIVE") != "no" {
		t.Fatalf("app key:\n%s", r.stdout)
	}
	// delete -o json prints the key that went, its type as --type takes it.
	appKeyID := field(t, r.stdout, "ID")
	r = ok(t, cli(t, s, "", "keys", "delete", appKeyID, "-o", "json"))
	var gone map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &gone); err != nil || gone["id"] != appKeyID || gone["type"] != "app" || gone["app_id"] != "billing" {
		t.Fatalf("keys delete -o json: %q (%v)", r.stdout, err)
	}
	r = ok(t, cli(t, s, "", "keys", "generate", "--type", "account", "--scope", "account-api:query:*", "--name", "reader"))
	ls = lines(r.stdout)
	reader := ls[len(ls)-1]
	if kind, _ := apikey.KindOf(reader); kind != apikey.KindAccount {
		t.Fatalf("account key:\n%s", r.stdout)
	}
	// The new reader key can list but not write.
	t.Setenv("KEYGATE_ACCOUNT_KEY", reader)
	ok(t, runCLI(t, "", "keys", "list"))
	wantErr(t, runCLI(t, "", "apps", "create", "--name", "x"), "PermissionDenied: scope_denied")
}

func TestKeysGenerateJSON(t *testing.T) {
	s := setup(t)
	r := ok(t, cli(t, s, "", "keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme", "--id", "k1", "-o", "json"))
	var resp struct {
		PrivateKey string         `json:"private_key"`
		Key        map[string]any `json:"key"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if kind, _ := apikey.KindOf(resp.PrivateKey); kind != apikey.KindService || resp.Key["id"] != "k1" || resp.Key["type"] != "service" {
		t.Fatalf("%+v", resp)
	}
	if strings.Count(r.stdout, resp.PrivateKey) != 1 || strings.Contains(r.stderr, resp.PrivateKey) {
		t.Fatal("the secret must appear once, on stdout only")
	}
	for _, f := range []string{"hash", "secret"} {
		for k := range resp.Key {
			if strings.Contains(k, f) && k != "previous_secret_expire_time" {
				t.Fatalf("key JSON has %s", k)
			}
		}
	}
}

func TestKeysImport(t *testing.T) {
	s := setup(t)
	secret := "legacy-Secret-0123456789"
	r := ok(t, cli(t, s, secret+"\n", "keys", "import", "--type", "app", "--app", "billing", "--name", "legacy"))
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Fatal("import printed the secret")
	}
	if field(t, r.stdout, "ORIGIN") != "custom" {
		t.Fatalf("import:\n%s", r.stdout)
	}
	k, _ := s.Store.Key("acct-1", field(t, r.stdout, "ID"))
	if k.Spec.Hash != s.Hasher.HashString(secret) || k.Origin != store.OriginCustom {
		t.Fatalf("stored %+v", k)
	}
	// From a file.
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("file-secret-0123456789-abcdef\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = ok(t, cli(t, s, "", "keys", "import", "--type", "app", "--app", "billing", "--private-key-file", path, "-o", "json"))
	var key map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &key); err != nil || key["origin"] != "custom" {
		t.Fatalf("%v %v", err, key)
	}
	short := "too-short"
	r = cli(t, s, short+"\n", "keys", "import", "--type", "app", "--app", "billing")
	wantErr(t, r, "InvalidArgument: private_key: malformed key: shorter than 16 bytes")
	if strings.Contains(r.err.Error()+r.stdout+r.stderr, short) {
		t.Fatal("the refused secret was echoed")
	}
	wantErr(t, cli(t, s, "", "keys", "import", "--type", "app", "--app", "billing"), "no secret on stdin")
}

func TestKeysListGetUpdateDelete(t *testing.T) {
	s := setup(t)
	ok(t, cli(t, s, "", "keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme", "--id", "k1", "--group", "prod", "--scope", "email-api"))
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k2", "--expires-at", "2026-06-05T00:00:00Z"))

	r := ok(t, cli(t, s, "", "keys", "list"))
	if ls := lines(r.stdout); len(ls) != 4 {
		t.Fatalf("list:\n%s", r.stdout)
	}
	checkAligned(t, r.stdout, "ID", "NAME", "TYPE", "APP", "TENANT", "ACTIVE", "GROUP", "SCOPE", "EXPIRES", "LAST USED")
	ids := func(args ...string) []string {
		t.Helper()
		r := ok(t, cli(t, s, "", append([]string{"keys", "list", "-o", "json"}, args...)...))
		var list []struct{ ID string }
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		var out []string
		for _, k := range list {
			out = append(out, k.ID)
		}
		return out
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "k1 k2 root"},
		{[]string{"--type", "service"}, "k1"},
		{[]string{"--app", "billing"}, "k1 k2"},
		{[]string{"--tenant", "acme"}, "k1"},
		{[]string{"--group", "prod"}, "k1"},
		{[]string{"--no-active"}, ""},
		{[]string{"--active"}, "k1 k2 root"},
		{[]string{"--expiring-before", "2026-07-01T00:00:00Z"}, "k2"},
		{[]string{"--unused-since", "1h"}, "k1 k2 root"},
	} {
		if got := strings.Join(ids(tc.args...), " "); got != tc.want {
			t.Errorf("keys list %v = %q, want %q", tc.args, got, tc.want)
		}
	}
	wantErr(t, cli(t, s, "", "keys", "list", "--type", "nope"), "--type")
	wantErr(t, cli(t, s, "", "keys", "list", "--expiring-before", "tomorrow"), "--expiring-before")

	r = ok(t, cli(t, s, "", "keys", "get", "k1"))
	if field(t, r.stdout, "SCOPE") != "email-api" {
		t.Fatalf("get:\n%s", r.stdout)
	}

	// Only the flags given change.
	r = ok(t, cli(t, s, "", "keys", "update", "k1", "--description", "new", "--no-active", "--ip-filter", "10.1.0.0/16"))
	for name, want := range map[string]string{"DESCRIPTION": "new", "ACTIVE": "no", "SCOPE": "email-api", "GROUP": "prod", "IP FILTERS": "10.1.0.0/16"} {
		if got := field(t, r.stdout, name); got != want {
			t.Errorf("after update %s = %q, want %q", name, got, want)
		}
	}
	r = ok(t, cli(t, s, "", "keys", "update", "k1", "--clear-ip-filters", "--group", "", "--expires-at", "2027-01-01T00:00:00Z"))
	if field(t, r.stdout, "IP FILTERS") != "-" || field(t, r.stdout, "GROUP") != "-" || field(t, r.stdout, "DESCRIPTION") != "new" ||
		field(t, r.stdout, "EXPIRES") != "2027-01-01T00:00:00Z" {
		t.Fatalf("update:\n%s", r.stdout)
	}
	r = ok(t, cli(t, s, "", "keys", "update", "k1", "--clear-expires-at", "--header", "x-k=${key.id}"))
	if field(t, r.stdout, "EXPIRES") != "-" || field(t, r.stdout, "HEADERS") != "x-k=${key.id}" {
		t.Fatalf("update:\n%s", r.stdout)
	}
	wantErr(t, cli(t, s, "", "keys", "update", "k1", "--scope", "a::b"), `InvalidArgument: scope: pattern 1 "a::b"`)
	wantErr(t, cli(t, s, "", "keys", "update", "k1", "--ip-filter", "1.2.3.4/40"), "InvalidArgument: ip_filters:")
	wantErr(t, cli(t, s, "", "keys", "update", "k1", "--header", "x-a=${nope}"), "InvalidArgument: response_headers:")
	wantErr(t, cli(t, s, "", "keys", "update", "k1"), "nothing to update")
	wantErr(t, cli(t, s, "", "keys", "update", "k1", "--expires-at", "2027-01-01", "--clear-expires-at"), "exclude each other")
	wantErr(t, cli(t, s, "", "keys", "update", "k1", "--expires-at", "soon"), "--expires-at: want an RFC 3339 time")
	wantErr(t, cli(t, s, "", "keys", "update", "k1", "--header", "novalue"), "--header: want name=value")

	r = ok(t, cli(t, s, "", "keys", "delete", "k1"))
	if r.stdout != "deleted key k1\n" {
		t.Fatalf("delete: %q", r.stdout)
	}
	wantErr(t, cli(t, s, "", "keys", "get", "k1"), `NotFound: no key has the id or name "k1": list the keys with keygate keys list`)
}

func TestKeysRegenerate(t *testing.T) {
	s := setup(t)
	r := ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k1", "-o", "json"))
	var gen struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &gen); err != nil {
		t.Fatal(err)
	}
	r = ok(t, cli(t, s, "", "keys", "regenerate", "k1", "--grace", "10m"))
	ls := lines(r.stdout)
	secret := ls[len(ls)-1]
	if kind, _ := apikey.KindOf(secret); kind != apikey.KindApp || secret == gen.PrivateKey || strings.Contains(r.stderr, secret) {
		t.Fatalf("regenerate:\n%s", r.stdout)
	}
	if got := field(t, r.stdout, "OLD SECRET VALID UNTIL"); got != "2026-06-01T12:10:00Z" {
		t.Fatalf("grace end %q", got)
	}
	valid := func(secret string) bool {
		k, err := s.Store.LookupKey(t.Context(), s.Hasher.Sum(secret))
		return err == nil && k.Matches(s.Hasher.Sum(secret), s.Clock.Now())
	}
	if !valid(secret) || !valid(gen.PrivateKey) {
		t.Fatal("both secrets must work during the grace period")
	}
	wantErr(t, cli(t, s, "", "keys", "regenerate", "nope"), "NotFound")
}

// On a terminal, keys import prompts on stderr and reads the secret
// without echo; the secret appears nowhere in the output.
func TestKeysImportPromptsOnTerminal(t *testing.T) {
	s := setup(t)
	t.Setenv("KEYGATE_ACCOUNT_ADDR", s.Addr)
	t.Setenv("KEYGATE_ACCOUNT_KEY", s.RootKey)
	secret := "typed-Secret-0123456789ab"
	r := ok(t, runOn(t, func() bool { return true }, secret+"\n", "keys", "import", "--type", "app", "--app", "billing"))
	if !strings.HasPrefix(r.stderr, "secret: ") {
		t.Errorf("no prompt on stderr: %q", r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Fatal("import printed the secret")
	}
	k, _ := s.Store.Key("acct-1", field(t, r.stdout, "ID"))
	if k.Spec.Hash != s.Hasher.HashString(secret) {
		t.Fatalf("stored %+v", k)
	}
	// Not a terminal: no prompt, stdin read as is.
	r = ok(t, runOn(t, func() bool { return false }, "piped-Secret-0123456789ab\n", "keys", "import", "--type", "app", "--app", "billing"))
	if strings.Contains(r.stderr, "secret:") {
		t.Errorf("prompted without a terminal: %q", r.stderr)
	}
}
