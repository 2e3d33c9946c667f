package route

import (
	"strings"
	"testing"
)

// errLines splits a joined error into its lines, one per problem.
func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// TestParseErrors checks that each problem is reported on its own line that
// starts with file:line, the entry and the field.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each a prefix of one error line, in order
	}{
		{
			"path without leading slash",
			`
services:
  - name: email-api
    key_types: [service]
    routes:
      - {path: /a}
      - {path: /b}
      - {path: email/read, methods: [GET]}
`,
			[]string{`routes.yaml:8: services[0] (email-api): routes[2]: path: "email/read" must start with "/"`},
		},
		{
			"path and path_prefix together",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - path: /a
        path_prefix: /a
`,
			[]string{`routes.yaml:7: services[0] (a): routes[0]: path_prefix: set together with path`},
		},
		{
			"route without path",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {methods: [GET], kind: query, operation: x}
`,
			[]string{`routes.yaml:6: services[0] (a): routes[0]: path: missing: a route needs path or path_prefix`},
		},
		{
			"same exact path, both any method",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {path: /x}
  - name: b
    key_types: [service]
    routes:
      - {path: /x}
`,
			[]string{`routes.yaml:10: services[1] (b): routes[0]: path: "/x" matches exactly the same requests (any method) as services[0] (a): routes[0] (line 6)`},
		},
		{
			"same prefix, same methods in another order",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {path_prefix: /x, methods: [GET, POST]}
      - {path_prefix: /x, methods: [POST, GET]}
`,
			[]string{`routes.yaml:7: services[0] (a): routes[1]: path_prefix: "/x" matches exactly the same requests (methods POST, GET) as services[0] (a): routes[0] (line 6)`},
		},
		{
			"empty accounts",
			`
services:
  - name: a
    key_types: [service]
    accounts: []
`,
			[]string{`routes.yaml:5: services[0] (a): accounts: empty: list the account ids`},
		},
		{
			"bad accounts",
			`
services:
  - name: a
    key_types: [service]
    accounts: [acme, "a b", acme, [x]]
`,
			[]string{
				`routes.yaml:5: services[0] (a): accounts[1]: account id: "a b" has invalid character " "`,
				`routes.yaml:5: services[0] (a): accounts[2]: "acme" is listed twice`,
				`routes.yaml:5: services[0] (a): accounts[3]: must be a string`,
			},
		},
		{
			"allow_encoded_slashes not a boolean",
			`
allow_encoded_slashes: yes please
services:
  - name: a
    key_types: [service]
`,
			[]string{`routes.yaml:2: allow_encoded_slashes: must be true or false`},
		},
		{
			"encoded slash in a route path without allow_encoded_slashes",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {path: /a%2Fb}
`,
			[]string{`routes.yaml:6: services[0] (a): routes[0]: path: "/a%2Fb": invalid path: encoded slash "%2F" at byte 2`},
		},
		{
			"templates differing only in parameter names",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {path: "/x/{id}"}
      - {path: "/x/{name}"}
`,
			[]string{`routes.yaml:7: services[0] (a): routes[1]: path: "/x/{name}" matches exactly the same requests`},
		},
		{
			"same host in another case",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {host: API.example.com, path_prefix: /}
      - {host: api.example.com., path_prefix: /}
`,
			[]string{`routes.yaml:7: services[0] (a): routes[1]: path_prefix: "/" matches exactly the same requests`},
		},
		{
			"same path once normalised",
			`
services:
  - name: a
    key_types: [service]
    routes:
      - {path: /x/y}
      - {path: "/x//%79"}
`,
			[]string{`routes.yaml:7: services[0] (a): routes[1]: path: "/x/y" matches exactly the same requests`},
		},
		{
			"duplicate service name",
			`
services:
  - {name: a, key_types: [service]}
  - {name: b, key_types: [service]}
  - {name: a, key_types: [app]}
`,
			[]string{`routes.yaml:5: services[2] (a): name: service "a" is already declared by services[0] (line 3)`},
		},
		{
			"missing service name",
			`
services:
  - key_types: [service]
`,
			[]string{`routes.yaml:3: services[0]: name: missing`},
		},
		{
			"empty service name",
			`
services:
  - {name: "", key_types: [service]}
`,
			[]string{`routes.yaml:3: services[0]: name: empty`},
		},
		{
			"invalid service name",
			`
services:
  - {name: "email api", key_types: [service]}
  - {name: "email:api", key_types: [service]}
  - {name: "email*", key_types: [service]}
`,
			[]string{
				`routes.yaml:3: services[0]: name: "email api" has invalid character " "`,
				`routes.yaml:4: services[1]: name: "email:api" has invalid character ":"`,
				`routes.yaml:5: services[2]: name: "email*" has invalid character "*"`,
			},
		},
		{
			"missing key_types",
			`
services:
  - name: a
`,
			[]string{`routes.yaml:3: services[0] (a): key_types: missing`},
		},
		{
			"empty key_types",
			`
services:
  - name: a
    key_types: []
  - name: b
    key_types:
`,
			[]string{
				`routes.yaml:4: services[0] (a): key_types: empty`,
				`routes.yaml:6: services[1] (b): key_types: empty`,
			},
		},
		{
			"bad key types",
			`
services:
  - name: a
    key_types: [service, tenant, account, service]
`,
			[]string{
				`routes.yaml:4: services[0] (a): key_types[1]: unknown key type "tenant" (want service or app)`,
				`routes.yaml:4: services[0] (a): key_types[2]: "account" is not allowed: account keys serve only the Account API`,
				`routes.yaml:4: services[0] (a): key_types[3]: "service" is listed twice`,
			},
		},
		{
			"key_types not a list",
			`
services:
  - {name: a, key_types: service}
`,
			[]string{`routes.yaml:3: services[0] (a): key_types: must be a list`},
		},
		{
			"invalid kind and operation",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: /x, kind: "qu ery", operation: "get:all"}
`,
			[]string{
				`routes.yaml:6: services[0] (a): routes[0]: kind: "qu ery" has invalid character " "`,
				`routes.yaml:6: services[0] (a): routes[0]: operation: "get:all" has invalid character ":"`,
			},
		},
		{
			"malformed templates",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: "/x/{}"}
      - {path: "/x/{id}.json"}
      - {path: "/x/{id"}
      - {path: "/x/id}"}
      - {path: "/x/{a}/{a}"}
      - {path: "/x/{a-b}"}
      - {path: "/x/{{a}}"}
`,
			[]string{
				`routes.yaml:6: services[0] (a): routes[0]: path: malformed template "/x/{}": empty parameter {}`,
				`routes.yaml:7: services[0] (a): routes[1]: path: malformed template "/x/{id}.json": segment "{id}.json"`,
				`routes.yaml:8: services[0] (a): routes[2]: path: malformed template "/x/{id": segment "{id"`,
				`routes.yaml:9: services[0] (a): routes[3]: path: malformed template "/x/id}": segment "id}"`,
				`routes.yaml:10: services[0] (a): routes[4]: path: malformed template "/x/{a}/{a}": parameter {a} appears twice`,
				`routes.yaml:11: services[0] (a): routes[5]: path: malformed template "/x/{a-b}": parameter name "a-b"`,
				`routes.yaml:12: services[0] (a): routes[6]: path: malformed template "/x/{{a}}": segment "{{a}}"`,
			},
		},
		{
			"brace in a prefix",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path_prefix: "/x/{id}"}
`,
			[]string{`routes.yaml:6: services[0] (a): routes[0]: path_prefix: "/x/{id}" has a brace`},
		},
		{
			"unknown protocol",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: /x, protocol: grpc}
