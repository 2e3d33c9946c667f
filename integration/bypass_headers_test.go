package integration

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// Issue 13, points 5, 6, 7 (account id) and 11c, sent as an attacker
// sends them through the real `keygate serve`.

// grpcCheckReq is a gRPC call to users.v1.UserService (app keys only).
func grpcCheckReq(key string, extra map[string]string) *authv3.CheckRequest {
	h := map[string]string{"content-type": "application/grpc"}
	for k, v := range extra {
		h[k] = v
	}
	return checkReq("POST", "/users.v1.UserService/ListUsers", key, h)
}

// asHeaderMap moves a check request's headers into header_map with raw
// values, as Envoy sends them with encode_raw_headers.
func asHeaderMap(req *authv3.CheckRequest) *authv3.CheckRequest {
	h := req.GetAttributes().GetRequest().GetHttp()
	names := make([]string, 0, len(h.Headers))
	for k := range h.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	hm := &corev3.HeaderMap{}
	for _, k := range names {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(h.Headers[k])})
	}
	h.Headers, h.HeaderMap = nil, hm
	return req
}

// upstreamHeaders is what an allow sets upstream, by name.
func upstreamHeaders(resp *authv3.CheckResponse) map[string]string {
	out := map[string]string{}
	for _, o := range resp.GetOkResponse().GetHeaders() {
		out[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	return out
}

// wantAccount checks that an allow names the key's account in the
// identity headers and in dynamic_metadata (issue 13 point 7).
func wantAccount(t *testing.T, what string, resp *authv3.CheckResponse, account string) {
	t.Helper()
	if got := upstreamHeaders(resp)["x-keygate-account-id"]; got != account {
		t.Errorf("%s: x-keygate-account-id = %q, want %q", what, got, account)
	}
	if got := resp.GetDynamicMetadata().GetFields()["account_id"].GetStringValue(); got != account {
		t.Errorf("%s: dynamic_metadata account_id = %q, want %q", what, got, account)
	}
}

// TestBypassForgedIdentityHeaders: a client's x_keygate_tenant_id (and
// every other spelling an upstream folding "_" into "-" would read as an
// identity header or the key header) is listed in headers_to_remove, in
// both of Envoy's header encodings, and in the HTTP mode's
// X-Envoy-Auth-Headers-To-Remove. The keys file names no account: its keys
// belong to "default", which the allow names too.
func TestBypassForgedIdentityHeaders(t *testing.T) {
	dir := t.TempDir()
	svcSecret, svcHash := newKey(t, "service")
	appSecret, appHash := newKey(t, "app")
	keys, routes := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, keys, keysYAML(keyEntry{id: "k-svc", typ: "service", hash: svcHash}, keyEntry{id: "k-app", typ: "app", hash: appHash}))
	writeFile(t, routes, routesYAML)
	srv := startServe(t, []string{"authz", "admin", "http"}, "--keys-file", keys, "--routes-file", routes,
		"--http-authz-addr", "127.0.0.1:0")
	c := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))

	forged := []struct{ sent, removed string }{
		{"x_keygate_tenant_id", "x_keygate_tenant_id"},
		{"X_Keygate-Tenant_ID", "x_keygate-tenant_id"},
		{"x_keygate_account_id", "x_keygate_account_id"},
		{"x_keygate_key_id", "x_keygate_key_id"},
		{"x-api_key", "x-api_key"},
	}
	type keyCase struct {
		name string
		req  func(extra map[string]string) *authv3.CheckRequest
		base []string // what the allow removes anyway
	}
	for _, k := range []keyCase{
		{"service key", func(extra map[string]string) *authv3.CheckRequest {
			return checkReq("GET", "/email/inbox", svcSecret, extra)
		}, []string{"x-api-key"}},
		{"app key", func(extra map[string]string) *authv3.CheckRequest { return grpcCheckReq(appSecret, extra) },
			[]string{"x-api-key", "x-keygate-tenant-id"}},
	} {
		for _, enc := range []string{"headers", "header_map"} {
			for _, f := range forged {
				t.Run(k.name+"/"+enc+"/"+f.sent, func(t *testing.T) {
					req := k.req(map[string]string{f.sent: "victim"})
					if enc == "header_map" {
						req = asHeaderMap(req)
					}
					got, resp := call(t, c, req)
					if got.status != 200 {
						t.Fatalf("got %+v", got)
					}
					want := append(slices.Clone(k.base), f.removed)
					if rm := resp.GetOkResponse().GetHeadersToRemove(); !slices.Equal(rm, want) {
						t.Fatalf("headers_to_remove = %q, want %q", rm, want)
					}
					wantAccount(t, k.name, resp, "default")
				})
			}
			t.Run(k.name+"/"+enc+"/clean request", func(t *testing.T) {
				req := k.req(map[string]string{"x-keygate-tenant-id": "victim", "user-agent": "t"})
				if enc == "header_map" {
					req = asHeaderMap(req)
				}
				_, resp := call(t, c, req)
				if rm := resp.GetOkResponse().GetHeadersToRemove(); !slices.Equal(rm, k.base) {
					t.Fatalf("headers_to_remove = %q, want %q", rm, k.base)
				}
				wantAccount(t, k.name, resp, "default")
			})
		}
	}

	httpAddr := listenerAddr(t, srv, "http")
	for _, f := range forged {
		t.Run("HTTP mode/"+f.sent, func(t *testing.T) {
			req, err := http.NewRequest("GET", "http://"+httpAddr+"/email/inbox", nil)
			mustOK(t, "request", err)
			req.Header.Set("X-Api-Key", svcSecret)
			req.Header[f.sent] = []string{"victim"} // as sent, not canonicalised
			resp, err := http.DefaultClient.Do(req)
			mustOK(t, "HTTP check", err)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got, want := resp.Header.Get("X-Envoy-Auth-Headers-To-Remove"), "x-api-key, "+f.removed; got != want {
				t.Fatalf("X-Envoy-Auth-Headers-To-Remove = %q, want %q", got, want)
			}
			if got := resp.Header.Get("X-Keygate-Account-Id"); got != "default" {
				t.Fatalf("X-Keygate-Account-Id = %q, want default", got)
			}
		})
	}
}

