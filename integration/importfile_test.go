package integration

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// importTables are the tables an import writes or must leave alone.
var importTables = []string{"accounts", "apps", "tenants", "keys", "audit_events", "key_changes", "account_limits"}

// importFile runs keygate import-file against env's database.
func importFile(t *testing.T, url, account, file string, extra ...string) (string, error) {
	t.Helper()
	return cliRun(t, "", append([]string{"import-file", "--database-url", url, "--account", account, file}, extra...)...)
}

func wantLines(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(out) {
			t.Errorf("%s: output does not match %q:\n%s", what, p, out)
		}
	}
}

func sameTables(t *testing.T, what string, before, after map[string][]string) {
	t.Helper()
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("%s changed the database (-before +after):\n%s", what, d)
	}
}

// TestImportFile: issue 17 item 14 through the real binary and
// PostgreSQL, with a replica serving the account meanwhile. A dry run
// lists what it would do and changes nothing; the import creates the
// file's apps, tenants and keys with their hashes (the file's secrets are
// allowed at once by the running replica: the change feed carried them),
// each audited as import-file; a second run changes nothing and says so;
// a changed field is an update; a key whose hash another account holds,
// placed last, fails the whole import without naming that account, and
// leaves every table as it was; so do a quota and a malformed file.
func TestImportFile(t *testing.T) {
	env := newDBEnv(t) // account acct-test with its bootstrap key
	srv := env.serve(t)
	waitReady(t, srv)
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	dir := t.TempDir()

	full, fullHash := quickKey(t, "service")
	read, readHash := quickKey(t, "service")
	appSecret, appHash := quickKey(t, "app")
	file := filepath.Join(dir, "keys.yaml")
	writeFile(t, file, "account: file-account\n"+keysYAML(
		keyEntry{id: "k-full", typ: "service", hash: fullHash},
		keyEntry{id: "k-read", typ: "service", hash: readHash, extra: "    scope: email-api:query\n"},
		keyEntry{id: "k-app", typ: "app", hash: appHash},
	))
	inbox := func(secret string) *authv3.CheckRequest { return checkReq("GET", "/email/inbox", secret, nil) }
	waitOutcome(t, authz, inbox(full), 401, 10*time.Second) // not imported yet

	before := dumpTables(t, env.url, importTables...)
	out, err := importFile(t, env.url, "acct-test", file, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "dry run", out,
		`(?m)^app\s+billing\s+create\s*$`, `(?m)^tenant\s+acme\s+create\s*$`,
		`(?m)^key\s+k-full\s+create\s*$`, `(?m)^key\s+k-app\s+create\s*$`,
		`(?m)^key\s+\S+\s+kept\s+in the database, not in the file`, // the bootstrap key
		`keys: 3 create, 0 update, 0 unchanged, 1 kept`,
		`dry run: nothing written; without --dry-run the import makes 5 changes`)
	sameTables(t, "import-file --dry-run", before, dumpTables(t, env.url, importTables...))

	out, err = importFile(t, env.url, "acct-test", file)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "import", out, `imported: 5 changes in one transaction, audited as import-file`)
	waitOutcome(t, authz, inbox(full), 200, 10*time.Second)
	waitOutcome(t, authz, inbox(read), 200, 10*time.Second)
	waitOutcome(t, authz, checkReq("POST", "/email/send", read, nil), 403, 10*time.Second)
	waitOutcome(t, authz, grpcCheckReq(appSecret, nil), 200, 10*time.Second)

	db, err := pgx.Connect(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	var audited, origins string
	if err := db.QueryRow(t.Context(), `SELECT string_agg(action || ' ' || object_id, ',' ORDER BY id)
		FROM audit_events WHERE actor_key_name = 'import-file' AND account_id = 'acct-test'`).Scan(&audited); err != nil {
		t.Fatal(err)
	}
	if want := "app.create billing,tenant.create acme,key.create k-full,key.create k-read,key.create k-app"; audited != want {
		t.Errorf("audit events %q, want %q", audited, want)
	}
	if err := db.QueryRow(t.Context(), `SELECT string_agg(DISTINCT origin, ',') FROM keys
		WHERE account_id = 'acct-test' AND id LIKE 'k-%'`).Scan(&origins); err != nil || origins != "custom" {
		t.Errorf("origins of imported keys %q (%v), want custom", origins, err)
	}

	// Twice: nothing changes, and it says so.
	before = dumpTables(t, env.url, importTables...)
	out, err = importFile(t, env.url, "acct-test", file)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "second import", out, `(?m)^key\s+k-full\s+unchanged\s*$`,
		`keys: 0 create, 0 update, 3 unchanged, 1 kept`, `nothing to change: account acct-test already holds what`)
	sameTables(t, "a second import-file", before, dumpTables(t, env.url, importTables...))

	// A changed field is an update; a key of the account missing from the
	// file is kept.
	writeFile(t, file, keysYAML(
		keyEntry{id: "k-full", typ: "service", hash: fullHash},
		keyEntry{id: "k-read", typ: "service", hash: readHash, extra: "    scope: email-api\n    group: partners\n"},
	))
	out, err = importFile(t, env.url, "acct-test", file)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "update", out, `(?m)^key\s+k-read\s+update\s+scope, group\s*$`, `(?m)^key\s+k-app\s+kept\s`,
		`imported: 1 changes`)
	waitOutcome(t, authz, checkReq("POST", "/email/send", read, nil), 200, 10*time.Second)

	// A key's type cannot change: refused, naming the key and both types.
	writeFile(t, file, `apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME Corp}]
keys:
  - {id: k-app, name: k-app-name, type: service, app: billing, tenant: acme, hash: "`+appHash+`"}
`)
	before = dumpTables(t, env.url, importTables...)
	_, err = importFile(t, env.url, "acct-test", file)
	if err == nil || !strings.Contains(err.Error(), `nothing imported; the file and account "acct-test" disagree:`) ||
		!strings.Contains(err.Error(), `key "k-app": type (app in the database, service in the file)`) {
		t.Errorf("a key's type changed: %v", err)
	}
	sameTables(t, "a refused type change", before, dumpTables(t, env.url, importTables...))

	// A failure midway: the last key's hash is a key's of another account.
	// Nothing is written, and the refusal names the file's key only.
	other := filepath.Join(dir, "other.yaml")
	_, takenHash := quickKey(t, "service")
	writeFile(t, other, keysYAML(keyEntry{id: "theirs", typ: "service", hash: takenHash}))
	if _, err := cliRun(t, "", "bootstrap", "--database-url", env.url, "--account", "acct-other"); err != nil {
		t.Fatal(err)
	}
	if _, err := importFile(t, env.url, "acct-other", other); err != nil {
		t.Fatal(err)
	}
	_, newHash := quickKey(t, "service")
	writeFile(t, file, `apps: [{id: billing, name: Billing}, {id: shop, name: Shop}]
tenants: [{id: acme, name: ACME Corp}, {id: initech, name: Initech}]
keys:
  - {id: k-full, name: k-full-name, type: service, app: billing, tenant: acme, hash: "`+fullHash+`", description: changed}
  - {id: k-new, name: k-new-name, type: service, app: shop, tenant: initech, hash: "`+newHash+`"}
  - {id: k-last, name: k-last-name, type: service, app: billing, tenant: acme, hash: "`+takenHash+`"}
`)
	before = dumpTables(t, env.url, importTables...)
	for _, dry := range [][]string{{"--dry-run"}, nil} {
		out, err = importFile(t, env.url, "acct-test", file, dry...)
		if err == nil {
			t.Fatalf("import %v with a hash in use elsewhere succeeded:\n%s", dry, out)
		}
		msg := err.Error()
		for _, want := range []string{`key "k-last": hash is already in use by another key`, "nothing imported", "issue the client a new key"} {
			if !strings.Contains(msg, want) {
				t.Errorf("import %v: %q does not say %q", dry, msg, want)
			}
		}
		for _, leak := range []string{"acct-other", "theirs", takenHash} {
			if strings.Contains(msg+out, leak) {
				t.Errorf("import %v: the refusal names %q (another account's): %s", dry, leak, msg)
			}
		}
	}
	sameTables(t, "a failed import-file", before, dumpTables(t, env.url, importTables...))

	// A quota: refused before anything is written, naming the limit.
	if _, err := cliRun(t, "", "accounts", "limits", "--database-url", env.url, "--account", "acct-test", "--max-tenants", "1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, `apps: []
tenants: [{id: acme, name: ACME Corp}, {id: initech, name: Initech}]
keys: []
`)
	before = dumpTables(t, env.url, importTables...)
	_, err = importFile(t, env.url, "acct-test", file)
	if err == nil || !strings.Contains(err.Error(), `account "acct-test" holds 1 tenants and the file adds 1: more than its limit (max_tenants = 1)`) {
		t.Errorf("import past the tenants quota: %v", err)
	}
	sameTables(t, "an import past a quota", before, dumpTables(t, env.url, importTables...))

	// A malformed file: keyfile's errors, with their lines.
	writeFile(t, file, "apps: []\ntenants: []\nkeys:\n  - id: k-1\n    name: x\n    type: service\n    hash: nope\n")
	_, err = importFile(t, env.url, "acct-test", file)
	if err == nil || !regexp.MustCompile(`keys\.yaml:7: keys\[0\] \(id "k-1"\): hash: `).MatchString(err.Error()) ||
		!strings.Contains(err.Error(), "nothing imported") {
		t.Errorf("malformed file: %v", err)
	}
	sameTables(t, "a malformed file", before, dumpTables(t, env.url, importTables...))

	// An account that does not exist: say how to make one.
	_, err = importFile(t, env.url, "acct-missing", filepath.Join(dir, "other.yaml"))
	if err == nil || !strings.Contains(err.Error(), "keygate bootstrap --database-url … --account acct-missing") {
		t.Errorf("missing account: %v", err)
	}
}

// TestExportFile: export-file writes what import-file reads and serve
// --keys-file serves. Exported, imported into an account of another
// database, then planned again: nothing to change, and that account
// exports the same keys. Served from the exported file, a key's secret
// is allowed and an inactive key's denied.
func TestExportFile(t *testing.T) {
	env := newDBEnv(t)
	dir := t.TempDir()
	secret, hash := quickKey(t, "service")
	off, offHash := quickKey(t, "service")
	file := filepath.Join(dir, "keys.yaml")
	writeFile(t, file, keysYAML(
		keyEntry{id: "k-1", typ: "service", hash: hash, extra: "    scope: email-api:query\n    expires_at: 2099-01-01T00:00:00.5Z\n    ip_filters: [127.0.0.0/8]\n" +
			"    response_headers: [{name: x-tier, value: gold}]\n    description: \"a: b\"\n"},
		keyEntry{id: "k-off", typ: "service", hash: offHash, extra: "    active: false\n"},
	))
	if _, err := importFile(t, env.url, "acct-test", file); err != nil {
		t.Fatal(err)
	}
	exported := filepath.Join(dir, "exported.yaml")
	if _, err := cliRun(t, "", "export-file", "--database-url", env.url, "--account", "acct-test", "-o", exported); err != nil {
		t.Fatal(err)
	}
	if _, err := cliRun(t, "", "check-config", "--keys-file", exported, "--routes-file", env.routesFile); err != nil {
		t.Fatalf("check-config refuses the exported file: %v", err)
	}

	// Another database: its account's own bootstrap key is kept.
	url2 := pgtest.NewDatabase(t)
	if _, err := cliRun(t, "", "bootstrap", "--database-url", url2, "--account", "acct-b", "--key-name", "admin-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := importFile(t, url2, "acct-b", exported); err != nil {
		t.Fatal(err)
	}
	out, err := importFile(t, url2, "acct-b", exported, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "dry run of the export imported", out, `keys: 0 create, 0 update, 3 unchanged, 1 kept`, `nothing to change`)
	again, err := cliRun(t, "", "export-file", "--database-url", url2, "--account", "acct-b")
	if err != nil {
		t.Fatal(err)
	}
	first, err := cliRun(t, "", "export-file", "--database-url", env.url, "--account", "acct-test")
	if err != nil {
		t.Fatal(err)
	}
	// The same keys, less acct-b's own account key and the account line.
	strip := regexp.MustCompile(`(?m)^(# .*|account: .*)\n|  - id: [^\n]*\n    name: admin-b\n(    [^\n]*\n)*`)
	if d := cmp.Diff(strip.ReplaceAllString(first, ""), strip.ReplaceAllString(again, "")); d != "" {
		t.Errorf("export of the imported export differs (-first +again):\n%s", d)
	}

	srv := startServer(t, exported, env.routesFile)
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", secret, nil), 200, 10*time.Second)
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", off, nil), 401, 10*time.Second)
	for _, s := range []string{secret, off} {
		if strings.Contains(first, s) {
			t.Error("the exported file holds a secret")
		}
	}
}
