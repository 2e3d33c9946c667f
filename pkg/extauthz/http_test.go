package extauthz_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
)

// recordingRouter is the test routes with a GraphQL route, remembering
// what the last request routed on.
type recordingRouter struct {
	mu   sync.Mutex
	last authz.RouteInput
	body int
}

func (r *recordingRouter) Resolve(in *authz.RouteInput) (authz.Target, authz.Reason) {
	r.mu.Lock()
	r.last = *in
	r.last.Body = nil
	r.body = len(in.Body)
	r.mu.Unlock()
	p, _, _ := strings.Cut(in.Path, "?")
	switch p {
	case "/graphql":
		t := authz.Target{Service: "email-api", Kind: "query", Operation: "listEmails", Accepts: services, GraphQL: true}
		switch {
		case in.BodyTruncated:
			t.Detail = "the GraphQL request body is longer than keygate reads"
			return t, authz.InvalidGraphQL
		case bytes.Contains(in.Body, []byte("ü")):
			t.Detail = "unexpected “ü” at 1:3 😀"
			return t, authz.InvalidGraphQL
		}
		return t, authz.OK
	}
	return routes.Resolve(in)
}

// BodyLimit: /graphql reads up to MaxHTTPBody bytes, other routes none.
func (r *recordingRouter) BodyLimit(in *authz.RouteInput) int {
	if p, _, _ := strings.Cut(in.Path, "?"); p == "/graphql" {
		return extauthz.MaxHTTPBody
	}
	return 0
}

func (r *recordingRouter) seen() (authz.RouteInput, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.body
}

// observed records decisions.
type observed struct {
	mu      sync.Mutex
	reasons []authz.Reason
	ctxOK   bool
}

type ctxKey struct{}

func (o *observed) ObserveCheck(ctx context.Context, d *authz.Decision, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reasons = append(o.reasons, d.Reason)
	o.ctxOK = ctx.Value(ctxKey{}) == "request"
}

// httpFixture is the fixture's keys behind the HTTP mode.
type httpFixture struct {
	*fixture
	h      http.Handler
	router *recordingRouter
	obs    *observed
}

func newHTTPFixture(t testing.TB, cfg extauthz.Config) *httpFixture {
	t.Helper()
	f := &httpFixture{fixture: newFixture(t, cfg), router: &recordingRouter{}, obs: &observed{}}
	engine := &authz.Engine{Keys: f.store, Routes: f.router, Hasher: hasher, Now: func() time.Time { return now }}
	var obs extauthz.Observer = f.obs
	if _, bench := t.(*testing.B); bench {
		// Measure the handler, not the test's recorders (as BenchmarkCheck).
		engine.Routes, obs = routes, nil
	}
	f.h = extauthz.NewHTTPHandler(engine, cfg, obs, nil)
	return f
}

// fwd builds a forwarded check request: target is the request's own
// target, headers are set as given (a nil value sends the name twice).
func fwd(method, target string, headers map[string]string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "10.9.9.9:40000" // inside the filtered key's 10/8: must never count
	for k, v := range headers {
		r.Header.Add(k, v)
	}
	return r
}

type answer struct {
	status int
	header http.Header
	body   string
	reason string
	error  string
}

func serve(t testing.TB, h http.Handler, r *http.Request) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	res := rec.Result()
	a := answer{status: res.StatusCode, header: res.Header, body: rec.Body.String()}
	if a.status != 200 {
		var body struct{ Error, Reason string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("deny body %q is not JSON: %v", a.body, err)
		}
		a.reason, a.error = body.Reason, body.Error
	}
	return a
}

