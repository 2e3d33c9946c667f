package extauthz_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/graphql"
	"github.com/keygate/keygate/pkg/graphql/gqlref"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/route"
)

// gqlRoutes is a routes table with GraphQL routes beside a REST one.
const gqlRoutes = `
services:
  - name: graph-api
    key_types: [service]
    routes:
      - {path: /graphql, methods: [GET, POST], protocol: graphql}
      - {path: /public/graphql, methods: [GET, POST], protocol: graphql, allow_persisted_queries: true, max_depth: 5}
  - name: email-api
    key_types: [service]
    routes:
      - {path: /email/send, methods: [POST], kind: mutation, operation: sendEmail}
`

// countingParser is the real parser, counting its calls.
type countingParser struct {
	p     *graphql.Parser
	calls atomic.Int64
}

func (c *countingParser) Operations(in *authz.RouteInput, opts *route.GraphQLOptions) ([]authz.Operation, string, authz.Reason) {
	c.calls.Add(1)
	return c.p.Operations(in, opts)
}

// gqlFixture is an extauthz.Server over a real route table, the real
// GraphQL parser and an in-memory key store with keys of three scopes.
type gqlFixture struct {
	srv    *extauthz.Server
	parser *countingParser
	// reader may run every query (and so introspection); sender also
	// sendEmail; narrow only listEmails and getEmail.
	reader, sender, narrow string
}

const narrowScope = "graph-api:query:listEmails graph-api:query:getEmail"

func newGQLFixture(t testing.TB) *gqlFixture {
	t.Helper()
	return newGQLFixtureWith(t, graphql.NewParser())
}

func newGQLFixtureWith(t testing.TB, p *graphql.Parser) *gqlFixture {
	t.Helper()
	table, warns, err := route.Parse([]byte(gqlRoutes), "routes.yaml")
	if err != nil || len(warns) > 0 {
		t.Fatalf("routes: %v %v", err, warns)
	}
	f := &gqlFixture{parser: &countingParser{p: p}}
	table.SetOperationParser(f.parser)
	store := &mapStore{keys: map[apikey.Digest]*authz.Key{}}
	cfg := extauthz.Config{}.WithDefaults()
	add := func(id, scope string) string {
		secret, err := apikey.Generate(apikey.KindService)
		if err != nil {
			t.Fatal(err)
		}
		k, err := authz.Compile(authz.KeySpec{ID: id, Name: id, Type: authz.KeyTypeService, AccountID: "demo",
			AppID: "mail", TenantID: "acme", Hash: hasher.HashString(secret), Scope: scope, Active: true},
			authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders()})
		if err != nil {
			t.Fatal(err)
		}
		store.keys[k.Digest] = k
		return secret
	}
	f.reader = add("k-reader", "graph-api:query:*")
	f.sender = add("k-sender", "graph-api:query:* graph-api:mutation:sendEmail")
	f.narrow = add("k-narrow", narrowScope)
	engine := &authz.Engine{Keys: store, Routes: route.NewRouter(table), Hasher: hasher, Now: func() time.Time { return now }}
	f.srv = extauthz.NewServer(engine, cfg, nil, nil)
	return f
}

// gqlBody selects how the body travels: Envoy's body (a string) or
// raw_body (bytes, pack_as_bytes).
type gqlBody int

const (
	asBody gqlBody = iota
	asRawBody
)

// gqlPost is a CheckRequest for a POST with a body, as Envoy sends it with
// with_request_body.
func gqlPost(path, key, body string, how gqlBody) *authv3.CheckRequest {
	req := request(path, key, nil)
	h := req.Attributes.Request.Http
	h.Method = "POST"
	h.Headers[":method"] = "POST"
	if how == asRawBody {
		h.RawBody = []byte(body)
	} else {
		h.Body = body
	}
	h.Size = int64(len(body))
	return req
}

func gqlQuery(query string) string {
	b, _ := json.Marshal(map[string]string{"query": query})
	return string(b)
}

