package extauthz_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
)

// forgedCases are request header names an upstream that folds "_" into
// "-" would read as an identity header or the key header (SPEC §9), and
// the name headers_to_remove must list.
var forgedCases = []struct {
	name, header, removed string
}{
	{"tenant in underscores", "x_keygate_tenant_id", "x_keygate_tenant_id"},
	{"mixed case and separators", "X_Keygate-Tenant_ID", "x_keygate-tenant_id"},
	{"account id", "x-keygate_account-id", "x-keygate_account-id"},
	{"key id", "x_keygate_key_id", "x_keygate_key_id"},
	{"key name", "x_keygate_key_name", "x_keygate_key_name"},
	{"app id", "x_keygate_app_id", "x_keygate_app_id"},
	{"key header", "x-api_key", "x-api_key"},
}

// harmless are names that must not be listed: the exact names (set or
// removed already) and names that merely look alike.
var harmless = []string{"x-keygate-tenant-id", "X-Keygate-Tenant-Id", "x_keygate_tenant", "x_keygate_tenant_idx", "x-request_id", "x_api_keys"}

// baseRemove is what an allow removes for each fixture key anyway.
var baseRemove = map[string][]string{
	"service": {"x-api-key"},
	"app":     {"x-api-key", "x-keygate-tenant-id"},
}

// withHeaderMap moves a request's headers into header_map, as Envoy sends
// them with encode_raw_headers (values in raw_value when raw is set).
func withHeaderMap(req *authv3.CheckRequest, raw bool) *authv3.CheckRequest {
	h := req.GetAttributes().GetRequest().GetHttp()
	names := make([]string, 0, len(h.Headers))
	for k := range h.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	hm := &corev3.HeaderMap{}
	for _, k := range names {
		hv := &corev3.HeaderValue{Key: k}
		if raw {
			hv.RawValue = []byte(h.Headers[k])
		} else {
			hv.Value = h.Headers[k]
		}
		hm.Headers = append(hm.Headers, hv)
	}
	h.Headers, h.HeaderMap = nil, hm
	return req
}

func TestForgedIdentityHeadersAreRemoved(t *testing.T) {
	f := newFixture(t, extauthz.Config{})
	keys := map[string]struct{ secret, path string }{
		"service": {f.service, "/email/read"},
		"app":     {f.app, "/users"},
	}
	encodings := map[string]func(*authv3.CheckRequest) *authv3.CheckRequest{
		"headers":              func(r *authv3.CheckRequest) *authv3.CheckRequest { return r },
		"header_map value":     func(r *authv3.CheckRequest) *authv3.CheckRequest { return withHeaderMap(r, false) },
		"header_map raw_value": func(r *authv3.CheckRequest) *authv3.CheckRequest { return withHeaderMap(r, true) },
	}
	for kname, key := range keys {
		for ename, enc := range encodings {
			for _, tc := range forgedCases {
				t.Run(kname+"/"+ename+"/"+tc.name, func(t *testing.T) {
					req := enc(request(key.path, key.secret, map[string]string{tc.header: "victim"}))
					resp := check(t, f.srv, req)
					ok := resp.GetOkResponse()
					if ok == nil {
						t.Fatalf("not allowed: %v", resp)
					}
					want := append(slices.Clone(baseRemove[kname]), tc.removed)
					if got := ok.GetHeadersToRemove(); !slices.Equal(got, want) {
						t.Fatalf("headers_to_remove = %q, want %q", got, want)
					}
				})
			}
			t.Run(kname+"/"+ename+"/look-alikes", func(t *testing.T) {
				extra := map[string]string{}
				for _, h := range harmless {
					extra[h] = "v"
				}
				resp := check(t, f.srv, enc(request(key.path, key.secret, extra)))
				if got := resp.GetOkResponse().GetHeadersToRemove(); !slices.Equal(got, baseRemove[kname]) {
					t.Fatalf("headers_to_remove = %q, want %q", got, baseRemove[kname])
				}
			})
		}
	}
	t.Run("several forged, in both encodings, each once", func(t *testing.T) {
		req := request("/email/read", f.service, map[string]string{"x_keygate_tenant_id": "a", "x_api_key": "b"})
		req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "X_KEYGATE_TENANT_ID", Value: "c"}, {Key: "x_keygate_app_id", RawValue: []byte("d")}}}
		got := check(t, f.srv, req).GetOkResponse().GetHeadersToRemove()
		want := []string{"x-api-key", "x_api_key", "x_keygate_app_id", "x_keygate_tenant_id"}
		if !slices.Equal(got, want) {
			t.Fatalf("headers_to_remove = %q, want %q", got, want)
		}
	})
	t.Run("the shared allow is not changed", func(t *testing.T) {
		check(t, f.srv, request("/email/read", f.service, map[string]string{"x_keygate_tenant_id": "victim"}))
		got := check(t, f.srv, request("/email/read", f.service, nil)).GetOkResponse().GetHeadersToRemove()
		if !slices.Equal(got, baseRemove["service"]) {
			t.Fatalf("a later clean request gets headers_to_remove %q", got)
		}
	})
	t.Run("configured names", func(t *testing.T) {
		g := newFixture(t, extauthz.Config{KeyHeader: "X-My-Key", Identity: extauthz.IdentityHeaders{TenantID: "x-org"}})
		req := request("/email/read", "", map[string]string{"x-my-key": g.service, "x_org": "victim", "x_my_key": "k",
			"x_keygate_tenant_id": "not ours any more"})
		got := check(t, g.srv, req).GetOkResponse().GetHeadersToRemove()
		if want := []string{"x-my-key", "x_my_key", "x_org"}; !slices.Equal(got, want) {
			t.Fatalf("headers_to_remove = %q, want %q", got, want)
		}
	})
}

