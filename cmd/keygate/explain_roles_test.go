package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
)

// TestExplainRolesAndDenials: explain shows the key's own scope, each
// role's, the effective scope, and the denial that matched (row 9) with
// its reason text as the deny body.
func TestExplainRolesAndDenials(t *testing.T) {
	const secret = "explain-roles-secret-0001-xyz"
	keys := `apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME}]
roles:
  - {id: r-read, name: readers, scope: "email-api:query:*"}
  - {id: r-nodelete, name: no-delete, scope: "!email-api:mutation:deleteEmail"}
denials:
  - {id: d-1, tenant: acme, app: billing, scope: "email-api:mutation:sendEmail", reason: "Sending is suspended: invoice 42 is overdue"}
keys:
  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: "` + apikey.NewHasher(nil).HashString(secret) + `",
     scope: "email-api:mutation:sendEmail", roles: [r-read, r-nodelete]}
`
	keysFile := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(keysFile, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"explain", "--keys-file", keysFile, "--routes-file", "../../examples/routes.yaml"}
	out, _, err := runCLI(t, secret+"\n", append(args, "--path", "/email/inbox")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`ok: effective scope "email-api:mutation:sendEmail email-api:query:* !email-api:mutation:deleteEmail"`,
		`own scope "email-api:mutation:sendEmail"`,
		`role r-read (readers) "email-api:query:*"`,
		`role r-nodelete (no-delete) "!email-api:mutation:deleteEmail"`,
		`9 no service access denial       ok: 1 denials of tenant acme, app billing; none covers it`,
		"decision: ALLOW",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCLI(t, secret+"\n", append(args, "--method", "POST", "--path", "/email/send")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`FAIL access_denied (403): denial d-1 (tenant acme, app billing, scope "email-api:mutation:sendEmail") covers email-api:mutation:sendEmail`,
		`decision: DENY 403 {"error":"Sending is suspended: invoice 42 is overdue","reason":"access_denied"}`,
		"dynamic metadata  denial_id=d-1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCLI(t, "", "check-config", "--keys-file", keysFile, "--routes-file", "../../examples/routes.yaml")
	if err != nil || !strings.Contains(out, "1 keys, 2 roles, 1 denials") {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
}
