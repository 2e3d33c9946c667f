package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/logbuf"
)

// TestNginx puts a real nginx with auth_request in front of a test
// upstream and keygate's HTTP mode (the real binary, keys-file mode), all
// on 127.0.0.1, and checks every outcome as a client of nginx sees it.
func TestNginx(t *testing.T) {
	nginx := nginxBinary(t)
	dir := t.TempDir()
	svc, svcHash := newKey(t, "service")
	app, appHash := newKey(t, "app")
	ro, roHash := newKey(t, "service")
	expired, expiredHash := newKey(t, "service")
	local, localHash := newKey(t, "service")
	office, officeHash := newKey(t, "service")
	revoked, revokedHash := newKey(t, "service")
	unknown, _ := newKey(t, "service")

	keys := []keyEntry{
		{"k-svc", "service", svcHash, "    response_headers:\n      - {name: x-tier, value: gold}\n      - {name: x-who, value: \"${key.name} ${operation}\"}\n"},
		{"k-app", "app", appHash, ""},
		{"k-ro", "service", roHash, "    scope: \"email-api !email-api:mutation:sendEmail\"\n"},
		{"k-expired", "service", expiredHash, "    expires_at: 2020-01-01T00:00:00Z\n"},
		{"k-local", "service", localHash, "    ip_filters: [\"127.0.0.0/8\"]\n"},
		{"k-office", "service", officeHash, "    ip_filters: [\"10.0.0.0/8\"]\n"},
		{"k-revoked", "service", revokedHash, ""},
	}
	keysFile := filepath.Join(dir, "keys.yaml")
	routesFile := filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML(keys...))
	writeFile(t, routesFile, nginxRoutesYAML)

	// nginx sets X-Forwarded-For to its peer: one trusted hop.
	srv := startServe(t, []string{"authz", "admin", "http"}, "--keys-file", keysFile, "--routes-file", routesFile,
		"--http-authz-addr", "127.0.0.1:0", "--xff-trusted-hops", "1")
	httpAddr := listenerAddr(t, srv, "http")
	upstream := newEchoUpstream(t)
	px := startNginx(t, nginx, httpAddr, upstream.addr())
	c := newNginxClient(t, px)

	t.Run("valid key reaches upstream with identity headers and without the key", func(t *testing.T) {
		before := upstream.hits.Load()
		res := c.do(t, "GET", "/email/inbox?page=2", svc, map[string]string{
			"X-Keygate-Tenant-Id": "forged", "X-Keygate-Key-Id": "forged", "X-Keygate-Account-Id": "forged"})
		if res.status != 200 {
			t.Fatalf("got %d %s", res.status, res.body)
		}
		got := res.echo(t)
		if got.URI != "/email/inbox?page=2" || got.Method != "GET" || upstream.hits.Load() != before+1 {
			t.Fatalf("upstream saw %s %s", got.Method, got.URI)
		}
		for name, want := range map[string]string{
			"X-Keygate-Key-Id": "k-svc", "X-Keygate-Key-Name": "k-svc-name", "X-Keygate-App-Id": "billing",
			"X-Keygate-Tenant-Id": "acme", "X-Keygate-Account-Id": "default",
		} {
			if v := got.Header.Values(name); len(v) != 1 || v[0] != want {
				t.Errorf("upstream %s = %q, want %q", name, v, want)
			}
		}
		for _, name := range []string{"X-Api-Key", extauthz.DenyBodyHeader, extauthz.HeadersToRemoveHeader} {
			if v := got.Header.Values(name); len(v) != 0 {
				t.Errorf("upstream received %s: %q", name, v)
			}
		}
		// The key's response headers reach the client.
		if res.header.Get("X-Tier") != "gold" || res.header.Get("X-Who") != "k-svc-name listEmails" {
			t.Errorf("response headers: x-tier %q, x-who %q", res.header.Get("X-Tier"), res.header.Get("X-Who"))
		}
	})

	t.Run("app key: a forged tenant header is removed", func(t *testing.T) {
		res := c.do(t, "GET", "/users", app, map[string]string{"X-Keygate-Tenant-Id": "forged"})
		if res.status != 200 {
			t.Fatalf("got %d %s", res.status, res.body)
		}
		got := res.echo(t)
		if v, ok := got.Header["X-Keygate-Tenant-Id"]; ok {
			t.Fatalf("upstream received a tenant for an app key: %q", v)
		}
		if got.Header.Get("X-Keygate-Key-Id") != "k-app" || got.Header.Get("X-Keygate-App-Id") != "billing" || got.Header.Get("X-Api-Key") != "" {
			t.Fatalf("upstream headers %v", got.Header)
		}
	})

	t.Run("request body reaches upstream, not keygate", func(t *testing.T) {
		body := strings.Repeat("x", 2<<20) // beyond keygate's 1 MiB body limit
		res := c.doBody(t, "POST", "/email/send", svc, nil, body)
		if res.status != 200 {
			t.Fatalf("got %d %s", res.status, res.body)
		}
		if got := res.echo(t); got.BodyLen != len(body) || got.Method != "POST" {
			t.Fatalf("upstream saw %s with %d bytes", got.Method, got.BodyLen)
		}
	})

	denials := []struct {
		name, method, path, key string
		extra                   map[string]string
		status                  int
		reason                  string
	}{
		{"missing key", "GET", "/email/inbox", "", nil, 401, "missing_key"},
		{"malformed key", "GET", "/email/inbox", "kg_sak_nope", nil, 401, "malformed_key"},
		{"unknown key", "GET", "/email/inbox", unknown, nil, 401, "unknown_key"},
		{"expired key", "GET", "/email/inbox", expired, nil, 401, "expired_key"},
		{"out of scope", "POST", "/email/send", ro, nil, 403, "scope_denied"},
		{"wrong key type", "GET", "/users", svc, nil, 403, "wrong_key_type"},
		{"unknown route", "GET", "/nowhere", svc, nil, 403, "unknown_route"},
		{"IP filter outside nginx's client", "GET", "/email/inbox", office, nil, 403, "ip_not_allowed"},
		{"forged X-Forwarded-For is not the client", "GET", "/email/inbox", office,
			map[string]string{"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3"}, 403, "ip_not_allowed"},
		{"forged forwarded method and target are not the request", "POST", "/email/send", ro,
			map[string]string{"X-Forwarded-Uri": "/email/inbox", "X-Forwarded-Method": "GET",
				"X-Original-URI": "/email/inbox", "X-Original-Method": "GET"}, 403, "scope_denied"},
	}
	for _, tc := range denials {
		t.Run(tc.name, func(t *testing.T) {
			before := upstream.hits.Load()
			res := c.do(t, tc.method, tc.path, tc.key, tc.extra)
			res.wantDeny(t, tc.status, tc.reason)
			if upstream.hits.Load() != before {
				t.Fatal("a denied request reached the upstream")
			}
		})
	}

	t.Run("IP filter matching nginx's client", func(t *testing.T) {
		if res := c.do(t, "GET", "/email/inbox", local, map[string]string{"X-Forwarded-For": "10.1.2.3"}); res.status != 200 {
			t.Fatalf("got %d %s", res.status, res.body)
		}
	})

	t.Run("a key revoked while nginx runs stops working", func(t *testing.T) {
		if res := c.do(t, "GET", "/email/inbox", revoked, nil); res.status != 200 {
			t.Fatalf("before revocation: %d %s", res.status, res.body)
		}
		writeFile(t, keysFile, keysYAML(keys[:len(keys)-1]...))
		eventually(t, "the revoked key to be refused through nginx", func() bool {
			return c.do(t, "GET", "/email/inbox", revoked, nil).status == 401
		})
		c.do(t, "GET", "/email/inbox", revoked, nil).wantDeny(t, 401, "unknown_key")
		if res := c.do(t, "GET", "/email/inbox", svc, nil); res.status != 200 {
			t.Fatalf("other keys after the reload: %d %s", res.status, res.body)
		}
	})
}

