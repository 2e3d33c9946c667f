package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// attackRoutes is the examples' routes file as issue 13 found it (a host
// route on "/" beside host-less routes, a GraphQL API, a gRPC service),
// plus what the other findings need: a /files prefix route, a method split
// and a service that serves one other account.
const attackRoutes = `services:
  - name: email-api
    key_types: [service]
    routes:
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {path: "/email/{id}", methods: [GET], kind: query, operation: getEmail}
      - {path: /email/send, methods: [POST], kind: mutation, operation: sendEmail}
      - {path: "/email/{id}", methods: [DELETE], kind: mutation, operation: deleteEmail}
      - {host: mail.example.com, path_prefix: /, methods: [GET], kind: query, operation: any}
  - name: users-api
    key_types: [app, service]
    grpc_services: [users.v1.UserService]
    routes:
      - {path_prefix: /users, methods: [DELETE], kind: mutation, operation: deleteUser}
      - {path_prefix: /users, kind: query, operation: listUsers}
  - name: files-api
    key_types: [service]
    routes:
      - {path_prefix: /files, methods: [GET], kind: query, operation: readFile}
      - {path_prefix: /admin, kind: mutation, operation: purge}
  - name: graph-api
    key_types: [service]
    routes:
      - {path: /graphql, methods: [GET, POST], protocol: graphql}
  - name: partner-api
    key_types: [service]
    accounts: [globex]
    routes:
      - {path_prefix: /partner, kind: query, operation: read}
  - name: own-api
    key_types: [service]
    accounts: [default, globex]
    routes:
      - {path_prefix: /own, kind: query, operation: read}
`

