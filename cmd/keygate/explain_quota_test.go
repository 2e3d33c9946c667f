package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
)

// TestExplainQuota: row 10 of explain names the quotas that bind the key
// (its tenant's monthly one, its own daily one) with their counts and
// resets; with a keys file it says the counts are serve's per replica.
// A key without a quota says so.
func TestExplainQuota(t *testing.T) {
	const secret, other = "explain-quota-secret-00000001", "explain-quota-secret-00000002"
	h := apikey.NewHasher(nil)
	keys := `apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME, quota: {requests: 1000, period: month}}, {id: free, name: Free}]
keys:
  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: "` + h.HashString(secret) + `", quota: {requests: 50, period: day}}
  - {id: k-2, name: two, type: service, app: billing, tenant: free, hash: "` + h.HashString(other) + `"}
`
	keysFile := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(keysFile, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	explain := func(secret string) string {
		t.Helper()
		out, _, err := runCLI(t, secret+"\n", "explain", "--keys-file", keysFile, "--routes-file", "../../examples/routes.yaml", "--path", "/email/inbox")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := explain(secret)
	for _, want := range []string{"10 the tenant's and the key's quotas are not used up ok: tenant acme 0 of 1000/month used, resets ",
		"; key k-1 0 of 50/day used, resets ", "serve counts quotas per replica", "decision: ALLOW"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	if out := explain(other); !strings.Contains(out, "ok: no quota") {
		t.Errorf("a key without a quota:\n%s", out)
	}
}
