package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// TestNoSecretAnywhere extends TestNoSecretAtRest to every place a secret
// could leak to: a whole life of keys of every type and origin (generate,
// use on both ext_authz listeners — in the header and in the query
// parameter —, use wrongly, rotate, use both secrets, delete, be denied),
// with keygate at --log-level debug, and then the logs, /metrics, every
// table, the audit log (Account API and CLI) and the CLI's key listing are
// searched for each secret, its mistyped variants and, in logs and
// metrics, its hash.
func TestNoSecretAnywhere(t *testing.T) {
	env := newDBEnv(t)
	srv := startServe(t, []string{"authz", "admin", "account", "http"},
		"--database-url", env.url, "--routes-file", env.routesFile, "--http-authz-addr", "127.0.0.1:0",
		"--key-query-param", "api_key", "--usage-interval", "200ms")
	waitReady(t, srv)
	api := env.client(t, srv)
	secrets := seed(t, api) // every decision row, through the Account API
	secrets["account"] = env.accountKey
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))

	acct, err := api.GenerateAccountAccessKey(api.ctx(t), &accountv1.GenerateAccountAccessKeyRequest{Id: "k-acct2", Name: "acct2", Scope: "account-api:query:*"})
	mustOK(t, "GenerateAccountAccessKey", err)
	secrets["account2"] = acct.GetPrivateKey()
	const custom = "an-Imported-custom-secret-0042"
	_, err = api.ImportKey(api.ctx(t), &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_SERVICE, AppId: "billing",
		TenantId: "acme", PrivateKey: custom, Id: "k-custom", Name: "custom"})
	mustOK(t, "ImportKey", err)
	secrets["custom"] = custom

	inbox := func(key string) *authv3.CheckRequest { return checkReq("GET", "/email/inbox", key, nil) }
	waitOutcome(t, authz, inbox(secrets["svc"]), 200, 10*time.Second)
	waitOutcome(t, authz, inbox(custom), 200, 10*time.Second)

	// Use every key, rightly and wrongly, on the gRPC listener.
	for name, s := range secrets {
		call(t, authz, inbox(s))
		call(t, authz, checkReq("POST", "/email/send", s, nil))
		call(t, authz, checkReq("GET", "/nowhere", s, nil))
		call(t, authz, checkReq("GET", "/email/inbox?api_key="+url.QueryEscape(s), "", nil))
		call(t, authz, checkReq("GET", "/email/inbox?api_key="+url.QueryEscape(s), s, nil)) // twice: malformed
		if got, _ := call(t, authz, inbox(s+"x")); got.reason != "malformed_key" && got.reason != "unknown_key" {
			t.Errorf("%s with a character more: %+v", name, got)
		}
		call(t, authz, inbox(s+","+s))
		call(t, authz, inbox(" "+s))
	}
	// And on the HTTP listener, in the header and in the query.
	httpAddr := listenerAddr(t, srv, "http")
	httpCheck := func(target, key string) int {
		req, err := http.NewRequest("GET", "http://"+httpAddr+target, nil)
		mustOK(t, "request", err)
		if key != "" {
			req.Header.Set("X-Api-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		mustOK(t, "HTTP check", err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, s := range secrets {
		httpCheck("/email/inbox", s)
		httpCheck("/email/inbox?api_key="+url.QueryEscape(s), "")
		httpCheck("/email/send", s+"x")
	}
	if code := httpCheck("/email/inbox", secrets["svc"]); code != 200 {
		t.Errorf("HTTP check with the service key: %d", code)
	}
	// The Account API with wrong keys.
	for _, s := range []string{env.accountKey + "x", secrets["svc"], secrets["account2"]} {
		_, _ = api.CreateApp(asKey(t, s, true), &accountv1.CreateAppRequest{Id: "nope", Name: "nope"})
	}

	// Rotate with a grace period, use both, then without one; delete.
	rot, err := api.RegenerateKey(api.ctx(t), &accountv1.RegenerateKeyRequest{Id: "k-svc", GracePeriod: durationpb.New(time.Minute)})
	mustOK(t, "RegenerateKey", err)
	secrets["svc-rotated"] = rot.GetPrivateKey()
	waitOutcome(t, authz, inbox(rot.GetPrivateKey()), 200, 10*time.Second)
	if got, _ := call(t, authz, inbox(secrets["svc"])); got.status != 200 {
		t.Errorf("old secret in its grace period: %+v", got)
	}
	rot2, err := api.RegenerateKey(api.ctx(t), &accountv1.RegenerateKeyRequest{Id: "k-custom"})
	mustOK(t, "RegenerateKey", err)
	secrets["custom-rotated"] = rot2.GetPrivateKey()
	waitOutcome(t, authz, inbox(custom), 401, 10*time.Second)
	for _, id := range []string{"k-svc", "k-custom", "k-app"} {
		_, err := api.DeleteKey(api.ctx(t), &accountv1.DeleteKeyRequest{Id: id})
		mustOK(t, "DeleteKey "+id, err)
	}
	waitOutcome(t, authz, inbox(rot.GetPrivateKey()), 401, 10*time.Second)
	waitOutcome(t, authz, inbox(rot2.GetPrivateKey()), 401, 10*time.Second)
	// Let the usage flusher write what it has.
	time.Sleep(500 * time.Millisecond)

	// Where to look.
	places := map[string]string{}
	_, places["/metrics"] = httpGet(t, "http://"+srv.adminAddr+"/metrics")
	_, places["/readyz"] = httpGet(t, "http://"+srv.adminAddr+"/readyz")
	var dump strings.Builder
	for table, rows := range dumpTables(t, env.url, publicTables(t, env.url)...) {
		dump.WriteString(table + "\n" + strings.Join(rows, "\n") + "\n")
	}
	places["tables"] = dump.String()
	var audit strings.Builder
	for req := (&accountv1.ListAuditEventsRequest{PageSize: 100}); ; {
		resp, err := api.ListAuditEvents(api.ctx(t), req)
		mustOK(t, "ListAuditEvents", err)
		for _, e := range resp.GetEvents() {
			b, _ := protojson.Marshal(e)
			audit.Write(b)
			audit.WriteByte('\n')
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	places["audit (Account API)"] = audit.String()
	if !strings.Contains(audit.String(), "key.regenerate") || !strings.Contains(audit.String(), "key.delete") {
		t.Errorf("the audit log lacks the rotation or the deletion:\n%s", audit.String())
	}
	cliEnv := []string{"KEYGATE_ACCOUNT_ADDR=" + srv.accountAddr, "KEYGATE_ACCOUNT_KEY=" + env.accountKey}
	for _, args := range [][]string{{"audit", "-o", "json"}, {"keys", "list"}} {
		out, err := cliRunEnv(t, cliEnv, "", args...)
		mustOK(t, "keygate "+strings.Join(args, " "), err)
		places["keygate "+strings.Join(args, " ")] = out
	}
	// Stop keygate so that the logs are complete (shutdown lines included).
	stopServer(t, srv)
	places["logs"] = srv.Logs()
	if !strings.Contains(places["logs"], `"level":"DEBUG"`) || !strings.Contains(places["logs"], `"msg":"denied"`) {
		t.Fatalf("no debug lines in the logs:\n%.2000s", places["logs"])
	}

	for name, s := range secrets {
		sum := sha256.Sum256([]byte(s))
		digest := hex.EncodeToString(sum[:])
		needles := map[string]string{
			"the secret":                 s,
			"the secret, query-escaped":  url.QueryEscape(s),
			"the secret without its end": s[:len(s)-2],
		}
		for place, text := range places {
			for what, needle := range needles {
				if strings.Contains(text, needle) {
					t.Errorf("%s of key %s found in %s", what, name, place)
				}
			}
			if place == "tables" {
				continue // the hash is what the database keeps
			}
			if strings.Contains(text, digest) {
				t.Errorf("the hash of key %s found in %s", name, place)
			}
		}
	}
	for _, place := range []string{"logs", "/metrics"} {
		if strings.Contains(places[place], "sha256:") {
			t.Errorf("%s carry a key hash", place)
		}
	}
	assertCleanLogs(t, srv)
}

// stopServer ends keygate with SIGTERM and waits for it.
func stopServer(t testing.TB, s *server) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("keygate exited with %v", err)
		}
		s.done <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("keygate did not stop on SIGTERM")
	}
}
