package route

import (
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
)

// fixture exercises every matching rule; each route's operation names the
// rule it is there for.
const fixture = `
services:
  - name: email-api
    key_types: [service]
    routes:
      - {path_prefix: /email/read, methods: [GET], kind: query, operation: listEmails}
      - {path: /email/send, methods: [POST], kind: mutation, operation: sendEmail}
      - {path: "/email/{id}", methods: [DELETE], kind: mutation, operation: deleteEmail}
      - {path: "/email/{id}", methods: [GET], kind: query, operation: getEmail}
      - {path: /email/inbox, methods: [GET], kind: query, operation: inbox}
      - {path: "/email/{id}/attachments/{name}", kind: query, operation: attachment}
      - {path: "/email/{id}/attachments/latest", kind: query, operation: latestAttachment}
      - {path_prefix: /email, kind: query, operation: emailAny}
      - {path_prefix: /files/, kind: query, operation: files}
      - {path: /dir/, kind: query, operation: dirSlash}
      - {path: /dir, kind: query, operation: dirNoSlash}
      - {path: "/t/{x}/", kind: query, operation: templateSlash}
      - {path: "/x/{a}/c", kind: query, operation: firstTie}
      - {path: "/x/b/{c}", kind: query, operation: secondTie}
      - {path: /only-get, methods: [GET], kind: query, operation: onlyGet}
      - {path_prefix: /api/v1, kind: query, operation: apiV1}
  - name: mail-api
    key_types: [service, app]
    routes:
      - {host: mail.example.com, path_prefix: /, methods: [GET], kind: query, operation: mailHost}
      - {host: "*.tenants.example.com", path_prefix: /, methods: [GET], kind: query, operation: tenantWildcard}
      - {host: api.tenants.example.com, path_prefix: /, methods: [GET], kind: query, operation: apiTenant}
      - {host: "*.example.com", path: /deep, kind: query, operation: shortWildcard}
      - {host: "[::1]", path: /v6, kind: query, operation: v6}
  - name: graph-api
    key_types: [app]
    routes:
      - {path: /graphql, methods: [POST], protocol: graphql}
  - name: users-api
    key_types: [app]
    grpc_services: [users.v1.UserService, {name: users.v1.AdminService, kind: admin}]
  - name: billing-api
    key_types: [service, app]
    grpc_services: [billing.v1.Billing]
    routes:
      - {path: /billing.v1.Billing/Refund, methods: [POST], kind: mutation, operation: tableRefund}
  - name: ext-only
    key_types: [service]
`

var fixtureAccepts = map[string]authz.KeyTypes{
	"email-api":   authz.KeyTypes(0).With(authz.KeyTypeService),
	"mail-api":    authz.KeyTypes(0).With(authz.KeyTypeService).With(authz.KeyTypeApp),
	"graph-api":   authz.KeyTypes(0).With(authz.KeyTypeApp),
	"users-api":   authz.KeyTypes(0).With(authz.KeyTypeApp),
	"billing-api": authz.KeyTypes(0).With(authz.KeyTypeService).With(authz.KeyTypeApp),
	"ext-only":    authz.KeyTypes(0).With(authz.KeyTypeService),
}

func target(service, kind, operation string) authz.Target {
	return authz.Target{Service: service, Kind: kind, Operation: operation, Accepts: fixtureAccepts[service]}
}

