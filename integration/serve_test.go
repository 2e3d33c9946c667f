package integration

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestServe drives the real binary with go-control-plane's ext_authz client:
// every decision outcome, hot reload of both files, health, metrics, logs.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	svc, svcHash := newKey(t, "service")
	app, appHash := newKey(t, "app")
	ro, roHash := newKey(t, "service")
	expired, expiredHash := newKey(t, "service")
	inactive, inactiveHash := newKey(t, "service")
	future, futureHash := newKey(t, "service")
	office, officeHash := newKey(t, "service")
	later, laterHash := newKey(t, "service")
	secrets := []string{svc, app, ro, expired, inactive, future, office, later}

	keys := []keyEntry{
		{"k-svc", "service", svcHash, "    response_headers:\n      - {name: x-tier, value: gold}\n      - {name: x-who, value: \"${key.name}@${tenant.id} ${operation}\"}\n"},
		{"k-app", "app", appHash, ""},
		{"k-ro", "service", roHash, "    scope: \"email-api !email-api:mutation:sendEmail\"\n"},
		{"k-expired", "service", expiredHash, "    expires_at: 2020-01-01T00:00:00Z\n"},
		{"k-inactive", "service", inactiveHash, "    active: false\n"},
		{"k-future", "service", futureHash, "    not_before: 2999-01-01T00:00:00Z\n"},
		{"k-office", "service", officeHash, "    ip_filters: [\"10.0.0.0/8\", \"2001:db8::/32\"]\n"},
	}
	keysFile := filepath.Join(dir, "keys.yaml")
	routesFile := filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML(keys...))
	writeFile(t, routesFile, routesYAML)

	srv := startServer(t, keysFile, routesFile, "--authz-kept-allow-bytes", "2097152") // two slabs
	client := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))

	t.Run("health", func(t *testing.T) {
		h := healthpb.NewHealthClient(dial(t, srv.authzAddr))
		for _, name := range []string{"", "envoy.service.auth.v3.Authorization"} {
			resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health %q: %v %v", name, resp, err)
			}
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, body := httpGet(t, "http://"+srv.adminAddr+path); code != 200 {
				t.Fatalf("%s: %d %s", path, code, body)
			}
		}
	})

	t.Run("allow with identity and response headers", func(t *testing.T) {
		got, resp := call(t, client, checkReq("GET", "/email/inbox?page=2", svc, map[string]string{"x-keygate-tenant-id": "forged"}))
		if got.status != 200 {
			t.Fatalf("got %+v", got)
		}
		ok := resp.GetOkResponse()
		headers := map[string]string{}
		for _, h := range ok.GetHeaders() {
			//lint:ignore SA1019 SPEC §5 requires the deprecated append field, set to false.
			if h.GetAppend() == nil || h.GetAppend().GetValue() {
				t.Errorf("identity header %s without explicit append: false", h.GetHeader().GetKey())
			}
			headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		want := map[string]string{"x-keygate-key-id": "k-svc", "x-keygate-key-name": "k-svc-name",
			"x-keygate-app-id": "billing", "x-keygate-tenant-id": "acme", "x-keygate-account-id": "default"}
		for k, v := range want {
			if headers[k] != v {
				t.Errorf("upstream header %s = %q, want %q", k, headers[k], v)
			}
		}
		if rm := ok.GetHeadersToRemove(); len(rm) == 0 || rm[0] != "x-api-key" {
			t.Errorf("headers_to_remove = %v, want x-api-key first", rm)
		}
		resph := map[string]string{}
		for _, h := range ok.GetResponseHeadersToAdd() {
			resph[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		if resph["x-tier"] != "gold" || resph["x-who"] != "k-svc-name@acme listEmails" {
			t.Errorf("response headers = %v", resph)
		}
		md := resp.GetDynamicMetadata().GetFields()
		for k, v := range map[string]string{"key_id": "k-svc", "key_type": "service", "app_id": "billing",
			"tenant_id": "acme", "service": "email-api", "operation": "listEmails"} {
			if md[k].GetStringValue() != v {
				t.Errorf("dynamic_metadata %s = %q, want %q", k, md[k].GetStringValue(), v)
			}
		}
	})

	t.Run("app key removes the tenant header", func(t *testing.T) {
		got, resp := call(t, client, checkReq("POST", "/users.v1.UserService/GetUser", app, map[string]string{"content-type": "application/grpc"}))
		if got.status != 200 {
			t.Fatalf("gRPC call with app key: %+v", got)
		}
		rm := strings.Join(resp.GetOkResponse().GetHeadersToRemove(), ",")
		if !strings.Contains(rm, "x-keygate-tenant-id") {
			t.Errorf("headers_to_remove = %s, want the tenant header", rm)
		}
		if op := resp.GetDynamicMetadata().GetFields()["operation"].GetStringValue(); op != "GetUser" {
			t.Errorf("operation = %q, want GetUser", op)
		}
	})

	denies := []struct {
		name string
		req  *authv3.CheckRequest
		want outcome
	}{
		{"missing_key", checkReq("GET", "/email/inbox", "", nil), outcome{401, "missing_key"}},
		{"malformed_key", checkReq("GET", "/email/inbox", lastCharChanged(svc), nil), outcome{401, "malformed_key"}},
		{"unknown_key", checkReq("GET", "/email/inbox", later, nil), outcome{401, "unknown_key"}},
		{"inactive_key", checkReq("GET", "/email/inbox", inactive, nil), outcome{401, "inactive_key"}},
		{"not_yet_valid", checkReq("GET", "/email/inbox", future, nil), outcome{401, "not_yet_valid"}},
		{"expired_key", checkReq("GET", "/email/inbox", expired, nil), outcome{401, "expired_key"}},
		{"invalid_path", checkReq("GET", "/email/%zz", svc, nil), outcome{400, "invalid_path"}},
		{"unknown_route", checkReq("GET", "/nowhere", svc, nil), outcome{403, "unknown_route"}},
		{"unknown_route: traversal out of a route", checkReq("GET", "/email/inbox/../../admin", svc, nil), outcome{403, "unknown_route"}},
		{"wrong_key_type", checkReq("GET", "/email/inbox", app, nil), outcome{403, "wrong_key_type"}},
		{"ip_not_allowed", checkReq("GET", "/email/inbox", office, nil), outcome{403, "ip_not_allowed"}},
		{"scope_denied", checkReq("POST", "/email/send", ro, nil), outcome{403, "scope_denied"}},
		{"scope_denied: traversal into send", checkReq("POST", "/email/inbox/../send", ro, nil), outcome{403, "scope_denied"}},
	}
	for _, tc := range denies {
		t.Run("deny "+tc.name, func(t *testing.T) {
			got, resp := call(t, client, tc.req)
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			d := resp.GetDeniedResponse()
			if len(d.GetHeaders()) == 0 || d.GetHeaders()[0].GetHeader().GetValue() != "application/json" {
				t.Errorf("deny headers = %v, want content-type application/json", d.GetHeaders())
			}
		})
	}

	t.Run("keys file hot reload", func(t *testing.T) {
		// A new key becomes valid, a removed one invalid.
		writeFile(t, keysFile, keysYAML(append(keys[1:], keyEntry{"k-later", "service", laterHash, ""})...))
		eventually(t, "the new key to be allowed", func() bool {
			got, _ := call(t, client, checkReq("GET", "/email/inbox", later, nil))
			return got.status == 200
		})
		if got, _ := call(t, client, checkReq("GET", "/email/inbox", svc, nil)); got.reason != "unknown_key" {
			t.Fatalf("removed key: %+v, want unknown_key", got)
		}
		// A broken file keeps the last good keys.
		writeFile(t, keysFile, "keys: [{id: broken\n")
		eventually(t, "the failed reload to be logged", func() bool {
			return strings.Contains(srv.Logs(), "last good keys")
		})
		if got, _ := call(t, client, checkReq("GET", "/email/inbox", later, nil)); got.status != 200 {
			t.Fatalf("after a bad reload: %+v, want the last good keys", got)
		}
	})

	t.Run("routes file hot reload", func(t *testing.T) {
		writeFile(t, routesFile, strings.Replace(routesYAML, "  - name: users-api",
			"      - {path: /email/archive, methods: [GET], kind: query, operation: archive}\n  - name: users-api", 1))
		eventually(t, "the new route", func() bool {
			got, _ := call(t, client, checkReq("GET", "/email/archive", later, nil))
			return got.status == 200
		})
	})

	t.Run("metrics", func(t *testing.T) {
		code, body := httpGet(t, "http://"+srv.adminAddr+"/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		for _, want := range []string{
			`keygate_decisions_total{reason="ok",result="allow"}`,
			`keygate_decisions_total{reason="scope_denied",result="deny"}`,
			`keygate_check_duration_seconds_bucket`,
			`keygate_config_reloads_total{file="keys",result="error"}`,
			`keygate_keys_loaded`,
			`keygate_kept_allow_max_size_bytes 2.097152e+06`, // --authz-kept-allow-bytes
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		// The allows above were encoded and kept, once per key and operation.
		if m := regexp.MustCompile(`(?m)^keygate_kept_allow_encoded_total ([0-9.e+]+)$`).FindStringSubmatch(body); m == nil || m[1] == "0" {
			t.Errorf("keygate_kept_allow_encoded_total: %q, want allows kept", m)
		}
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Fatal("/metrics contains a secret")
			}
		}
	})

	t.Run("graceful stop", func(t *testing.T) { stopCleanly(t, srv) })

	t.Run("no secret in any log line", func(t *testing.T) {
		logs := srv.Logs()
		if !strings.Contains(logs, `"msg":"denied"`) {
			t.Fatalf("debug deny lines missing; logs:\n%s", logs)
		}
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Fatalf("a secret appears in the logs")
			}
		}
	})
}