// TestBypassesOfRouting sends issue 13's routing attacks to a real
// keygate serve, over gRPC as Envoy would and over the HTTP mode, and
// asserts each is refused, next to the request it was built from, which
// is still allowed.
func TestBypassesOfRouting(t *testing.T) {
	dir := t.TempDir()
	readOnly, readOnlyHash := newKey(t, "service")
	appKey, appHash := newKey(t, "app")
	whole, wholeHash := newKey(t, "service")
	keysFile := filepath.Join(dir, "keys.yaml")
	routesFile := filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML(
		keyEntry{"k-ro", "service", readOnlyHash, "    scope: \"email-api users-api files-api graph-api partner-api own-api !email-api:mutation:sendEmail\"\n"},
		keyEntry{"k-app", "app", appHash, ""},
		keyEntry{"k-whole", "service", wholeHash, "    scope: \"email-api users-api:query:*\"\n"},
	))
	writeFile(t, routesFile, attackRoutes)
	srv := startServe(t, []string{"authz", "admin", "http"}, "--keys-file", keysFile, "--routes-file", routesFile,
		"--http-authz-addr", "127.0.0.1:0")
	c := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	httpAddr := listenerAddr(t, srv, "http")

	// withHost is checkReq for another Host, in both places Envoy puts it.
	withHost := func(host, method, path, key string, extra map[string]string) *authv3.CheckRequest {
		r := checkReq(method, path, key, extra)
		r.Attributes.Request.Http.Host = host
		r.Attributes.Request.Http.Headers[":authority"] = host
		return r
	}
	grpcCases := []struct {
		name string
		req  *authv3.CheckRequest
		want outcome
	}{
		// 1. Host steering: users-api's GET /users is app-keys-only in the
		// shipped examples; here every key type is accepted, so that the
		// baseline (no host) shows what the host route would have decided
		// instead.
		{"baseline: GET /users without the host is listUsers", checkReq("GET", "/users", appKey, nil), outcome{status: 200}},
		{"host steering: Host mail.example.com", withHost("mail.example.com", "GET", "/users", readOnly, nil), outcome{403, "unknown_route"}},
		{"host steering: MAIL.example.com.:443", withHost("MAIL.example.com.:443", "GET", "/users", readOnly, nil), outcome{403, "unknown_route"}},
		{"host steering: [mail.example.com]", withHost("[mail.example.com]", "GET", "/users", readOnly, nil), outcome{403, "unknown_route"}},
		{"host steering: mail.example.com:", withHost("mail.example.com:", "GET", "/users", readOnly, nil), outcome{403, "unknown_route"}},
		{"host steering: a GraphQL read without its body parsed", withHost("mail.example.com", "GET", "/graphql?query=%7Bsecrets%7D", readOnly, nil), outcome{403, "unknown_route"}},
		{"host steering: a gRPC method", withHost("mail.example.com", "GET", "/users.v1.UserService/DeleteUser", readOnly, map[string]string{"content-type": "application/grpc"}), outcome{403, "unknown_route"}},
		{"the host route alone still decides", withHost("mail.example.com", "GET", "/mailbox/today", readOnly, nil), outcome{status: 200}},

		// 11. gRPC is exactly application/grpc[+codec] or grpc-web*.
		{"baseline: application/grpc", checkReq("POST", "/users.v1.UserService/GetUser", appKey, map[string]string{"content-type": "application/grpc"}), outcome{status: 200}},
		{"application/grpcx is not gRPC", checkReq("POST", "/users.v1.UserService/GetUser", appKey, map[string]string{"content-type": "application/grpcx"}), outcome{403, "unknown_route"}},

		// 3. Encoded separators under a /files prefix route.
		{"baseline: a file", checkReq("GET", "/files/report.pdf", readOnly, nil), outcome{status: 200}},
		{"%2F", checkReq("GET", "/files/..%2Fadmin/purge", readOnly, nil), outcome{400, "invalid_path"}},
		{"%2f", checkReq("GET", "/files/..%2fadmin/purge", readOnly, nil), outcome{400, "invalid_path"}},
		{"%5C", checkReq("GET", "/files/..%5Cadmin/purge", readOnly, nil), outcome{400, "invalid_path"}},
		{"raw backslash", checkReq("GET", "/files/..\\admin/purge", readOnly, nil), outcome{400, "invalid_path"}},
		{"%252e", checkReq("GET", "/files/%252e%252e/admin/purge", readOnly, nil), outcome{400, "invalid_path"}},
		{"%c0%ae", checkReq("GET", "/files/%c0%ae%c0%ae/admin/purge", readOnly, nil), outcome{400, "invalid_path"}},

		// 2. context_extensions naming only the service leave the
		// operation unknown: a deny pattern in the service refuses it.
		{"unknown operation meets the deny pattern", extOnly(checkReq("POST", "/email/send", readOnly, nil), "email-api"), outcome{403, "scope_denied"}},
		{"unknown operation allowed to a whole-service scope", extOnly(checkReq("POST", "/email/send", whole, nil), "email-api"), outcome{status: 200}},
		{"unknown operation refused to a kind-limited scope", extOnly(checkReq("GET", "/users", whole, nil), "users-api"), outcome{403, "scope_denied"}},

		// 4. A path split by method: DELETE is its own operation.
		{"method split: DELETE /users/1 is deleteUser", checkReq("DELETE", "/users/1", whole, nil), outcome{403, "scope_denied"}},
		{"method split: GET /users/1 is listUsers", checkReq("GET", "/users/1", whole, nil), outcome{status: 200}},

		// 7. A service serving listed accounts only (row 6a).
		{"service of another account", checkReq("GET", "/partner/x", readOnly, nil), outcome{403, "account_not_allowed"}},
		{"service listing the key's account", checkReq("GET", "/own/x", readOnly, nil), outcome{status: 200}},

		// 11. Method overrides.
		{"x-http-method-override: DELETE on a GET", checkReq("GET", "/email/42", readOnly, map[string]string{"x-http-method-override": "DELETE"}), outcome{400, "invalid_request"}},
		{"x-http-method: POST on a GET", checkReq("GET", "/email/42", readOnly, map[string]string{"x-http-method": "POST"}), outcome{400, "invalid_request"}},
		{"x-method-override: PUT on a GET", checkReq("GET", "/email/42", readOnly, map[string]string{"x-method-override": "PUT"}), outcome{400, "invalid_request"}},
		{"an override naming the method itself", checkReq("GET", "/email/42", readOnly, map[string]string{"x-http-method-override": "GET"}), outcome{status: 200}},
	}
	for _, tc := range grpcCases {
		t.Run("grpc/"+tc.name, func(t *testing.T) {
			if got, resp := call(t, c, tc.req); got != tc.want {
				t.Fatalf("got %+v, want %+v (%v)", got, tc.want, resp)
			}
		})
	}

	httpCases := []struct {
		name    string
		method  string
		target  string
		key     string
		headers map[string]string
		status  int
		reason  string
	}{
		{"baseline: GET /users", "GET", "/users", appKey, nil, 200, ""},
		{"host steering through X-Forwarded-Host", "GET", "/users", readOnly, map[string]string{"X-Forwarded-Host": "mail.example.com"}, 403, "unknown_route"},
		{"host steering through Host", "GET", "/users", readOnly, map[string]string{"Host": "MAIL.example.com."}, 403, "unknown_route"},
		{"%2F through X-Forwarded-Uri", "GET", "/", readOnly, map[string]string{"X-Forwarded-Uri": "/files/..%2Fadmin/purge"}, 400, "invalid_path"},
		{"raw backslash through X-Forwarded-Uri", "GET", "/", readOnly, map[string]string{"X-Forwarded-Uri": "/files/..\\admin/purge"}, 400, "invalid_path"},
		{"%c0%ae through X-Forwarded-Uri", "GET", "/", readOnly, map[string]string{"X-Forwarded-Uri": "/files/%c0%ae%c0%ae/admin"}, 400, "invalid_path"},
		{"method override", "GET", "/email/42", readOnly, map[string]string{"X-Http-Method-Override": "DELETE"}, 400, "invalid_request"},
		{"application/grpcx", "POST", "/users.v1.UserService/GetUser", appKey, map[string]string{"Content-Type": "application/grpcx"}, 403, "unknown_route"},
		{"service of another account", "GET", "/partner/x", readOnly, nil, 403, "account_not_allowed"},
	}
	for _, tc := range httpCases {
		t.Run("http/"+tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://"+httpAddr+tc.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Api-Key", tc.key)
			for k, v := range tc.headers {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var deny struct{ Reason string }
			if resp.StatusCode != 200 {
				_ = json.Unmarshal(body, &deny)
			}
			if resp.StatusCode != tc.status || deny.Reason != tc.reason {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, tc.status, tc.reason)
			}
		})
	}
}