func mustParse(t testing.TB, src string) *Table {
	t.Helper()
	tb, _, err := Parse([]byte(src), "routes.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tb
}

func get(path string) authz.RouteInput { return authz.RouteInput{Method: "GET", Path: path} }

func TestResolve(t *testing.T) {
	tb := mustParse(t, fixture)
	grpc := func(ct, path string) authz.RouteInput {
		return authz.RouteInput{Method: "POST", Path: path, ContentType: ct}
	}
	tests := []struct {
		name string
		in   authz.RouteInput
		want authz.Target
		r    authz.Reason
	}{
		// Prefixes.
		{"prefix matches itself", get("/api/v1"), target("email-api", "query", "apiV1"), authz.OK},
		{"prefix matches below it", get("/api/v1/users/1"), target("email-api", "query", "apiV1"), authz.OK},
		{"prefix matches itself with a trailing slash", get("/api/v1/"), target("email-api", "query", "apiV1"), authz.OK},
		{"prefix /a/b never matches /a/bc", get("/api/v1x"), authz.Target{}, authz.UnknownRoute},
		{"prefix /a/b never matches /a/bc, falls to a shorter prefix", get("/email/reader/x"), target("email-api", "query", "emailAny"), authz.OK},
		{"template beats a prefix matching the same path", get("/email/read"), target("email-api", "query", "getEmail"), authz.OK},
		{"longest prefix wins", get("/email/read/x/y"), target("email-api", "query", "listEmails"), authz.OK},
		{"prefix ending in slash matches by string", get("/files/a/b"), target("email-api", "query", "files"), authz.OK},
		{"prefix ending in slash matches itself", get("/files/"), target("email-api", "query", "files"), authz.OK},
		{"prefix ending in slash does not match without it", get("/files"), authz.Target{}, authz.UnknownRoute},
		{"prefix ending in slash does not match a longer name", get("/filesx"), authz.Target{}, authz.UnknownRoute},

		// Exact paths and templates.
		{"exact path", authz.RouteInput{Method: "POST", Path: "/email/send"}, target("email-api", "mutation", "sendEmail"), authz.OK},
		{"exact path with trailing slash is another path", get("/dir/"), target("email-api", "query", "dirSlash"), authz.OK},
		{"exact path without trailing slash", get("/dir"), target("email-api", "query", "dirNoSlash"), authz.OK},
		{"exact path does not match below it", get("/dir/x"), authz.Target{}, authz.UnknownRoute},
		{"template with trailing slash", get("/t/1/"), target("email-api", "query", "templateSlash"), authz.OK},
		{"template trailing slash is significant", get("/t/1"), authz.Target{}, authz.UnknownRoute},
		{"template param is one segment", get("/t/1/2/"), authz.Target{}, authz.UnknownRoute},
		{"template param is not empty", get("/t//"), authz.Target{}, authz.UnknownRoute},
		{"template param", authz.RouteInput{Method: "DELETE", Path: "/email/42"}, target("email-api", "mutation", "deleteEmail"), authz.OK},
		{"exact beats template", get("/email/inbox"), target("email-api", "query", "inbox"), authz.OK},
		{"template beats prefix", get("/email/42"), target("email-api", "query", "getEmail"), authz.OK},
		{"more literal template segments first", get("/email/1/attachments/latest"), target("email-api", "query", "latestAttachment"), authz.OK},
		{"fewer literal template segments", get("/email/1/attachments/a.pdf"), target("email-api", "query", "attachment"), authz.OK},
		{"file order breaks template ties", get("/x/b/c"), target("email-api", "query", "firstTie"), authz.OK},
		{"second of a tie still matches alone", get("/x/b/d"), target("email-api", "query", "secondTie"), authz.OK},

		// Methods.
		{"wrong method falls through to template", authz.RouteInput{Method: "DELETE", Path: "/email/inbox"}, target("email-api", "mutation", "deleteEmail"), authz.OK},
		{"wrong method falls through to prefix", authz.RouteInput{Method: "PATCH", Path: "/email/inbox"}, target("email-api", "query", "emailAny"), authz.OK},
		{"no implicit HEAD", authz.RouteInput{Method: "HEAD", Path: "/only-get"}, authz.Target{}, authz.UnknownRoute},
		{"methods are case-sensitive", authz.RouteInput{Method: "get", Path: "/only-get"}, authz.Target{}, authz.UnknownRoute},
		{"empty methods is any method", authz.RouteInput{Method: "PURGE", Path: "/files/x"}, target("email-api", "query", "files"), authz.OK},

		// Normalisation.
		{"query string is not part of the path", get("/email/inbox?next=/../send"), target("email-api", "query", "inbox"), authz.OK},
		{"dot-segment traversal cannot pass as a read", authz.RouteInput{Method: "POST", Path: "/email/read/../send"}, target("email-api", "mutation", "sendEmail"), authz.OK},
		{"encoded dot-segment traversal cannot pass as a read", authz.RouteInput{Method: "POST", Path: "/email/read/%2e%2E/send"}, target("email-api", "mutation", "sendEmail"), authz.OK},
		{"traversal GET lands on the template, not the read prefix", get("/email/read/../send"), target("email-api", "query", "getEmail"), authz.OK},
		{"duplicate slashes are merged", get("//email///inbox"), target("email-api", "query", "inbox"), authz.OK},
		{"dot segment is removed", get("/email/./inbox"), target("email-api", "query", "inbox"), authz.OK},
		{"%41-style unreserved escapes are decoded", get("/email/%69nbox"), target("email-api", "query", "inbox"), authz.OK},
		{"%2F is refused by default", get("/email/read%2Fx"), authz.Target{}, authz.InvalidPath},
		{"%2f is refused by default", authz.RouteInput{Method: "DELETE", Path: "/email/a%2fb"}, authz.Target{}, authz.InvalidPath},
		{"paths are case-sensitive", get("/EMAIL/inbox"), authz.Target{}, authz.UnknownRoute},
		{"malformed escape", get("/email/%zz"), authz.Target{}, authz.InvalidPath},
		{"truncated escape", get("/email/%4"), authz.Target{}, authz.InvalidPath},
		{"lone percent", get("/email/%"), authz.Target{}, authz.InvalidPath},
		{"empty path", get(""), authz.Target{}, authz.InvalidPath},
		{"asterisk form", authz.RouteInput{Method: "OPTIONS", Path: "*"}, authz.Target{}, authz.InvalidPath},
		{"relative path", get("email/inbox"), authz.Target{}, authz.InvalidPath},
		{"query only", get("?a=b"), authz.Target{}, authz.InvalidPath},

		// Hosts.
		{"host route", authz.RouteInput{Host: "mail.example.com", Method: "GET", Path: "/anything"}, target("mail-api", "query", "mailHost"), authz.OK},
		{"host route disagreeing with a host-less route is refused", authz.RouteInput{Host: "mail.example.com", Method: "GET", Path: "/email/inbox"}, authz.Target{Detail: detailHostConflict}, authz.UnknownRoute},
		{"host route with wrong method falls through to host-less", authz.RouteInput{Host: "mail.example.com", Method: "POST", Path: "/email/send"}, target("email-api", "mutation", "sendEmail"), authz.OK},
		{"host with port", authz.RouteInput{Host: "mail.example.com:8443", Method: "GET", Path: "/x"}, target("mail-api", "query", "mailHost"), authz.OK},
		{"host in another case", authz.RouteInput{Host: "MAIL.Example.COM", Method: "GET", Path: "/x"}, target("mail-api", "query", "mailHost"), authz.OK},
		{"host with trailing dot", authz.RouteInput{Host: "mail.example.com.", Method: "GET", Path: "/x"}, target("mail-api", "query", "mailHost"), authz.OK},
		{"other host uses host-less routes", authz.RouteInput{Host: "www.example.org", Method: "GET", Path: "/x"}, authz.Target{}, authz.UnknownRoute},
		{"wildcard host matches one label", authz.RouteInput{Host: "acme.tenants.example.com", Method: "GET", Path: "/x"}, target("mail-api", "query", "tenantWildcard"), authz.OK},
		{"wildcard host matches several labels", authz.RouteInput{Host: "a.b.tenants.example.com:443", Method: "GET", Path: "/x"}, target("mail-api", "query", "tenantWildcard"), authz.OK},
		{"wildcard host in another case", authz.RouteInput{Host: "ACME.Tenants.Example.com", Method: "GET", Path: "/x"}, target("mail-api", "query", "tenantWildcard"), authz.OK},
		{"wildcard host does not match its bare domain", authz.RouteInput{Host: "tenants.example.com", Method: "GET", Path: "/x"}, authz.Target{}, authz.UnknownRoute},
		{"wildcard host needs a non-empty label", authz.RouteInput{Host: ".tenants.example.com", Method: "GET", Path: "/x"}, authz.Target{}, authz.UnknownRoute},
		{"exact host beats wildcard host", authz.RouteInput{Host: "api.tenants.example.com", Method: "GET", Path: "/x"}, target("mail-api", "query", "apiTenant"), authz.OK},
		{"exact host in another case beats wildcard host", authz.RouteInput{Host: "API.tenants.example.com", Method: "GET", Path: "/x"}, target("mail-api", "query", "apiTenant"), authz.OK},
		{"longer wildcard beats shorter", authz.RouteInput{Host: "a.tenants.example.com", Method: "GET", Path: "/deep"}, target("mail-api", "query", "tenantWildcard"), authz.OK},
		{"shorter wildcard", authz.RouteInput{Host: "a.example.com", Method: "GET", Path: "/deep"}, target("mail-api", "query", "shortWildcard"), authz.OK},
		{"wrong method on the longer wildcard falls through to the shorter", authz.RouteInput{Host: "a.tenants.example.com", Method: "POST", Path: "/deep"}, target("mail-api", "query", "shortWildcard"), authz.OK},
		{"IPv6 host with port", authz.RouteInput{Host: "[::1]:8080", Method: "GET", Path: "/v6"}, target("mail-api", "query", "v6"), authz.OK},
		{"IPv6 host without port", authz.RouteInput{Host: "[::1]", Method: "GET", Path: "/v6"}, target("mail-api", "query", "v6"), authz.OK},
		// SPEC §9: the Host cannot steer the decision. The attack
		// forms of the host all reach the host route, which disagrees
		// with the host-less one.
		{"host steering in lower case", authz.RouteInput{Host: "mail.example.com", Method: "GET", Path: "/email/42"}, authz.Target{Detail: detailHostConflict}, authz.UnknownRoute},
		{"host steering with case, dot and port", authz.RouteInput{Host: "MAIL.example.com.:443", Method: "GET", Path: "/email/42"}, authz.Target{Detail: detailHostConflict}, authz.UnknownRoute},
		{"host steering in brackets", authz.RouteInput{Host: "[mail.example.com]", Method: "GET", Path: "/email/42"}, authz.Target{Detail: detailHostConflict}, authz.UnknownRoute},
		{"host steering with an empty port", authz.RouteInput{Host: "mail.example.com:", Method: "GET", Path: "/email/42"}, authz.Target{Detail: detailHostConflict}, authz.UnknownRoute},
		{"host steering through a wildcard", authz.RouteInput{Host: "x.tenants.example.com", Method: "GET", Path: "/files/a"}, authz.Target{Detail: detailHostConflict}, authz.UnknownRoute},
		{"host steering against a gRPC service", authz.RouteInput{Host: "mail.example.com", Method: "GET", Path: "/users.v1.UserService/GetUser", ContentType: "application/grpc"}, authz.Target{Detail: detailHostConflict}, authz.UnknownRoute},
		{"an unknown host is decided by host-less routes", authz.RouteInput{Host: "evil.example.org", Method: "GET", Path: "/email/42"}, target("email-api", "query", "getEmail"), authz.OK},
		{"IPv6 host with garbage after the bracket", authz.RouteInput{Host: "[::1]x", Method: "GET", Path: "/v6"}, authz.Target{}, authz.UnknownRoute},

		// gRPC.
		{"gRPC application/grpc", grpc("application/grpc", "/users.v1.UserService/GetUser"), target("users-api", "grpc", "GetUser"), authz.OK},
		{"gRPC application/grpc+proto", grpc("application/grpc+proto", "/users.v1.UserService/GetUser"), target("users-api", "grpc", "GetUser"), authz.OK},
		{"gRPC application/grpc-web", grpc("application/grpc-web", "/users.v1.UserService/GetUser"), target("users-api", "grpc", "GetUser"), authz.OK},
		{"gRPC application/grpc-web-text", grpc("application/grpc-web-text+proto", "/users.v1.UserService/GetUser"), target("users-api", "grpc", "GetUser"), authz.OK},
		{"gRPC content-type in another case", grpc("Application/GRPC", "/users.v1.UserService/GetUser"), target("users-api", "grpc", "GetUser"), authz.OK},
		{"gRPC custom kind", grpc("application/grpc", "/users.v1.AdminService/DeleteUser"), target("users-api", "admin", "DeleteUser"), authz.OK},
		{"gRPC table match comes first", grpc("application/grpc", "/billing.v1.Billing/Refund"), target("billing-api", "mutation", "tableRefund"), authz.OK},
		{"gRPC method without a table route", grpc("application/grpc", "/billing.v1.Billing/Charge"), target("billing-api", "grpc", "Charge"), authz.OK},
		{"gRPC content-type with parameters", grpc("application/grpc; charset=utf-8", "/users.v1.UserService/GetUser"), target("users-api", "grpc", "GetUser"), authz.OK},
		{"gRPC content-type is not a prefix match", grpc("application/grpcx", "/users.v1.UserService/GetUser"), authz.Target{}, authz.UnknownRoute},
		{"gRPC content-type with a suffix after a dash", grpc("application/grpc-x", "/users.v1.UserService/GetUser"), authz.Target{}, authz.UnknownRoute},
		{"gRPC content-type grpc-webx is grpc-web*", grpc("application/grpc-webx", "/users.v1.UserService/GetUser"), target("users-api", "grpc", "GetUser"), authz.OK},
		{"gRPC path without gRPC content-type", grpc("application/json", "/users.v1.UserService/GetUser"), authz.Target{}, authz.UnknownRoute},
		{"gRPC path without content-type", grpc("", "/users.v1.UserService/GetUser"), authz.Target{}, authz.UnknownRoute},
		{"gRPC undeclared service", grpc("application/grpc", "/users.v1.Other/GetUser"), authz.Target{}, authz.UnknownRoute},
		{"gRPC path with extra segment", grpc("application/grpc", "/users.v1.UserService/GetUser/x"), authz.Target{}, authz.UnknownRoute},
		{"gRPC path without method", grpc("application/grpc", "/users.v1.UserService/"), authz.Target{}, authz.UnknownRoute},
		{"gRPC path without service", grpc("application/grpc", "/GetUser"), authz.Target{}, authz.UnknownRoute},
		{"gRPC method with encoded slash", grpc("application/grpc", "/users.v1.UserService/Get%2FUser"), authz.Target{}, authz.InvalidPath},
		{"gRPC path is normalised first", grpc("application/grpc", "/x/../users.v1.UserService//GetUser"), target("users-api", "grpc", "GetUser"), authz.OK},

		// Method overrides (SPEC §9).
		{"method override naming another method", authz.RouteInput{Method: "GET", Path: "/email/inbox", MethodOverridden: true}, authz.Target{}, authz.InvalidRequest},
		{"method override with context_extensions", authz.RouteInput{Method: "GET", Path: "/x", MethodOverridden: true, Extensions: authz.Extensions{Service: "ext-only"}}, authz.Target{}, authz.InvalidRequest},

		// context_extensions.
		{"context_extensions win over the table", authz.RouteInput{Method: "GET", Path: "/email/inbox", Extensions: authz.Extensions{Service: "ext-only", Kind: "query", Operation: "op"}}, target("ext-only", "query", "op"), authz.OK},
		{"context_extensions win over gRPC", authz.RouteInput{Method: "POST", Path: "/users.v1.UserService/GetUser", ContentType: "application/grpc", Extensions: authz.Extensions{Service: "email-api", Operation: "x"}}, target("email-api", "", "x"), authz.OK},
		{"context_extensions missing kind and operation are empty", authz.RouteInput{Method: "GET", Path: "/nowhere", Extensions: authz.Extensions{Service: "ext-only"}}, target("ext-only", "", ""), authz.OK},
		{"context_extensions do not look at the path", authz.RouteInput{Method: "GET", Path: "/%zz", Extensions: authz.Extensions{Service: "ext-only"}}, target("ext-only", "", ""), authz.OK},
		{"context_extensions with an undeclared service", authz.RouteInput{Method: "GET", Path: "/email/inbox", Extensions: authz.Extensions{Service: "nope"}}, authz.Target{}, authz.UnknownRoute},
		{"context_extensions without service use the table", authz.RouteInput{Method: "GET", Path: "/email/inbox", Extensions: authz.Extensions{Kind: "x", Operation: "y"}}, target("email-api", "query", "inbox"), authz.OK},
		{"context_extensions with empty service use the table", authz.RouteInput{Method: "GET", Path: "/email/inbox", Extensions: authz.Extensions{Service: ""}}, target("email-api", "query", "inbox"), authz.OK},

		// GraphQL without a parser.
		{"graphql route without a parser", authz.RouteInput{Method: "POST", Path: "/graphql", Body: []byte(`{"query":"{a}"}`)}, authz.Target{Service: "graph-api", Accepts: fixtureAccepts["graph-api"], GraphQL: true, Detail: "GraphQL parsing is not configured for this route"}, authz.InvalidGraphQL},

		{"nothing matches", get("/nowhere"), authz.Target{}, authz.UnknownRoute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, r := tb.Resolve(&tt.in)
			if r != tt.r {
				t.Errorf("reason = %v, want %v (target %+v)", r, tt.r, got)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("target (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeParser answers with fixed operations and counts its calls.
type fakeParser struct {
	ops    []authz.Operation
	detail string
	reason authz.Reason

	mu     sync.Mutex
	calls  int
	record bool // keep the options of each call in opts
	opts   []GraphQLOptions
}

func (p *fakeParser) Operations(_ *authz.RouteInput, opts *GraphQLOptions) ([]authz.Operation, string, authz.Reason) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.record {
		p.opts = append(p.opts, *opts)
	}
	return p.ops, p.detail, p.reason
}

func TestResolveNil(t *testing.T) {
	var tb *Table
	if _, r := tb.Resolve(&authz.RouteInput{Method: "GET", Path: "/"}); r != authz.UnknownRoute {
		t.Errorf("nil table: reason = %v, want unknown_route", r)
	}
	if _, r := mustParse(t, fixture).Resolve(nil); r != authz.UnknownRoute {
		t.Errorf("nil input: reason = %v, want unknown_route", r)
	}
	if _, ok := tb.Service("email-api"); ok {
		t.Error("nil table declares a service")
	}
	if names := tb.ServiceNames(); names != nil {
		t.Errorf("nil table ServiceNames = %v", names)
	}
}

func TestServices(t *testing.T) {
	tb := mustParse(t, fixture)
	want := []string{"email-api", "mail-api", "graph-api", "users-api", "billing-api", "ext-only"}
	if diff := cmp.Diff(want, tb.ServiceNames()); diff != "" {
		t.Errorf("ServiceNames (-want +got):\n%s", diff)
	}
	tb.ServiceNames()[0] = "changed"
	if tb.ServiceNames()[0] != "email-api" {
		t.Error("ServiceNames exposes the table's slice")
	}
	for name, want := range fixtureAccepts {
		got, ok := tb.Service(name)
		if !ok || got != want {
			t.Errorf("Service(%q) = %v, %v; want %v, true", name, got, ok, want)
		}
	}
	if _, ok := tb.Service("nope"); ok {
		t.Error(`Service("nope") reports a declared service`)
	}
}

func TestRouter(t *testing.T) {
	a := mustParse(t, `
services:
  - {name: a, key_types: [service], routes: [{path_prefix: /, kind: k, operation: a}]}
`)
	b := mustParse(t, `
services:
  - {name: b, key_types: [app], routes: [{path_prefix: /, kind: k, operation: b}]}
`)
	r := NewRouter(a)
	if r.Current() != a {
		t.Fatal("Current is not the table given to NewRouter")
	}
	in := get("/x")
	if got, _ := r.Resolve(&in); got.Service != "a" {
		t.Errorf("before Swap: service = %q, want a", got.Service)
	}

	// Readers racing a swap see one whole table or the other.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				in := get("/x")
				got, reason := r.Resolve(&in)
				if reason != authz.OK || got.Service != got.Operation {
					t.Errorf("mixed result %+v %v", got, reason)
					return
				}
			}
		})
	}
	for range 100 {
		r.Swap(b)
		r.Swap(a)
	}
	wg.Wait()

	r.Swap(b)
	if got, _ := r.Resolve(&in); got.Service != "b" {
		t.Errorf("after Swap: service = %q, want b", got.Service)
	}
	r.Swap(nil)
	if _, reason := r.Resolve(&in); reason != authz.UnknownRoute {
		t.Errorf("nil table: reason = %v, want unknown_route", reason)
	}
}

func TestRequestHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"example.com", "example.com"},
		{"example.com:8080", "example.com"},
		{"example.com:", "example.com"},
		{"example.com.", "example.com"},
		{"example.com.:443", "example.com"},
		{"example.com:http", "example.com:http"},
		{"[::1]:8080", "::1"},
		{"[::1]", "::1"},
		{"[::1", "[::1"},
		{"::1", "::1"},
		{"10.0.0.1:80", "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := requestHost(tt.in); got != tt.want {
				t.Errorf("requestHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestResolveAllocs(t *testing.T) {
	tb := mustParse(t, fixture)
	inputs := map[string]authz.RouteInput{
		"prefix":            {Method: "GET", Path: "/email/read/42?x=1"},
		"template":          {Method: "DELETE", Path: "/email/42"},
		"exact":             {Method: "GET", Path: "/email/inbox"},
		"host":              {Host: "mail.example.com:443", Method: "GET", Path: "/x"},
		"upper-case host":   {Host: "MAIL.example.com", Method: "GET", Path: "/x"},
		"wildcard host":     {Host: "A.tenants.example.com", Method: "GET", Path: "/x"},
		"grpc":              {Method: "POST", Path: "/users.v1.UserService/GetUser", ContentType: "application/grpc"},
		"context_extension": {Method: "GET", Path: "/x", Extensions: authz.Extensions{Service: "ext-only", Kind: "k", Operation: "o"}},
		"unknown":           {Method: "GET", Path: "/nowhere"},
		"invalid":           {Method: "GET", Path: "/%zz"},
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, func() { tb.Resolve(&in) }); n != 0 {
				t.Errorf("Resolve allocates %v times per run, want 0", n)
			}
		})
	}
	t.Run("router", func(t *testing.T) {
		r := NewRouter(tb)
		in := inputs["prefix"]
		if n := testing.AllocsPerRun(100, func() { r.Resolve(&in) }); n != 0 {
			t.Errorf("Router.Resolve allocates %v times per run, want 0", n)
		}
	})
}

