package extauthz_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
)

func TestHTTPForwardedConventions(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	type want struct {
		method, path, host string
		status             int
		reason             string
	}
	cases := []struct {
		name    string
		req     *http.Request
		key     string
		want    want
		problem string
	}{
		{"Envoy http_service: the request itself",
			fwd("POST", "/email/send?draft=1", map[string]string{"Content-Type": "application/json"}), "scoped",
			want{"POST", "/email/send?draft=1", "example.com", 403, "scope_denied"}, ""},
		{"Traefik/Caddy: X-Forwarded-*",
			fwd("GET", "/auth", map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/email/send?a=%2F",
				"X-Forwarded-Host": "api.example.com:8443"}), "scoped",
			want{"POST", "/email/send?a=%2F", "api.example.com:8443", 403, "scope_denied"}, ""},
		{"nginx: X-Original-*",
			fwd("GET", "/_keygate", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/email/read",
				"X-Forwarded-Host": "api.example.com"}), "scoped",
			want{"GET", "/email/read", "api.example.com", 200, ""}, ""},
		{"X-Forwarded-* wins over X-Original-*",
			fwd("GET", "/_keygate", map[string]string{"X-Forwarded-Method": "POST", "X-Original-Method": "GET",
				"X-Forwarded-Uri": "/email/send", "X-Original-URI": "/email/read"}), "scoped",
			want{"POST", "/email/send", "example.com", 403, "scope_denied"}, ""},
		{"empty forwarded headers count as absent",
			fwd("GET", "/email/send", map[string]string{"X-Forwarded-Method": "", "X-Forwarded-Uri": "", "X-Original-URI": "/email/read",
				"X-Forwarded-Host": ""}), "scoped",
			want{"GET", "/email/read", "example.com", 200, ""}, ""},
		{"two X-Forwarded-Uri values are ambiguous",
			func() *http.Request {
				r := fwd("GET", "/", nil)
				r.Header["X-Forwarded-Uri"] = []string{"/email/read", "/email/send"}
				return r
			}(), "service", want{status: 400, reason: "invalid_path"}, "several X-Forwarded-Uri headers"},
		{"two X-Original-Method values are ambiguous",
			func() *http.Request {
				r := fwd("GET", "/", map[string]string{"X-Original-URI": "/email/read"})
				r.Header["X-Original-Method"] = []string{"GET", "POST"}
				return r
			}(), "service", want{status: 400, reason: "invalid_path"}, "several X-Original-Method headers"},
		{"a list of hosts is ambiguous",
			fwd("GET", "/email/read", map[string]string{"X-Forwarded-Host": "a.example.com, b.example.com"}), "service",
			want{status: 400, reason: "invalid_path"}, "several hosts in X-Forwarded-Host"},
		{"an absolute-form target routes on its path",
			func() *http.Request {
				r := fwd("GET", "http://api.example.com/email/read?x=1", nil)
				return r
			}(), "service", want{"GET", "/email/read?x=1", "api.example.com", 200, ""}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := map[string]string{"scoped": f.scoped, "service": f.service}[tc.key]
			tc.req.Header.Set("X-Api-Key", key)
			a := serve(t, f.h, tc.req)
			if a.status != tc.want.status || a.reason != tc.want.reason {
				t.Fatalf("got %d %q (%s), want %d %q", a.status, a.reason, a.body, tc.want.status, tc.want.reason)
			}
			if tc.problem != "" {
				if a.error != tc.problem {
					t.Fatalf("error = %q, want %q", a.error, tc.problem)
				}
				return
			}
			in, _ := f.router.seen()
			if in.Method != tc.want.method || in.Path != tc.want.path || in.Host != tc.want.host {
				t.Fatalf("routed on %s %s host %q, want %s %s host %q", in.Method, in.Path, in.Host,
					tc.want.method, tc.want.path, tc.want.host)
			}
		})
	}
	t.Run("content type reaches the router", func(t *testing.T) {
		serve(t, f.h, fwd("POST", "/users.v1.UserService/List", map[string]string{"Content-Type": "application/grpc", "X-Api-Key": f.app}))
		if in, _ := f.router.seen(); in.ContentType != "application/grpc" {
			t.Fatalf("content type %q", in.ContentType)
		}
	})
}