// TestNginxOtherStatuses checks the error_page mapping for the statuses
// auth_request cannot pass on (it answers anything but 2xx, 401 and 403
// with 500): keygate's 503 and 400 reach the client with their JSON body
// and retry-after, and an unreachable keygate is a 503. The keys-file
// store never fails, so this keygate is the HTTP handler in process over
// a store that does.
func TestNginxOtherStatuses(t *testing.T) {
	nginx := nginxBinary(t)
	hasher := apikey.NewHasher(nil)
	good, down := mustGenerate(t), mustGenerate(t)
	k, err := authz.Compile(authz.KeySpec{ID: "k-1", Name: "k-1", Type: authz.KeyTypeService, AppID: "billing", TenantID: "acme",
		Hash: hasher.HashString(good), Active: true}, authz.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := &flakyStore{key: k, down: hasher.Sum(down)}
	engine := &authz.Engine{Keys: store, Routes: graphQLRouter{}, Hasher: hasher}
	h := extauthz.NewHTTPHandler(engine, extauthz.Config{XFFTrustedHops: 1}, nil, nil)
	keygate := httptest.NewServer(h)
	t.Cleanup(keygate.Close)
	upstream := newEchoUpstream(t)
	c := newNginxClient(t, startNginx(t, nginx, strings.TrimPrefix(keygate.URL, "http://"), upstream.addr()))

	t.Run("503 store_unavailable with retry-after", func(t *testing.T) {
		res := c.do(t, "GET", "/email/inbox", down, nil)
		res.wantDeny(t, 503, "store_unavailable")
		if res.header.Get("Retry-After") != "1" {
			t.Fatalf("retry-after %q", res.header.Get("Retry-After"))
		}
	})
	t.Run("400 with the routing detail", func(t *testing.T) {
		res := c.do(t, "GET", "/graphql", good, nil)
		res.wantDeny(t, 400, "invalid_graphql")
		var body struct{ Error string }
		_ = json.Unmarshal([]byte(res.body), &body)
		if body.Error != "unexpected “ü” in the query" {
			t.Fatalf("error %q", body.Error)
		}
	})
	t.Run("allow still passes", func(t *testing.T) {
		if res := c.do(t, "GET", "/email/inbox", good, nil); res.status != 200 || res.echo(t).Header.Get("X-Keygate-Key-Id") != "k-1" {
			t.Fatalf("got %d %s", res.status, res.body)
		}
	})
	t.Run("keygate unreachable: 503, never an allow", func(t *testing.T) {
		closed := freeAddr(t)
		c := newNginxClient(t, startNginx(t, nginx, closed, upstream.addr()))
		res := c.do(t, "GET", "/email/inbox", good, nil)
		if res.status != 503 || res.header.Get("Content-Type") != "application/json" ||
			res.body != `{"error":"the authorization service is unavailable"}` {
			t.Fatalf("got %d %q %s", res.status, res.header.Get("Content-Type"), res.body)
		}
	})
}

const nginxRoutesYAML = `services:
  - name: email-api
    key_types: [service]
    routes:
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {path: /email/send, methods: [POST], kind: mutation, operation: sendEmail}
  - name: users-api
    key_types: [app]
    routes:
      - {path: /users, methods: [GET], kind: query, operation: listUsers}
`

// nginxConf is the configuration of docs/http-mode.md around a test
// server: everything nginx writes is under the temporary directory.
// {{...}} are filled by startNginx.
const nginxConf = `{{user}}
daemon off;
master_process off;
worker_processes 1;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log notice;

events {
    worker_connections 256;
}

http {
    access_log {{dir}}/access.log;
    client_body_temp_path {{dir}}/client_body;
    proxy_temp_path {{dir}}/proxy;
    fastcgi_temp_path {{dir}}/fastcgi;
    uwsgi_temp_path {{dir}}/uwsgi;
    scgi_temp_path {{dir}}/scgi;
    client_max_body_size 8m;

    upstream keygate {
        server {{keygate}};
        keepalive 16;
    }
    upstream app {
        server {{app}};
    }

    server {
        listen {{listen}};

{{protect}}
        location / {
            include {{dir}}/keygate-protect.conf;
            proxy_pass http://app;
        }
    }
}
`

func listenerAddr(t testing.TB, s *server, name string) string {
	t.Helper()
	for _, line := range strings.Split(s.Logs(), "\n") {
		var rec struct{ Msg, Listener, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Listener == name {
			return rec.Addr
		}
	}
	t.Fatalf("keygate logged no %q listener\n%s", name, s.Logs())
	return ""
}

// nginxBinary finds nginx; a missing nginx fails the test, never skips it.
func nginxBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatal("nginx not found: install nginx (apt-get install nginx-light) or run .ci/run")
	return ""
}

// runningNginx is an nginx started by startNginx.
type runningNginx struct {
	addr string
	dir  string
}

// startNginx writes the configuration into a temporary directory and runs
// nginx in the foreground (one process, no daemon) until the test ends.
func startNginx(t testing.TB, bin, keygateAddr, appAddr string) *runningNginx {
	t.Helper()
	dir := t.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		// Directories nginx creates belong to its user; as root, stay root
		// (the temporary directory is not open to nobody).
		user = "user root;"
	}
	if err := os.WriteFile(filepath.Join(dir, "keygate-protect.conf"), []byte(nginxProtect), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		listen := freeAddr(t)
		conf := strings.NewReplacer("{{user}}", user, "{{dir}}", dir, "{{keygate}}", keygateAddr, "{{app}}", appAddr,
			"{{listen}}", listen, "{{protect}}", indent(nginxAuthLocations, "        ")).Replace(nginxConf)
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-t", "-p", dir, "-c", confPath).CombinedOutput(); err != nil {
			t.Fatalf("nginx -t: %v\n%s\n%s", err, out, conf)
		}
		cmd := exec.Command(bin, "-p", dir, "-c", confPath)
		var stderr logbuf.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if err := waitListening(listen, done); err != nil {
			logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			if attempt < 3 && strings.Contains(string(logs)+stderr.String(), "Address already in use") {
				continue // the free port was taken meanwhile
			}
			t.Fatalf("nginx did not start: %v\n%s%s", err, stderr.String(), logs)
		}
		t.Cleanup(func() {
			// SIGQUIT: graceful shutdown; kill if it hangs.
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				t.Logf("nginx error.log:\n%s", logs)
			}
		})
		return &runningNginx{addr: listen, dir: dir}
	}
}