func TestCLI(t *testing.T) {
	t.Run("keygen prints a secret and its hash, nothing else", func(t *testing.T) {
		for typ, prefix := range map[string]string{"service": "kg_sak_", "app": "kg_alsak_", "account": "kg_aak_"} {
			secret, hash := newKey(t, typ)
			if !strings.HasPrefix(secret, prefix) || !strings.HasPrefix(hash, "sha256:") {
				t.Fatalf("%s: got %q / %q", typ, secret[:len(prefix)], hash)
			}
			out, err := cliRun(t, secret+"\n", "hash")
			if err != nil || strings.TrimSpace(out) != hash {
				t.Fatalf("hash of the keygen secret = %q (%v), want %q", out, err, hash)
			}
		}
	})
	t.Run("hash with a pepper is an HMAC", func(t *testing.T) {
		pepper := filepath.Join(t.TempDir(), "pepper")
		if err := os.WriteFile(pepper, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := cliRun(t, "a-custom-secret-value-01\n", "hash", "--pepper-file", pepper)
		if err != nil || !strings.HasPrefix(out, "hmac-sha256:") {
			t.Fatalf("got %q %v", out, err)
		}
	})
	t.Run("hash refuses a malformed secret without echoing it", func(t *testing.T) {
		_, err := cliRun(t, "kg_sak_notachecksummedkey0000000000000000\n", "hash")
		if err == nil || strings.Contains(err.Error(), "notachecksummed") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("check-config accepts the examples", func(t *testing.T) {
		out, err := cliRun(t, "", "check-config", "--keys-file", "../examples/keys.yaml", "--routes-file", "../examples/routes.yaml")
		if err != nil || !strings.HasPrefix(out, "ok:") {
			t.Fatalf("got %q %v", out, err)
		}
	})
	t.Run("check-config lists every error", func(t *testing.T) {
		dir := t.TempDir()
		keys := filepath.Join(dir, "keys.yaml")
		routes := filepath.Join(dir, "routes.yaml")
		writeFile(t, routes, routesYAML)
		writeFile(t, keys, `keys:
  - {id: a, name: x, type: service, hash: "sha256:00", scope: "a::b"}
  - {id: a, name: x, type: wizard, hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"}
`)
		_, err := cliRun(t, "", "check-config", "--keys-file", keys, "--routes-file", routes)
		if err == nil {
			t.Fatal("check-config accepted a broken keys file")
		}
		for _, want := range []string{"hash", "scope", "tenant", "type", "keys[1]"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not mention %q:\n%v", want, err)
			}
		}
	})
}

// lastCharChanged is secret with its last character (part of the
// checksum) replaced by another: always a different string, so its
// checksum fails.
func lastCharChanged(secret string) string {
	last := byte('x')
	if secret[len(secret)-1] == last {
		last = 'y'
	}
	return secret[:len(secret)-1] + string(last)
}