func TestHTTPBody(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	post := func(target string, body io.Reader, extra map[string]string) (answer, authz.RouteInput, int) {
		h := map[string]string{"X-Api-Key": f.service}
		for k, v := range extra {
			h[k] = v
		}
		r := fwd("POST", target, h)
		r.Body = io.NopCloser(body)
		a := serve(t, f.h, r)
		in, n := f.router.seen()
		return a, in, n
	}
	query := `{"query":"{ listEmails { id } }"}`
	t.Run("forwarded body reaches the router", func(t *testing.T) {
		a, in, n := post("/graphql", strings.NewReader(query), nil)
		if a.status != 200 || n != len(query) || in.BodyTruncated {
			t.Fatalf("got %d, router saw %d bytes truncated=%v", a.status, n, in.BodyTruncated)
		}
	})
	t.Run("exactly the limit", func(t *testing.T) {
		_, in, n := post("/graphql", bytes.NewReader(make([]byte, extauthz.MaxHTTPBody)), nil)
		if n != extauthz.MaxHTTPBody || in.BodyTruncated {
			t.Fatalf("router saw %d bytes truncated=%v", n, in.BodyTruncated)
		}
	})
	t.Run("oversize on a GraphQL route: 400", func(t *testing.T) {
		a, in, n := post("/graphql", bytes.NewReader(make([]byte, extauthz.MaxHTTPBody+10)), nil)
		if a.status != 400 || a.reason != "invalid_graphql" || !in.BodyTruncated || n != extauthz.MaxHTTPBody {
			t.Fatalf("got %d %s; router saw %d bytes truncated=%v", a.status, a.body, n, in.BodyTruncated)
		}
	})
	t.Run("a route that reads no body never reads it", func(t *testing.T) {
		body := &countingReader{r: bytes.NewReader(make([]byte, 3*extauthz.MaxHTTPBody))}
		a, in, n := post("/email/read", body, nil)
		if a.status != 200 || n != 0 || in.BodyTruncated || body.reads != 0 {
			t.Fatalf("got %d %s; router saw %d bytes truncated=%v; %d reads of the body", a.status, a.body, n, in.BodyTruncated, body.reads)
		}
	})
	t.Run("Content-Length over the limit: refused before reading", func(t *testing.T) {
		body := &countingReader{r: strings.NewReader(query)}
		r := fwd("POST", "/graphql", map[string]string{"X-Api-Key": f.service})
		r.Body, r.ContentLength = io.NopCloser(body), extauthz.MaxHTTPBody+1
		a := serve(t, f.h, r)
		if a.status != 400 || a.reason != "invalid_graphql" || body.reads != 0 {
			t.Fatalf("got %d %s; %d reads of the body", a.status, a.body, body.reads)
		}
		if want := fmt.Sprintf("limit of %d bytes", extauthz.MaxHTTPBody); !strings.Contains(a.error, want) {
			t.Fatalf("error %q does not name the limit (%q)", a.error, want)
		}
		if a.header.Get("Connection") != "close" {
			t.Fatalf("Connection = %q: an unread body must not be drained", a.header.Get("Connection"))
		}
	})
	t.Run("Content-Length at the limit is read", func(t *testing.T) {
		r := fwd("POST", "/graphql", map[string]string{"X-Api-Key": f.service})
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(query)), extauthz.MaxHTTPBody
		if a := serve(t, f.h, r); a.status != 200 {
			t.Fatalf("got %d %s", a.status, a.body)
		}
	})
	t.Run("Envoy's partial-body header", func(t *testing.T) {
		a, in, _ := post("/graphql", strings.NewReader(query), map[string]string{"X-Envoy-Auth-Partial-Body": "true"})
		if a.status != 400 || !in.BodyTruncated {
			t.Fatalf("got %d, truncated=%v", a.status, in.BodyTruncated)
		}
	})
	t.Run("a body that fails to read is truncated", func(t *testing.T) {
		a, in, _ := post("/graphql", io.MultiReader(strings.NewReader(query), errReader{}), nil)
		if a.status != 400 || !in.BodyTruncated {
			t.Fatalf("got %d, truncated=%v", a.status, in.BodyTruncated)
		}
	})
	t.Run("no body", func(t *testing.T) {
		a := serve(t, f.h, fwd("GET", "/graphql", map[string]string{"X-Api-Key": f.service}))
		if in, n := f.router.seen(); a.status != 200 || n != 0 || in.BodyTruncated {
			t.Fatalf("got %d; router saw %d bytes truncated=%v", a.status, n, in.BodyTruncated)
		}
	})
}