// extOnly sets context_extensions naming only a service, as docs/envoy.md
// recommends per virtual host.
func extOnly(r *authv3.CheckRequest, service string) *authv3.CheckRequest {
	r.Attributes.ContextExtensions = map[string]string{"service": service}
	return r
}

// TestRouteFileRules checks the routes-file rules of issue 13 with the
// real CLI: a path split by method loads in either order (the reverse one
// with a warning naming the unreachable route), identical routes are
// refused, and a host route overlapping host-less ones is warned about,
// naming both.
func TestRouteFileRules(t *testing.T) {
	dir := t.TempDir()
	_, hash := newKey(t, "service")
	keysFile := filepath.Join(dir, "keys.yaml")
	writeFile(t, keysFile, keysYAML(keyEntry{"k", "service", hash, ""}))
	// check runs check-config on routes and returns its stderr (the
	// warnings) and whether it passed.
	check := func(routes string) (string, error) {
		f := filepath.Join(dir, "routes.yaml")
		writeFile(t, f, routes)
		cmd := exec.Command(keygateBinary(t), "check-config", "--keys-file", keysFile, "--routes-file", f)
		cmd.Env = cleanEnv()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		return stderr.String(), err
	}
	const head = "services:\n  - name: users-api\n    key_types: [service]\n    routes:\n"
	if out, err := check(head + "      - {path_prefix: /users, methods: [DELETE], operation: del}\n      - {path_prefix: /users, operation: read}\n"); err != nil || out != "" {
		t.Errorf("method route before the catch-all: %v, warnings %q", err, out)
	}
	out, err := check(head + "      - {path_prefix: /users, operation: read}\n      - {path_prefix: /users, methods: [DELETE], operation: del}\n")
	if err != nil || !strings.Contains(out, `routes[1]: path_prefix: "/users" is unreachable: services[0] (users-api): routes[0] (line 5) comes first`) {
		t.Errorf("catch-all before the method route: %v, warnings %q", err, out)
	}
	out, err = check(head + "      - {path_prefix: /users, methods: [GET, POST], operation: a}\n      - {path_prefix: /users, methods: [POST, GET], operation: b}\n")
	if err == nil || !strings.Contains(out, "matches exactly the same requests") {
		t.Errorf("identical routes: %v, %q", err, out)
	}
	out, err = check(head + "      - {path_prefix: /users, operation: read}\n      - {host: mail.example.com, path_prefix: /, operation: any}\n")
	if err != nil || !strings.Contains(out, `routes[1]: host mail.example.com: path_prefix "/" can match the same requests as host-less routes with other operations (services[0] (users-api): routes[0] (line 5))`) {
		t.Errorf("host route beside host-less ones: %v, warnings %q", err, out)
	}
}