// TestForgedScanDoesNotAllocate: a request without a forged header costs
// the scan nothing on the hit path.
func TestForgedScanDoesNotAllocate(t *testing.T) {
	f := newFixture(t, extauthz.Config{})
	req := withHeaderMap(request("/email/read", f.service, map[string]string{"user-agent": "t", "x-request-id": "r",
		"x-keygate-tenant-id": "exact name: overwritten, not listed"}), true)
	req.Attributes.Request.Http.Headers = map[string]string{"accept": "*/*", "x-forwarded-proto": "https"}
	ctx := context.Background()
	check(t, f.srv, req)
	if n := testing.AllocsPerRun(200, func() { _, _ = f.srv.Check(ctx, req) }); n != 0 {
		t.Fatalf("Check allocates %v times per hit", n)
	}
}

func TestHTTPForgedIdentityHeadersAreRemoved(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	for _, tc := range forgedCases {
		t.Run(tc.name, func(t *testing.T) {
			r := fwd("GET", "/email/read", map[string]string{"X-Api-Key": f.service})
			r.Header[tc.header] = []string{"victim"} // as sent, not canonicalised
			a := serve(t, f.h, r)
			if a.status != 200 {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			if got, want := a.header.Get(extauthz.HeadersToRemoveHeader), "x-api-key, "+tc.removed; got != want {
				t.Fatalf("%s = %q, want %q", extauthz.HeadersToRemoveHeader, got, want)
			}
		})
	}
	t.Run("canonicalised by net/http", func(t *testing.T) {
		r := fwd("GET", "/users", map[string]string{"X-Api-Key": f.app, "x_keygate_tenant_id": "victim", "X-Request_Id": "x"})
		a := serve(t, f.h, r)
		if got, want := a.header.Get(extauthz.HeadersToRemoveHeader), "x-api-key, x-keygate-tenant-id, x_keygate_tenant_id"; got != want {
			t.Fatalf("%s = %q, want %q", extauthz.HeadersToRemoveHeader, got, want)
		}
	})
	t.Run("look-alikes", func(t *testing.T) {
		r := fwd("GET", "/email/read", map[string]string{"X-Api-Key": f.service})
		for _, h := range harmless {
			r.Header[h] = []string{"v"}
		}
		if got := serve(t, f.h, r).header.Get(extauthz.HeadersToRemoveHeader); got != "x-api-key" {
			t.Fatalf("%s = %q", extauthz.HeadersToRemoveHeader, got)
		}
	})
}

// TestHTTPControlHeadersWrittenLast: whatever a key's response headers are
// named, keygate's own identity headers and its list of headers to remove
// (written after them) win. The name rules refuse such names at save and
// at load (x-envoy-* always, so no key can be compiled with one); a key
// compiled without the identity names reserved shows the write order.
func TestHTTPControlHeadersWrittenLast(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	for _, tc := range []struct{ name, value string }{
		{"x-keygate-tenant-id", "victim"},
		{"x-keygate-tenant-id", "${service}"},
		{"X-Keygate-Key-Id", "${operation}"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			secret := f.addUncheckedKey(t, tc.name, tc.value)
			a := serve(t, f.h, fwd("GET", "/email/read", map[string]string{"X-Api-Key": secret}))
			if a.status != 200 {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			if got := a.header.Values(extauthz.HeadersToRemoveHeader); len(got) != 1 || !strings.HasPrefix(got[0], "x-api-key") {
				t.Fatalf("%s = %q: the key's header replaced keygate's", extauthz.HeadersToRemoveHeader, got)
			}
			if got := a.header.Values("X-Keygate-Tenant-Id"); len(got) != 1 || got[0] != "acme" {
				t.Fatalf("X-Keygate-Tenant-Id = %q", got)
			}
			if got := a.header.Values("X-Keygate-Key-Id"); len(got) != 1 || got[0] != "k-unchecked" {
				t.Fatalf("X-Keygate-Key-Id = %q", got)
			}
		})
	}
}

// addUncheckedKey adds a service key whose one response header is
// name: value, compiled without reserved names.
func (f *httpFixture) addUncheckedKey(t *testing.T, name, value string) string {
	t.Helper()
	secret, err := apikey.Generate(apikey.KindService)
	if err != nil {
		t.Fatal(err)
	}
	k, err := authz.Compile(authz.KeySpec{ID: "k-unchecked", Name: "unchecked", Type: authz.KeyTypeService,
		AccountID: "default", AppID: "billing", TenantID: "acme", Active: true, Hash: hasher.HashString(secret),
		ResponseHeaders: []authz.HeaderSpec{{Name: name, Value: value}}}, authz.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.store.keys[k.Digest] = k
	return secret
}

// FuzzForgedHeaders sends one more request header, in the headers map or
// header_map, and checks headers_to_remove against a reference: the name
// is listed exactly when, ASCII-lower-cased with "_" as "-", it is the key
// header or an identity header but was not spelled so.
func FuzzForgedHeaders(f *testing.F) {
	fx := newFixture(f, extauthz.Config{})
	for _, s := range []string{"x_keygate_tenant_id", "X_Keygate-Tenant_ID", "x-api_key", "x-keygate-tenant-id", "user-agent", "x__", "X-KEYGATE-KEY-ID", "x_keygate_key_ıd"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	protected := []string{"x-api-key", "x-keygate-key-id", "x-keygate-key-name", "x-keygate-app-id", "x-keygate-tenant-id", "x-keygate-account-id"}
	asciiFold := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'A' && r <= 'Z':
				return r + 32
			case r == '_':
				return '-'
			}
			return r
		}, s)
	}
	f.Fuzz(func(t *testing.T, name string, headerMap bool) {
		if strings.EqualFold(name, "x-api-key") || strings.HasPrefix(name, ":") {
			return // a second key, or a pseudo-header: another test's question
		}
		req := request("/email/read", fx.service, map[string]string{name: "victim"})
		if headerMap {
			req = withHeaderMap(req, true)
		}
		resp, err := fx.srv.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		sameOverWire(t, fx.srv, req, resp)
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("not allowed: %v", resp)
		}
		want := slices.Contains(protected, asciiFold(name)) && asciiLower(name) != asciiFold(name)
		listed := slices.Contains(ok.GetHeadersToRemove()[1:], asciiLower(name))
		if listed != want {
			t.Fatalf("%q listed in headers_to_remove %q: %v, want %v", name, ok.GetHeadersToRemove(), listed, want)
		}
	})
}

func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 32
		}
		return r
	}, s)
}
