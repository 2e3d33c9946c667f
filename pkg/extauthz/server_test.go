package extauthz_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

type mapStore struct {
	keys map[apikey.Digest]*authz.Key
	err  error
}

func (s *mapStore) LookupKey(_ context.Context, d apikey.Digest) (*authz.Key, error) {
	if s.err != nil {
		return nil, s.err
	}
	if k, ok := s.keys[d]; ok {
		return k, nil
	}
	return nil, authz.ErrKeyNotFound
}

// pathRouter routes by exact path, enough to exercise the adapter.
type pathRouter map[string]authz.Target

func (r pathRouter) Resolve(in *authz.RouteInput) (authz.Target, authz.Reason) {
	if in.Path == "/bad%zz" {
		return authz.Target{}, authz.InvalidPath
	}
	if in.MethodOverridden {
		return authz.Target{}, authz.InvalidRequest
	}
	p, _, _ := strings.Cut(in.Path, "?")
	if t, ok := r[p]; ok {
		return t, authz.OK
	}
	return authz.Target{}, authz.UnknownRoute
}

var (
	hasher   = apikey.NewHasher(nil)
	now      = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	services = authz.KeyTypes(0).With(authz.KeyTypeService)
	apps     = authz.KeyTypes(0).With(authz.KeyTypeApp)
	routes   = pathRouter{
		"/email/read": {Service: "email-api", Kind: "query", Operation: "listEmails", Accepts: services},
		"/email/send": {Service: "email-api", Kind: "mutation", Operation: "sendEmail", Accepts: services},
		"/users":      {Service: "users-api", Kind: "query", Operation: "listUsers", Accepts: apps},
	}
)

// fixture is a server with one key of each kind of interest.
type fixture struct {
	srv                       *extauthz.Server
	store                     *mapStore
	service, app, inactive    string
	expired, filtered, scoped string
}

func newFixture(t testing.TB, cfg extauthz.Config) *fixture {
	t.Helper()
	f := &fixture{store: &mapStore{keys: map[apikey.Digest]*authz.Key{}}}
	cfg = cfg.WithDefaults()
	add := func(kind apikey.Kind, spec authz.KeySpec) string {
		secret, err := apikey.Generate(kind)
		if err != nil {
			t.Fatal(err)
		}
		spec.Hash = hasher.HashString(secret)
		spec.AccountID = "default"
		k, err := authz.Compile(spec, authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders()})
		if err != nil {
			t.Fatal(err)
		}
		f.store.keys[k.Digest] = k
		return secret
	}
	svc := func(id string) authz.KeySpec {
		return authz.KeySpec{ID: id, Name: id + "-name", Type: authz.KeyTypeService, AppID: "billing", AppName: "Billing",
			TenantID: "acme", TenantName: "ACME Corp", Active: true}
	}
	s := svc("k-svc")
	s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-tier", Value: "gold"}, {Name: "x-who", Value: "${key.name}@${tenant.id}"}}
	f.service = add(apikey.KindService, s)
	f.app = add(apikey.KindApp, authz.KeySpec{ID: "k-app", Name: "billing-app", Type: authz.KeyTypeApp, AppID: "billing",
		AppName: "Billing", Active: true,
		ResponseHeaders: []authz.HeaderSpec{{Name: "x-op", Value: "${service}/${operation}"}}})
	s = svc("k-inactive")
	s.Active = false
	f.inactive = add(apikey.KindService, s)
	s = svc("k-expired")
	s.ExpiresAt = now.Add(-time.Hour)
	f.expired = add(apikey.KindService, s)
	s = svc("k-filtered")
	s.IPFilters = []string{"10.0.0.0/8"}
	f.filtered = add(apikey.KindService, s)
	s = svc("k-scoped")
	s.Scope = "email-api !email-api:mutation:sendEmail"
	f.scoped = add(apikey.KindService, s)
	engine := &authz.Engine{Keys: f.store, Routes: routes, Hasher: hasher, Now: func() time.Time { return now },
		Counts: authz.NewUsageCounter(0), WeakSecrets: ignoreWeakSecrets{}} // usage counting and the weak-secret check on, as serve runs them
	f.srv = extauthz.NewServer(engine, cfg, nil, nil)
	return f
}

// request builds a CheckRequest the way Envoy sends one.
func request(path, key string, extra map[string]string) *authv3.CheckRequest {
	headers := map[string]string{":path": path, "content-type": "application/json"}
	if key != "" {
		headers["x-api-key"] = key
	}
	for k, v := range extra {
		headers[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Host: "api.example.com", Path: path, Headers: headers,
		}},
	}}
}