// TestBypassXFFInSeveralHeaderLines is issue 13's finding 8: with one
// trusted hop, Envoy's header_map may carry x-forwarded-for as several
// entries, the client's own first. keygate read only the first, so a key
// filtered to 10.0.0.0/8 was allowed from anywhere by a client sending
// "x-forwarded-for: 10.1.1.1". The lines are one list, in order, over gRPC
// and in HTTP mode (several X-Forwarded-For lines sent to the real HTTP
// authz listener).
func TestBypassXFFInSeveralHeaderLines(t *testing.T) {
	dir := t.TempDir()
	secret, hash := newKey(t, "service")
	keysFile := filepath.Join(dir, "keys.yaml")
	routesFile := filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML(keyEntry{"k-office", "service", hash, "    ip_filters: [\"10.0.0.0/8\"]\n"}))
	writeFile(t, routesFile, routesYAML)
	srv := startServe(t, []string{"authz", "admin", "http"}, "--keys-file", keysFile, "--routes-file", routesFile,
		"--xff-trusted-hops", "1", "--http-authz-addr", "127.0.0.1:0")
	c := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	httpAddr := listenerAddr(t, srv, "http")
	withXFF := func(lines ...string) *authv3.CheckRequest {
		r := checkReq("GET", "/email/inbox", "", nil)
		r.Attributes.Request.Http.Headers = nil
		hm := []*corev3.HeaderValue{
			{Key: ":method", Value: "GET"}, {Key: ":path", Value: "/email/inbox"},
			{Key: ":authority", Value: "api.example.com"}, {Key: "x-api-key", RawValue: []byte(secret)},
		}
		for _, l := range lines {
			hm = append(hm, &corev3.HeaderValue{Key: "x-forwarded-for", RawValue: []byte(l)})
		}
		r.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: hm}
		return r
	}
	for _, tc := range []struct {
		name  string
		lines []string
		want  outcome
	}{
		{"the office, appended by the trusted proxy", []string{"10.1.1.1"}, outcome{status: 200}},
		{"a forged first line and the real client appended", []string{"10.1.1.1", "192.0.2.9"}, outcome{403, "ip_not_allowed"}},
		{"a forged first line, the office appended", []string{"192.0.2.9", "10.2.2.2"}, outcome{status: 200}},
		{"joined lines count as one list", []string{"10.1.1.1, 10.3.3.3", "192.0.2.9"}, outcome{403, "ip_not_allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, resp := call(t, c, withXFF(tc.lines...)); got != tc.want {
				t.Fatalf("got %+v, want %+v (%v)", got, tc.want, resp)
			}
		})
		t.Run("http/"+tc.name, func(t *testing.T) {
			h := http.Header{"X-Api-Key": {secret}, "X-Forwarded-For": tc.lines}
			if got, _ := httpModeCheck(t, httpAddr, "GET", "/email/inbox", h); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// httpModeCheck sends a request to keygate's HTTP-mode authz listener at
// addr, each header line as given (a "Host" entry sets the Host), and
// returns the outcome (the deny reason read from the JSON body) and the
// response headers.
func httpModeCheck(t *testing.T, addr, method, target string, header http.Header) (outcome, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v[0]
			continue
		}
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := outcome{status: resp.StatusCode}
	if resp.StatusCode != 200 {
		var deny struct{ Reason string }
		if err := json.Unmarshal(body, &deny); err != nil {
			t.Fatalf("%d with a body that is not a deny: %q", resp.StatusCode, body)
		}
		got.reason = deny.Reason
	}
	return got, resp.Header
}