// gqlAnswer is the status, reason, field and message of a response.
type gqlAnswer struct {
	Status int
	Reason string
	Field  string
	Error  string
}

func gqlCheck(t testing.TB, srv *extauthz.Server, req *authv3.CheckRequest) (gqlAnswer, *authv3.CheckResponse) {
	t.Helper()
	resp, err := srv.Check(context.Background(), req)
	if err != nil || resp == nil {
		t.Fatalf("Check: %v, %v", resp, err)
	}
	sameOverWire(t, srv, req, resp)
	d := resp.GetDeniedResponse()
	if d == nil {
		if resp.GetOkResponse() == nil {
			t.Fatal("response is neither ok nor denied")
		}
		return gqlAnswer{Status: 200}, resp
	}
	var body struct{ Error, Reason, Field string }
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil {
		t.Fatalf("deny body %q: %v", d.GetBody(), err)
	}
	return gqlAnswer{Status: int(d.GetStatus().GetCode()), Reason: body.Reason, Field: body.Field, Error: body.Error}, resp
}

func allowed() gqlAnswer { return gqlAnswer{Status: 200} }

func refused(field string) gqlAnswer {
	return gqlAnswer{Status: 403, Reason: "scope_denied", Field: field, Error: "the key's scope does not allow this operation"}
}

func invalid(msg string) gqlAnswer {
	return gqlAnswer{Status: 400, Reason: "invalid_graphql", Error: msg}
}