`,
			[]string{`routes.yaml:6: services[0] (a): routes[0]: protocol: unknown protocol "grpc" (want http or graphql)`},
		},
		{
			"kind and operation on a graphql route",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - path: /graphql
        protocol: graphql
        kind: query
        operation: x
`,
			[]string{
				`routes.yaml:8: services[0] (a): routes[0]: kind: not allowed on a graphql route`,
				`routes.yaml:9: services[0] (a): routes[0]: operation: not allowed on a graphql route`,
			},
		},
		{
			"graphql fields on a route that is not graphql",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - path: /rest
        allow_persisted_queries: true
        max_depth: 3
`,
			[]string{
				`routes.yaml:7: services[0] (a): routes[0]: allow_persisted_queries: only allowed on a route with protocol: graphql`,
				`routes.yaml:8: services[0] (a): routes[0]: max_depth: only allowed on a route with protocol: graphql`,
			},
		},
		{
			"bad graphql limits",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - path: /graphql
        protocol: graphql
        allow_persisted_queries: "yes"
        max_body_bytes: 0
        max_depth: 501
        max_root_fields: ten
        max_batch: 1.5
`,
			[]string{
				`routes.yaml:8: services[0] (a): routes[0]: allow_persisted_queries: must be true or false`,
				`routes.yaml:9: services[0] (a): routes[0]: max_body_bytes: must be a whole number from 1 to 16777216`,
				`routes.yaml:10: services[0] (a): routes[0]: max_depth: must be a whole number from 1 to 500`,
				`routes.yaml:11: services[0] (a): routes[0]: max_root_fields: must be a whole number from 1 to 10000`,
				`routes.yaml:12: services[0] (a): routes[0]: max_batch: must be a whole number from 1 to 1000`,
			},
		},
		{
			"bad gRPC services",
			`
services:
  - name: a
    key_types: [app]
    grpc_services:
      - UserService
      - users.v1.
      - users.v1.UserService
      - {name: users.v1.Admin, kind: "ad min"}
      - {name: users.v1.Other, knd: admin}
      - [users.v1.List]
      - {kind: admin}
  - name: b
    key_types: [app]
    grpc_services: [users.v1.UserService]
`,
			[]string{
				`routes.yaml:6: services[0] (a): grpc_services[0]: name: "UserService" is not a full gRPC service name`,
				`routes.yaml:7: services[0] (a): grpc_services[1]: name: "users.v1." is not a full gRPC service name`,
				`routes.yaml:9: services[0] (a): grpc_services[3]: kind: "ad min" has invalid character " "`,
				`routes.yaml:10: services[0] (a): grpc_services[4]: knd: unknown field (known: name, kind)`,
				`routes.yaml:11: services[0] (a): grpc_services[5]: must be a gRPC service name (pkg.Service) or a mapping`,
				`routes.yaml:12: services[0] (a): grpc_services[6]: name: missing`,
				`routes.yaml:15: services[1] (b): grpc_services[0]: name: gRPC service users.v1.UserService is already declared by services[0] (a): grpc_services[2] (line 8)`,
			},
		},
		{
			"malformed escapes in route paths",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: /x%zz}
      - {path_prefix: /y%4}
