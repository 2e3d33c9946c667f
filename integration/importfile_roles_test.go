package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
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

// importRoleTables are importTables with those of roles and denials.
var importRoleTables = append([]string{"roles", "denials", "key_roles"}, importTables...)

const suspended = `Sending is suspended: invoice 42 is overdue`

// rolesImportYAML is a keys file with two roles, a key holding one of
// them (k-reader: no own scope, so the role decides), a key with its own
// scope (k-sender, holding sendRoles), and a denial of their tenant and
// app for sending mail.
func rolesImportYAML(readerHash, senderHash, readScope, reason, senderRoles string) string {
	return fmt.Sprintf(`account: file-account
apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME Corp}]
roles:
  - {id: r-read, name: readers, scope: %q, description: "read mail"}
  - {id: r-send, name: senders, scope: "email-api:mutation:sendEmail"}
denials:
  - {id: d-unpaid, tenant: acme, app: billing, scope: "email-api:mutation:sendEmail", reason: %q}
keys:
  - {id: k-reader, name: reader, type: service, app: billing, tenant: acme, hash: %q, roles: [r-read]}
  - {id: k-sender, name: sender, type: service, app: billing, tenant: acme, hash: %q, scope: "email-api:query:*", roles: %s}
`, readScope, reason, readerHash, senderHash, senderRoles)
}

