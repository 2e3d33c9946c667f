package route

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
)

func TestParseWarnings(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // prefixes, in order
	}{
		{
			"catch-all before a method route makes it unreachable",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {path_prefix: /users, operation: any}
      - {path_prefix: /users, methods: [DELETE], operation: del}
`,
			[]string{`routes.yaml:7: services[0] (a): routes[1]: path_prefix: "/users" is unreachable: services[0] (a): routes[0] (line 6) comes first and matches every request it does (methods DELETE)`},
		},
		{
			"a superset of methods first makes the later route unreachable",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {path: /x, methods: [GET, POST], operation: a}
      - {path: /x, methods: [POST], operation: b}
`,
			[]string{`routes.yaml:7: services[0] (a): routes[1]: path: "/x" is unreachable: services[0] (a): routes[0] (line 6)`},
		},
		{
			"host route overlapping host-less routes with other targets",
			`
services:
  - name: email-api
    key_types: [service]
    routes:
      - {host: mail.example.com, path_prefix: /, methods: [GET], kind: query, operation: any}
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {path: /email/send, methods: [POST], kind: mutation, operation: sendEmail}
      - {path: "/email/{id}", methods: [GET], kind: query, operation: any}
  - name: users-api
    key_types: [app]
    routes:
      - {path_prefix: /users, kind: query, operation: listUsers}
`,
			[]string{`routes.yaml:6: services[0] (email-api): routes[0]: host mail.example.com: path_prefix "/" can match the same requests as host-less routes with other operations (services[0] (email-api): routes[1] (line 7), services[1] (users-api): routes[0] (line 13))`},
		},
		{
			"host template overlapping a host-less prefix",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {host: "*.example.com", path: "/v1/{id}/x", operation: hostOp}
      - {path_prefix: /v1/abc, operation: plainOp}
      - {path_prefix: /v2, operation: plainOp}
      - {path: /v1/abc/y, operation: plainOp}
`,
			[]string{`routes.yaml:6: services[0] (a): routes[0]: host *.example.com: path "/v1/{id}/x" can match the same requests as host-less routes with other operations (services[0] (a): routes[1] (line 7))`},
		},
		{
			"prefix routes overlapping through a trailing slash",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {host: h.example.com, path_prefix: /a/, operation: hostOp}
      - {path_prefix: /a, operation: plainOp}
      - {path_prefix: /ab, operation: plainOp}
`,
			[]string{`routes.yaml:6: services[0] (a): routes[0]: host h.example.com: path_prefix "/a/" can match the same requests as host-less routes with other operations (services[0] (a): routes[1] (line 7))`},
		},
		{
			"prefix route shadows gRPC services",
			`
services:
  - name: users-api
    key_types: [app]
    grpc_services: [users.v1.UserService, users.v1.AdminService]
  - name: web
    key_types: [service]
    routes:
      - {path_prefix: /, kind: query, operation: page}
`,
			[]string{`routes.yaml:9: services[1] (web): routes[0]: path_prefix: "/" shadows gRPC services users.v1.UserService (services[0] (users-api): grpc_services[0], line 5), users.v1.AdminService (services[0] (users-api): grpc_services[1], line 5): their calls match this route`},
		},
		{
			"prefix naming the gRPC service",
			`
services:
  - name: users-api
    key_types: [app]
    grpc_services: [users.v1.UserService, users.v1.AdminService]
    routes:
      - {path_prefix: /users.v1.UserService, methods: [POST]}
`,
			[]string{`routes.yaml:7: services[0] (users-api): routes[0]: path_prefix: "/users.v1.UserService" shadows gRPC services users.v1.UserService (`},
		},
		{
			"template catching every method, on one host",
			`
services:
  - name: users-api
    key_types: [app]
    grpc_services: [users.v1.UserService]
    routes:
      - {host: grpc.example.com, path: "/{service}/{method}"}
`,
			[]string{`routes.yaml:7: services[0] (users-api): routes[0]: path: "/{service}/{method}" shadows gRPC services users.v1.UserService (services[0] (users-api): grpc_services[0], line 5): their calls on host grpc.example.com match this route`},
		},
		{
			"routes that cannot take gRPC calls",
			`
services:
  - name: users-api
    key_types: [app]
    grpc_services: [users.v1.UserService]
    routes:
      - {path_prefix: /, methods: [GET]}
      - {path: /users.v1.UserService/GetUser}
      - {path_prefix: /users.v1.UserServiceX}
      - {path_prefix: /users.v1.User}
      - {path: "/users.v1.UserService/{m}/x"}
`,
			nil,
		},
		{
			"route path in a non-normal form",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: "/a//b/../%63"}
      - {path_prefix: "/x/%3a"}
`,
			[]string{
				`routes.yaml:6: services[0] (a): routes[0]: path: "/a//b/../%63" is matched as "/a/c", its normal form`,
				`routes.yaml:7: services[0] (a): routes[1]: path_prefix: "/x/%3a" is matched as "/x/%3A", its normal form`,
			},
		},
		{
			"kind graphql on a plain route",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: /graphql, kind: graphql, operation: any}
`,
			[]string{`routes.yaml:6: services[0] (a): routes[0]: kind: "graphql" is matched as a literal kind here: write protocol: graphql to have the request body parsed`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warns, err := Parse([]byte(tt.src), "routes.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(warns) != len(tt.want) {
				t.Fatalf("got %d warnings, want %d:\n%s", len(warns), len(tt.want), strings.Join(warns, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(warns[i], w) {
					t.Errorf("warning %d:\n got  %s\n want %s…", i, warns[i], w)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		src  string
		in   authz.RouteInput
		want authz.Target
	}{
		{
			"same path with disjoint methods",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: /x, methods: [GET], kind: query, operation: get}
      - {path: /x, methods: [POST], kind: mutation, operation: post}
`,
			authz.RouteInput{Method: "POST", Path: "/x"},
			authz.Target{Service: "a", Kind: "mutation", Operation: "post", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp)},
		},
		{
			// SPEC §9: the most natural way to split a path by method.
			"method route before a catch-all for the same path: the method route",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path_prefix: /users, methods: [DELETE], kind: mutation, operation: deleteUser}
      - {path_prefix: /users, kind: query, operation: readUsers}
`,
			authz.RouteInput{Method: "DELETE", Path: "/users/1"},
			authz.Target{Service: "a", Kind: "mutation", Operation: "deleteUser", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp)},
		},
		{
			"method route before a catch-all for the same path: the catch-all",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path_prefix: /users, methods: [DELETE], kind: mutation, operation: deleteUser}
      - {path_prefix: /users, kind: query, operation: readUsers}
`,
			authz.RouteInput{Method: "GET", Path: "/users/1"},
			authz.Target{Service: "a", Kind: "query", Operation: "readUsers", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp)},
		},
		{
			"partly overlapping method sets: the first wins the shared method",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: /x, methods: [GET, POST], operation: first}
      - {path: /x, methods: [PUT, POST], operation: second}
`,
			authz.RouteInput{Method: "POST", Path: "/x"},
			authz.Target{Service: "a", Operation: "first", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp)},
		},
		{
			"services listing accounts",
			`
services:
  - name: a
    key_types: [app]
    accounts: [acme, globex]
    routes:
      - {path: /x, operation: x}
`,
			authz.RouteInput{Method: "GET", Path: "/x"},
			authz.Target{Service: "a", Operation: "x", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp), Accounts: []string{"acme", "globex"}},
		},
		{
			"allow_encoded_slashes keeps %2F in its segment",
			`
allow_encoded_slashes: true
services:
  - name: a
    key_types: [app]
    routes:
      - {path: "/objects/{name}", operation: getObject}
      - {path: /a%2fb, operation: encoded}
`,
			authz.RouteInput{Method: "GET", Path: "/objects/dir%2Ffile.txt"},
			authz.Target{Service: "a", Operation: "getObject", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp)},
		},
		{
			"allow_encoded_slashes matches an encoded route path",
			`
allow_encoded_slashes: true
services:
  - name: a
    key_types: [app]
    routes:
      - {path: /a%2fb, operation: encoded}
`,
			authz.RouteInput{Method: "GET", Path: "/a%2Fb"},
			authz.Target{Service: "a", Operation: "encoded", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp)},
		},
		{
			"same path on different hosts",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: /x, operation: a}
      - {host: a.example.com, path: /x, operation: a}
      - {host: "*.example.com", path: /x, operation: wild}