// TestBypassKeysFileRefusesBadResponseHeadersAndNames: a keys file with a
// response header that breaks SPEC §9's rules, or a name with a bidi or
// invisible character, is refused by check-config and by serve, naming
// file, entry, field, header and code point.
func TestBypassKeysFileRefusesBadResponseHeadersAndNames(t *testing.T) {
	dir := t.TempDir()
	_, hash := newKey(t, "service")
	routes := filepath.Join(dir, "routes.yaml")
	writeFile(t, routes, routesYAML)
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"set-cookie", "    response_headers: [{name: set-cookie, value: \"session=x\"}]\n",
			`keys[0] (id "k-1"): response_headers: [0] "set-cookie": name must start with x-`},
		{"x-envoy list", "    response_headers: [{name: x-envoy-auth-headers-to-remove, value: \"${operation}\"}]\n",
			`response_headers: [0] "x-envoy-auth-headers-to-remove": name is reserved: it may not start with x-envoy-`},
		{"identity prefix", "    response_headers: [{name: x-keygate-role, value: admin}]\n",
			`response_headers: [0] "x-keygate-role": name is reserved for keygate's identity headers (prefix x-keygate-)`},
		{"access-control", "    response_headers: [{name: access-control-allow-origin, value: \"*\"}]\n",
			`"access-control-allow-origin": name must start with x-`},
		{"bidi group", "    group: \"partners\\u202E\"\n",
			`keys[0] (id "k-1"): group: contains a bidirectional control character (U+202E)`},
		{"zero-width description is fine, zero-width group is not", "    description: \"a\\u200Bb\"\n    group: \"a\\u200Bb\"\n",
			`group: contains an invisible character (U+200B)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := filepath.Join(t.TempDir(), "keys.yaml")
			writeFile(t, keys, keysYAML(keyEntry{id: "k-1", typ: "service", hash: hash, extra: tc.extra}))
			_, err := cliRun(t, "", "check-config", "--keys-file", keys, "--routes-file", routes)
			if err == nil || !strings.Contains(err.Error(), "keys.yaml:") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check-config: %v\nwant %s", err, tc.want)
			}
			for _, r := range err.Error() {
				if r == 0x202e || r == 0x200b {
					t.Fatalf("the error echoes %U", r)
				}
			}
			if out := serveMustFail(t, "--keys-file", keys, "--routes-file", routes); !strings.Contains(out, tc.want) {
				t.Fatalf("serve said:\n%s\nwant %s", out, tc.want)
			}
		})
	}
}

// serveMustFail runs `keygate serve args…`, which must exit with an error
// within 30 s, and returns what it wrote to stderr.
func serveMustFail(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, keygateBinary(t), append([]string{"serve", "--authz-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = cleanEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || ctx.Err() != nil {
		t.Fatalf("serve did not fail on its own (%v):\n%s", err, stderr.String())
	}
	return stderr.String()
}

// TestBypassStoredBadResponseHeaders: in database mode the Account API
// refuses bad response headers and names (InvalidArgument naming the header
// or the code point); a key whose stored headers break the rules (written
// by SQL, as before the rules) keeps working without them, each dropped
// header logged by name and counted; an update that keeps them still goes
// through. Every allow names the account (point 7) in both modes.
func TestBypassStoredBadResponseHeaders(t *testing.T) {
	env := newDBEnv(t)
	srv := startServe(t, []string{"authz", "admin", "account", "http"},
		"--database-url", env.url, "--routes-file", env.routesFile, "--http-authz-addr", "127.0.0.1:0")
	waitReady(t, srv)
	api := env.client(t, srv)
	secrets := seed(t, api)
	c := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))

	// The Account API refuses what the rules refuse.
	for _, tc := range []struct {
		name    string
		headers []*accountv1.ResponseHeader
		want    string
	}{
		{"set-cookie", []*accountv1.ResponseHeader{{Name: "set-cookie", Value: "s=1"}}, `"set-cookie": name must start with x-`},
		{"x-envoy", []*accountv1.ResponseHeader{{Name: "x-envoy-auth-headers-to-remove", Value: "${operation}"}}, `"x-envoy-auth-headers-to-remove": name is reserved`},
		{"identity prefix", []*accountv1.ResponseHeader{{Name: "x-keygate-tenant", Value: "victim"}}, `"x-keygate-tenant": name is reserved for keygate's identity headers`},
		{"transfer-encoding", []*accountv1.ResponseHeader{{Name: "transfer-encoding", Value: "chunked"}}, `"transfer-encoding": name must start with x-`},
	} {
		t.Run("API refuses "+tc.name, func(t *testing.T) {
			_, err := api.GenerateServiceAccessKey(api.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{
				AppId: "billing", TenantId: "acme", Name: "bad-" + tc.name, ResponseHeaders: tc.headers})
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "response_headers: [0] "+tc.want) {
				t.Fatalf("got %v, want InvalidArgument with %s", err, tc.want)
			}
		})
	}
	t.Run("API refuses a bidi name", func(t *testing.T) {
		name := "invoice\u202Etxt.exe"
		for what, err := range map[string]error{
			"app": func() error { _, err := api.CreateApp(api.ctx(t), &accountv1.CreateAppRequest{Name: name}); return err }(),
			"tenant": func() error {
				_, err := api.CreateTenant(api.ctx(t), &accountv1.CreateTenantRequest{Name: name})
				return err
			}(),
			"key": func() error {
				_, err := api.UpdateKey(api.ctx(t), &accountv1.UpdateKeyRequest{Id: "k-svc", Name: &name})
				return err
			}(),
		} {
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "name: contains a bidirectional control character (U+202E)") ||
				strings.ContainsRune(st.Message(), 0x202e) {
				t.Errorf("%s: got %v", what, err)
			}
		}
	})

	// A stored key with bad headers, as an older keygate or SQL left it.
	conn, err := pgx.Connect(context.Background(), env.url)
	mustOK(t, "connect", err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `UPDATE keys SET response_headers = $1 WHERE id = 'k-svc'`,
		`[{"name": "x-tier", "value": "gold"}, {"name": "set-cookie", "value": "session=attacker"},
		  {"name": "x-envoy-auth-headers-to-remove", "value": "x-nothing"}, {"name": "x-keygate-tenant", "value": "victim"}]`)
	mustOK(t, "update the stored headers", err)
	inbox := checkReq("GET", "/email/inbox", secrets["svc"], nil)
	var resp *authv3.CheckResponse
	eventually(t, "the change to reach the cache", func() bool {
		var got outcome
		got, resp = call(t, c, inbox)
		return got.status == 200 && len(resp.GetOkResponse().GetResponseHeadersToAdd()) == 1
	})
	if h := resp.GetOkResponse().GetResponseHeadersToAdd()[0].GetHeader(); h.GetKey() != "x-tier" || h.GetValue() != "gold" {
		t.Fatalf("response headers %v, want only x-tier: gold", resp.GetOkResponse().GetResponseHeadersToAdd())
	}
	wantAccount(t, "service key", resp, "acct-test")
	// The server's stderr is read by another goroutine: its lines arrive
	// a little after the decision that followed them.
	for _, name := range []string{"set-cookie", "x-envoy-auth-headers-to-remove", "x-keygate-tenant"} {
		eventually(t, "a log line naming dropped header "+name, func() bool {
			return strings.Contains(srv.Logs(), `"header":"`+name+`"`)
		})
	}
	if strings.Contains(srv.Logs(), "session=attacker") {
		t.Error("a dropped header's value was logged")
	}
	eventually(t, "the dropped headers to be counted", func() bool {
		_, metrics := httpGet(t, "http://"+srv.adminAddr+"/metrics")
		for _, line := range strings.Split(metrics, "\n") {
			if v, ok := strings.CutPrefix(line, "keygate_response_headers_dropped_total "); ok && v != "0" {
				return true
			}
		}
		return false
	})

	// The HTTP mode drops them too, and names the account.
	req, err := http.NewRequest("GET", "http://"+listenerAddr(t, srv, "http")+"/email/inbox", nil)
	mustOK(t, "request", err)
	req.Header.Set("X-Api-Key", secrets["svc"])
	hresp, err := http.DefaultClient.Do(req)
	mustOK(t, "HTTP check", err)
	hresp.Body.Close()
	if hresp.StatusCode != 200 || hresp.Header.Get("Set-Cookie") != "" || hresp.Header.Get("X-Tier") != "gold" ||
		hresp.Header.Get("X-Envoy-Auth-Headers-To-Remove") != "x-api-key" || hresp.Header.Get("X-Keygate-Account-Id") != "acct-test" {
		t.Fatalf("HTTP mode: %d %v", hresp.StatusCode, hresp.Header)
	}

	// The app key names the account too (gRPC).
	got, aresp := call(t, c, grpcCheckReq(secrets["app"], nil))
	if got.status != 200 {
		t.Fatalf("app key: %+v", got)
	}
	wantAccount(t, "app key", aresp, "acct-test")

	// Deactivating the key leaves its stored headers alone and goes
	// through; the key is then denied.
	off := false
	_, err = api.UpdateKey(api.ctx(t), &accountv1.UpdateKeyRequest{Id: "k-svc", Active: &off})
	mustOK(t, "deactivate a key with stored bad headers", err)
	waitOutcome(t, c, inbox, 401, 10*time.Second)
}
