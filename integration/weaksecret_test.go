package integration

import (
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/apikey"
)

// TestWeakImportedSecretWarns: a key whose custom secret predates the
// import rules (here 20 bytes) keeps working through the real server, and
// the operator is told once — a warning naming the key, never the secret,
// and keygate_keys_weak_secrets_total — however often it is used; a key
// with a generated secret is not reported.
func TestWeakImportedSecretWarns(t *testing.T) {
	dir := t.TempDir()
	const weak = "old-partner-secret-1" // 20 bytes: imports now need 24
	weakHash := apikey.NewHasher(nil).HashString(weak)
	strong, strongHash := quickKey(t, "service")
	keysFile := filepath.Join(dir, "keys.yaml")
	routesFile := filepath.Join(dir, "routes.yaml")
	writeFile(t, routesFile, routesYAML)
	writeFile(t, keysFile, keysYAML(keyEntry{id: "k-weak", typ: "service", hash: weakHash}, keyEntry{id: "k-strong", typ: "service", hash: strongHash}))
	srv := startServer(t, keysFile, routesFile)
	client := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	for range 3 {
		for _, secret := range []string{weak, strong} {
			if got, _ := call(t, client, checkReq("GET", "/email/inbox", secret, nil)); got.status != 200 {
				t.Fatalf("a key was not allowed: %+v", got)
			}
		}
	}
	eventually(t, "the weak secret counted", func() bool {
		return metricValue(t, srv, "keygate_keys_weak_secrets_total") == 1
	})
	logs := srv.Logs()
	if n := strings.Count(logs, "shorter or more uniform"); n != 1 {
		t.Fatalf("the warning was logged %d times, want once:\n%s", n, logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "shorter or more uniform") && !strings.Contains(line, `"key_id":"k-weak"`) {
			t.Fatalf("the warning does not name k-weak: %s", line)
		}
	}
	if strings.Contains(logs, weak) || strings.Contains(logs, strong) {
		t.Fatal("a secret reached the log")
	}
}