`,
			authz.RouteInput{Host: "a.example.com", Method: "GET", Path: "/x"},
			authz.Target{Service: "a", Operation: "a", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp)},
		},
		{
			"anchors, aliases and merge keys",
			`
services:
  - name: a
    key_types: &both [service, app]
    routes:
      - {<<: &read {methods: [GET, HEAD], kind: query}, path: /x, operation: x}
      - <<: [*read, {kind: ignored, operation: y}]
        path: /y
  - name: b
    key_types: *both
`,
			authz.RouteInput{Method: "HEAD", Path: "/y"},
			authz.Target{Service: "a", Kind: "query", Operation: "y", Accepts: authz.KeyTypes(0).With(authz.KeyTypeService).With(authz.KeyTypeApp)},
		},
		{
			"null kind and operation",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: /x, kind: ~, operation: null, protocol: http, methods: ~}
`,
			authz.RouteInput{Method: "DELETE", Path: "/x"},
			authz.Target{Service: "a", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp)},
		},
		{
			"IPv6 host written without brackets",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {host: "2001:DB8::1", path: /x, operation: v6}
`,
			authz.RouteInput{Host: "[2001:db8::1]:443", Method: "GET", Path: "/x"},
			authz.Target{Service: "a", Operation: "v6", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, _, err := Parse([]byte(tt.src), "routes.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, r := tb.Resolve(&tt.in)
			if r != authz.OK {
				t.Fatalf("reason = %v, want ok", r)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("target (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAliasBomb(t *testing.T) {
	// Each entry merges the one before nine times: expanding all of it
	// would visit 9^8 mappings.
	src := `
services:
  - name: a
    key_types: [app]
    routes:
      - &m0 {path: /x0}
      - &m1 {<<: [*m0, *m0, *m0, *m0, *m0, *m0, *m0, *m0, *m0], path: /x1}
      - &m2 {<<: [*m1, *m1, *m1, *m1, *m1, *m1, *m1, *m1, *m1], path: /x2}
      - &m3 {<<: [*m2, *m2, *m2, *m2, *m2, *m2, *m2, *m2, *m2], path: /x3}
      - &m4 {<<: [*m3, *m3, *m3, *m3, *m3, *m3, *m3, *m3, *m3], path: /x4}
      - &m5 {<<: [*m4, *m4, *m4, *m4, *m4, *m4, *m4, *m4, *m4], path: /x5}
      - &m6 {<<: [*m5, *m5, *m5, *m5, *m5, *m5, *m5, *m5, *m5], path: /x6}
      - &m7 {<<: [*m6, *m6, *m6, *m6, *m6, *m6, *m6, *m6, *m6], path: /x7}
      - &m8 {<<: [*m7, *m7, *m7, *m7, *m7, *m7, *m7, *m7, *m7], path: /x8}
`
	_, _, err := Parse([]byte(src), "routes.yaml")
	if err == nil || !strings.Contains(err.Error(), "too large once its YAML aliases are expanded") {
		t.Fatalf("err = %v, want the alias budget to stop it", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(path, []byte(fixture), 0o600); err != nil {
		t.Fatal(err)
	}
	tb, _, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	if _, ok := tb.Service("email-api"); !ok {
		t.Error("email-api not declared")
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("services: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadFile(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":1: services:") {
		t.Errorf("LoadFile(bad) = %v, want an error naming %s", err, bad)
	}

	if _, _, err := LoadFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile(missing) = %v, want ErrNotExist", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(fixture)
	for _, s := range []string{
		"",
		"services: []",
		"services:\n  - {name: a, key_types: [app], routes: [{path: /x}]}\n",
		"services:\n  - {name: a, key_types: [app], grpc_services: [a.B, {name: c.D, kind: k}]}\n",
		"x: &a {path: /x}\nservices:\n  - {name: a, key_types: [app], routes: [*a, {<<: *a, methods: [GET]}]}\n",
		"services:\n  - {name: a, key_types: [app], routes: [{host: '*.x.com', path: '/{a}/{b}', protocol: graphql}]}\n",
		"services: [{name: a, key_types: [service], routes: [{path_prefix: /%zz}]}]",
		"a: &a [*a]",
		"services:\n  - <<: {name: a}\n    key_types: [app]\n",
		"--- \n---\n",
		"allow_encoded_slashes: true\nservices:\n  - {name: a, key_types: [app], accounts: [x, y], routes: [{path: /a%2Fb}, {host: h.x.com, path_prefix: /a}]}\n",
		"services:\n  - {name: a, key_types: [app], routes: [{path_prefix: /u}, {path_prefix: /u, methods: [DELETE]}, {host: a.x.com, path: '/u/{id}'}]}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tb, _, err := Parse([]byte(src), "fuzz.yaml")
		if (tb == nil) == (err == nil) {
			t.Fatalf("table %v with error %v", tb, err)
		}
		if tb == nil {
			return
		}
		// Whatever loaded must route without panicking, and never to a
		// target its host and host-less routes disagree on.
		for _, p := range []string{"/", "/x", "/a/b", "/a.B/M", "/a%2Fb", "/u/1"} {
			in := authz.RouteInput{Host: "a.x.com", Method: "GET", Path: p, ContentType: "application/grpc"}
			got, r := tb.Resolve(&in)
			if r != authz.OK {
				continue
			}
			in.Host = ""
			if alone, ar := tb.Resolve(&in); ar == authz.OK && !sameDecision(alone, got) {
				t.Fatalf("%s: host a.x.com routes to %+v, the host-less routes to %+v", p, got, alone)
			}
		}
	})
}