func TestHTTPAllowHeaders(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	t.Run("service key", func(t *testing.T) {
		a := serve(t, f.h, fwd("GET", "/_keygate", map[string]string{"X-Original-URI": "/email/read?page=2",
			"X-Api-Key": f.service, "X-Keygate-Tenant-Id": "forged"}))
		if a.status != 200 || a.body != "" {
			t.Fatalf("got %d %q", a.status, a.body)
		}
		for name, want := range map[string]string{
			"X-Keygate-Key-Id": "k-svc", "X-Keygate-Key-Name": "k-svc-name", "X-Keygate-App-Id": "billing",
			"X-Keygate-Tenant-Id": "acme", "X-Keygate-Account-Id": "default",
			extauthz.HeadersToRemoveHeader: "x-api-key",
			"X-Tier":                       "gold", "X-Who": "k-svc-name@acme",
		} {
			if got := a.header.Values(name); len(got) != 1 || got[0] != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		for _, name := range []string{"Content-Type", extauthz.DenyBodyHeader, "Retry-After"} {
			if v := a.header.Get(name); v != "" {
				t.Errorf("allow carries %s: %q", name, v)
			}
		}
	})
	t.Run("app key: tenant header absent and listed to remove", func(t *testing.T) {
		for _, op := range []string{"/users", "/users?page=2"} {
			a := serve(t, f.h, fwd("GET", op, map[string]string{"X-Api-Key": f.app, "X-Keygate-Tenant-Id": "forged"}))
			if a.status != 200 {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			if v, ok := a.header["X-Keygate-Tenant-Id"]; ok {
				t.Fatalf("app key's allow sets the tenant header: %q", v)
			}
			if got := a.header.Get(extauthz.HeadersToRemoveHeader); got != "x-api-key, x-keygate-tenant-id" {
				t.Fatalf("headers to remove = %q", got)
			}
			if got := a.header.Get("X-Op"); got != "users-api/listUsers" {
				t.Fatalf("templated response header = %q", got)
			}
		}
	})
	t.Run("configured names", func(t *testing.T) {
		cfg := extauthz.Config{KeyHeader: "Authorization-Key", Identity: extauthz.IdentityHeaders{TenantID: "x-tenant"}}
		g := newHTTPFixture(t, cfg)
		a := serve(t, g.h, fwd("GET", "/email/read", map[string]string{"Authorization-Key": g.service}))
		if a.status != 200 || a.header.Get("X-Tenant") != "acme" || a.header.Get("X-Keygate-Tenant-Id") != "" {
			t.Fatalf("got %d %v", a.status, a.header)
		}
		if got := a.header.Get(extauthz.HeadersToRemoveHeader); got != "authorization-key" {
			t.Fatalf("headers to remove = %q", got)
		}
	})
}

// TestHTTPSharesKeyPartsWithGRPC runs one key through both adapters, in
// both orders, and an HTTP handler with other header names on the same
// keys: each answers with its own names.
func TestHTTPSharesKeyPartsWithGRPC(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	other := extauthz.NewHTTPHandler(&authz.Engine{Keys: f.store, Routes: routes, Hasher: hasher, Now: func() time.Time { return now }},
		extauthz.Config{Identity: extauthz.IdentityHeaders{KeyID: "x-id"}}, nil, nil)
	for i := 0; i < 2; i++ {
		if resp := check(t, f.srv, request("/email/read", f.service, nil)); resp.GetOkResponse() == nil {
			t.Fatal("gRPC denied")
		}
		if a := serve(t, f.h, fwd("GET", "/email/read", map[string]string{"X-Api-Key": f.service})); a.header.Get("X-Keygate-Key-Id") != "k-svc" {
			t.Fatalf("HTTP answer %d %v", a.status, a.header)
		}
		a := serve(t, other, fwd("GET", "/email/read", map[string]string{"X-Api-Key": f.service}))
		if a.header.Get("X-Id") != "k-svc" || a.header.Get("X-Keygate-Key-Id") != "" {
			t.Fatalf("other names: %v", a.header)
		}
	}
	resp := check(t, f.srv, request("/email/read", f.service, nil))
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "x-id" {
			t.Fatal("the gRPC adapter got the other handler's names")
		}
	}
}

func TestHTTPDenials(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	cases := []struct {
		name   string
		target string
		key    string
		status int
		reason string
	}{
		{"missing", "/email/read", "", 401, "missing_key"},
		{"malformed", "/email/read", "kg_sak_nope", 401, "malformed_key"},
		{"unknown", "/email/read", "an-unknown-custom-key-0001", 401, "unknown_key"},
		{"inactive", "/email/read", f.inactive, 401, "inactive_key"},
		{"expired", "/email/read", f.expired, 401, "expired_key"},
		{"invalid path", "/bad%zz", f.service, 400, "invalid_path"},
		{"unknown route", "/nowhere", f.service, 403, "unknown_route"},
		{"wrong key type", "/users", f.service, 403, "wrong_key_type"},
		{"ip filter without trusted hops", "/email/read", f.filtered, 403, "ip_not_allowed"},
		{"scope", "/email/send", f.scoped, 403, "scope_denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, nginx := range []bool{false, true} {
				h := map[string]string{"X-Forwarded-Uri": tc.target}
				if nginx {
					h = map[string]string{"X-Original-URI": tc.target}
				}
				if tc.key != "" {
					h["X-Api-Key"] = tc.key
				}
				a := serve(t, f.h, fwd("GET", "/", h))
				if a.status != tc.status || a.reason != tc.reason {
					t.Fatalf("got %d %q, want %d %q", a.status, a.reason, tc.status, tc.reason)
				}
				if want := extauthz.DenyBody(reasonByCode(tc.reason), false); a.body != want {
					t.Fatalf("body %s, want %s", a.body, want)
				}
				// The gRPC adapter answers the same request with the same body
				// (its client IP is Envoy's peer, inside the filter).
				if d := check(t, f.srv, request(tc.target, tc.key, nil)).GetDeniedResponse(); d != nil && d.GetBody() != a.body {
					t.Fatalf("body %s, gRPC mode answers %s", a.body, d.GetBody())
				}
				if ct := a.header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("content-type %q", ct)
				}
				if a.header.Get("Retry-After") != "" {
					t.Fatal("retry-after on a deny that is not 503")
				}
				if got := a.header.Get(extauthz.DenyBodyHeader); (got != "") != nginx || (nginx && got != a.body) {
					t.Fatalf("nginx convention %v: %s = %q", nginx, extauthz.DenyBodyHeader, got)
				}
				for _, name := range []string{"X-Keygate-Key-Id", extauthz.HeadersToRemoveHeader} {
					if a.header.Get(name) != "" {
						t.Fatalf("deny carries %s", name)
					}
				}
			}
		})
	}
	t.Run("store unavailable: 503 with retry-after", func(t *testing.T) {
		f.store.err = errors.New("connection refused")
		defer func() { f.store.err = nil }()
		a := serve(t, f.h, fwd("GET", "/email/read", map[string]string{"X-Api-Key": f.service, "X-Original-URI": "/email/read"}))
		if a.status != 503 || a.reason != "store_unavailable" || a.header.Get("Retry-After") != "1" {
			t.Fatalf("got %d %q retry-after %q", a.status, a.reason, a.header.Get("Retry-After"))
		}
		if a.header.Get(extauthz.DenyBodyHeader) != a.body {
			t.Fatal("the nginx body header differs from the body")
		}
	})
	t.Run("cancelled request is never allowed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := fwd("GET", "/email/read", map[string]string{"X-Api-Key": f.service}).WithContext(ctx)
		if a := serve(t, f.h, r); a.status == 200 {
			t.Fatal("allowed a cancelled request")
		}
	})
	t.Run("observer sees every decision with the request context", func(t *testing.T) {
		g := newHTTPFixture(t, extauthz.Config{})
		for _, key := range []string{"", g.service} {
			r := fwd("GET", "/email/read", map[string]string{"X-Api-Key": key})
			serve(t, g.h, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "request")))
		}
		g.obs.mu.Lock()
		defer g.obs.mu.Unlock()
		if len(g.obs.reasons) != 2 || g.obs.reasons[0] != authz.MalformedKey || g.obs.reasons[1] != authz.OK || !g.obs.ctxOK {
			t.Fatalf("observed %v (context passed: %v)", g.obs.reasons, g.obs.ctxOK)
		}
	})
}