func check(t testing.TB, srv *extauthz.Server, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	resp, err := srv.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check returned an error: %v", err)
	}
	sameOverWire(t, srv, req, resp)
	return resp
}

// sameOverWire checks that the gRPC path (keygate's own decoding, the
// encoded answers) gives the answer Check gave.
func sameOverWire(t testing.TB, srv *extauthz.Server, req *authv3.CheckRequest, want *authv3.CheckResponse) {
	t.Helper()
	if _, err := proto.Marshal(req); err != nil {
		// A Go client cannot send it (a string that is not UTF-8); what
		// keygate does with such bytes from elsewhere is FuzzWireRequest's.
		return
	}
	got, err := extauthz.CheckWire(srv, context.Background(), req)
	if err != nil {
		t.Fatalf("over the wire: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("over the wire the answer differs:\n got %v\nwant %v", got, want)
	}
}

// golden compares resp with testdata/golden/name.json (rewritten by -update).
// protojson's spacing is deliberately unstable, so the JSON is re-indented.
func golden(t *testing.T, name string, resp *authv3.CheckResponse) {
	t.Helper()
	raw, err := protojson.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(v, "", "  ")
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/extauthz -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGoldenResponses(t *testing.T) {
	f := newFixture(t, extauthz.Config{})
	cases := []struct {
		name string
		req  *authv3.CheckRequest
	}{
		{"allow_service_key", request("/email/read?page=2", f.service, map[string]string{"x-keygate-tenant-id": "forged"})},
		{"allow_app_key", request("/users", f.app, nil)},
		{"deny_missing_key", request("/email/read", "", nil)},
		{"deny_malformed_key", request("/email/read", "kg_sak_nope", nil)},
		{"deny_unknown_key", request("/email/read", "an-unknown-custom-key-0001", nil)},
		{"deny_inactive_key", request("/email/read", f.inactive, nil)},
		{"deny_expired_key", request("/email/read", f.expired, nil)},
		{"deny_invalid_path", request("/bad%zz", f.service, nil)},
		{"deny_unknown_route", request("/nowhere", f.service, nil)},
		{"deny_wrong_key_type", request("/users", f.service, nil)},
		{"deny_scope_denied", request("/email/send", f.scoped, nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, tc.name, check(t, f.srv, tc.req))
		})
	}
	t.Run("deny_store_unavailable", func(t *testing.T) {
		f.store.err = errors.New("connection refused")
		defer func() { f.store.err = nil }()
		golden(t, "deny_store_unavailable", check(t, f.srv, request("/email/read", f.service, nil)))
	})
}

// denyReason reads the reason code out of a deny body ("" for an allow).
func denyReason(t testing.TB, resp *authv3.CheckResponse) (int, string) {
	t.Helper()
	d := resp.GetDeniedResponse()
	if d == nil {
		if resp.GetOkResponse() == nil {
			t.Fatal("response is neither ok nor denied")
		}
		return 200, ""
	}
	var body struct{ Error, Reason string }
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil {
		t.Fatalf("deny body %q: %v", d.GetBody(), err)
	}
	return int(d.GetStatus().GetCode()), body.Reason
}

func TestCheckRequestShapes(t *testing.T) {
	f := newFixture(t, extauthz.Config{})
	raw := request("/email/read", "", nil)
	raw.Attributes.Request.Http.Headers = nil
	raw.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":path", RawValue: []byte("/email/read")},
		{Key: "X-Api-Key", RawValue: []byte(f.service)},
	}}
	twoInMap := request("/email/read", "", nil)
	twoInMap.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "x-api-key", Value: f.service}, {Key: "x-api-key", Value: f.service},
	}}
	overrideInMap := request("/email/read", f.service, nil)
	overrideInMap.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "X-HTTP-Method-Override", RawValue: []byte("DELETE")},
	}}
	sameInMap := request("/email/read", f.service, nil)
	sameInMap.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "x-http-method", Value: "get"},
	}}
	cases := []struct {
		name       string
		req        *authv3.CheckRequest
		wantStatus int
		wantReason string
	}{
		{"header_map with raw_value", raw, 200, ""},
		{"method override naming another method", request("/email/read", f.service, map[string]string{"x-http-method-override": "DELETE"}), 400, "invalid_request"},
		{"x-http-method naming another method", request("/email/read", f.service, map[string]string{"x-http-method": "POST"}), 400, "invalid_request"},
		{"x-method-override naming another method", request("/email/read", f.service, map[string]string{"x-method-override": "PUT"}), 400, "invalid_request"},
		{"method override among joined values", request("/email/read", f.service, map[string]string{"x-http-method-override": "GET,DELETE"}), 400, "invalid_request"},
		{"method override in header_map", overrideInMap, 400, "invalid_request"},
		{"method override naming the method itself", request("/email/read", f.service, map[string]string{"x-http-method-override": "GET"}), 200, ""},
		{"method override naming the method in lower case", sameInMap, 200, ""},
		{"two values in header_map", twoInMap, 401, "malformed_key"},
		{"comma-joined values", request("/email/read", f.service+","+f.service, nil), 401, "malformed_key"},
		{"present but empty", request("/email/read", "", map[string]string{"x-api-key": ""}), 401, "malformed_key"},
		{"empty CheckRequest", &authv3.CheckRequest{}, 401, "missing_key"},
		{"no http attributes", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}, 401, "missing_key"},
		{"non-UTF-8 key", request("/email/read", "\xff\xfe-not-a-key-at-all", nil), 401, "malformed_key"},
		{"1 MiB key", request("/email/read", strings.Repeat("k", 1<<20), nil), 401, "malformed_key"},
		{"IP filter: direct peer inside", request("/email/read", f.filtered, nil), 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, reason := denyReason(t, check(t, f.srv, tc.req))
			if st != tc.wantStatus || reason != tc.wantReason {
				t.Fatalf("got %d %q, want %d %q", st, reason, tc.wantStatus, tc.wantReason)
			}
		})
	}
}

