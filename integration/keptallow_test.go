package integration

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestKeptAllowsThroughTheServer is the attack on the kept allows through
// the real binary, as Envoy sends checks: 2,500 keys, eight callers at
// once, each key calling two operations in turn, with the smallest bound
// (--authz-kept-allow-bytes of one slab), so that the slab holding the
// allows is replaced again and again while answers over it are being
// sent. Every answer must carry the identity and operation of its own
// request: an allow resolved for another key, or a buffer reused while
// still being sent, would show as another key's identity.
func TestKeptAllowsThroughTheServer(t *testing.T) {
	const n = 2500
	secrets := make([]string, n)
	keys := make([]keyEntry, n)
	for i := range n {
		var hash string
		secrets[i], hash = quickKey(t, "service")
		keys[i] = keyEntry{fmt.Sprintf("k-%04d", i), "service", hash, ""}
	}
	dir := t.TempDir()
	keysFile, routesFile := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML(keys...))
	writeFile(t, routesFile, routesYAML)
	srv := startServer(t, keysFile, routesFile, "--authz-kept-allow-bytes", "1048576")
	client := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))

	ops := []struct{ method, path, op string }{{"GET", "/email/inbox", "listEmails"}, {"POST", "/email/send", "sendEmail"}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for j := range 1500 {
				i := (g*311 + j*7) % n
				o := ops[(g+j)%2]
				got, resp := call(t, client, checkReq(o.method, o.path, secrets[i], nil))
				id := keys[i].id
				if got.status != 200 {
					t.Errorf("key %s, %s: %+v", id, o.op, got)
					return
				}
				headers := map[string]string{}
				for _, h := range resp.GetOkResponse().GetHeaders() {
					headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
				}
				meta := resp.GetDynamicMetadata().GetFields()
				if headers["x-keygate-key-id"] != id || headers["x-keygate-key-name"] != id+"-name" ||
					meta["key_id"].GetStringValue() != id || meta["operation"].GetStringValue() != o.op {
					t.Errorf("key %s called %s: answered headers %v, key_id %q, operation %q", id, o.op,
						headers, meta["key_id"].GetStringValue(), meta["operation"].GetStringValue())
					return
				}
			}
		})
	}
	wg.Wait()

	// The slab was replaced while the answers above were sent.
	_, body := httpGet(t, "http://"+srv.adminAddr+"/metrics")
	if m := regexp.MustCompile(`(?m)^keygate_kept_allow_retired_total ([0-9.e+]+)$`).FindStringSubmatch(body); m == nil || m[1] == "0" {
		t.Errorf("keygate_kept_allow_retired_total: %q, want slabs retired during the test", m)
	}
}
