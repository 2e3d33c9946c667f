package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// allScope is how the CLI shows an empty scope (accountcli.AllScope),
// written out: this test reads the binary's output as a user does.
const allScope = "* (every operation of the services accepting its type)"

// Through the binary, in database mode: an empty scope reads as every
// operation in tables and explain but stays "" in JSON; a secret with a
// space and a comma-separated --ip-filter are refused saying what is
// wrong and what to do (issue 17, points 4 and 5).
func TestCLIMessages(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	vars := []string{"KEYGATE_ACCOUNT_ADDR=" + srv.accountAddr, "KEYGATE_ACCOUNT_KEY=" + env.accountKey}
	cli := func(stdin string, args ...string) (string, error) {
		t.Helper()
		return cliRunEnv(t, vars, stdin, args...)
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := cli("", args...)
		if err != nil {
			t.Fatalf("keygate %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	mustCLI("apps", "create", "--id", "billing", "--name", "Billing")
	mustCLI("tenants", "create", "--id", "acme", "--name", "ACME Corp")
	mustCLI("keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme", "--id", "k-all", "--name", "all")

	// Point 4: tables and explain say what an empty scope allows.
	if out := mustCLI("keys", "list", "--app", "billing"); !strings.Contains(out, "k-all") || !strings.Contains(out, allScope) {
		t.Fatalf("keys list:\n%s", out)
	}
	if out := mustCLI("keys", "get", "k-all", "-o", "json"); !strings.Contains(out, `"scope": ""`) && strings.Contains(out, `"scope"`) {
		t.Fatalf("keys get -o json must keep the stored scope:\n%s", out)
	}
	if out := mustCLI("explain", "--key-id", "k-all", "--routes-file", env.routesFile, "--method", "GET", "--path", "/email/inbox"); !strings.Contains(out, "scope "+allScope) {
		t.Fatalf("explain --key-id:\n%s", out)
	}

	// Point 5: a space in an imported secret, named without the secret.
	secret := "legacy secret-0123456789"
	_, err := cli(secret+"\n", "keys", "import", "--type", "app", "--app", "billing")
	if err == nil || !strings.Contains(err.Error(), "contains a space at byte 6; a key holds printable ASCII only") ||
		strings.Contains(err.Error(), "secret-0123") {
		t.Fatalf("keys import with a space: %v", err)
	}
	// Point 5: one filter per --ip-filter.
	_, err = cli("", "keys", "update", "k-all", "--ip-filter", "10.0.0.0/8,10.1.0.0/16")
	if err == nil || !strings.Contains(err.Error(), `--ip-filter "10.0.0.0/8,10.1.0.0/16": give one address or CIDR per --ip-filter flag (repeat the flag)`) {
		t.Fatalf("--ip-filter a,b: %v", err)
	}
	_, err = cli("", "keys", "update", "k-all", "--ip-filter", "10.0.0.0/nope")
	if err == nil || !strings.Contains(err.Error(), `"10.0.0.0/nope"`) || !strings.Contains(err.Error(), "accepted forms: a CIDR (10.0.0.0/8, 2001:db8::/32)") {
		t.Fatalf("--ip-filter 10.0.0.0/nope: %v", err)
	}
}

// The CLI pointed at the authz port (a gRPC server without the Account
// API) says so instead of a bare Unimplemented.
func TestCLIAtTheAuthzPort(t *testing.T) {
	_, hash := newKey(t, "app")
	dir := t.TempDir()
	keys, routes := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, keys, keysYAML(keyEntry{id: "k-1", typ: "app", hash: hash}))
	writeFile(t, routes, routesYAML)
	srv := startServer(t, keys, routes)
	_, err := cliRunEnv(t, []string{"KEYGATE_ACCOUNT_ADDR=" + srv.authzAddr, "KEYGATE_ACCOUNT_KEY=kg_aak_unused-here-0123456789"}, "", "apps", "list")
	want := "the server at " + srv.authzAddr + " does not serve the Account API (is this the authz port? the Account API listens on --account-listen-addr, default 127.0.0.1:9192)"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Unimplemented") {
		t.Fatalf("CLI at the authz port: %v\nwant %s", err, want)
	}
}

// check-config names the broken line of a keys file, not where its list
// began.
func TestCheckConfigSyntaxLine(t *testing.T) {
	dir := t.TempDir()
	keys, routes := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, keys, strings.Repeat("# keys\n", 9)+"keys:\n"+ // line 10
		strings.Repeat("  - id: k-1\n", 89)+ // lines 11-99
		" - id: dedented\n") // line 100
	writeFile(t, routes, routesYAML)
	_, err := cliRun(t, "", "check-config", "--keys-file", keys, "--routes-file", routes)
	if err == nil || !strings.Contains(err.Error(), "keys.yaml:100:2: did not find expected key") {
		t.Fatalf("check-config: %v", err)
	}
}