`,
			[]string{
				`routes.yaml:6: services[0] (a): routes[0]: path: "/x%zz": invalid path: malformed percent-escape "%zz" at byte 2`,
				`routes.yaml:7: services[0] (a): routes[1]: path_prefix: "/y%4": invalid path: malformed percent-escape "%4" at byte 2`,
			},
		},
		{
			"query, fragment and raw bytes in route paths",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: "/x?a=b"}
      - {path: "/x#top"}
      - {path: "/x y"}
`,
			[]string{
				`routes.yaml:6: services[0] (a): routes[0]: path: "/x?a=b" has '?'`,
				`routes.yaml:7: services[0] (a): routes[1]: path: "/x#top" has '#'`,
				`routes.yaml:8: services[0] (a): routes[2]: path: "/x y" has byte 0x20 at offset 2`,
			},
		},
		{
			"unknown fields at every level",
			`
version: 1
services:
  - name: a
    key_type: [app]
    key_types: [app]
    routes:
      - {path: /x, method: [GET]}
`,
			[]string{
				`routes.yaml:2: version: unknown field (known: services, allow_encoded_slashes)`,
				`routes.yaml:5: services[0] (a): key_type: unknown field (known: name, key_types, accounts, routes, grpc_services)`,
				`routes.yaml:8: services[0] (a): routes[0]: method: unknown field (known: host, path, path_prefix, methods, kind, operation, protocol, allow_persisted_queries, max_body_bytes, max_depth, max_root_fields, max_batch)`,
			},
		},
		{
			"field set twice",
			`
services:
  - name: a
    key_types: [app]
    name: b
`,
			[]string{`routes.yaml:5: services[0] (a): name: set twice (first at line 3)`},
		},
		{
			"bad methods",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {path: /a, methods: [get]}
      - {path: /b, methods: ["GE T"]}
      - {path: /c, methods: [GET, GET]}
      - {path: /d, methods: GET}
      - {path: /e, methods: [""]}
`,
			[]string{
				`routes.yaml:6: services[0] (a): routes[0]: methods[0]: "get": methods match exactly, write it in upper case`,
				`routes.yaml:7: services[0] (a): routes[1]: methods[0]: "GE T" is not an HTTP method`,
				`routes.yaml:8: services[0] (a): routes[2]: methods[1]: "GET" is listed twice`,
				`routes.yaml:9: services[0] (a): routes[3]: methods: must be a list`,
				`routes.yaml:10: services[0] (a): routes[4]: methods[0]: "" is not an HTTP method`,
			},
		},
		{
			"bad hosts",
			`
services:
  - name: a
    key_types: [app]
    routes:
      - {host: "example.com:8080", path: /a}
      - {host: "*", path: /b}
      - {host: "a.*.example.com", path: /c}
      - {host: "a..example.com", path: /d}
      - {host: "exa mple.com", path: /e}
      - {host: "[::1]:80", path: /f}
      - {host: "[example.com]", path: /g}
      - {host: "", path: /h}
`,
			[]string{
				`routes.yaml:6: services[0] (a): routes[0]: host: "example.com:8080": a host must not include a port`,
				`routes.yaml:7: services[0] (a): routes[1]: host: "*" is any host: leave host out instead`,
				`routes.yaml:8: services[0] (a): routes[2]: host: "a.*.example.com": a wildcard is a whole first label`,
				`routes.yaml:9: services[0] (a): routes[3]: host: "a..example.com" has an empty label`,
				`routes.yaml:10: services[0] (a): routes[4]: host: "exa mple.com" has invalid character ' '`,
				`routes.yaml:11: services[0] (a): routes[5]: host: "[::1]:80": a host must not include a port`,
				`routes.yaml:12: services[0] (a): routes[6]: host: "[example.com]" is not an IPv6 address`,
				`routes.yaml:13: services[0] (a): routes[7]: host: empty: leave host out to match any host`,
			},
		},
		{
			"wrong node kinds",
			`
services:
  - name: [a]
    key_types: [app]
  - just-a-string
  - name: c
    key_types: [app]
    routes: {path: /x}
  - name: d
    key_types: [app]
    routes: [/x]
`,
			[]string{
				`routes.yaml:3: services[0]: name: must be a string`,
				`routes.yaml:5: services[1]: must be a mapping with fields name, key_types, accounts, routes, grpc_services`,
				`routes.yaml:8: services[2] (c): routes: must be a list`,
				`routes.yaml:11: services[3] (d): routes[0]: must be a mapping with fields host, path`,
			},
		},
		{"empty file", ``, []string{`routes.yaml: services: missing: the file declares no service`}},
		{"comment only", "# nothing\n", []string{`routes.yaml: services: missing`}},
		{"no services field", "{}\n", []string{`routes.yaml:1: services: missing`}},
		{"empty services", "services: []\n", []string{`routes.yaml:1: services: empty`}},
		{"null services", "services:\n", []string{`routes.yaml:1: services: empty`}},
		{"services not a list", "services: {name: a}\n", []string{`routes.yaml:1: services: must be a list`}},
		{"document not a mapping", "- a\n", []string{`routes.yaml:1: document: must be a mapping with fields services`}},
		{"YAML syntax error", "services: [\n", []string{`routes.yaml:1:11: did not find expected node content`}},
		{
			"several documents",
			"services:\n  - {name: a, key_types: [app]}\n---\nservices: []\n",
			[]string{`routes.yaml:3: document: a routes file holds one YAML document`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, _, err := Parse([]byte(tt.src), "routes.yaml")
			if err == nil {
				t.Fatal("Parse succeeded, want errors")
			}
			if tb != nil {
				t.Error("Parse returned a table with its error")
			}
			got := errLines(err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("error %d:\n got  %s\n want %s…", i, got[i], w)
				}
			}
		})
	}
}

// TestParseAllErrorsAtOnce makes sure loading does not stop at the first
// problem: one run of check-config shows everything to fix.
func TestParseAllErrorsAtOnce(t *testing.T) {
	src := `
services:
  - name: a
    key_types: [account]
    routes:
      - {path: x}
      - {path: /y, path_prefix: /y}
  - name: a
    key_types: [app]
    grpc_services: [nodot]
    routes:
      - {path: "/{}", protocol: soap}
`
	_, _, err := Parse([]byte(src), "routes.yaml")
	want := []string{
		`routes.yaml:4: services[0] (a): key_types[0]:`,
		`routes.yaml:6: services[0] (a): routes[0]: path:`,
		`routes.yaml:7: services[0] (a): routes[1]: path_prefix:`,
		`routes.yaml:8: services[1] (a): name:`,
		`routes.yaml:12: services[1] (a): routes[0]: protocol:`,
		`routes.yaml:12: services[1] (a): routes[0]: path:`,
		`routes.yaml:10: services[1] (a): grpc_services[0]: name:`,
	}
	got := errLines(err)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("error %d:\n got  %s\n want %s…", i, got[i], w)
		}
	}
}