func TestHTTPDenyBodyHeaderIsASCII(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	r := fwd("POST", "/_keygate", map[string]string{"X-Api-Key": f.service, "X-Original-URI": "/graphql", "X-Original-Method": "POST"})
	r.Body = io.NopCloser(strings.NewReader(`{"query":"{ü}"}`))
	a := serve(t, f.h, r)
	if a.status != 400 || a.reason != "invalid_graphql" || a.error != "unexpected “ü” at 1:3 😀" {
		t.Fatalf("got %d %s", a.status, a.body)
	}
	hv := a.header.Get(extauthz.DenyBodyHeader)
	for i := 0; i < len(hv); i++ {
		if hv[i] < 0x20 || hv[i] > 0x7e {
			t.Fatalf("header value has byte %#x: %q", hv[i], hv)
		}
	}
	var fromHeader, fromBody any
	if err := json.Unmarshal([]byte(hv), &fromHeader); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(a.body), &fromBody)
	if x, _ := json.Marshal(fromHeader); string(x) != a.body {
		t.Fatalf("header %s decodes to %s, body is %s", hv, x, a.body)
	}
}

// countingReader counts the reads of a body.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// reasonByCode finds a reason by its code.
func reasonByCode(code string) authz.Reason {
	for _, r := range authz.Reasons() {
		if r.String() == code {
			return r
		}
	}
	return authz.OK
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestHTTPGenericKeyErrors(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{GenericKeyErrors: true})
	for _, key := range []string{"", "kg_sak_nope", f.expired, f.inactive, "an-unknown-custom-key-0001"} {
		a := serve(t, f.h, fwd("GET", "/_keygate", map[string]string{"X-Api-Key": key, "X-Original-URI": "/email/read"}))
		if a.status != 401 || a.reason != "" || a.error != "the API key is missing or not valid" {
			t.Errorf("key failure answered %d %s", a.status, a.body)
		}
		if a.header.Get(extauthz.DenyBodyHeader) != a.body {
			t.Errorf("nginx body header %q differs from the body", a.header.Get(extauthz.DenyBodyHeader))
		}
	}
	if a := serve(t, f.h, fwd("GET", "/nowhere", map[string]string{"X-Api-Key": f.service})); a.reason != "unknown_route" {
		t.Errorf("route failures keep their reason, got %q", a.reason)
	}
}