// TestFixtureClean keeps the fixture free of warnings, so that tests of
// warnings elsewhere see only what they provoke.
// TestHostCannotSteer is issue 13's finding 1 on the routes the examples
// shipped: a host route on "/" next to host-less routes. Whatever form
// of the host the client sends, a request whose host route and host-less
// route disagree is refused; one they agree on, or only one finds, is
// decided as before.
func TestHostCannotSteer(t *testing.T) {
	tb := mustParse(t, `
services:
  - name: email-api
    key_types: [service]
    routes:
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {host: mail.example.com, path_prefix: /, methods: [GET], kind: query, operation: any}
      - {host: mail.example.com, path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
  - name: users-api
    key_types: [app]
    grpc_services: [users.v1.UserService]
    routes:
      - {path: /users, methods: [GET], kind: query, operation: listUsers}
  - name: graph-api
    key_types: [service]
    routes:
      - {path: /graphql, methods: [GET, POST], protocol: graphql}
`)
	tb.SetOperationParser(&fakeParser{ops: []authz.Operation{{Kind: "query", Name: "me"}}})
	conflict := authz.Target{Detail: detailHostConflict}
	tests := []struct {
		name, host, method, path string
		want                     authz.Target
		r                        authz.Reason
	}{
		{"app-keys-only service through the host", "mail.example.com", "GET", "/users", conflict, authz.UnknownRoute},
		{"upper case, trailing dot and port", "MAIL.example.com.:443", "GET", "/users", conflict, authz.UnknownRoute},
		{"brackets", "[mail.example.com]", "GET", "/users", conflict, authz.UnknownRoute},
		{"empty port", "mail.example.com:", "GET", "/users", conflict, authz.UnknownRoute},
		{"GraphQL read without its body parsed", "mail.example.com", "GET", "/graphql?query={me}", conflict, authz.UnknownRoute},
		{"gRPC service through the host", "mail.example.com", "GET", "/users.v1.UserService/GetUser", conflict, authz.UnknownRoute},
		{"the users route without the host", "", "GET", "/users", target("users-api", "query", "listUsers"), authz.OK},
		{"another host", "www.example.com", "GET", "/users", target("users-api", "query", "listUsers"), authz.OK},
		{"both resolutions agree", "mail.example.com", "GET", "/email/inbox", target("email-api", "query", "listEmails"), authz.OK},
		{"only the host route matches", "mail.example.com", "GET", "/inbox/today", target("email-api", "query", "any"), authz.OK},
		{"the host route's method does not match", "mail.example.com", "POST", "/graphql", authz.Target{Service: "graph-api", Kind: "query", Operation: "me", Accepts: fixtureAccepts["email-api"], GraphQL: true}, authz.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := authz.RouteInput{Host: tt.host, Method: tt.method, Path: tt.path, ContentType: "application/grpc"}
			if !strings.HasPrefix(tt.path, "/users.v1") {
				in.ContentType = ""
			}
			got, r := tb.Resolve(&in)
			if r != tt.r {
				t.Errorf("reason = %v, want %v", r, tt.r)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("target (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFixtureClean(t *testing.T) {
	_, warns, err := Parse([]byte(fixture), "routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The host routes on "/" are there to be in conflict with the
	// host-less ones (the Host rule of SPEC §9): that is their only
	// warning.
	var others []string
	hosts := map[string]bool{}
	for _, w := range warns {
		if h, _, ok := strings.Cut(w, ": path_prefix \"/\" can match the same requests as host-less routes"); ok {
			hosts[h[strings.LastIndex(h, " ")+1:]] = true
			continue
		}
		others = append(others, w)
	}
	if len(others) != 0 {
		t.Errorf("fixture warnings:\n%s", strings.Join(others, "\n"))
	}
	if want := map[string]bool{"mail.example.com": true, "*.tenants.example.com": true, "api.tenants.example.com": true}; !cmp.Equal(hosts, want) {
		t.Errorf("host conflicts warned for %v, want %v", hosts, want)
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("GET", "mail.example.com:443", "/email/read/42?x=1", "")
	f.Add("POST", "", "/users.v1.UserService/GetUser", "application/grpc")
	f.Add("POST", "[::1]:80", "/graphql", "application/json")
	f.Add("DELETE", "A.tenants.example.com.", "//email/%2e%2E/x%2f/", "")
	f.Add("GET", "[", "/%zz", "application/grpc-web")
	f.Add("", ":", "", "")
	f.Add("GET", "", "/email/1/attachments/latest", "")
	f.Add("GET", "", "/x/b/c", "")
	f.Add("GET", "", "/t/1/", "")
	f.Add("GET", "MAIL.example.com.:443", "/email/inbox", "")
	f.Add("GET", "[mail.example.com]", "/users.v1.UserService/GetUser", "application/grpc")
	f.Add("GET", "a.tenants.example.com:", "/files/..%2Fadmin", "")
	f.Add("GET", "mail.example.com", "/files/%c0%ae%c0%ae/admin", "application/grpcx")
	tb := mustParse(f, fixture)
	tb.SetOperationParser(&fakeParser{ops: []authz.Operation{{Kind: "query", Name: "a"}}})
	f.Fuzz(func(t *testing.T, method, host, path, contentType string) {
		in := authz.RouteInput{Method: method, Host: host, Path: path, ContentType: contentType}
		got, r := tb.Resolve(&in)
		switch r {
		case authz.OK:
			if _, ok := tb.Service(got.Service); !ok {
				t.Fatalf("routed to undeclared service %q", got.Service)
			}
		case authz.UnknownRoute, authz.InvalidPath:
			if got.Service != "" {
				t.Fatalf("%v with a service %q", r, got.Service)
			}
		default:
			t.Fatalf("unexpected reason %v", r)
		}

		// SPEC §9: an allowed route is what both resolutions find. The
		// host-less one is Resolve without a host; the host one is the
		// host routes' match.
		if r == authz.OK {
			bare := in
			bare.Host = ""
			alone, ar := tb.Resolve(&bare)
			if ar == authz.OK && !sameDecision(alone, got) {
				t.Fatalf("host %q routes to %+v, the host-less routes to %+v", host, got, alone)
			}
			f, _ := tb.find(&in)
			if f.byHost != nil && !f.byHost.sameTarget(got, got.GraphQL) && !got.GraphQL {
				t.Fatalf("host %q routes to %+v, its host route to %+v", host, got, f.byHost.target)
			}
		}

		// The segment matcher must agree with a plain split.
		p, err := NormalizePath(path)
		if err != nil {
			return
		}
		nsegs := strings.Count(p, "/")
		for _, rt := range tb.anyHost.templates {
			if got, want := rt.matchTemplate(p, nsegs), splitMatch(rt.segs, p); got != want {
				t.Fatalf("template %s on %q: matchTemplate = %v, split says %v", rt.path, p, got, want)
			}
		}
	})
}

func sameDecision(a, b authz.Target) bool {
	return a.Service == b.Service && a.Kind == b.Kind && a.Operation == b.Operation && a.GraphQL == b.GraphQL
}

func splitMatch(segs []segment, path string) bool {
	parts := strings.Split(path[1:], "/")
	if len(parts) != len(segs) {
		return false
	}
	for i, s := range segs {
		if s.param && parts[i] == "" || !s.param && parts[i] != s.lit {
			return false
		}
	}
	return true
}

func benchmarkResolve(b *testing.B, in authz.RouteInput, want string) {
	tb := mustParse(b, fixture)
	if got, r := tb.Resolve(&in); r != authz.OK || got.Operation != want {
		b.Fatalf("Resolve = %+v, %v; want operation %s", got, r, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		tb.Resolve(&in)
	}
}

func BenchmarkResolvePrefix(b *testing.B) {
	benchmarkResolve(b, authz.RouteInput{Host: "api.example.org:443", Method: "GET", Path: "/email/read/42?limit=10"}, "listEmails")
}

func BenchmarkResolveTemplate(b *testing.B) {
	benchmarkResolve(b, authz.RouteInput{Host: "api.example.org", Method: "GET", Path: "/email/42/attachments/a.pdf"}, "attachment")
}

func BenchmarkResolveGRPC(b *testing.B) {
	benchmarkResolve(b, authz.RouteInput{Host: "users.internal:8443", Method: "POST", Path: "/users.v1.UserService/GetUser", ContentType: "application/grpc"}, "GetUser")
}

func BenchmarkResolveHost(b *testing.B) {
	benchmarkResolve(b, authz.RouteInput{Host: "Acme.Tenants.example.com", Method: "GET", Path: "/x"}, "tenantWildcard")
}
