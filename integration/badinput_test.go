package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// TestBadCheckRequests sends the real binary CheckRequests that no sane
// Envoy sends, or that a hostile client shapes through one: missing parts,
// huge and odd header values, many key values, odd client addresses and
// absurd paths. Each must get a CheckResponse with the specific deny (or,
// where the input is harmless, the allow), never a gRPC error, a crash or
// an allow it should not get.
func TestBadCheckRequests(t *testing.T) {
	dir := t.TempDir()
	svc, svcHash := quickKey(t, "service")
	office, officeHash := quickKey(t, "service")
	link, linkHash := quickKey(t, "service")
	keysFile, routesFile := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML(
		keyEntry{"k-svc", "service", svcHash, ""},
		keyEntry{"k-office", "service", officeHash, "    ip_filters: [\"10.0.0.0/8\", \"2001:db8::/32\"]\n"},
		keyEntry{"k-link", "service", linkHash, "    ip_filters: [\"fe80::/10\"]\n"},
	))
	writeFile(t, routesFile, routesYAML)
	srv := startServer(t, keysFile, routesFile)
	client := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))

	from := func(req *authv3.CheckRequest, addr string) *authv3.CheckRequest {
		req.Attributes.Source.Address.GetSocketAddress().Address = addr
		return req
	}
	rawKey := func(value []byte) *authv3.CheckRequest {
		req := checkReq("GET", "/email/inbox", "", nil)
		req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x-api-key", RawValue: value}}}
		return req
	}
	manyKeyHeaders := func(n int) *authv3.CheckRequest {
		req := checkReq("GET", "/email/inbox", "", nil)
		hm := &corev3.HeaderMap{}
		for range n {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: "x-api-key", RawValue: []byte(svc)})
		}
		req.Attributes.Request.Http.HeaderMap = hm
		return req
	}
	pipe := func() *authv3.CheckRequest {
		req := checkReq("GET", "/email/inbox", office, nil)
		req.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/envoy.sock"}}}
		return req
	}
	noSource := func() *authv3.CheckRequest {
		req := checkReq("GET", "/email/inbox", office, nil)
		req.Attributes.Source = nil
		return req
	}
	mib := strings.Repeat("a", 1<<20)
	cases := []struct {
		name string
		req  *authv3.CheckRequest
		want outcome
	}{
		// Missing parts.
		{"no attributes", &authv3.CheckRequest{}, outcome{401, "missing_key"}},
		{"no request", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}, outcome{401, "missing_key"}},
		{"no HTTP part", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}, outcome{401, "missing_key"}},
		{"key but no path, method or host", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Headers: map[string]string{"x-api-key": svc}}}}}, outcome{400, "invalid_path"}},

		// Header values.
		{"empty key header", checkReq("GET", "/email/inbox", "", map[string]string{"x-api-key": ""}), outcome{401, "malformed_key"}},
		{"1 MiB key", checkReq("GET", "/email/inbox", mib, nil), outcome{401, "malformed_key"}},
		{"1 MiB of another header beside a good key", checkReq("GET", "/email/inbox", svc, map[string]string{"x-junk": mib}), outcome{status: 200}},
		{"1 MiB empty-named header beside a good key", checkReq("GET", "/email/inbox", svc, map[string]string{"": mib}), outcome{status: 200}},
		{"non-UTF-8 key (raw header value)", rawKey([]byte("\xff\xfe" + svc[2:])), outcome{401, "malformed_key"}},
		{"non-UTF-8 custom-shaped key", rawKey([]byte("custom-secret-\xc3\x28-0123456789")), outcome{401, "malformed_key"}},
		{"NUL in the key", checkReq("GET", "/email/inbox", svc[:10]+"\x00"+svc[11:], nil), outcome{401, "malformed_key"}},
		{"newline after the key", checkReq("GET", "/email/inbox", svc+"\n", nil), outcome{401, "malformed_key"}},
		{"DEL in a custom-shaped key", checkReq("GET", "/email/inbox", "custom-secret-\x7f-0123456789", nil), outcome{401, "malformed_key"}},
		{"key with a trailing space", checkReq("GET", "/email/inbox", svc+" ", nil), outcome{401, "malformed_key"}},
		{"key with a leading tab", checkReq("GET", "/email/inbox", "\t"+svc, nil), outcome{401, "malformed_key"}},
		{"non-ASCII UTF-8 key", checkReq("GET", "/email/inbox", "schlüssel-0123456789-abcdef", nil), outcome{401, "malformed_key"}},
		{"300 keys joined by commas", checkReq("GET", "/email/inbox", strings.Repeat(svc+",", 299)+svc, nil), outcome{401, "malformed_key"}},
		{"300 commas", checkReq("GET", "/email/inbox", strings.Repeat(",", 300), nil), outcome{401, "malformed_key"}},
		{"300 x-api-key headers (header_map)", manyKeyHeaders(300), outcome{401, "malformed_key"}},
		{"the key in headers and in header_map", func() *authv3.CheckRequest {
			req := manyKeyHeaders(1)
			req.Attributes.Request.Http.Headers["x-api-key"] = svc
			return req
		}(), outcome{401, "malformed_key"}},
		{"upper-case key header name in header_map", func() *authv3.CheckRequest {
			req := checkReq("GET", "/email/inbox", "", nil)
			req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "X-Api-Key", Value: svc}}}
			return req
		}(), outcome{status: 200}},

		// Client addresses (k-office is limited to 10.0.0.0/8 and 2001:db8::/32).
		{"IPv6 source with a zone inside the filter", from(checkReq("GET", "/email/inbox", office, nil), "2001:db8::7%eth0"), outcome{status: 200}},
		{"link-local source with an escaped-looking zone", from(checkReq("GET", "/email/inbox", link, nil), "fe80::1%25eth0"), outcome{status: 200}},
		{"link-local source with a zone", from(checkReq("GET", "/email/inbox", link, nil), "fe80::1%eth0"), outcome{status: 200}},
		{"IPv4-mapped IPv6 source", from(checkReq("GET", "/email/inbox", office, nil), "::ffff:10.1.2.3"), outcome{status: 200}},
		{"IPv6 source outside the filter", from(checkReq("GET", "/email/inbox", office, nil), "2001:db9::1"), outcome{403, "ip_not_allowed"}},
		{"unparseable source", from(checkReq("GET", "/email/inbox", office, nil), "not-an-address"), outcome{403, "ip_not_allowed"}},
		{"out-of-range IPv4 source", from(checkReq("GET", "/email/inbox", office, nil), "10.0.0.256"), outcome{403, "ip_not_allowed"}},
		{"source with a port in the address", from(checkReq("GET", "/email/inbox", office, nil), "10.0.0.1:8080"), outcome{403, "ip_not_allowed"}},
		{"bracketed IPv6 source", from(checkReq("GET", "/email/inbox", office, nil), "[2001:db8::1]"), outcome{403, "ip_not_allowed"}},
		{"IPv4 source with leading zeros", from(checkReq("GET", "/email/inbox", office, nil), "010.0.0.1"), outcome{403, "ip_not_allowed"}},
		{"empty source", from(checkReq("GET", "/email/inbox", office, nil), ""), outcome{403, "ip_not_allowed"}},
		{"pipe source", pipe(), outcome{403, "ip_not_allowed"}},
		{"no source", noSource(), outcome{403, "ip_not_allowed"}},
		{"unparseable source, key without filters", from(checkReq("GET", "/email/inbox", svc, nil), "not-an-address"), outcome{status: 200}},

		// Paths.
		{"10 KiB path", checkReq("GET", "/email/"+strings.Repeat("a", 10<<10), svc, nil), outcome{403, "unknown_route"}},
		{"10 KiB path under a template", checkReq("DELETE", "/email/"+strings.Repeat("a", 10<<10), svc, nil), outcome{status: 200}},
		{"10 KiB of ../", checkReq("GET", "/email/inbox/"+strings.Repeat("../", 3500), svc, nil), outcome{403, "unknown_route"}},
		{"10 KiB of slashes", checkReq("GET", "/"+strings.Repeat("/", 10<<10)+"email/inbox", svc, nil), outcome{status: 200}},
		{"1 MiB path", checkReq("GET", "/"+mib, svc, nil), outcome{403, "unknown_route"}},
		{"%00 after a route", checkReq("GET", "/email/inbox%00", svc, nil), outcome{403, "unknown_route"}},
		{"%00 as a template segment", checkReq("DELETE", "/email/%00", svc, nil), outcome{status: 200}},
		{"raw NUL in the path", checkReq("GET", "/email/inbox\x00", svc, nil), outcome{400, "invalid_path"}},
		{"backslash", checkReq("GET", `/email\inbox`, svc, nil), outcome{400, "invalid_path"}},
		{"encoded backslash traversal", checkReq("POST", "/email/inbox/..%5c..%5csend", svc, nil), outcome{400, "invalid_path"}},
		{"encoded slash is refused (SPEC §9)", checkReq("GET", "/email%2Finbox", svc, nil), outcome{400, "invalid_path"}},
		{"malformed escape", checkReq("GET", "/email/%zz", svc, nil), outcome{400, "invalid_path"}},
		{"truncated escape", checkReq("GET", "/email/inbox%2", svc, nil), outcome{400, "invalid_path"}},
		{"path without a leading slash", checkReq("GET", "email/inbox", svc, nil), outcome{400, "invalid_path"}},
		{"asterisk-form target", checkReq("OPTIONS", "*", svc, nil), outcome{400, "invalid_path"}},
		{"absolute-form target", checkReq("GET", "http://evil.example/email/inbox", svc, nil), outcome{400, "invalid_path"}},
		{"non-UTF-8 path", func() *authv3.CheckRequest {
			// proto strings must be UTF-8; Envoy sends such paths escaped.
			return checkReq("GET", "/email/%ff%fe", svc, nil)
		}(), outcome{400, "invalid_path"}},
		{"empty method", checkReq("", "/email/inbox", svc, nil), outcome{403, "unknown_route"}},
		{"lower-case method", checkReq("get", "/email/inbox", svc, nil), outcome{403, "unknown_route"}},
		{"10 KiB method", checkReq(strings.Repeat("G", 10<<10), "/email/inbox", svc, nil), outcome{403, "unknown_route"}},
		{"10 KiB host", func() *authv3.CheckRequest {
			req := checkReq("GET", "/email/inbox", svc, nil)
			req.Attributes.Request.Http.Host = strings.Repeat("h", 10<<10)
			return req
		}(), outcome{status: 200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, resp := call(t, client, tc.req)
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if d := resp.GetDeniedResponse(); d != nil {
				var body struct{ Error, Reason string }
				if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || body.Error == "" || len(d.GetBody()) > 512 {
					t.Errorf("deny body %.200q: want a short JSON error and reason (%v)", d.GetBody(), err)
				}
				for _, s := range []string{svc, office, link} {
					if strings.Contains(d.GetBody(), s) {
						t.Error("the deny body echoes a key")
					}
				}
			}
		})
	}

	// A CheckRequest larger than gRPC's 4 MiB default is refused by the
	// transport (Envoy fails closed on it); the server carries on.
	t.Run("5 MiB header is refused by gRPC", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := client.Check(ctx, checkReq("GET", "/email/inbox", svc, map[string]string{"x-junk": strings.Repeat("a", 5<<20)}))
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("got %v, want ResourceExhausted", err)
		}
		if got, _ := call(t, client, checkReq("GET", "/email/inbox", svc, nil)); got.status != 200 {
			t.Fatalf("after the oversize request: %+v", got)
		}
	})
	assertCleanLogs(t, srv)
	for _, s := range []string{svc, office, link} {
		if strings.Contains(srv.Logs(), s) {
			t.Error("a key appears in the logs")
		}
	}
}