// TestHTTPSharedValuesUnderConcurrency runs many checks at once, then
// appends to each answer's headers as a wrapper might, so that -race sees
// any write to a value slice shared between responses.
func TestHTTPSharedValuesUnderConcurrency(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	reqs := []map[string]string{
		{"X-Api-Key": f.service, "X-Original-URI": "/email/read"},
		{"X-Api-Key": f.app, "X-Original-URI": "/users"},
		{"X-Original-URI": "/email/read"},
		{"X-Api-Key": f.scoped, "X-Original-URI": "/email/send"},
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				rec := httptest.NewRecorder()
				f.h.ServeHTTP(rec, fwd("GET", "/", reqs[(g+i)%len(reqs)]))
				for name := range rec.Header() {
					rec.Header().Add(name, "appended")
				}
			}
		}(g)
	}
	wg.Wait()
	a := serve(t, f.h, fwd("GET", "/", reqs[0]))
	if got := a.header.Values("X-Keygate-Key-Id"); len(got) != 1 || got[0] != "k-svc" {
		t.Fatalf("shared values were changed: %q", got)
	}
	if a := serve(t, f.h, fwd("GET", "/", reqs[2])); len(a.header.Values("Content-Type")) != 1 {
		t.Fatalf("shared deny values were changed: %q", a.header.Values("Content-Type"))
	}
}