func TestClientIPFromXFF(t *testing.T) {
	cases := []struct {
		name    string
		hops    int
		xff     string
		wantSt  int
		wantRsn string
	}{
		{"one hop takes the rightmost", 1, "192.0.2.1, 10.0.0.5", 200, ""},
		{"two hops take the second from the right", 2, "10.0.0.9, 192.0.2.1", 200, ""},
		{"spoofed leftmost entry is ignored", 1, "10.0.0.1, 192.0.2.1", 403, "ip_not_allowed"},
		{"too few entries fail closed", 3, "10.0.0.1, 10.0.0.2", 403, "ip_not_allowed"},
		{"missing header fails closed", 1, "", 403, "ip_not_allowed"},
		{"unparseable entry fails closed", 1, "10.0.0.1, not-an-ip", 403, "ip_not_allowed"},
		{"IPv6 zone in entry", 1, "fe80::1%eth0", 403, "ip_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, extauthz.Config{XFFTrustedHops: tc.hops})
			extra := map[string]string{}
			if tc.xff != "" {
				extra["x-forwarded-for"] = tc.xff
			}
			req := request("/email/read", f.filtered, extra)
			// The direct peer is inside the filter: only x-forwarded-for may decide.
			st, reason := denyReason(t, check(t, f.srv, req))
			if st != tc.wantSt || reason != tc.wantRsn {
				t.Fatalf("got %d %q, want %d %q", st, reason, tc.wantSt, tc.wantRsn)
			}
		})
	}
}

// TestClientIPFromXFFHeaderLines sends x-forwarded-for as several
// header_map entries (Envoy's encode_raw_headers form of repeated header
// lines): they are one list in order (SPEC §9), in protobuf-go's decoding
// and in keygate's own (check compares both).
func TestClientIPFromXFFHeaderLines(t *testing.T) {
	lines := func(req *authv3.CheckRequest, vs ...*corev3.HeaderValue) *authv3.CheckRequest {
		req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: vs}
		return req
	}
	xff := func(v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: "x-forwarded-for", Value: v} }
	raw := func(key, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: key, RawValue: []byte(v)} }
	cases := []struct {
		name    string
		hops    int
		entries []*corev3.HeaderValue
		inMap   string // x-forwarded-for in the headers map, before header_map
		want    int
	}{
		// The attack: the first line holds an address inside the key's
		// filter, the trusted proxy appended the real client in a second.
		{"the last line holds the rightmost entry", 1, []*corev3.HeaderValue{xff("10.0.0.1"), xff("192.0.2.1")}, "", 403},
		{"the client in the last line", 1, []*corev3.HeaderValue{xff("192.0.2.1"), xff("10.0.0.5")}, "", 200},
		{"two hops cross a line", 2, []*corev3.HeaderValue{xff("10.0.0.5"), xff("192.0.2.1")}, "", 200},
		{"two hops cross a line, spoofed first", 2, []*corev3.HeaderValue{xff("192.0.2.7, 10.0.0.5"), xff("192.0.2.1")}, "", 200},
		{"three hops, lines of several entries", 3, []*corev3.HeaderValue{xff("192.0.2.9, 10.0.0.5"), xff("192.0.2.8, 192.0.2.1")}, "", 200},
		{"raw_value and case", 1, []*corev3.HeaderValue{raw("X-Forwarded-For", "192.0.2.1"), raw("x-FORWARDED-for", "10.0.0.5")}, "", 200},
		{"too few entries across lines", 3, []*corev3.HeaderValue{xff("10.0.0.5"), xff("10.0.0.6")}, "", 403},
		{"an empty last line is an empty entry", 1, []*corev3.HeaderValue{xff("10.0.0.5"), xff("")}, "", 403},
		{"the map's value comes first", 1, []*corev3.HeaderValue{xff("192.0.2.1")}, "10.0.0.5", 403},
		{"the map's value reached by hops", 2, []*corev3.HeaderValue{xff("192.0.2.1")}, "10.0.0.5", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, extauthz.Config{XFFTrustedHops: tc.hops})
			extra := map[string]string{}
			if tc.inMap != "" {
				extra["x-forwarded-for"] = tc.inMap
			}
			req := lines(request("/email/read", f.filtered, extra), tc.entries...)
			// The direct peer is inside the filter: only x-forwarded-for may decide.
			if st, reason := denyReason(t, check(t, f.srv, req)); st != tc.want || (st == 403 && reason != "ip_not_allowed") {
				t.Fatalf("got %d %q, want %d", st, reason, tc.want)
			}
		})
	}
}

