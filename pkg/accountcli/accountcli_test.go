// The CLI tests' helpers (runOn, cli, ok, wantErr, setup), which run a
// command line through kong against an accounttest server, and the tests
// of apps, tenants, audit, errors, help, timeouts, deletes and an
// unavailable store. The keys commands are tested in keys_test.go.

package accountcli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
