package route

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
)

func TestResolveGraphQL(t *testing.T) {
	in := authz.RouteInput{Method: "POST", Path: "/graphql", ContentType: "application/json", Body: []byte(`{"query":"{a b}"}`)}
	service := authz.Target{Service: "graph-api", Accepts: fixtureAccepts["graph-api"], GraphQL: true}
	withDetail := func(d string) authz.Target { t := service; t.Detail = d; return t }
	gql := func(t authz.Target) authz.Target { t.GraphQL = true; return t }
	tests := []struct {
		name   string
		parser OperationParser
		want   authz.Target
		r      authz.Reason
	}{
		{"no parser", nil, withDetail("GraphQL parsing is not configured for this route"), authz.InvalidGraphQL},
		{
			"one root field",
			&fakeParser{ops: []authz.Operation{{Kind: "query", Name: "a"}}},
			gql(target("graph-api", "query", "a")),
			authz.OK,
		},
		{
			"every root field is returned",
			&fakeParser{ops: []authz.Operation{{Kind: "mutation", Name: "a"}, {Kind: "mutation", Name: "b"}, {Kind: "mutation", Name: "c"}}},
			authz.Target{Service: "graph-api", Kind: "mutation", Operation: "a", Accepts: fixtureAccepts["graph-api"],
				More: []authz.Operation{{Kind: "mutation", Name: "b"}, {Kind: "mutation", Name: "c"}}, GraphQL: true},
			authz.OK,
		},
		{
			"each operation keeps its own kind",
			&fakeParser{ops: []authz.Operation{{Kind: "query", Name: "__schema"}, {Kind: "mutation", Name: "b"}}},
			authz.Target{Service: "graph-api", Kind: "query", Operation: "__schema", Accepts: fixtureAccepts["graph-api"],
				More: []authz.Operation{{Kind: "mutation", Name: "b"}}, GraphQL: true},
			authz.OK,
		},
		{"unparseable body carries the parser's detail", &fakeParser{detail: "GraphQL document deeper than 15 levels", reason: authz.InvalidGraphQL}, withDetail("GraphQL document deeper than 15 levels"), authz.InvalidGraphQL},
		{"deny without a detail", &fakeParser{reason: authz.InvalidGraphQL}, withDetail("the GraphQL request is invalid"), authz.InvalidGraphQL},
		{"parser answering another reason", &fakeParser{reason: authz.UnknownRoute, detail: "x"}, withDetail("x"), authz.InvalidGraphQL},
		{"no root field", &fakeParser{}, withDetail("the GraphQL request selects no field"), authz.InvalidGraphQL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := mustParse(t, fixture)
			tb.SetOperationParser(tt.parser)
			got, r := tb.Resolve(&in)
			if r != tt.r {
				t.Errorf("reason = %v, want %v", r, tt.r)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("target (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("wrong method falls through", func(t *testing.T) {
		tb := mustParse(t, fixture)
		tb.SetOperationParser(&fakeParser{ops: []authz.Operation{{Kind: "query", Name: "a"}}})
		if _, r := tb.Resolve(&authz.RouteInput{Method: "GET", Path: "/graphql"}); r != authz.UnknownRoute {
			t.Errorf("reason = %v, want unknown_route", r)
		}
	})
}

// TestGraphQLOptions checks that each route hands the parser its own
// limits, and context_extensions the defaults.
func TestGraphQLOptions(t *testing.T) {
	tb := mustParse(t, `
services:
  - name: graph-api
    key_types: [service]
    routes:
      - {path: /graphql, protocol: graphql}
      - path: /public/graphql
        protocol: graphql
        allow_persisted_queries: true
        max_body_bytes: 1048576
        max_depth: 30
        max_root_fields: 5
        max_batch: 1
`)
	custom := GraphQLOptions{MaxBodyBytes: 1 << 20, MaxDepth: 30, MaxRootFields: 5, MaxBatch: 1, AllowPersistedQueries: true}
	p := &fakeParser{ops: []authz.Operation{{Kind: "query", Name: "a"}}, record: true}
	tb.SetOperationParser(p)
	for _, in := range []authz.RouteInput{
		{Method: "POST", Path: "/graphql"},
		{Method: "POST", Path: "/public/graphql"},
		{Method: "POST", Path: "/elsewhere", Extensions: authz.Extensions{Service: "graph-api", Kind: "graphql"}},
	} {
		if _, r := tb.Resolve(&in); r != authz.OK {
			t.Fatalf("%s: reason = %v", in.Path, r)
		}
	}
	want := []GraphQLOptions{DefaultGraphQLOptions(), custom, DefaultGraphQLOptions()}
	if diff := cmp.Diff(want, p.opts); diff != "" {
		t.Errorf("options given to the parser (-want +got):\n%s", diff)
	}
	if d := DefaultGraphQLOptions(); d.MaxBodyBytes != 64<<10 || d.MaxDepth != 15 || d.MaxRootFields != 50 || d.MaxBatch != 10 || d.AllowPersistedQueries {
		t.Errorf("defaults = %+v", d)
	}
}

// TestGraphQLExtensions: context_extensions with kind graphql parse the
// body for the named service; any other kind never reaches the parser.
func TestGraphQLExtensions(t *testing.T) {
	tb := mustParse(t, fixture)
	p := &fakeParser{ops: []authz.Operation{{Kind: "mutation", Name: "sendEmail"}, {Kind: "query", Name: "__typename"}}}
	tb.SetOperationParser(p)
	ext := func(m map[string]string) *authz.RouteInput {
		return &authz.RouteInput{Method: "POST", Path: "/anything", Extensions: authz.ExtensionsFrom(m)}
	}
	got, r := tb.Resolve(ext(map[string]string{"service": "email-api", "kind": "graphql", "operation": "ignored"}))
	want := authz.Target{Service: "email-api", Kind: "mutation", Operation: "sendEmail", Accepts: fixtureAccepts["email-api"],
		More: []authz.Operation{{Kind: "query", Name: "__typename"}}, GraphQL: true}
	if r != authz.OK {
		t.Fatalf("reason = %v", r)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("target (-want +got):\n%s", diff)
	}
	if _, r := tb.Resolve(ext(map[string]string{"service": "nope", "kind": "graphql"})); r != authz.UnknownRoute {
		t.Errorf("undeclared service: reason = %v, want unknown_route", r)
	}
	calls := p.calls
	if got, r := tb.Resolve(ext(map[string]string{"service": "email-api", "kind": "GraphQL", "operation": "x"})); r != authz.OK || got.GraphQL || got.Kind != "GraphQL" {
		t.Errorf("kind GraphQL (not graphql) is a literal kind: got %+v %v", got, r)
	}
	if p.calls != calls {
		t.Error("the parser was called for a kind other than graphql")
	}
	noParser := mustParse(t, fixture)
	if got, r := noParser.Resolve(ext(map[string]string{"service": "email-api", "kind": "graphql"})); r != authz.InvalidGraphQL || got.Detail == "" {
		t.Errorf("kind graphql without a parser: %+v %v, want invalid_graphql with a detail", got, r)
	}
}

// TestParserOnlyForGraphQL: parsing costs nothing for other routes, the
// parser is never called for them, even with a body.
func TestParserOnlyForGraphQL(t *testing.T) {
	tb := mustParse(t, fixture)
	p := &fakeParser{ops: []authz.Operation{{Kind: "query", Name: "a"}}}
	tb.SetOperationParser(p)
	body := []byte(`{"query":"mutation { sendEmail }"}`)
	for _, in := range []authz.RouteInput{
		{Method: "GET", Path: "/email/read/1", Body: body},
		{Method: "POST", Path: "/email/send", Body: body, ContentType: "application/json"},
		{Method: "POST", Path: "/users.v1.UserService/GetUser", ContentType: "application/grpc", Body: body},
		{Method: "GET", Path: "/graphql", Body: body}, // the graphql route takes POST only
		{Method: "POST", Path: "/x", Extensions: authz.Extensions{Service: "ext-only", Kind: "query"}, Body: body},
		{Method: "POST", Path: "/nowhere", Body: body},
	} {
		tb.Resolve(&in)
	}
	if p.calls != 0 {
		t.Fatalf("the parser was called %d times for non-GraphQL routes", p.calls)
	}
	tb.Resolve(&authz.RouteInput{Method: "POST", Path: "/graphql", Body: body})
	if p.calls != 1 {
		t.Fatalf("the parser was called %d times for one GraphQL request", p.calls)
	}
}