// TestGraphQLEndToEnd runs GraphQL requests through the gRPC Check handler.
func TestGraphQLEndToEnd(t *testing.T) {
	f := newGQLFixture(t)
	const (
		list = `{ listEmails { id subject } }`
		send = `mutation { sendEmail(to: "x") { id } }`
	)
	batch := `[` + gqlQuery(list) + `,` + gqlQuery(send) + `]`
	persisted := `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`
	getReq := func(key string, params url.Values) *authv3.CheckRequest {
		return request("/graphql?"+params.Encode(), key, nil)
	}
	cases := []struct {
		name string
		req  *authv3.CheckRequest
		want gqlAnswer
	}{
		{"read-only key runs a query", gqlPost("/graphql", f.reader, gqlQuery(list), asBody), allowed()},
		{"read-only key cannot send", gqlPost("/graphql", f.reader, gqlQuery(send), asBody), refused("sendEmail")},
		{"send key sends", gqlPost("/graphql", f.sender, gqlQuery(send), asBody), allowed()},
		{"raw_body like body: allowed", gqlPost("/graphql", f.reader, gqlQuery(list), asRawBody), allowed()},
		{"raw_body like body: refused", gqlPost("/graphql", f.reader, gqlQuery(send), asRawBody), refused("sendEmail")},
		{"several fields, one out of scope", gqlPost("/graphql", f.narrow, gqlQuery(`{ listEmails { id } getEmail(id: 1) { id } countEmails }`), asBody), refused("countEmails")},
		{"several mutation fields, the second out of scope", gqlPost("/graphql", f.sender, gqlQuery(`mutation { sendEmail(to: "x") { id } deleteEmail(id: 1) { id } }`), asRawBody), refused("deleteEmail")},
		{"alias does not hide the field", gqlPost("/graphql", f.reader, gqlQuery(`mutation { listEmails: sendEmail(to: "x") { id } }`), asBody), refused("sendEmail")},
		{"mutation hidden behind a root fragment", gqlPost("/graphql", f.reader, gqlQuery(`mutation { ...F } fragment F on Mutation { sendEmail(to: "x") { id } }`), asBody), refused("sendEmail")},
		{"mutation hidden behind an inline fragment", gqlPost("/graphql", f.reader, gqlQuery(`mutation { ... on Mutation { sendEmail(to: "x") { id } } }`), asBody), refused("sendEmail")},
		{"named operation chosen among several", gqlPost("/graphql", f.reader, `{"query":"query R { listEmails { id } } mutation S { sendEmail(to: \"x\") { id } }","operationName":"R"}`, asBody), allowed()},
		{"the other named operation", gqlPost("/graphql", f.reader, `{"query":"query R { listEmails { id } } mutation S { sendEmail(to: \"x\") { id } }","operationName":"S"}`, asBody), refused("sendEmail")},
		{"operationName missing", gqlPost("/graphql", f.reader, gqlQuery(`query R { listEmails { id } } mutation S { sendEmail(to: "x") { id } }`), asBody), invalid("operationName is required: the GraphQL document has 2 operations")},
		{"batch with a mutation, read-only key", gqlPost("/graphql", f.reader, batch, asBody), refused("sendEmail")},
		{"batch with a mutation, send key", gqlPost("/graphql", f.sender, batch, asRawBody), allowed()},
		{"GET query", getReq(f.reader, url.Values{"query": {list}}), allowed()},
		{"GET mutation", getReq(f.reader, url.Values{"query": {send}}), refused("sendEmail")},
		{"introspection with query:*", gqlPost("/graphql", f.reader, gqlQuery(`{ __schema { types { name } } }`), asBody), allowed()},
		{"introspection with a narrower scope", gqlPost("/graphql", f.narrow, gqlQuery(`{ __schema { types { name } } }`), asBody), refused("__schema")},
		{"__typename with a narrower scope", gqlPost("/graphql", f.narrow, gqlQuery(`{ listEmails { id } __typename }`), asBody), refused("__typename")},
		{"__typename at a mutation root is a query", gqlPost("/graphql", f.sender, gqlQuery(`mutation { sendEmail(to: "x") { id } __typename }`), asBody), allowed()},
		{"subscription outside the scope", gqlPost("/graphql", f.reader, gqlQuery(`subscription { emailReceived { id } }`), asBody), refused("emailReceived")},
		{"persisted query where the route allows it", gqlPost("/public/graphql", f.reader, persisted, asBody), allowed()},
		{"persisted query, narrow scope", gqlPost("/public/graphql", f.narrow, persisted, asBody), refused("persistedQuery")},
		{"persisted query where the route does not allow it", gqlPost("/graphql", f.reader, persisted, asBody), invalid("persisted queries are not allowed on this route: send the query")},
		{"route's own depth limit", gqlPost("/public/graphql", f.reader, gqlQuery(`{ a { b { c { d { e { f } } } } } }`), asBody), invalid("GraphQL document deeper than 5 levels")},
		{"syntax error", gqlPost("/graphql", f.reader, gqlQuery(`{ listEmails`), asBody), invalid("GraphQL syntax error at line 1, column 13: Expected Name, found <EOF>")},
		{"depth bomb", gqlPost("/graphql", f.reader, gqlQuery("{"+strings.Repeat("a{", 99)+"b"+strings.Repeat("}", 100)), asBody), invalid("GraphQL document deeper than 15 levels")},
		{"huge field count", gqlPost("/graphql", f.reader, gqlQuery("{"+strings.Repeat(" listEmails", 51)+" }"), asBody), invalid("GraphQL operation has more than 50 root fields")},
		{"oversized body", gqlPost("/graphql", f.reader, gqlQuery(list+strings.Repeat(" ", 64<<10)), asRawBody), invalid("GraphQL request body is larger than 65536 bytes")},
		{"empty body", gqlPost("/graphql", f.reader, "", asBody), invalid("request body is empty (is with_request_body set on the Envoy route?)")},
		{"method the route does not take", func() *authv3.CheckRequest {
			r := gqlPost("/graphql", f.reader, gqlQuery(list), asBody)
			r.Attributes.Request.Http.Method = "PUT"
			return r
		}(), gqlAnswer{Status: 403, Reason: "unknown_route", Error: "no service is configured for this route"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := gqlCheck(t, f.srv, tc.req)
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}

	t.Run("truncated body", func(t *testing.T) {
		req := gqlPost("/graphql", f.reader, `{"query":"{ listEm`, asRawBody)
		req.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = "true"
		got, _ := gqlCheck(t, f.srv, req)
		if want := invalid("request body was truncated by the proxy (raise max_request_bytes)"); got != want {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})
	t.Run("truncated body in header_map", func(t *testing.T) {
		req := gqlPost("/graphql", f.reader, gqlQuery(list), asRawBody)
		req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "x-envoy-auth-partial-body", RawValue: []byte("true")}}}
		if got, _ := gqlCheck(t, f.srv, req); got.Reason != "invalid_graphql" {
			t.Fatalf("got %+v, want invalid_graphql", got)
		}
	})
	t.Run("allow names the first root field", func(t *testing.T) {
		_, resp := gqlCheck(t, f.srv, gqlPost("/graphql", f.sender, gqlQuery(`mutation { __typename sendEmail(to: "x") { id } }`), asBody))
		md := resp.GetDynamicMetadata().GetFields()
		if md["service"].GetStringValue() != "graph-api" || md["kind"].GetStringValue() != "mutation" || md["operation"].GetStringValue() != "sendEmail" {
			t.Fatalf("dynamic metadata = %v", md)
		}
	})
	t.Run("context_extensions with kind graphql", func(t *testing.T) {
		ext := func(key, query string) *authv3.CheckRequest {
			r := gqlPost("/mail/graphql", key, gqlQuery(query), asRawBody)
			r.Attributes.ContextExtensions = map[string]string{"service": "graph-api", "kind": "graphql"}
			return r
		}
		if got, _ := gqlCheck(t, f.srv, ext(f.reader, list)); got != allowed() {
			t.Errorf("query: got %+v", got)
		}
		if got, _ := gqlCheck(t, f.srv, ext(f.reader, send)); got != refused("sendEmail") {
			t.Errorf("mutation: got %+v", got)
		}
	})
}

