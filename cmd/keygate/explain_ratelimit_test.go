package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
)

// TestExplainRateLimit: explain shows the rate_limit struct an allow
// returns to Envoy (SPEC §12): the role's when the key has none of its own.
func TestExplainRateLimit(t *testing.T) {
	const secret = "explain-ratelimit-secret-0001"
	keys := `apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME}]
roles:
  - {id: r-read, name: readers, scope: "email-api:query:*", rate_limit: {requests_per_unit: 60, unit: minute}}
keys:
  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: "` + apikey.NewHasher(nil).HashString(secret) + `", roles: [r-read]}
`
	keysFile := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(keysFile, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, secret+"\n", "explain", "--keys-file", keysFile, "--routes-file", "../../examples/routes.yaml", "--path", "/email/inbox")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"decision: ALLOW", "dynamic metadata  rate_limit={requests_per_unit: 60, unit: MINUTE}", "dynamic metadata  key_id=k-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
}