// TestBadAccountRequests extends TestAccountAPI's error cases with the
// hostile and absurd inputs it does not send: every length bound, more
// invalid scopes, CIDRs and templates, SQL metacharacters where they are
// looked up rather than stored, wrong key types, and callers whose key is
// missing, doubled, inactive, expired or scoped too narrowly. Each must
// get its specific status code with a message that starts with the field
// (or names the reason), and every table but key_usage (which records
// that the caller's key was used) must be unchanged afterwards.
func TestBadAccountRequests(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	api := env.client(t, srv)
	secrets := seed(t, api)
	c := api.AccountServiceClient

	acctKey := func(id, scope string, edit func(*accountv1.GenerateAccountAccessKeyRequest)) string {
		req := &accountv1.GenerateAccountAccessKeyRequest{Id: id, Name: id, Scope: scope}
		if edit != nil {
			edit(req)
		}
		resp, err := api.GenerateAccountAccessKey(api.ctx(t), req)
		mustOK(t, "GenerateAccountAccessKey "+id, err)
		return resp.GetPrivateKey()
	}
	narrow := acctKey("k-narrow", "account-api:query:app", nil)
	denyOnly := acctKey("k-deny-only", "!account-api", nil)
	inactive := acctKey("k-acct-inactive", "", func(r *accountv1.GenerateAccountAccessKeyRequest) { r.Active = proto.Bool(false) })
	// A new key with a past expiry is refused; an update may expire one.
	expired := acctKey("k-acct-expired", "", nil)
	if _, err := api.UpdateKey(api.ctx(t), &accountv1.UpdateKeyRequest{Id: "k-acct-expired", ExpiresAt: timestamppb.New(time.Now().Add(-time.Minute))}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new account keys", func() bool {
		_, err := c.GetApp(asKey(t, narrow, true), &accountv1.GetAppRequest{Id: "billing"})
		_, err2 := c.GetApp(asKey(t, expired, true), &accountv1.GetAppRequest{Id: "billing"})
		return err == nil && strings.Contains(status.Convert(err2).Message(), "expired_key")
	})
	allSecrets := []string{env.accountKey, narrow, denyOnly, inactive, expired}
	for _, s := range secrets {
		allSecrets = append(allSecrets, s)
	}

	long := func(n int) string { return strings.Repeat("x", n) }
	genSvc := func(edit func(*accountv1.GenerateServiceAccessKeyRequest)) func(context.Context) error {
		return func(ctx context.Context) error {
			r := &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Name: "bad-new"}
			edit(r)
			_, err := c.GenerateServiceAccessKey(ctx, r)
			return err
		}
	}
	ips := func(f ...string) func(context.Context) error {
		return genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.IpFilters = f })
	}
	scope := func(s string) func(context.Context) error {
		return genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Scope = s })
	}
	headers := func(h ...*accountv1.ResponseHeader) func(context.Context) error {
		return genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.ResponseHeaders = h })
	}
	hdr := func(name, value string) *accountv1.ResponseHeader {
		return &accountv1.ResponseHeader{Name: name, Value: value}
	}
	importKey := func(edit func(*accountv1.ImportKeyRequest)) func(context.Context) error {
		return func(ctx context.Context) error {
			r := &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_SERVICE, AppId: "billing", TenantId: "acme",
				PrivateKey: "a-custom-Secret-0123456789", Name: "bad-import"}
			edit(r)
			_, err := c.ImportKey(ctx, r)
			return err
		}
	}
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	listApps := func(ctx context.Context) error {
		_, err := c.ListApps(ctx, &accountv1.ListAppsRequest{})
		return err
	}
	getApp := func(ctx context.Context) error {
		_, err := c.GetApp(ctx, &accountv1.GetAppRequest{Id: "billing"})
		return err
	}
	withMD := func(kv ...string) func(context.Context) context.Context {
		return func(context.Context) context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t.Cleanup(cancel)
			return metadata.AppendToOutgoingContext(ctx, kv...)
		}
	}

	type errCase struct {
		name string
		call func(context.Context) error
		// key is the caller's key (default: the bootstrap key); md, when
		// set, builds the whole outgoing context instead.
		key      string
		md       func(context.Context) context.Context
		code     codes.Code
		field    string   // the message starts with it
		contains []string // and holds these
		absent   []string // and not these
	}
	const (
		inv    = codes.InvalidArgument
		big    = codes.ResourceExhausted // a size limit (SPEC §10)
		nf     = codes.NotFound
		unauth = codes.Unauthenticated
		perm   = codes.PermissionDenied
	)
	cases := []errCase{
		// Every length bound.
		{name: "id of 129 bytes", code: inv, field: "id", contains: []string{"128"},
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Id = long(129) })},
		{name: "description of 1025 bytes", code: big, field: "description", contains: []string{"1024"},
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Description = long(1025) })},
		{name: "description of 512 KiB", code: big, field: "description",
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Description = long(512 << 10) })},
		// Past the Account API's 1 MiB request bound, gRPC refuses the
		// message before it is decoded.
		{name: "request of 1 MiB", code: big, contains: []string{"larger than max"},
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Description = long(1 << 20) })},
		{name: "group of 201 bytes", code: big, field: "group", contains: []string{"200"},
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Group = long(201) })},
		{name: "scope of 4097 bytes", code: big, field: "scope", contains: []string{"4096"},
			call: scope(strings.Repeat("email-api ", 410))},
		{name: "101 IP filters", code: big, field: "ip_filters", contains: []string{"100"},
			call: ips(many(101, func(i int) string { return fmt.Sprintf("10.0.%d.0/24", i) })...)},
		{name: "IP filter of 101 bytes", code: big, field: "ip_filters", contains: []string{"[0]"},
			call: ips("10.0.0.0/" + long(92))},
		{name: "21 response headers", code: big, field: "response_headers", contains: []string{"20"},
			call: headers(func() (hs []*accountv1.ResponseHeader) {
				for i := range 21 {
					hs = append(hs, hdr(fmt.Sprintf("x-h%d", i), "v"))
				}
				return hs
			}()...)},
		{name: "response header name of 257 bytes", code: big, field: "response_headers", call: headers(hdr("x-"+long(255), "v"))},
		{name: "response header value of 4097 bytes", code: big, field: "response_headers", call: headers(hdr("x-big", long(4097)))},
		{name: "response header name of 65 bytes", code: big, field: "response_headers", contains: []string{"64"}, call: headers(hdr("x-"+long(63), "v"))},
		{name: "response header value of 1025 bytes", code: big, field: "response_headers", contains: []string{"1024"}, call: headers(hdr("x-big", long(1025)))},
		{name: "CreateApp name of 201 bytes", code: big, field: "name",
			call: func(ctx context.Context) error {
				_, err := c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "bad-app", Name: long(201)})
				return err
			}},
		{name: "CreateTenant description of 1025 bytes", code: big, field: "description",
			call: func(ctx context.Context) error {
				_, err := c.CreateTenant(ctx, &accountv1.CreateTenantRequest{Id: "bad-tenant", Name: "Bad", Description: long(1025)})
				return err
			}},
		{name: "UpdateApp name of 201 bytes", code: big, field: "name",
			call: func(ctx context.Context) error {
				_, err := c.UpdateApp(ctx, &accountv1.UpdateAppRequest{Id: "billing", Name: proto.String(long(201))})
				return err
			}},
		{name: "UpdateKey description of 1025 bytes", code: big, field: "description",
			call: func(ctx context.Context) error {
				_, err := c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "k-svc", Description: proto.String(long(1025))})
				return err
			}},
		{name: "ListKeys page_token of 1025 bytes", code: inv, field: "page_token",
			call: func(ctx context.Context) error {
				_, err := c.ListKeys(ctx, &accountv1.ListKeysRequest{PageToken: long(1025)})
				return err
			}},
		{name: "ImportKey secret of 513 bytes, not echoed", code: inv, field: "private_key", absent: []string{long(40)},
			call: importKey(func(r *accountv1.ImportKeyRequest) { r.PrivateKey = long(513) })},
		{name: "ListApps negative page_size", code: inv, field: "page_size",
			call: func(ctx context.Context) error {
				_, err := c.ListApps(ctx, &accountv1.ListAppsRequest{PageSize: -1})
				return err
			}},

		// Invalid scopes: the message names the bad pattern.
		{name: "scope with four segments", code: inv, field: "scope", contains: []string{"email-api:query:get:extra"},
			call: scope("email-api email-api:query:get:extra")},
		{name: "scope with * inside a segment", code: inv, field: "scope", contains: []string{"email-api:qu*ery"},
			call: scope("email-api:qu*ery")},
		{name: "scope of a bare !", code: inv, field: "scope", call: scope("!")},
		{name: "scope with an empty segment", code: inv, field: "scope", call: scope("email-api::sendEmail")},
		{name: "scope with a control character", code: inv, field: "scope", call: scope("email-api:query:send\x00")},
		{name: "scope with SQL", code: inv, field: "scope", call: scope("email-api' OR '1'='1")},

		// Invalid IP filters: the message names the entry.
		{name: "non-contiguous netmask", code: inv, field: "ip_filters", contains: []string{"[0]", "contiguous"}, call: ips("10.0.0.0/255.0.255.0")},
		{name: "netmask on IPv6", code: inv, field: "ip_filters", contains: []string{"[1]"}, call: ips("10.0.0.0/8", "2001:db8::/ffff::")},
		{name: "IPv4 octet over 255", code: inv, field: "ip_filters", call: ips("10.0.0.256")},
		{name: "IPv6 zone", code: inv, field: "ip_filters", contains: []string{"zone"}, call: ips("fe80::1%eth0")},
		{name: "two prefix lengths", code: inv, field: "ip_filters", call: ips("10.0.0.0/8/8")},
		{name: "negative prefix length", code: inv, field: "ip_filters", call: ips("10.0.0.0/-1")},
		{name: "IPv6 /129", code: inv, field: "ip_filters", call: ips("2001:db8::/129")},
		{name: "empty filter", code: inv, field: "ip_filters", call: ips("")},
		{name: "leading space", code: inv, field: "ip_filters", call: ips(" 10.0.0.1")},
		{name: "host name", code: inv, field: "ip_filters", call: ips("localhost")},
		{name: "leading zeros", code: inv, field: "ip_filters", call: ips("010.0.0.1")},

		// Response headers.
		{name: "template variable key.hash", code: inv, field: "response_headers", contains: []string{"key.hash"}, call: headers(hdr("x-h", "${key.hash}"))},
		{name: "unterminated template variable", code: inv, field: "response_headers", contains: []string{"unterminated"}, call: headers(hdr("x-h", "${key.id"))},
		{name: "stray $", code: inv, field: "response_headers", contains: []string{"$$"}, call: headers(hdr("x-h", "$x"))},
		{name: "tenant variable on an app key", code: inv, field: "response_headers", contains: []string{"tenant"},
			call: func(ctx context.Context) error {
				_, err := c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{AppId: "billing", Name: "bad-app-key",
					ResponseHeaders: []*accountv1.ResponseHeader{hdr("x-t", "${tenant.name}")}})
				return err
			}},
		{name: "identity header name", code: inv, field: "response_headers", contains: []string{"reserved"}, call: headers(hdr("x-keygate-key-id", "forged"))},
		{name: "key header name", code: inv, field: "response_headers", contains: []string{"reserved"}, call: headers(hdr("x-api-key", "v"))},
		{name: "duplicate header names", code: inv, field: "response_headers", contains: []string{"duplicate"}, call: headers(hdr("x-h", "a"), hdr("x-h", "b"))},
		{name: "header name with a space", code: inv, field: "response_headers", call: headers(hdr("x bad", "v"))},
		{name: "header value with CR LF", code: inv, field: "response_headers", call: headers(hdr("x-h", "a\r\nset-cookie: x=y"))},

		// SQL metacharacters where they are looked up.
		{name: "id with SQL", code: inv, field: "id", call: func(ctx context.Context) error {
			_, err := c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "x'; DROP TABLE apps;--", Name: "x"})
			return err
		}},
		{name: "GetApp of ' OR '1'='1", code: nf, call: func(ctx context.Context) error {
			_, err := c.GetApp(ctx, &accountv1.GetAppRequest{Id: "' OR '1'='1"})
			return err
		}},
		{name: "DeleteKey of ' OR 1=1 --", code: nf, call: func(ctx context.Context) error {
			_, err := c.DeleteKey(ctx, &accountv1.DeleteKeyRequest{Id: "' OR 1=1 --"})
			return err
		}},
		{name: "DeleteApp of %", code: nf, call: func(ctx context.Context) error {
			_, err := c.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: "%"})
			return err
		}},
		{name: "UpdateKey of k-%", code: nf, call: func(ctx context.Context) error {
			_, err := c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "k-%", Active: proto.Bool(false)})
			return err
		}},
		{name: "DeleteTenant of acme' --", code: nf, call: func(ctx context.Context) error {
			_, err := c.DeleteTenant(ctx, &accountv1.DeleteTenantRequest{Id: "acme' --"})
			return err
		}},
		{name: "page_token with SQL", code: inv, field: "page_token", call: func(ctx context.Context) error {
			_, err := c.ListKeys(ctx, &accountv1.ListKeysRequest{PageToken: "' OR '1'='1"})
			return err
		}},

		// Wrong key types.
		{name: "ImportKey without a type", code: inv, field: "type",
			call: importKey(func(r *accountv1.ImportKeyRequest) { r.Type = accountv1.KeyType_KEY_TYPE_UNSPECIFIED })},
		{name: "ImportKey with an unknown type", code: inv, field: "type",
			call: importKey(func(r *accountv1.ImportKeyRequest) { r.Type = accountv1.KeyType(42) })},
		{name: "ImportKey of an account key (always generated)", code: inv, field: "type",
			call: importKey(func(r *accountv1.ImportKeyRequest) { r.Type = accountv1.KeyType_KEY_TYPE_ACCOUNT; r.TenantId = "" })},
		{name: "ImportKey of a short secret", code: inv, field: "private_key",
			call: importKey(func(r *accountv1.ImportKeyRequest) { r.PrivateKey = "abcdefghijklmnopqrstuvw" })},
		{name: "ImportKey of a secret of few characters", code: inv, field: "private_key",
			call: importKey(func(r *accountv1.ImportKeyRequest) { r.PrivateKey = strings.Repeat("a", 30) })},
		{name: "ImportKey app key with a tenant", code: inv, field: "tenant_id",
			call: importKey(func(r *accountv1.ImportKeyRequest) { r.Type = accountv1.KeyType_KEY_TYPE_APP })},
		{name: "ImportKey of a generated-looking secret", code: inv, field: "private_key",
			call: importKey(func(r *accountv1.ImportKeyRequest) { r.PrivateKey = "kg_sak_custom0123456789abcdef" })},
		{name: "ImportKey of a secret with a comma", code: inv, field: "private_key",
			call: importKey(func(r *accountv1.ImportKeyRequest) { r.PrivateKey = "a-custom-secret,0123456789" })},
		{name: "ListKeys with an unknown type", code: inv, field: "type", call: func(ctx context.Context) error {
			_, err := c.ListKeys(ctx, &accountv1.ListKeysRequest{Type: accountv1.KeyType(42)})
			return err
		}},
		{name: "app key on the Account API", key: secrets["app"], code: perm, contains: []string{"wrong_key_type"}, call: listApps},

		// Missing or insufficient scope, unusable caller keys.
		{name: "narrow key calling ListApps", key: narrow, code: perm, contains: []string{"scope_denied", "account-api:query:apps"}, call: listApps},
		{name: "narrow key calling DeleteApp", key: narrow, code: perm, contains: []string{"scope_denied", "deleteApp"},
			call: func(ctx context.Context) error {
				_, err := c.DeleteApp(ctx, &accountv1.DeleteAppRequest{Id: "billing"})
				return err
			}},
		{name: "deny-only key", key: denyOnly, code: perm, contains: []string{"scope_denied"}, call: getApp},
		{name: "inactive account key", key: inactive, code: unauth, contains: []string{"inactive_key"}, call: getApp},
		{name: "expired account key", key: expired, code: unauth, contains: []string{"expired_key"}, call: getApp},
		{name: "two x-api-key values", md: withMD("x-api-key", env.accountKey, "x-api-key", env.accountKey), code: unauth,
			contains: []string{"malformed_key"}, call: getApp},
		{name: "empty x-api-key", md: withMD("x-api-key", ""), code: unauth, contains: []string{"malformed_key"}, call: getApp},
		{name: "key in authorization only", md: withMD("authorization", "Bearer "+env.accountKey), code: unauth,
			contains: []string{"missing_key"}, call: getApp},
		{name: "100 KiB x-api-key", md: withMD("x-api-key", long(100<<10)), code: unauth, contains: []string{"malformed_key"}, call: getApp},
		// (grpc-go will not send control characters in metadata at all.)
	}

	tables := publicTables(t, env.url, "key_usage")
	before := dumpTables(t, env.url, tables...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ctx context.Context
			switch {
			case tc.md != nil:
				ctx = tc.md(nil)
			case tc.key != "":
				ctx = asKey(t, tc.key, true)
			default:
				ctx = asKey(t, env.accountKey, true)
			}
			want := refusal{code: tc.code, contains: tc.contains, absent: tc.absent}
			if tc.field != "" {
				want.prefix = tc.field + ":"
			}
			msg := wantRefusal(t, tc.call(ctx), want)
			if len(msg) > 8<<10 {
				t.Errorf("message of %d bytes", len(msg))
			}
			for _, s := range allSecrets {
				if strings.Contains(msg, s) {
					t.Error("the message carries a secret")
				}
			}
		})
	}

	// Lookups with metacharacters find nothing rather than everything.
	for _, group := range []string{"' OR 1=1 --", "%", "*", `\`} {
		resp, err := c.ListKeys(api.ctx(t), &accountv1.ListKeysRequest{Group: group})
		if err != nil || len(resp.GetKeys()) != 0 {
			t.Errorf("ListKeys group %q: %d keys, %v; want none", group, len(resp.GetKeys()), err)
		}
	}

	after := dumpTables(t, env.url, tables...)
	for _, table := range tables {
		if d := cmp.Diff(before[table], after[table]); d != "" {
			t.Errorf("refused calls changed table %s (-before +after):\n%s", table, d)
		}
	}
	assertCleanLogs(t, srv)
}

// publicTables lists the tables of keygate's schema, but those named in
// except.
func publicTables(t testing.TB, url string, except ...string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	mustOK(t, "connect", err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
	mustOK(t, "tables", err)
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	mustOK(t, "tables", err)
	var out []string
	for _, n := range all {
		if !slices.Contains(except, n) {
			out = append(out, n)
		}
	}
	if len(out) < 5 {
		t.Fatalf("public tables: %v", all)
	}
	return out
}