// TestHTTPOverLoopback is the handler in a real http.Server, as the
// proxies call it.
func TestHTTPOverLoopback(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{XFFTrustedHops: 1})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/_keygate", nil)
	req.Header.Set("X-Original-URI", "/email/read")
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Forwarded-For", "10.0.0.7")
	req.Header.Set("x-api-key", f.filtered)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Keygate-Key-Id") != "k-filtered" {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
	req.Header.Del("x-api-key")
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" ||
		string(body) != `{"error":"an API key is required","reason":"missing_key"}` ||
		resp.Header.Get(extauthz.DenyBodyHeader) != string(body) {
		t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

func FuzzHTTPCheck(f *testing.F) {
	fx := newHTTPFixture(f, extauthz.Config{XFFTrustedHops: 1, KeyQueryParam: "k"})
	f.Add("GET", "/email/read", "", "", "api.example.com", fx.service, "10.0.0.1", "")
	f.Add("POST", "/", "/email/send?k=x&k=y", "GET", "", "", "", `{"query":"{a}"}`)
	f.Add("", "/_keygate", "/%zz/../..//", "\x00", "[::1]:80, a", "kg_sak_", "::1%lo", "")
	f.Add("HEAD", "*", "http://x/y", "GÉT", "\xff", "\x00\x7f", "a,b,c", "\xff")
	f.Add("GET", "/graphql", "", "", "", fx.service, "", strings.Repeat("ü", 100))
	f.Fuzz(func(t *testing.T, method, target, fwdURI, fwdMethod, host, key, xff, body string) {
		u, err := url.Parse(target)
		if err != nil {
			u = &url.URL{Path: "/"}
		}
		r := &http.Request{Method: method, URL: u, RequestURI: target, Host: host, Header: http.Header{},
			Body: io.NopCloser(strings.NewReader(body)), RemoteAddr: "10.0.0.1:1"}
		r = r.WithContext(context.Background())
		r.Header["X-Forwarded-Uri"] = []string{fwdURI}
		r.Header["X-Original-Method"] = []string{fwdMethod}
		r.Header["X-Forwarded-Host"] = []string{host}
		r.Header["X-Api-Key"] = []string{key}
		r.Header["X-Forwarded-For"] = []string{xff}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, r)
		switch rec.Code {
		case 200:
			if key != fx.service && !strings.Contains(fwdURI+target, "k=") {
				t.Fatalf("allowed without the right key")
			}
			if rec.Body.Len() != 0 {
				t.Fatal("allow with a body")
			}
		case 400, 401, 403, 503:
			if !json.Valid(rec.Body.Bytes()) || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("deny body %q", rec.Body.String())
			}
			if len(key) >= 4 && strings.Contains(rec.Body.String(), key) {
				t.Fatal("deny body echoes the key")
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
		for name, vs := range rec.Header() {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header %s has a control character: %q", name, v)
				}
			}
		}
	})
}

// discardWriter is a ResponseWriter that keeps one header map, cleared per
// request, so that the benchmark measures the handler alone.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkHTTPCheck is the HTTP mode on a cache hit: an nginx-style
// forwarded request in, the allow's headers out.
func BenchmarkHTTPCheck(b *testing.B) {
	for _, bc := range []struct {
		name string
		key  func(*httpFixture) string
		want int
	}{
		{"allow", func(f *httpFixture) string { return f.service }, 200},
		{"deny", func(*httpFixture) string { return "an-unknown-custom-key-0001" }, 401},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newHTTPFixture(b, extauthz.Config{XFFTrustedHops: 1})
			r := fwd("GET", "/_keygate", map[string]string{"X-Original-URI": "/email/read?page=2", "X-Original-Method": "GET",
				"X-Forwarded-Host": "api.example.com", "X-Forwarded-For": "192.0.2.7", "X-Api-Key": bc.key(f)})
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				f.h.ServeHTTP(w, r)
				if w.status != bc.want {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
	b.Run("loopback", func(b *testing.B) {
		f := newHTTPFixture(b, extauthz.Config{XFFTrustedHops: 1})
		srv := httptest.NewServer(f.h)
		defer srv.Close()
		client := srv.Client()
		req, _ := http.NewRequest("GET", srv.URL+"/_keygate", nil)
		req.Header = http.Header{"X-Original-Uri": {"/email/read?page=2"}, "X-Original-Method": {"GET"},
			"X-Forwarded-For": {"192.0.2.7"}, "X-Api-Key": {f.service}}
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("%v %v", resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
