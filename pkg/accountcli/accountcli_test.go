package accountcli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/accountcli"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// root embeds the commands as keygate's CLI does.
type root struct {
	accountcli.Commands
}

type result struct {
	stdout, stderr string
	err            error
}

// cli runs one command line against s, with the key and address from the
// environment, as a user would.
func cli(t *testing.T, s *accounttest.Server, stdin string, args ...string) result {
	t.Helper()
	t.Setenv("KEYGATE_ACCOUNT_ADDR", s.Addr)
	t.Setenv("KEYGATE_ACCOUNT_KEY", s.RootKey)
	return runCLI(t, stdin, args...)
}

func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runOn(t, nil, stdin, args...)
}

// runOn runs one command line with isTerminal as the Env's (nil: stdin
// is a strings.Reader, no terminal).
func runOn(t *testing.T, isTerminal func() bool, stdin string, args ...string) result {
	t.Helper()
	var r root
	var out, errb bytes.Buffer
	exited := false
	p, err := kong.New(&r, kong.Name("keygate"), kong.Writers(&out, &errb), kong.Exit(func(int) { exited = true }))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := p.Parse(args)
	if exited {
		return result{stdout: out.String(), stderr: errb.String()}
	}
	if err != nil {
		return result{stdout: out.String(), stderr: errb.String(), err: err}
	}
	in := strings.NewReader(stdin)
	err = kctx.Run(&accountcli.Env{Ctx: t.Context(), Stdout: &out, Stderr: &errb, Stdin: in, IsTerminal: isTerminal,
		ReadPassword: func() ([]byte, error) { return readLine(in) }})
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

// readLine stands for term.ReadPassword: one line, without its newline.
func readLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return []byte(strings.TrimSuffix(line, "\n")), nil
}

func ok(t *testing.T, r result) result {
	t.Helper()
	if r.err != nil {
		t.Fatalf("error: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
	return r
}

func wantErr(t *testing.T, r result, parts ...string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("no error; stdout:\n%s", r.stdout)
	}
	for _, p := range parts {
		if !strings.Contains(r.err.Error(), p) {
			t.Fatalf("error %q does not contain %q", r.err, p)
		}
	}
}

func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

// field returns the value of a two-column field table row.
func field(t *testing.T, table, name string) string {
	t.Helper()
	for _, l := range lines(table) {
		if rest, ok := strings.CutPrefix(l, name+"  "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("no %s row in:\n%s", name, table)
	return ""
}

// checkAligned checks that every row of a table starts each column at the
// same offset as the header.
func checkAligned(t *testing.T, table string, columns ...string) {
	t.Helper()
	ls := lines(table)
	for _, col := range columns[1:] {
		at := strings.Index(ls[0], col)
		if at < 0 {
			t.Fatalf("no column %s in %q", col, ls[0])
		}
		for _, l := range ls[1:] {
			if len(l) <= at || l[at-1] != ' ' || l[at] == ' ' {
				t.Fatalf("column %s not aligned at %d:\n%s", col, at, table)
			}
		}
	}
}

func setup(t *testing.T) *accounttest.Server {
	s := accounttest.Start(t)
	ok(t, cli(t, s, "", "apps", "create", "--id", "billing", "--name", "Billing"))
	ok(t, cli(t, s, "", "tenants", "create", "--id", "acme", "--name", "ACME Corp"))
	return s
}

func TestApps(t *testing.T) {
	s := setup(t)
	r := ok(t, cli(t, s, "", "apps", "create", "--id", "email", "--name", "Email", "--description", "sends mail"))
	if field(t, r.stdout, "ID") != "email" || field(t, r.stdout, "ACTIVE") != "yes" || field(t, r.stdout, "DESCRIPTION") != "sends mail" {
		t.Fatalf("create:\n%s", r.stdout)
	}
	r = ok(t, cli(t, s, "", "apps", "list"))
	if ls := lines(r.stdout); len(ls) != 3 || !strings.HasPrefix(ls[0], "ID") || !strings.HasPrefix(ls[2], "email ") {
		t.Fatalf("list:\n%s", r.stdout)
	}
	checkAligned(t, r.stdout, "ID", "NAME", "ACTIVE", "DESCRIPTION", "CREATED")

	r = ok(t, cli(t, s, "", "apps", "get", "email", "-o", "json"))
	var app map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &app); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if app["id"] != "email" || app["active"] != true || app["create_time"] != "2026-06-01T12:00:00Z" {
		t.Fatalf("get json: %v", app)
	}

	r = ok(t, cli(t, s, "", "apps", "update", "email", "--no-active"))
	if field(t, r.stdout, "ACTIVE") != "no" || field(t, r.stdout, "NAME") != "Email" {
		t.Fatalf("update:\n%s", r.stdout)
	}
	r = ok(t, cli(t, s, "", "apps", "update", "email", "--active", "--description", ""))
	if field(t, r.stdout, "ACTIVE") != "yes" || field(t, r.stdout, "DESCRIPTION") != "-" {
		t.Fatalf("update:\n%s", r.stdout)
	}
	wantErr(t, cli(t, s, "", "apps", "update", "email"), "nothing to update")

	// Paging: one page and a hint on stderr, or everything with --all.
	r = ok(t, cli(t, s, "", "apps", "list", "--page-size", "1"))
	_, hint, _ := strings.Cut(r.stderr, "more results: --page-token ")
	token, _, _ := strings.Cut(hint, " ")
	if len(lines(r.stdout)) != 2 || token == "" {
		t.Fatalf("one page:\n%s\nstderr: %s", r.stdout, r.stderr)
	}
	r = ok(t, cli(t, s, "", "apps", "list", "--page-size", "1", "--page-token", token))
	if ls := lines(r.stdout); len(ls) != 2 || !strings.HasPrefix(ls[1], "email") {
		t.Fatalf("second page:\n%s", r.stdout)
	}
	r = ok(t, cli(t, s, "", "apps", "list", "--page-size", "1", "--all", "-o", "json"))
	var apps []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &apps); err != nil || len(apps) != 2 || r.stderr != "" {
		t.Fatalf("all pages as one array: %v\n%s", err, r.stdout)
	}

	r = ok(t, cli(t, s, "", "apps", "delete", "email"))
	if r.stdout != "deleted app email\n" {
		t.Fatalf("delete: %q", r.stdout)
	}
	wantErr(t, cli(t, s, "", "apps", "get", "email"), `NotFound: app "email" not found`)
	wantErr(t, cli(t, s, "", "apps", "create", "--id", "a b", "--name", "x"), "InvalidArgument: id: may contain only")
}

func TestTenants(t *testing.T) {
	s := setup(t)
	ok(t, cli(t, s, "", "tenants", "create", "--id", "globex", "--name", "Globex"))
	r := ok(t, cli(t, s, "", "tenants", "list", "-o", "json"))
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	r = ok(t, cli(t, s, "", "tenants", "update", "globex", "--name", "Globex Corp"))
	if field(t, r.stdout, "NAME") != "Globex Corp" {
		t.Fatalf("update:\n%s", r.stdout)
	}
	r = ok(t, cli(t, s, "", "tenants", "get", "globex"))
	if field(t, r.stdout, "NAME") != "Globex Corp" {
		t.Fatalf("get:\n%s", r.stdout)
	}
	ok(t, cli(t, s, "", "tenants", "delete", "globex"))
	r = ok(t, cli(t, s, "", "tenants", "delete", "acme", "-o", "json"))
	// -o json prints what was deleted: the tenant as it was.
	var gone map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &gone); err != nil || gone["id"] != "acme" || gone["name"] != "ACME Corp" {
		t.Fatalf("delete json: %q (%v)", r.stdout, err)
	}
	wantErr(t, cli(t, s, "", "tenants", "get", "acme"), "NotFound")
}

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