// TestHTTPBodyWithoutBodyRouter: a Router that cannot say which routes
// read a body gets every body, cut at MaxHTTPBody.
func TestHTTPBodyWithoutBodyRouter(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	h := extauthz.NewHTTPHandler(&authz.Engine{Keys: f.store, Routes: struct{ authz.Router }{f.router}, Hasher: hasher,
		Now: func() time.Time { return now }}, extauthz.Config{}, nil, nil)
	for _, tc := range []struct {
		path      string
		size      int
		truncated bool
	}{{"/email/read", 100, false}, {"/email/read", 3 * extauthz.MaxHTTPBody, true}, {"/graphql", extauthz.MaxHTTPBody, false}} {
		r := fwd("POST", tc.path, map[string]string{"X-Api-Key": f.service})
		r.Body = io.NopCloser(bytes.NewReader(make([]byte, tc.size)))
		serve(t, h, r)
		if in, n := f.router.seen(); n != min(tc.size, extauthz.MaxHTTPBody) || in.BodyTruncated != tc.truncated {
			t.Fatalf("%s, %d bytes: router saw %d bytes truncated=%v", tc.path, tc.size, n, in.BodyTruncated)
		}
	}
}

func TestHTTPKeyValues(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{KeyQueryParam: "api_key"})
	twoLines := fwd("GET", "/email/read", nil)
	twoLines.Header["X-Api-Key"] = []string{f.service, f.service}
	cases := []struct {
		name   string
		req    *http.Request
		status int
		reason string
	}{
		{"query parameter of the original target", fwd("GET", "/_keygate",
			map[string]string{"X-Original-URI": "/email/read?api_key=" + url.QueryEscape(f.service) + "&page=1"}), 200, ""},
		{"query parameter of the request itself", fwd("GET", "/email/read?api_key="+url.QueryEscape(f.service), nil), 200, ""},
		{"header and query parameter", fwd("GET", "/email/read?api_key="+url.QueryEscape(f.service),
			map[string]string{"X-Api-Key": f.service}), 401, "malformed_key"},
		{"two header lines", twoLines, 401, "malformed_key"},
		{"comma-joined values", fwd("GET", "/email/read", map[string]string{"X-Api-Key": f.service + "," + f.service}), 401, "malformed_key"},
		{"present but empty", fwd("GET", "/email/read", map[string]string{"X-Api-Key": ""}), 401, "malformed_key"},
		{"lower-case header name on the wire", func() *http.Request {
			r := fwd("GET", "/email/read", nil)
			r.Header = http.Header{}
			raw := "GET /email/read HTTP/1.1\r\nHost: x\r\nx-api-key: " + f.service + "\r\n\r\n"
			parsed, err := http.ReadRequest(bufioReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			return parsed
		}(), 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := serve(t, f.h, tc.req)
			if a.status != tc.status || a.reason != tc.reason {
				t.Fatalf("got %d %q, want %d %q", a.status, a.reason, tc.status, tc.reason)
			}
		})
	}
	off := newHTTPFixture(t, extauthz.Config{})
	if a := serve(t, off.h, fwd("GET", "/email/read?api_key="+url.QueryEscape(off.service), nil)); a.reason != "missing_key" {
		t.Fatalf("query parameter is off by default, got %d %q", a.status, a.reason)
	}
}

func TestHTTPClientIP(t *testing.T) {
	cases := []struct {
		name   string
		hops   int
		xff    []string
		status int
	}{
		{"hops 0: the peer is the proxy, client unknown", 0, []string{"10.0.0.1"}, 403},
		{"one hop takes the rightmost", 1, []string{"192.0.2.1, 10.0.0.5"}, 200},
		{"two hops take the second from the right", 2, []string{"10.0.0.9, 192.0.2.1"}, 200},
		{"spoofed leftmost entry is ignored", 1, []string{"10.0.0.1, 192.0.2.1"}, 403},
		{"repeated header lines are one list", 1, []string{"192.0.2.1", "10.0.0.5"}, 200},
		{"repeated header lines, two hops", 2, []string{"10.0.0.5", "192.0.2.1"}, 200},
		{"too few entries fail closed", 3, []string{"10.0.0.1, 10.0.0.2"}, 403},
		{"missing header fails closed", 1, nil, 403},
		{"unparseable entry fails closed", 1, []string{"10.0.0.1, not-an-ip"}, 403},
		{"IPv4-mapped IPv6", 1, []string{"::ffff:10.1.2.3"}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, extauthz.Config{XFFTrustedHops: tc.hops})
			r := fwd("GET", "/email/read", map[string]string{"X-Api-Key": f.filtered})
			r.Header["X-Forwarded-For"] = tc.xff
			a := serve(t, f.h, r)
			if a.status != tc.status || (tc.status == 403 && a.reason != "ip_not_allowed") {
				t.Fatalf("got %d %q, want %d", a.status, a.reason, tc.status)
			}
			// A key without filters never depends on the client IP.
			r = fwd("GET", "/email/read", map[string]string{"X-Api-Key": f.service})
			r.Header["X-Forwarded-For"] = tc.xff
			if a := serve(t, f.h, r); a.status != 200 {
				t.Fatalf("unfiltered key got %d", a.status)
			}
		})
	}
}