func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("nginx exited: %v", err)
		default:
		}
		if conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("not listening after 10s")
}

// freeAddr is a 127.0.0.1 address nothing listens on (at the time).
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// echoUpstream answers every request with what it received, as JSON.
type echoUpstream struct {
	srv  *httptest.Server
	hits atomic.Int64
}

type echoed struct {
	Method  string
	URI     string
	Header  http.Header
	BodyLen int
}

func newEchoUpstream(t testing.TB) *echoUpstream {
	u := &echoUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, URI: r.RequestURI, Header: r.Header, BodyLen: int(n)})
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *echoUpstream) addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

// nginxClient sends requests to nginx, never through a proxy.
type nginxClient struct {
	base   string
	client *http.Client
}

func newNginxClient(t testing.TB, n *runningNginx) *nginxClient {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &nginxClient{base: "http://" + n.addr, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

type nginxResult struct {
	status int
	header http.Header
	body   string
}

func (c *nginxClient) do(t testing.TB, method, path, key string, extra map[string]string) nginxResult {
	t.Helper()
	return c.doBody(t, method, path, key, extra, "")
}

func (c *nginxClient) doBody(t testing.TB, method, path, key string, extra map[string]string, body string) nginxResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "api.example.com"
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s through nginx: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return nginxResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (r nginxResult) echo(t testing.TB) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("not the upstream's answer: %d %s", r.status, r.body)
	}
	return e
}