func TestAudit(t *testing.T) {
	s := setup(t)
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k1"))
	r := ok(t, cli(t, s, "", "audit"))
	checkAligned(t, r.stdout, "ID", "TIME", "ACTOR", "ACTION", "OBJECT")
	if !strings.Contains(r.stdout, "(bootstrap)") || !strings.Contains(r.stdout, "key.create") || !strings.Contains(r.stdout, "key k1") {
		t.Fatalf("audit:\n%s", r.stdout)
	}
	r = ok(t, cli(t, s, "", "audit", "-o", "json"))
	var evs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &evs); err != nil {
		t.Fatal(err)
	}
	last := evs[0] // newest first
	if last["action"] != "key.create" || last["actor_key_id"] != "root" || last["object_id"] != "k1" {
		t.Fatalf("last event %v", last)
	}
}

func TestErrors(t *testing.T) {
	s := setup(t)
	t.Setenv("KEYGATE_ACCOUNT_ADDR", s.Addr)
	t.Setenv("KEYGATE_ACCOUNT_KEY", "")
	wantErr(t, runCLI(t, "", "apps", "list"), "no account key: set KEYGATE_ACCOUNT_KEY")

	// Flags work as well as the environment.
	ok(t, runCLI(t, "", "apps", "list", "--account-addr", s.Addr, "--account-key", s.RootKey))

	unknown, _ := apikey.Generate(apikey.KindAccount)
	t.Setenv("KEYGATE_ACCOUNT_KEY", unknown)
	r := runCLI(t, "", "apps", "list")
	wantErr(t, r, "Unauthenticated: unknown_key")
	if strings.Contains(r.err.Error(), unknown) {
		t.Fatal("the key was echoed")
	}
	svc := s.AddKey(t, authz.KeySpec{ID: "svc", Name: "svc", Type: authz.KeyTypeService, AccountID: "acct-1", AppID: "billing", TenantID: "acme", Active: true})
	t.Setenv("KEYGATE_ACCOUNT_KEY", svc)
	wantErr(t, runCLI(t, "", "apps", "list"), "PermissionDenied: wrong_key_type")

	wantErr(t, cli(t, s, "", "keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme", "--scope", "a::b"),
		`InvalidArgument: scope: pattern 1 "a::b"`)
	wantErr(t, cli(t, s, "", "keys", "generate", "--type", "service", "--tenant", "acme"), "InvalidArgument: app_id: required")
	wantErr(t, cli(t, s, "", "keys", "generate", "--type", "service", "--app", "nope", "--tenant", "acme"), `NotFound: app_id: app "nope" not found`)
	wantErr(t, cli(t, s, "", "keys", "generate", "--type", "account", "--app", "billing"), "--app and --tenant are not allowed")
	wantErr(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--tenant", "acme"), "--tenant is not allowed")
	wantErr(t, cli(t, s, "", "keys", "generate", "--type", "nope"), "--type")
	wantErr(t, cli(t, s, "", "keys", "regenerate", "x", "--grace", "-1m"), "--grace")
	if n := len(s.Store.Keys()); n != 3 {
		t.Fatalf("%d keys after refused commands, want 3", n)
	}

	// Nothing listening.
	t.Setenv("KEYGATE_ACCOUNT_ADDR", "127.0.0.1:1")
	t.Setenv("KEYGATE_ACCOUNT_KEY", s.RootKey)
	r = runCLI(t, "", "apps", "list", "--timeout", "2s")
	wantErr(t, r, "Unavailable")
	if strings.Contains(r.err.Error(), s.RootKey) {
		t.Fatal("the key was echoed")
	}
}

// TestHelpDoesNotShowTheKey checks that usage never prints the account key
// taken from the environment.
func TestHelpDoesNotShowTheKey(t *testing.T) {
	s := accounttest.Start(t)
	for _, args := range [][]string{{"keys", "list", "--help"}, {"keys", "generate", "--help"}, {"apps", "--help"}} {
		r := cli(t, s, "", args...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if args[1] != "--help" && !strings.Contains(r.stdout, "KEYGATE_ACCOUNT_KEY") {
			t.Fatalf("help does not name the variable:\n%s", r.stdout)
		}
		if strings.Contains(r.stdout+r.stderr, s.RootKey) {
			t.Fatalf("help shows the key:\n%s", r.stdout)
		}
	}
	r := cli(t, s, "", "keys", "generate", "--help")
	if !strings.Contains(r.stdout, "${key.id}") {
		t.Fatalf("help template example:\n%s", r.stdout)
	}
}

// TestTimeout checks that a call that cannot finish gives up.
func TestTimeout(t *testing.T) {
	s := accounttest.Start(t)
	start := time.Now()
	t.Setenv("KEYGATE_ACCOUNT_ADDR", "127.0.0.1:1")
	t.Setenv("KEYGATE_ACCOUNT_KEY", s.RootKey)
	r := runCLI(t, "", "tenants", "list", "--timeout", "300ms")
	if r.err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("err %v after %s", r.err, time.Since(start))
	}
}

func TestDeleteWithKeys(t *testing.T) {
	s := setup(t)
	for _, id := range []string{"k1", "k2"} {
		ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", id, "--scope", "email-api"))
	}
	wantErr(t, cli(t, s, "", "apps", "delete", "billing"),
		`FailedPrecondition: app "billing" has 2 keys: delete them first, or delete with cascade (keygate apps delete billing --cascade)`)
	// Not on a terminal, a cascade that deletes keys needs --yes.
	wantErr(t, cli(t, s, "y\n", "apps", "delete", "billing", "--cascade"),
		"app billing has 2 keys and stdin is not a terminal to confirm: add --yes")
	ok(t, cli(t, s, "", "apps", "get", "billing"))
	r := ok(t, cli(t, s, "", "apps", "delete", "billing", "--cascade", "--yes"))
	if strings.TrimSpace(r.stdout) != "deleted app billing" {
		t.Fatalf("delete: %q", r.stdout)
	}
	wantErr(t, cli(t, s, "", "keys", "get", "k1"), "NotFound")
	// Without keys, --cascade asks nothing.
	ok(t, cli(t, s, "", "tenants", "delete", "acme", "--cascade"))
}

func TestDeleteCascadeAsksOnATerminal(t *testing.T) {
	s := setup(t)
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k1", "--scope", "email-api"))
	terminal := func() bool { return true }
	for _, answer := range []string{"", "n\n", "no\n"} {
		r := runOn(t, terminal, answer, "apps", "delete", "billing", "--cascade")
		wantErr(t, r, "app billing not deleted")
		if r.stderr != "delete app billing and its 1 key? [y/N] " {
			t.Fatalf("question: %q", r.stderr)
		}
	}
	ok(t, cli(t, s, "", "keys", "get", "k1"))
	r := ok(t, runOn(t, terminal, "y\n", "apps", "delete", "billing", "--cascade"))
	if strings.TrimSpace(r.stdout) != "deleted app billing" {
		t.Fatalf("delete: %q", r.stdout)
	}
	wantErr(t, cli(t, s, "", "keys", "get", "k1"), "NotFound")
}

func TestStoreUnavailable(t *testing.T) {
	s := setup(t)
	s.Store.SetAccountsFail(fmt.Errorf("postgres: %w", store.ErrUnavailable))
	r := cli(t, s, "", "apps", "list")
	if r.err == nil || r.err.Error() != "the Account API's database is unavailable (store_unavailable); retry later" {
		t.Fatalf("apps list with the store down: %v", r.err)
	}
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