// FuzzClientIPFromXFFLines: walking the lines from the last gives what
// joining them in order does.
func FuzzClientIPFromXFFLines(f *testing.F) {
	f.Add("10.0.0.1", "192.0.2.1, 10.0.0.2", "", 2)
	f.Add("", ",", " ::1 ", 3)
	f.Fuzz(func(t *testing.T, a, b, c string, hops int) {
		hops %= 8
		for n := 0; n <= 3; n++ {
			lines := []string{a, b, c}[:n]
			want := extauthz.ClientIPFromXFF(strings.Join(lines, ","), hops)
			if n == 0 {
				want = netip.Addr{}
			}
			if got := extauthz.ClientIPFromXFFLines(lines, hops); got != want {
				t.Fatalf("%q hops %d: walked %v, joined %v", lines, hops, got, want)
			}
		}
	})
}

// TestClientIPFromXFFAllocs: one x-forwarded-for line, the common case,
// costs no allocation on the Check hot path, in either decoding.
func TestClientIPFromXFFAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	f := newFixture(t, extauthz.Config{XFFTrustedHops: 1})
	for name, req := range map[string]*authv3.CheckRequest{
		"headers map": request("/email/read", f.filtered, map[string]string{"x-forwarded-for": "192.0.2.1, 10.0.0.5"}),
		"header_map": func() *authv3.CheckRequest {
			r := request("/email/read", f.filtered, nil)
			r.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: "x-forwarded-for", RawValue: []byte("192.0.2.1, 10.0.0.5")}}}
			return r
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			check(t, f.srv, req) // warm the key's cached parts
			if n := testing.AllocsPerRun(100, func() {
				if resp, _ := f.srv.Check(ctx, req); resp.GetOkResponse() == nil {
					t.Fatal("not allowed")
				}
			}); n != 0 {
				t.Errorf("proto decoding: %v allocations per Check", n)
			}
			wire, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			var d extauthz.WireDecoder
			if n := testing.AllocsPerRun(100, func() {
				out, err := extauthz.CheckWireBytes(f.srv, ctx, &d, wire)
				if err != nil || out == nil {
					t.Fatal("no answer")
				}
				extauthz.Release(out)
			}); n != 0 {
				t.Errorf("wire decoding: %v allocations per Check", n)
			}
		})
	}
}

func TestKeyQueryParameter(t *testing.T) {
	f := newFixture(t, extauthz.Config{KeyQueryParam: "api_key"})
	resp := check(t, f.srv, request("/email/read?api_key="+f.service+"&page=1", "", nil))
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("query-parameter key was not allowed: %v", resp)
	}
	if got := ok.GetQueryParametersToRemove(); len(got) != 1 || got[0] != "api_key" {
		t.Fatalf("query_parameters_to_remove = %v", got)
	}
	_, reason := denyReason(t, check(t, f.srv, request("/email/read?api_key="+f.service, f.service, nil)))
	if reason != "malformed_key" {
		t.Fatalf("header and query parameter together: %q, want malformed_key", reason)
	}
	off := newFixture(t, extauthz.Config{})
	if _, reason := denyReason(t, check(t, off.srv, request("/email/read?api_key="+off.service, "", nil))); reason != "missing_key" {
		t.Fatalf("query parameter is off by default, got %q", reason)
	}
}