// wantDeny checks a deny as a client sees it: the status, JSON, the reason,
// and keygate's own message.
func (r nginxResult) wantDeny(t testing.TB, status int, reason string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (%s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content-type %q, body %s", ct, r.body)
	}
	var body struct{ Error, Reason string }
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	if body.Reason != reason || body.Error == "" {
		t.Fatalf("body %s, want reason %q", r.body, reason)
	}
	if reason != "invalid_graphql" {
		var want struct{ Error, Reason string }
		_ = json.Unmarshal([]byte(extauthz.DenyBody(reasonCode(reason), false)), &want)
		if body != want {
			t.Fatalf("body %s, want keygate's %s", r.body, extauthz.DenyBody(reasonCode(reason), false))
		}
	}
	if r.header.Get(extauthz.DenyBodyHeader) != "" {
		t.Fatalf("nginx passed %s on to the client", extauthz.DenyBodyHeader)
	}
}

func reasonCode(code string) authz.Reason {
	for _, r := range authz.Reasons() {
		if r.String() == code {
			return r
		}
	}
	return authz.OK
}

func mustGenerate(t testing.TB) string {
	t.Helper()
	s, err := apikey.Generate(apikey.KindService)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// flakyStore holds one key and fails for one other digest.
type flakyStore struct {
	key  *authz.Key
	down apikey.Digest
}

func (s *flakyStore) LookupKey(_ context.Context, d apikey.Digest) (*authz.Key, error) {
	switch d {
	case s.key.Digest:
		return s.key, nil
	case s.down:
		return nil, errors.New("connection refused")
	}
	return nil, authz.ErrKeyNotFound
}

// graphQLRouter sends /graphql to a refusal with a detail and everything
// else to one service.
type graphQLRouter struct{}

func (graphQLRouter) Resolve(in *authz.RouteInput) (authz.Target, authz.Reason) {
	t := authz.Target{Service: "email-api", Kind: "query", Operation: "listEmails",
		Accepts: authz.KeyTypes(0).With(authz.KeyTypeService)}
	if p, _, _ := strings.Cut(in.Path, "?"); p == "/graphql" {
		t.GraphQL, t.Detail = true, "unexpected “ü” in the query"
		return t, authz.InvalidGraphQL
	}
	return t, authz.OK
}