// TestGraphQLParsingOnlyWhereNeeded: the parser never runs for other
// routes, nor before the key is known to be valid.
func TestGraphQLParsingOnlyWhereNeeded(t *testing.T) {
	f := newGQLFixture(t)
	body := gqlQuery(`mutation { sendEmail(to: "x") { id } }`)
	for _, req := range []*authv3.CheckRequest{
		gqlPost("/email/send", f.sender, body, asBody),                  // a REST route with a body
		gqlPost("/nowhere", f.sender, body, asRawBody),                  // no route
		gqlPost("/graphql", "", body, asBody),                           // missing key
		gqlPost("/graphql", "kg_sak_nope", body, asBody),                // malformed key
		gqlPost("/graphql", "an-unknown-custom-key-0001", body, asBody), // unknown key
	} {
		gqlCheck(t, f.srv, req)
	}
	if n := f.parser.calls.Load(); n != 0 {
		t.Fatalf("the GraphQL parser ran %d times for requests it has no business with", n)
	}
	if _, err := f.srv.Check(context.Background(), gqlPost("/graphql", f.sender, body, asBody)); err != nil {
		t.Fatal(err)
	}
	if n := f.parser.calls.Load(); n != 1 {
		t.Fatalf("the GraphQL parser ran %d times for one GraphQL request", n)
	}
}

// TestGraphQLGolden pins the wire shape of the two GraphQL denials.
func TestGraphQLGolden(t *testing.T) {
	f := newGQLFixture(t)
	golden(t, "deny_graphql_scope_denied", check(t, f.srv, gqlPost("/graphql", f.reader, gqlQuery(`mutation { sendEmail(to: "x") { id } }`), asBody)))
	golden(t, "deny_invalid_graphql", check(t, f.srv, gqlPost("/graphql", f.reader, gqlQuery(`{ listEmails`), asBody)))
}