// TestImportFileRolesAndDenials: issue 18's "the keys file round-trips
// roles and denials" through import-file and export-file, the real binary
// and PostgreSQL. A file with two roles, a key holding one and a denial:
// the dry run lists each role and denial and changes no table; the import
// creates them, audited as import-file, the key holding its role; a second
// import changes nothing; changed fields are updates (a role's scope, a
// denial's reason, a key's roles); a roles quota refuses the whole import.
// Exported, checked by check-config, imported into another database: a
// dry run there changes nothing, and that database exports the same
// roles, denials and key roles. Served with serve --keys-file, the
// exported file allows what the role allows and denies sending with the
// denial's reason (403 access_denied).
func TestImportFileRolesAndDenials(t *testing.T) {
	env := newDBEnv(t) // account acct-test with its bootstrap key
	dir := t.TempDir()
	reader, readerHash := quickKey(t, "service")
	sender, senderHash := quickKey(t, "service")
	file := filepath.Join(dir, "keys.yaml")
	writeFile(t, file, rolesImportYAML(readerHash, senderHash, "email-api:query:*", suspended, "[]"))

	before := dumpTables(t, env.url, importRoleTables...)
	out, err := importFile(t, env.url, "acct-test", file, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "dry run", out,
		`(?m)^role\s+r-read\s+create\s*$`, `(?m)^role\s+r-send\s+create\s*$`, `(?m)^denial\s+d-unpaid\s+create\s*$`,
		`(?m)^key\s+k-reader\s+create\s*$`,
		`roles: 2 create, 0 update, 0 unchanged, 0 kept; denials: 1 create, 0 update, 0 unchanged, 0 kept; keys: 2 create`,
		`dry run: nothing written; without --dry-run the import makes 7 changes`)
	sameTables(t, "import-file --dry-run", before, dumpTables(t, env.url, importRoleTables...))

	out, err = importFile(t, env.url, "acct-test", file)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "import", out, `imported: 7 changes in one transaction, audited as import-file`)
	db, err := pgx.Connect(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	query := func(sql string) string {
		t.Helper()
		var s string
		if err := db.QueryRow(t.Context(), sql).Scan(&s); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return s
	}
	if got, want := query(`SELECT string_agg(action || ' ' || object_id, ',' ORDER BY id) FROM audit_events
		WHERE actor_key_name = 'import-file' AND account_id = 'acct-test'`),
		"app.create billing,tenant.create acme,role.create r-read,role.create r-send,key.create k-reader,key.create k-sender,denial.create d-unpaid"; got != want {
		t.Errorf("audit events %q, want %q", got, want)
	}
	if got := query(`SELECT coalesce(string_agg(key_id || '=' || role_id, ',' ORDER BY key_id, role_id), '') FROM key_roles
		WHERE account_id = 'acct-test'`); got != "k-reader=r-read" {
		t.Errorf("key_roles %q, want k-reader=r-read", got)
	}
	if got := query(`SELECT string_agg(id || ' ' || tenant_id || ' ' || app_id || ' ' || reason, ',') FROM denials
		WHERE account_id = 'acct-test'`); got != "d-unpaid acme billing "+suspended {
		t.Errorf("denials %q", got)
	}

	// Twice: nothing changes, and it says so.
	before = dumpTables(t, env.url, importRoleTables...)
	out, err = importFile(t, env.url, "acct-test", file)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "second import", out, `(?m)^role\s+r-read\s+unchanged\s*$`, `(?m)^denial\s+d-unpaid\s+unchanged\s*$`,
		`roles: 0 create, 0 update, 2 unchanged, 0 kept; denials: 0 create, 0 update, 1 unchanged, 0 kept`,
		`nothing to change: account acct-test already holds what`)
	sameTables(t, "a second import-file", before, dumpTables(t, env.url, importRoleTables...))

	// Changed fields: a role's scope, a denial's reason, a key's roles.
	writeFile(t, file, rolesImportYAML(readerHash, senderHash, "email-api:query:listEmails", overdue, "[r-send]"))
	out, err = importFile(t, env.url, "acct-test", file)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "update", out, `(?m)^role\s+r-read\s+update\s+scope\s*$`, `(?m)^denial\s+d-unpaid\s+update\s+reason\s*$`,
		`(?m)^key\s+k-sender\s+update\s+roles\s*$`, `(?m)^key\s+k-reader\s+unchanged\s*$`, `imported: 3 changes`)
	if got := query(`SELECT string_agg(key_id || '=' || role_id, ',' ORDER BY key_id, role_id) FROM key_roles
		WHERE account_id = 'acct-test'`); got != "k-reader=r-read,k-sender=r-send" {
		t.Errorf("key_roles after the update %q", got)
	}
	if got, want := query(`SELECT string_agg(action || ' ' || object_id, ',' ORDER BY id) FROM audit_events
		WHERE actor_key_name = 'import-file' AND account_id = 'acct-test' AND action LIKE '%.update'`),
		"role.update r-read,key.update k-sender,denial.update d-unpaid"; got != want {
		t.Errorf("audit events of the update %q, want %q", got, want)
	}

	// A quota: a third role past max_roles = 2 refuses the whole import.
	if _, err := cliRun(t, "", "accounts", "limits", "--database-url", env.url, "--account", "acct-test", "--max-roles", "2"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, strings.Replace(rolesImportYAML(readerHash, senderHash, "email-api:query:*", overdue, "[r-send]"),
		"denials:", "  - {id: r-third, name: third, scope: \"sms-api\"}\ndenials:", 1))
	before = dumpTables(t, env.url, importRoleTables...)
	_, err = importFile(t, env.url, "acct-test", file)
	if err == nil || !strings.Contains(err.Error(), `account "acct-test" holds 2 roles and the file adds 1: more than its limit (max_roles = 2)`) {
		t.Errorf("import past the roles quota: %v", err)
	}
	sameTables(t, "an import past the roles quota", before, dumpTables(t, env.url, importRoleTables...))

	// Export, check-config, import into another database: nothing to change there.
	exported := filepath.Join(dir, "exported.yaml")
	if _, err := cliRun(t, "", "export-file", "--database-url", env.url, "--account", "acct-test", "-o", exported); err != nil {
		t.Fatal(err)
	}
	if out, err := cliRun(t, "", "check-config", "--keys-file", exported, "--routes-file", env.routesFile); err != nil ||
		!strings.Contains(out, "3 keys, 2 roles, 1 denials") {
		t.Fatalf("check-config of the exported file: %v\n%s", err, out)
	}
	data, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	first := string(data)
	for _, w := range []string{"roles:\n  - id: r-read\n", "denials:\n  - id: d-unpaid\n", "    roles: [r-read]\n", "    roles: [r-send]\n"} {
		if !strings.Contains(first, w) {
			t.Errorf("the exported file does not hold %q:\n%s", w, first)
		}
	}
	url2 := pgtest.NewDatabase(t)
	if _, err := cliRun(t, "", "bootstrap", "--database-url", url2, "--account", "acct-b", "--key-name", "admin-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := importFile(t, url2, "acct-b", exported); err != nil {
		t.Fatal(err)
	}
	before = dumpTables(t, url2, importRoleTables...)
	out, err = importFile(t, url2, "acct-b", exported, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "dry run of the export imported", out,
		`roles: 0 create, 0 update, 2 unchanged, 0 kept; denials: 0 create, 0 update, 1 unchanged, 0 kept; keys: 0 create, 0 update, 3 unchanged, 1 kept`,
		`nothing to change`)
	sameTables(t, "the dry run of the export imported", before, dumpTables(t, url2, importRoleTables...))
	again, err := cliRun(t, "", "export-file", "--database-url", url2, "--account", "acct-b")
	if err != nil {
		t.Fatal(err)
	}
	strip := regexp.MustCompile(`(?m)^(# .*|account: .*)\n|  - id: [^\n]*\n    name: admin-b\n(    [^\n]*\n)*`)
	if d := cmp.Diff(strip.ReplaceAllString(first, ""), strip.ReplaceAllString(again, "")); d != "" {
		t.Errorf("export of the imported export differs (-first +again):\n%s", d)
	}

	// Served from the exported file: the role allows, the denial denies
	// with its reason.
	srv := startServer(t, exported, env.routesFile)
	c := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	waitOutcome(t, c, checkReq("GET", "/email/inbox", reader, nil), 200, 10*time.Second)
	waitOutcome(t, c, checkReq("GET", "/email/inbox", sender, nil), 200, 10*time.Second)
	send := checkReq("POST", "/email/send", sender, nil)
	waitOutcome(t, c, send, 403, 10*time.Second)
	o, resp := call(t, c, send)
	if o != (outcome{403, "access_denied"}) {
		t.Fatalf("send by k-sender: %+v, want 403 access_denied", o)
	}
	var body struct{ Error, Reason string }
	if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body); err != nil || body.Error != overdue {
		t.Fatalf("deny body %q (%v), want error %q", resp.GetDeniedResponse().GetBody(), err, overdue)
	}
	if id := resp.GetDynamicMetadata().GetFields()["denial_id"].GetStringValue(); id != "d-unpaid" {
		t.Errorf("dynamic metadata denial_id = %q, want d-unpaid", id)
	}
	if o, _ := call(t, c, checkReq("POST", "/email/send", reader, nil)); o != (outcome{403, "scope_denied"}) {
		t.Errorf("send by k-reader (role r-read only): %+v, want scope_denied", o)
	}
	for _, s := range []string{reader, sender} {
		if strings.Contains(first, s) {
			t.Error("the exported file holds a secret")
		}
	}
}
