package route

import (
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

const bodyFixture = `
services:
  - name: graph-api
    key_types: [service]
    routes:
      - {path: /graphql, protocol: graphql}
      - {path: /big/graphql, methods: [POST], protocol: graphql, max_body_bytes: 200000}
      - {host: graph.example.com, path_prefix: /, protocol: graphql, max_body_bytes: 1000}
  - name: email-api
    key_types: [service]
    routes:
      - {path_prefix: /email, kind: query, operation: any}
      - {host: mail.example.com, path: /graphql, kind: query, operation: notGraphQL}
`

func TestBodyLimit(t *testing.T) {
	tb := mustParse(t, bodyFixture)
	def := DefaultGraphQLMaxBodyBytes
	cases := []struct {
		name string
		in   authz.RouteInput
		want int
	}{
		{"REST route reads no body", authz.RouteInput{Method: "POST", Path: "/email/send"}, 0},
		{"unknown route reads no body", authz.RouteInput{Method: "POST", Path: "/nowhere"}, 0},
		{"GraphQL route, default limit", authz.RouteInput{Method: "POST", Path: "/graphql?x=1"}, def},
		{"GraphQL route, its own limit", authz.RouteInput{Method: "POST", Path: "/big/graphql"}, 200000},
		{"GraphQL route, method not matched", authz.RouteInput{Method: "GET", Path: "/big/graphql"}, 0},
		{"normalised path", authz.RouteInput{Method: "POST", Path: "/email/../graphql"}, def},
		{"invalid path reads nothing", authz.RouteInput{Method: "POST", Path: "/graphql%zz"}, 0},
		{"host route GraphQL", authz.RouteInput{Method: "POST", Host: "GRAPH.example.com:443", Path: "/other"}, 1000},
		{"host route GraphQL disagreeing with a host-less REST route", authz.RouteInput{Method: "POST", Host: "graph.example.com", Path: "/email/x"}, 0},
		// With the host the route is REST, without it GraphQL: the two
		// resolutions disagree, the request is refused unread.
		{"host route REST, host-less GraphQL", authz.RouteInput{Method: "POST", Host: "mail.example.com", Path: "/graphql"}, 0},
		// Both resolutions GraphQL routes of one service: they agree, and
		// the host route, which decides, sets the limit.
		{"host route and host-less route both GraphQL", authz.RouteInput{Method: "POST", Host: "graph.example.com", Path: "/big/graphql"}, 1000},
		{"method override reads nothing", authz.RouteInput{Method: "POST", Path: "/graphql", MethodOverridden: true}, 0},
		{"context_extensions kind graphql", authz.RouteInput{Method: "POST", Path: "/email/x",
			Extensions: authz.Extensions{Service: "email-api", Kind: ExtensionKindGraphQL}}, def},
		{"context_extensions other kind", authz.RouteInput{Method: "POST", Path: "/graphql",
			Extensions: authz.Extensions{Service: "graph-api", Kind: "query"}}, 0},
		{"context_extensions undeclared service", authz.RouteInput{Method: "POST", Path: "/graphql",
			Extensions: authz.Extensions{Service: "nope", Kind: ExtensionKindGraphQL}}, 0},
	}
	r := NewRouter(tb)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tb.BodyLimit(&tc.in); got != tc.want {
				t.Fatalf("Table.BodyLimit = %d, want %d", got, tc.want)
			}
			if got := r.BodyLimit(&tc.in); got != tc.want {
				t.Fatalf("Router.BodyLimit = %d, want %d", got, tc.want)
			}
			// Whenever Resolve would hand the request to the GraphQL
			// parser, BodyLimit asks for the body.
			if tg, _ := tb.Resolve(&tc.in); tg.GraphQL && tc.want == 0 {
				t.Fatalf("Resolve routes to GraphQL (%+v) but BodyLimit reads no body", tg)
			}
		})
	}
	var nilTable *Table
	if got := nilTable.BodyLimit(&authz.RouteInput{Path: "/graphql"}); got != 0 {
		t.Fatalf("nil table: %d", got)
	}
	if got := NewRouter(nil).BodyLimit(&authz.RouteInput{Path: "/graphql"}); got != 0 {
		t.Fatalf("router without table: %d", got)
	}
}

// FuzzBodyLimit: no request reaches the GraphQL parser without its body
// having been asked for.
func FuzzBodyLimit(f *testing.F) {
	tb := mustParse(f, bodyFixture)
	f.Add("POST", "mail.example.com", "/graphql", "", "")
	f.Add("GET", "GRAPH.example.com.", "/email/../x", "email-api", "graphql")
	f.Fuzz(func(t *testing.T, method, host, path, service, kind string) {
		in := authz.RouteInput{Method: method, Host: host, Path: path,
			Extensions: authz.Extensions{Service: service, Kind: kind}}
		if tg, _ := tb.Resolve(&in); tg.GraphQL && tb.BodyLimit(&in) <= 0 {
			t.Fatalf("%+v resolves to GraphQL but BodyLimit reads no body", in)
		}
	})
}