// TestGraphQLExamples runs the demo keys of examples/keys.yaml against
// the graph-api service of examples/routes.yaml: what each shows.
func TestGraphQLExamples(t *testing.T) {
	table, _, err := route.LoadFile("../../examples/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	table.SetOperationParser(graphql.NewParser())
	cfg := extauthz.Config{}.WithDefaults()
	store, err := keyfile.Open("../../examples/keys.yaml", keyfile.Options{
		Algorithm: hasher.Algorithm(), Compile: authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := extauthz.NewServer(&authz.Engine{Keys: store, Routes: route.NewRouter(table), Hasher: hasher}, cfg, nil, nil)
	// The demo secrets (public, listed in the README).
	const (
		read  = "kg_sak_gYImBjNnTvrRjYQBCnopxxVE6SQcZR4FudPm"
		send  = "kg_sak_sMebmFEmT7AnG8IlkgHlVDel6vE1y82thRT4"
		inbox = "kg_sak_SCnSIU9F2UlT5yZJObrCG4kUNZRPZM2UsV2K"
	)
	const (
		list   = `{ listEmails { id subject } }`
		mail   = `mutation { sendEmail(to: "bob@example.com", subject: "hi") { id } }`
		del    = `mutation { deleteEmail(id: 1) { id } }`
		schema = `{ __schema { queryType { name } } }`
	)
	cases := []struct {
		name, key, query string
		want             gqlAnswer
	}{
		{"read key lists", read, list, allowed()},
		{"read key introspects", read, schema, allowed()},
		{"read key cannot send", read, mail, refused("sendEmail")},
		{"send key lists", send, list, allowed()},
		{"send key sends", send, mail, allowed()},
		{"send key cannot delete", send, del, refused("deleteEmail")},
		{"inbox key lists", inbox, list, allowed()},
		{"inbox key cannot introspect", inbox, schema, refused("__schema")},
		{"inbox key cannot send", inbox, mail, refused("sendEmail")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := gqlCheck(t, srv, gqlPost("/graphql", tc.key, gqlQuery(tc.query), asRawBody)); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// rootFields is the fuzz test's own reading of the root fields a request
// runs, written independently of package graphql (see gqlref). runs is
// false when a server refuses a document in the request (no field runs:
// keygate's parser is more lenient than the specification in places, such
// as a variable in a default value); ok is false when the server would
// refuse the JSON or not find the operation, or it is too big to expand.
func rootFields(body []byte) (fields []authz.Operation, runs, ok bool) {
	var items []map[string]any
	if err := json.Unmarshal(body, &items); err != nil {
		var one map[string]any
		if err := json.Unmarshal(body, &one); err != nil {
			return nil, true, false // keygate's JSON must be as strict
		}
		items = []map[string]any{one}
	}
	for _, it := range items {
		q, _ := it["query"].(string)
		name, _ := it["operationName"].(string)
		ops, parsed, ok := gqlref.RootFields(q, name)
		if !parsed {
			return nil, false, false
		}
		if !ok {
			return nil, true, false
		}
		fields = append(fields, ops...)
	}
	return fields, true, true
}

// FuzzGraphQLCheck sends random bodies through the GraphQL path of the
// Check handler with the narrow key: every request gets a CheckResponse,
// and an allow means every root field is listEmails or getEmail.
func FuzzGraphQLCheck(f *testing.F) {
	for _, s := range []string{
		gqlQuery(`{ listEmails { id } getEmail(id: 1) { id } }`),
		gqlQuery(`{ listEmails { id } sendEmail }`),
		gqlQuery(`mutation { listEmails }`),
		gqlQuery(`query { ...F } fragment F on Query { listEmails ...G } fragment G on Query { getEmail(id: 2) { id } }`),
		gqlQuery(`{ ... on Query { getEmail: sendEmail } }`),
		gqlQuery(`{ __typename listEmails }`),
		`{"query":"query A { listEmails } mutation B { sendEmail }","operationName":"A"}`,
		`{"query":"query A { listEmails } mutation B { sendEmail }","operationName":"B"}`,
		`[{"query":"{ listEmails }"},{"query":"{ getEmail }"}]`,
		`{"query":"{ listEmails }","QUERY":"mutation { sendEmail }"}`,
		`{"query":"{ listEmails }","query":"mutation { sendEmail }"}`,
		`{"extensions":{"persistedQuery":{"version":1}}}`,
		`{"query":"{ listEmails(` + strings.Repeat("[", 50) + `) }"}`,
		"\xff\xfe{",
	} {
		f.Add([]byte(s), false, false)
	}
	f.Add([]byte(gqlQuery(`{ listEmails }`)), true, false)
	f.Add([]byte(`{"query":"{ listEm`), false, true)
	fx := newGQLFixture(f)
	f.Fuzz(func(t *testing.T, body []byte, raw, truncated bool) {
		how := asBody
		if raw {
			how = asRawBody
		}
		req := gqlPost("/graphql", fx.narrow, string(body), how)
		if truncated {
			req.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = "true"
		}
		resp, err := fx.srv.Check(context.Background(), req)
		if err != nil || resp == nil {
			t.Fatalf("no CheckResponse: %v", err)
		}
		if resp.GetOkResponse() == nil {
			if resp.GetDeniedResponse() == nil {
				t.Fatal("response is neither ok nor denied")
			}
			return
		}
		if truncated {
			t.Fatal("allowed a truncated body")
		}
		fields, runs, ok := rootFields(body)
		if !runs {
			return
		}
		if !ok {
			t.Fatalf("allowed a request a server would not run: %q", body)
		}
		for _, op := range fields {
			if op.Kind != "query" || (op.Name != "listEmails" && op.Name != "getEmail") {
				t.Fatalf("allowed %s %s outside %q: %q", op.Kind, op.Name, narrowScope, body)
			}
		}
	})
}

// typicalQuery is a typical client request of about 1 KiB (the same as
// package graphql's benchmark).
var typicalQuery = fmt.Sprintf(`{"operationName":"Inbox","variables":{"folder":"INBOX","first":25,"after":null,"withBody":false},"query":%q}`,
	`query Inbox($folder: String!, $first: Int = 20, $after: String, $withBody: Boolean = false) {
  me { id name email settings { signature timezone } }
  unread: countEmails(folder: $folder, unread: true)
  listEmails(folder: $folder, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        ...EmailSummary
        body @include(if: $withBody) { text html }
        attachments { id filename contentType size }
        labels { id name color }
      }
    }
  }
}

fragment EmailSummary on Email {
  id
  subject
  snippet
  receivedAt
  isRead
  isStarred
  from { name address }
  to { name address }
  cc { name address }
  thread { id messageCount lastMessageAt participants { name address } }
}
`)

// BenchmarkCheckGraphQL is the whole Check handler on a typical 1 KiB
// GraphQL query (raw_body), key cached: warm, a document clients send
// again (the parser remembers it), and cold, parsed every time.
// Target: <= 20 µs/op.
func BenchmarkCheckGraphQL(b *testing.B) {
	for _, bc := range []struct {
		name string
		p    *graphql.Parser
	}{{"warm", graphql.NewParser()}, {"cold", &graphql.Parser{}}} {
		b.Run(bc.name, func(b *testing.B) {
			f := newGQLFixtureWith(b, bc.p)
			req := gqlPost("/graphql", f.reader, typicalQuery, asRawBody)
			ctx := context.Background()
			b.SetBytes(int64(len(typicalQuery)))
			if bc.name == "warm" {
				// "seen before": the query and the key's allow are cached
				// before the loop, as in BenchmarkCheck.
				if resp, err := f.srv.Check(ctx, req); err != nil || resp.GetOkResponse() == nil {
					b.Fatalf("not allowed: %v %v", resp, err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := f.srv.Check(ctx, req)
				if err != nil || resp.GetOkResponse() == nil {
					b.Fatalf("not allowed: %v %v", resp, err)
				}
			}
		})
	}
}
