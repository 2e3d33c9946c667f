package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestKeysFileEmptiedKeepsLastGoodKeys (issue 17, point 3): a keys file
// emptied or cut short is refused at start, by check-config and on reload,
// where the last good keys stay in force and the failure is counted; only an
// explicit `keys: []` serves no keys.
func TestKeysFileEmptiedKeepsLastGoodKeys(t *testing.T) {
	dir := t.TempDir()
	secret, hash := quickKey(t, "service")
	keysFile := filepath.Join(dir, "keys.yaml")
	routesFile := filepath.Join(dir, "routes.yaml")
	writeFile(t, routesFile, routesYAML)
	const remedy = "write `keys: []` to serve no keys"

	t.Run("refused at start and by check-config", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "keys.yaml")
		writeFile(t, empty, "# emptied\n")
		_, err := cliRun(t, "", "check-config", "--keys-file", empty, "--routes-file", routesFile)
		if err == nil || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), remedy) {
			t.Fatalf("check-config of an empty keys file: %v", err)
		}
		if out := serveMustFail(t, "--keys-file", empty, "--routes-file", routesFile); !strings.Contains(out, remedy) {
			t.Fatalf("serve said:\n%s", out)
		}
	})

	writeFile(t, keysFile, keysYAML(keyEntry{id: "k-1", typ: "service", hash: hash}))
	srv := startServer(t, keysFile, routesFile)
	client := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	req := checkReq("GET", "/email/inbox", secret, nil)
	if got, _ := call(t, client, req); got.status != 200 {
		t.Fatalf("before: %+v", got)
	}
	failed := func() bool {
		_, body := httpGet(t, "http://"+srv.adminAddr+"/metrics")
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "keygate_config_reloads_total{") &&
				strings.Contains(line, `file="keys"`) && strings.Contains(line, `result="error"`) {
				return !strings.HasSuffix(line, " 0")
			}
		}
		return false
	}

	// Truncate in place, as `> keys.yaml` or a half-written copy would.
	if err := os.Truncate(keysFile, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refused reload logged", func() bool {
		return strings.Contains(srv.Logs(), "key file not reloaded") && strings.Contains(srv.Logs(), remedy)
	})
	if got, _ := call(t, client, req); got.status != 200 {
		t.Fatalf("after truncation the key is no longer allowed: %+v", got)
	}
	if !failed() {
		t.Error(`the refused reload is not counted in keygate_config_reloads_total{file="keys",result="error"}`)
	}

	writeFile(t, keysFile, "keys: []\n")
	waitOutcome(t, client, req, 401, 10*time.Second)
}