func TestGenericKeyErrors(t *testing.T) {
	f := newFixture(t, extauthz.Config{GenericKeyErrors: true})
	for _, key := range []string{"", "kg_sak_nope", f.expired, f.inactive} {
		st, reason := denyReason(t, check(t, f.srv, request("/email/read", key, nil)))
		if st != 401 || reason != "" {
			t.Errorf("key failure answered %d %q, want 401 without a reason", st, reason)
		}
	}
	if _, reason := denyReason(t, check(t, f.srv, request("/nowhere", f.service, nil))); reason != "unknown_route" {
		t.Errorf("route failures keep their reason, got %q", reason)
	}
}

func TestCancelledCallGetsAnError(t *testing.T) {
	f := newFixture(t, extauthz.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resp, err := f.srv.Check(ctx, request("/email/read", f.service, nil))
	if status.Code(err) != codes.Canceled || resp != nil {
		t.Fatalf("got %v, %v; want a Canceled error and no response", resp, err)
	}
}

func FuzzCheck(f *testing.F) {
	fx := newFixture(f, extauthz.Config{XFFTrustedHops: 1, KeyQueryParam: "k"})
	f.Add("/email/read", fx.service, "10.0.0.1", "GET", "api.example.com", "application/json")
	f.Add("/email/read?k=x&k=y", "", "", "POST", "", "")
	f.Add("/%zz/../..//", "kg_sak_", "::1%lo", "", "[::1]:80", "application/grpc")
	f.Add("", "\x00\x7f", "a,b,c", "HEAD", "\xff", "")
	f.Fuzz(func(t *testing.T, path, key, xff, method, host, ctype string) {
		req := request(path, key, map[string]string{"x-forwarded-for": xff, "content-type": ctype})
		req.Attributes.Request.Http.Method = method
		req.Attributes.Request.Http.Host = host
		resp, err := fx.srv.Check(context.Background(), req)
		if err != nil || resp == nil {
			t.Fatalf("no response: %v", err)
		}
		sameOverWire(t, fx.srv, req, resp)
		if ok := resp.GetOkResponse(); ok != nil && key != fx.service {
			if !strings.Contains(path, "k="+fx.service) {
				t.Fatalf("allowed without the right key")
			}
		}
		if d := resp.GetDeniedResponse(); d != nil && key != "" && len(key) >= 4 && strings.Contains(d.GetBody(), key) {
			t.Fatal("deny body echoes the key")
		}
	})
}

// BenchmarkCheck is the whole in-process handler on a cache hit:
// CheckRequest in, CheckResponse out. Target: <= 2 µs/op.
func BenchmarkCheck(b *testing.B) {
	f := newFixture(b, extauthz.Config{})
	req := request("/email/read", f.service, nil)
	ctx := context.Background()
	// One Check first: a key's cached allow is built on its first allow
	// (and protobuf initialises lazily); the loop measures the hits after
	// it, which a short -benchtime would otherwise blur into 1 B/op.
	if resp, err := f.srv.Check(ctx, req); err != nil || resp.GetOkResponse() == nil {
		b.Fatal("not allowed")
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := f.srv.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatal("not allowed")
		}
	}
}

func BenchmarkCheckDeny(b *testing.B) {
	f := newFixture(b, extauthz.Config{})
	req := request("/email/read", "an-unknown-custom-key-0001", nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if resp, _ := f.srv.Check(ctx, req); resp.GetDeniedResponse() == nil {
			b.Fatal("not denied")
		}
	}
}

// TestSharedResponsesUnderConcurrency sends many checks at once and
// marshals every response, as gRPC does, so that -race sees any write to a
// response shared between requests (the cached allow and the deny answers).
func TestSharedResponsesUnderConcurrency(t *testing.T) {
	f := newFixture(t, extauthz.Config{})
	reqs := []*authv3.CheckRequest{
		request("/email/read", f.service, nil),
		request("/email/send", f.service, nil),
		request("/users", f.app, nil),
		request("/email/read", "", nil),
		request("/email/send", f.scoped, nil),
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				resp, err := f.srv.Check(context.Background(), reqs[(g+i)%len(reqs)])
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := proto.Marshal(resp); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	// The reused allow still names the right operation.
	resp := check(t, f.srv, request("/email/send", f.service, nil))
	if op := resp.GetDynamicMetadata().GetFields()["operation"].GetStringValue(); op != "sendEmail" {
		t.Fatalf("operation = %q after switching routes, want sendEmail", op)
	}
}

// ignoreWeakSecrets is an authz.WeakSecretReporter that does nothing: the
// fixtures run the check serve runs, without its log.
type ignoreWeakSecrets struct{}

func (ignoreWeakSecrets) WeakSecret(*authz.Key) {}
