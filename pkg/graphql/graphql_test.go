package graphql

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/route"
)

func q(name string) authz.Operation { return authz.Operation{Kind: "query", Name: name} }
func m(name string) authz.Operation { return authz.Operation{Kind: "mutation", Name: name} }

// post is a JSON POST carrying one GraphQL request.
func post(query string) authz.RouteInput {
	return postJSON(map[string]any{"query": query})
}

func postJSON(v any) authz.RouteInput {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return postBody(string(b))
}

func postBody(body string) authz.RouteInput {
	return authz.RouteInput{Method: "POST", Path: "/graphql", ContentType: "application/json", Body: []byte(body)}
}

func get(params url.Values) authz.RouteInput {
	return authz.RouteInput{Method: "GET", Path: "/graphql?" + params.Encode()}
}

// nested is a document whose selection sets nest depth levels.
func nested(depth int) string {
	return "{" + strings.Repeat("a{", depth-1) + "id" + strings.Repeat("}", depth)
}

// aliased is a query with n aliased root fields.
func aliased(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " f%d: listEmails", i)
	}
	b.WriteString(" }")
	return b.String()
}

const persisted = `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}}}`

func TestOperations(t *testing.T) {
	defaults := route.DefaultGraphQLOptions()
	withPersisted := defaults
	withPersisted.AllowPersistedQueries = true
	tight := Options{MaxBodyBytes: 256, MaxDepth: 2, MaxRootFields: 2, MaxBatch: 2}

	tests := []struct {
		name   string
		in     authz.RouteInput
		opts   *Options // nil: the defaults
		want   []authz.Operation
		detail string // for a deny: the whole message
	}{
		// Root fields.
		{name: "single field", in: post(`{ listEmails { id subject } }`), want: []authz.Operation{q("listEmails")}},
		{name: "shorthand and named query", in: post(`query Inbox($n: Int = 10) { listEmails(first: $n) { id } }`), want: []authz.Operation{q("listEmails")}},
		{name: "several fields", in: post(`{ listEmails { id } getEmail(id: 1) { id } countEmails }`), want: []authz.Operation{q("listEmails"), q("getEmail"), q("countEmails")}},
		{name: "several mutation fields", in: post(`mutation { deleteEmail(id: 1) { id } sendEmail(to: "x") { id } }`), want: []authz.Operation{m("deleteEmail"), m("sendEmail")}},
		{name: "aliases name the field, not the alias", in: post(`mutation { listEmails: sendEmail(to: "x") { id } }`), want: []authz.Operation{m("sendEmail")}},
		{name: "aliases of one field are one operation", in: post(`{ inbox: listEmails(folder: "in") { id } sent: listEmails(folder: "sent") { id } }`), want: []authz.Operation{q("listEmails")}},
		{name: "root fragment (named)", in: post(`query { ...Both } fragment Both on Query { listEmails { id } getEmail(id: 1) { id } }`), want: []authz.Operation{q("listEmails"), q("getEmail")}},
		{name: "root fragment (inline)", in: post(`{ ... on Query { listEmails { id } } ... @include(if: true) { getEmail(id: 1) { id } } }`), want: []authz.Operation{q("listEmails"), q("getEmail")}},
		{name: "root fragments nested in fragments", in: post(`{ ...A } fragment A on Query { a ...B ... { ...B c } } fragment B on Query { b }`), want: []authz.Operation{q("a"), q("b"), q("c")}},
		{name: "fragment spread twice at the root", in: post(`{ ...A ...A a } fragment A on Query { a b }`), want: []authz.Operation{q("a"), q("b")}},
		{name: "mutation hidden behind a fragment at the root", in: post(`mutation { ...Innocent } fragment Innocent on Mutation { sendEmail(to: "x") { id } }`), want: []authz.Operation{m("sendEmail")}},
		{name: "mutation hidden behind an inline fragment", in: post(`mutation M { ... on Mutation { ... { sendEmail(to: "x") { id } } } }`), want: []authz.Operation{m("sendEmail")}},
		{name: "fields below the root are not operations", in: post(`{ listEmails { sendEmail { id } ...F } } fragment F on Email { deleteEmail }`), want: []authz.Operation{q("listEmails")}},
		{name: "skipped fields are still checked", in: post(`mutation { sendEmail(to: "x") @skip(if: true) { id } deleteEmail(id: 1) { id } }`), want: []authz.Operation{m("sendEmail"), m("deleteEmail")}},
		{name: "subscription", in: post(`subscription OnMail { emailReceived { id from } }`), want: []authz.Operation{{Kind: "subscription", Name: "emailReceived"}}},
		{name: "comments and block strings", in: post("# listEmails\n{ getEmail(id: \"\"\"}\"\"\") { id } # sendEmail\n}"), want: []authz.Operation{q("getEmail")}},

		// Introspection.
		{name: "introspection __schema", in: post(`query IntrospectionQuery { __schema { queryType { name } types { name } } }`), want: []authz.Operation{q("__schema")}},
		{name: "introspection __type and __typename", in: post(`{ __type(name: "Email") { name } __typename }`), want: []authz.Operation{q("__type"), q("__typename")}},
		{name: "introspection in a mutation is a query operation", in: post(`mutation { __typename sendEmail(to: "x") { id } }`), want: []authz.Operation{m("sendEmail"), q("__typename")}},
		{name: "introspection below the root is not an operation", in: post(`{ listEmails { __typename id } }`), want: []authz.Operation{q("listEmails")}},

		// Choosing the operation.
		{name: "named operation chosen among several", in: postJSON(map[string]any{"query": `query Read { listEmails { id } } mutation Send { sendEmail(to: "x") { id } }`, "operationName": "Send"}), want: []authz.Operation{m("sendEmail")}},
		{name: "the other named operation", in: postJSON(map[string]any{"query": `query Read { listEmails { id } } mutation Send { sendEmail(to: "x") { id } }`, "operationName": "Read"}), want: []authz.Operation{q("listEmails")}},
		{name: "operationName of the only operation", in: postJSON(map[string]any{"query": `query Read { listEmails { id } }`, "operationName": "Read"}), want: []authz.Operation{q("listEmails")}},
		{name: "null operationName and variables", in: postBody(`{"query":"{ a }","operationName":null,"variables":{"x":[1,2.5e3,-0,true,false,null,{"y":"\u00e9\ud83d\ude00"}]}}`), want: []authz.Operation{q("a")}},
		{name: "operationName missing when several operations", in: post(`query Read { listEmails { id } } mutation Send { sendEmail(to: "x") { id } }`), detail: "operationName is required: the GraphQL document has 2 operations"},
		{name: "operationName naming no operation", in: postJSON(map[string]any{"query": `query Read { a }`, "operationName": "Send"}), detail: `the GraphQL document has no operation named "Send"`},
		{name: "operationName for an anonymous operation", in: postJSON(map[string]any{"query": `{ a }`, "operationName": "Read"}), detail: `the GraphQL document has no operation named "Read"`},
		{name: "anonymous operation beside others", in: postJSON(map[string]any{"query": `{ a } mutation Send { sendEmail }`, "operationName": "Send"}), detail: "an anonymous GraphQL operation must be the only operation in its document"},
		{name: "two operations of one name", in: postJSON(map[string]any{"query": `query Q { a } mutation Q { sendEmail }`, "operationName": "Q"}), detail: `the GraphQL document defines operation "Q" twice`},
		{name: "document with fragments only", in: post(`fragment F on Query { a }`), detail: "the GraphQL document has no operation"},

		// Fragments that servers refuse.
		{name: "undefined fragment", in: post(`{ ...Missing }`), detail: `the GraphQL document spreads fragment "Missing", which it does not define`},
		{name: "fragment cycle", in: post(`{ ...A } fragment A on Query { a { ...B } } fragment B on T { b { ...A } }`), detail: `GraphQL fragment "A" spreads itself`},
		{name: "fragment spreading itself at the root", in: post(`{ ...A } fragment A on Query { a ...A }`), detail: `GraphQL fragment "A" spreads itself`},
		{name: "fragment defined twice", in: post(`{ ...A } fragment A on Query { a } fragment A on Query { sendEmail }`), detail: `the GraphQL document defines fragment "A" twice`},

		// Batches.
		{name: "batch", in: postJSON([]map[string]any{{"query": `{ listEmails { id } }`}, {"query": `mutation { sendEmail(to: "x") { id } }`}, {"query": `{ listEmails { id } }`}}), want: []authz.Operation{q("listEmails"), m("sendEmail")}},
		{name: "batch with operation names", in: postJSON([]map[string]any{{"query": `query A { a } query B { b }`, "operationName": "B"}, {"query": `query A { a } query B { b }`, "operationName": "A"}}), want: []authz.Operation{q("b"), q("a")}},
		{name: "batch item with an error", in: postJSON([]map[string]any{{"query": `{ a }`}, {"query": `{ b`}}), detail: "batch[1]: GraphQL syntax error at line 1, column 4: Expected Name, found <EOF>"},
		{name: "batch item without query", in: postBody(`[{"query":"{ a }"},{"variables":{}}]`), detail: "batch[1]: the GraphQL request has no query"},
		{name: "batch item that is not an object", in: postBody(`[{"query":"{ a }"},"{ b }"]`), detail: "batch[1]: must be a JSON object"},
		{name: "empty batch", in: postBody(` [ ] `), detail: "the GraphQL batch is empty"},
		{name: "batch at its limit", in: postBody(`[{"query":"{a}"},{"query":"{b}"}]`), opts: &tight, want: []authz.Operation{q("a"), q("b")}},
		{name: "batch past its limit", in: postBody(`[{"query":"{a}"},{"query":"{b}"},{"query":"{c}"}]`), opts: &tight, detail: "GraphQL batch has more than 2 operations"},
		{name: "batch past the default limit", in: postBody("[" + strings.Repeat(`{"query":"{a}"},`, 10) + `{"query":"{a}"}]`), detail: "GraphQL batch has more than 10 operations"},

		// GET.
		{name: "GET", in: get(url.Values{"query": {`{ listEmails { id } }`}}), want: []authz.Operation{q("listEmails")}},
		{name: "GET with operationName", in: get(url.Values{"query": {`query A { a } mutation B { sendEmail }`}, "operationName": {"B"}, "variables": {`{}`}}), want: []authz.Operation{m("sendEmail")}},
		{name: "GET ignores the body", in: authz.RouteInput{Method: "GET", Path: "/graphql?query=%7Ba%7D", Body: []byte(`{"query":"mutation{sendEmail}"}`)}, want: []authz.Operation{q("a")}},
		{name: "GET with + for spaces", in: authz.RouteInput{Method: "GET", Path: "/graphql?query=query+Q+%7B+a+%7D"}, want: []authz.Operation{q("a")}},
		{name: "GET without query", in: authz.RouteInput{Method: "GET", Path: "/graphql?variables=%7B%7D"}, detail: "the GraphQL request has no query"},
		{name: "GET with query twice", in: authz.RouteInput{Method: "GET", Path: "/graphql?query=%7Ba%7D&query=mutation%7BsendEmail%7D"}, detail: `the query string has parameter "query" twice`},
		{name: "GET with a semicolon", in: authz.RouteInput{Method: "GET", Path: "/graphql?x=1;query=mutation%7BsendEmail%7D&query=%7Ba%7D"}, detail: `the query string has a ';': separate parameters with '&'`},
		{name: "GET with a malformed escape", in: authz.RouteInput{Method: "GET", Path: "/graphql?query=%zz"}, detail: `the query string has a malformed escape in parameter "query"`},
		{name: "GET with an encoded parameter name", in: authz.RouteInput{Method: "GET", Path: "/graphql?%71uery=%7Ba%7D"}, want: []authz.Operation{q("a")}},
		{name: "GET query string too long", in: authz.RouteInput{Method: "GET", Path: "/graphql?query=" + strings.Repeat("a", 300)}, opts: &tight, detail: "GraphQL query string is longer than 256 bytes"},
		{name: "GET persisted query", in: get(url.Values{"extensions": {`{"persistedQuery":{"version":1,"sha256Hash":"abc"}}`}}), opts: &withPersisted, want: []authz.Operation{q("persistedQuery")}},

		// Other shapes of a POST.
		{name: "application/graphql body", in: authz.RouteInput{Method: "POST", Path: "/graphql?operationName=B", ContentType: "application/graphql; charset=utf-8", Body: []byte(`query A { a } mutation B { sendEmail }`)}, want: []authz.Operation{m("sendEmail")}},
		{name: "form body", in: authz.RouteInput{Method: "POST", Path: "/graphql", ContentType: "application/x-www-form-urlencoded", Body: []byte("query=mutation+%7B+sendEmail+%7D")}, want: []authz.Operation{m("sendEmail")}},
		{name: "multipart body", in: authz.RouteInput{Method: "POST", Path: "/graphql", ContentType: "multipart/form-data; boundary=x", Body: []byte("--x")}, detail: `content type "multipart/form-data" is not supported for GraphQL (send application/json)`},
		{name: "query in the URL of a POST", in: authz.RouteInput{Method: "POST", Path: "/graphql?query=mutation%7BsendEmail%7D", ContentType: "application/json", Body: []byte(`{"query":"{a}"}`)}, detail: `GraphQL parameter "query" in the URL of a POST request: send it in the body only`},
		{name: "operationName in the URL agreeing with the body", in: authz.RouteInput{Method: "POST", Path: "/graphql?operationName=A", ContentType: "application/json", Body: []byte(`{"query":"query A { a } query B { b }","operationName":"A"}`)}, want: []authz.Operation{q("a")}},
		{name: "operationName in the URL only", in: authz.RouteInput{Method: "POST", Path: "/graphql?operationName=B", ContentType: "application/json", Body: []byte(`{"query":"query A { a } mutation B { sendEmail }"}`)}, want: []authz.Operation{m("sendEmail")}},
		{name: "operationName in the URL differing from the body", in: authz.RouteInput{Method: "POST", Path: "/graphql?operationName=B", ContentType: "application/json", Body: []byte(`{"query":"query A { a } mutation B { sendEmail }","operationName":"A"}`)}, detail: `operationName "B" in the URL differs from "A" in the body`},
		{name: "method other than GET and POST", in: authz.RouteInput{Method: "PUT", Path: "/graphql", Body: []byte(`{"query":"{a}"}`)}, detail: `GraphQL requests are GET or POST, not "PUT"`},
		{name: "empty body", in: authz.RouteInput{Method: "POST", Path: "/graphql", ContentType: "application/json"}, detail: "request body is empty (is with_request_body set on the Envoy route?)"},

		// JSON that servers might read differently.
		{name: "query key twice", in: postBody(`{"query":"{ listEmails }","query":"mutation { sendEmail }"}`), detail: `GraphQL request key "query" appears twice`},
		{name: "query key in another case", in: postBody(`{"query":"{ listEmails }","QUERY":"mutation { sendEmail }"}`), detail: `GraphQL request key "QUERY" is not "query" (keys are case-sensitive)`},
		{name: "extensions key folding to ASCII", in: postBody(`{"query":"{ a }","exten\u017fions":{}}`), detail: `GraphQL request key "extenſions" is not "extensions" (keys are case-sensitive)`},
		{name: "escaped query key", in: postBody(`{"qu\u0065ry":"mutation { sendEmail }"}`), want: []authz.Operation{m("sendEmail")}},
		{name: "escapes in the query", in: postBody(`{"query":"mutation {\n\tsendEmail(to: \"a\\\\b\\u00e9\") { id }\r\n}"}`), want: []authz.Operation{m("sendEmail")}},
		{name: "query that is not a string", in: postBody(`{"query":{"a":1}}`), detail: `GraphQL request key "query" must be a string`},
		{name: "null query", in: postBody(`{"query":null}`), detail: "the GraphQL request has no query"},
		{name: "empty query", in: postBody(`{"query":""}`), detail: "the GraphQL request has no query"},
		{name: "body that is not JSON", in: postBody(`query { a }`), detail: "request body must be a JSON object, or an array of them (a batch)"},
		{name: "body with trailing data", in: postBody(`{"query":"{a}"} {"query":"mutation{sendEmail}"}`), detail: "request body is not valid JSON at offset 16: data after the top-level value"},
		{name: "body with a bad escape", in: postBody(`{"query":"{a}\x"}`), detail: `request body is not valid JSON at offset 13: invalid escape "\\x"`},
		{name: "body cut short", in: postBody(`{"query":"{a}"`), detail: "request body is not valid JSON at offset 14: unexpected end, want ',' or '}'"},
		{name: "deeply nested variables", in: postBody(`{"query":"{a}","variables":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`), detail: "request body is not valid JSON at offset 282: nested deeper than 256 levels"},

		// Persisted queries.
		{name: "persisted query on a route that allows them", in: postBody(persisted), opts: &withPersisted, want: []authz.Operation{q("persistedQuery")}},
		{name: "persisted query on a route that does not", in: postBody(persisted), detail: "persisted queries are not allowed on this route: send the query"},
		{name: "persisted query with its query is checked as the query", in: postBody(`{"query":"mutation { sendEmail }",` + persisted[1:]), opts: &withPersisted, want: []authz.Operation{m("sendEmail")}},
		{name: "extensions without a persisted query", in: postBody(`{"extensions":{"persistedQuery":null,"tracing":true}}`), opts: &withPersisted, detail: "the GraphQL request has no query"},
		{name: "extensions that are not an object", in: postBody(`{"query":"{a}","extensions":[]}`), detail: `GraphQL request key "extensions" must be an object`},

		// Limits.
		{name: "truncated body", in: authz.RouteInput{Method: "POST", Path: "/graphql", ContentType: "application/json", Body: []byte(`{"query":"{ listEm`), BodyTruncated: true}, detail: "request body was truncated by the proxy (raise max_request_bytes)"},
		{name: "syntax error", in: post(`{ listEmails`), detail: "GraphQL syntax error at line 1, column 13: Expected Name, found <EOF>"},
		{name: "syntax error on a later line", in: post("query {\n  listEmails {\n    id\n  }\n  sendEmail(\n}"), detail: "GraphQL syntax error at line 6, column 1: Expected Name, found }"},
		{name: "depth at its limit", in: post(nested(15)), want: []authz.Operation{q("a")}},
		{name: "depth bomb", in: post(nested(16)), detail: "GraphQL document deeper than 15 levels"},
		{name: "depth bomb past the parser's own bound", in: post(nested(5000)), detail: "GraphQL document nests brackets more than 1000 deep"},
		{name: "depth bomb through fragments", in: post(`{ a { ...F } } fragment F on T { b { c { ...G } } } fragment G on T { d }`), opts: &tight, detail: "GraphQL document deeper than 2 levels"},
		{name: "depth counts fragments where they are spread", in: post(`{ ...F a } fragment F on Query { b { c } }`), opts: &tight, want: []authz.Operation{q("b"), q("a")}},
		{name: "root fields at their limit", in: post(aliased(50)), want: []authz.Operation{q("listEmails")}},
		{name: "huge field count", in: post(aliased(51)), detail: "GraphQL operation has more than 50 root fields"},
		{name: "root fields counted through fragments", in: post(`{ a ...F } fragment F on Query { b c }`), opts: &tight, detail: "GraphQL operation has more than 2 root fields"},
		{name: "root fields are counted per operation of a batch", in: postBody(`[{"query":"{a b}"},{"query":"{c d}"}]`), opts: &tight, want: []authz.Operation{q("a"), q("b"), q("c"), q("d")}},
		{name: "oversized body", in: post(`{ a }` + strings.Repeat(" ", 64<<10)), detail: "GraphQL request body is larger than 65536 bytes"},
		{name: "body at a route's own limit", in: post(strings.Repeat(" ", 200) + "{a}"), opts: &tight, want: []authz.Operation{q("a")}},
		{name: "oversized for a route's own limit", in: post(strings.Repeat(" ", 300) + "{a}"), opts: &tight, detail: "GraphQL request body is larger than 256 bytes"},
	}
	p := NewParser()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts == nil {
				opts = &defaults
			}
			ops, detail, r := p.Operations(&tt.in, opts)
			if tt.detail != "" {
				if r != authz.InvalidGraphQL || detail != tt.detail {
					t.Fatalf("got %v %q (ops %v), want invalid_graphql %q", r, detail, ops, tt.detail)
				}
				return
			}
			if r != authz.OK || detail != "" {
				t.Fatalf("got %v %q, want ok", r, detail)
			}
			if diff := cmp.Diff(tt.want, ops); diff != "" {
				t.Errorf("operations (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDefaultOptions: nil options, or limits left zero, are the defaults.
func TestDefaultOptions(t *testing.T) {
	in := post(nested(16))
	if _, detail, _ := NewParser().Operations(&in, nil); detail != "GraphQL document deeper than 15 levels" {
		t.Fatalf("nil options: detail = %q", detail)
	}
	if _, detail, _ := NewParser().Operations(&in, &Options{MaxDepth: 3}); detail != "GraphQL document deeper than 3 levels" {
		t.Fatalf("MaxDepth 3: detail = %q", detail)
	}
	in = post(aliased(51))
	if _, detail, _ := NewParser().Operations(&in, &Options{AllowPersistedQueries: true}); detail != "GraphQL operation has more than 50 root fields" {
		t.Fatalf("zero limits: detail = %q", detail)
	}
}

// TestDetailsAreBounded: a message never grows with the request.
func TestDetailsAreBounded(t *testing.T) {
	long := strings.Repeat("é", 10000)
	for _, in := range []authz.RouteInput{
		postJSON(map[string]any{"query": "{ a }", "operationName": long}),
		post("{ a(x: " + long + ") }"),
		postBody(`{"query":"{a}","` + strings.Repeat("Q", 5000) + `":1,"QUERY":2}`),
	} {
		_, detail, r := NewParser().Operations(&in, nil)
		if r != authz.InvalidGraphQL || len(detail) > maxDetail+len("…") {
			t.Errorf("got %v with a %d-byte detail: %.80q", r, len(detail), detail)
		}
	}
}

// TestExponentialFragments: fragments that would expand to 2^40 fields are
// walked once each.
func TestExponentialFragments(t *testing.T) {
	var b strings.Builder
	b.WriteString("{ ...F0 }")
	for i := range 40 {
		fmt.Fprintf(&b, " fragment F%d on Query { ...F%d ...F%d }", i, i+1, i+1)
	}
	b.WriteString(" fragment F40 on Query { listEmails }")
	in := post(b.String())
	ops, detail, r := NewParser().Operations(&in, nil)
	if r != authz.OK || len(ops) != 1 || ops[0] != q("listEmails") {
		t.Fatalf("got %v %v %q", ops, r, detail)
	}
}

// TestLongFragmentChain: a chain of spreads longer than the walk allows is
// refused, not followed into a deep recursion.
func TestLongFragmentChain(t *testing.T) {
	var b strings.Builder
	b.WriteString("{ ...F0 }")
	for i := range 1200 {
		fmt.Fprintf(&b, " fragment F%d on Query { ...F%d }", i, i+1)
	}
	b.WriteString(" fragment F1200 on Query { a }")
	in := post(b.String())
	opts := route.DefaultGraphQLOptions()
	opts.MaxBodyBytes = 1 << 20
	if _, detail, r := NewParser().Operations(&in, &opts); r != authz.InvalidGraphQL || detail != "GraphQL fragments nest more than 1000 deep" {
		t.Fatalf("got %v %q", r, detail)
	}
}

// TestManyOperations: the duplicate checks stay linear for big documents.
func TestManyOperations(t *testing.T) {
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "query Q%d { a%d } ", i, i)
	}
	opts := route.DefaultGraphQLOptions()
	opts.MaxBodyBytes = 1 << 20
	in := postJSON(map[string]any{"query": b.String(), "operationName": "Q1999"})
	ops, detail, r := NewParser().Operations(&in, &opts)
	if r != authz.OK || len(ops) != 1 || ops[0] != q("a1999") {
		t.Fatalf("got %v %v %q", ops, r, detail)
	}
	in = postJSON(map[string]any{"query": b.String() + "query Q7 { x }", "operationName": "Q1"})
	if _, detail, _ := NewParser().Operations(&in, &opts); detail != `the GraphQL document defines operation "Q7" twice` {
		t.Fatalf("detail = %q", detail)
	}
}

// TestManyRootFields: a batch of many distinct fields is deduplicated by
// a set once it grows.
func TestManyRootFields(t *testing.T) {
	opts := Options{MaxBodyBytes: 1 << 20, MaxDepth: 15, MaxRootFields: 1000, MaxBatch: 100}
	var items []map[string]any
	want := map[string]bool{}
	for i := range 50 {
		var b strings.Builder
		b.WriteString("{")
		for j := range 100 {
			fmt.Fprintf(&b, " f%d", (i*100+j)%700)
			want[fmt.Sprintf("f%d", (i*100+j)%700)] = true
		}
		b.WriteString(" }")
		items = append(items, map[string]any{"query": b.String()})
	}
	in := postJSON(items)
	ops, detail, r := NewParser().Operations(&in, &opts)
	if r != authz.OK {
		t.Fatalf("got %v %q", r, detail)
	}
	if len(ops) != len(want) {
		t.Fatalf("%d operations, want %d distinct", len(ops), len(want))
	}
}

// TestUnicodeInStrings: escapes, surrogate pairs and lone surrogates in
// JSON strings decode without trouble.
func TestUnicodeInStrings(t *testing.T) {
	in := postBody("{\"query\":\"{ a(x: \\\"caf\u00e9 \\ud83d\\ude00 \\udc00\\\") }\"}")
	ops, detail, r := NewParser().Operations(&in, nil)
	if r != authz.OK || len(ops) != 1 {
		t.Fatalf("got %v %v %q", ops, r, detail)
	}
}

// TestNamesDoNotAliasTheBody: an adapter may reuse the body's buffer once
// the check is answered, while the first operation's name is kept (a
// cached allow), so no name may point into the body.
func TestNamesDoNotAliasTheBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   authz.RouteInput
	}{
		{"JSON", postBody(`{"query":"{ listEmails }","operationName":null}`)},
		{"JSON with escapes", postBody(`{"query":"{\n listEmails }"}`)},
		{"application/graphql", authz.RouteInput{Method: "POST", ContentType: "application/graphql", Body: []byte(`{ listEmails }`)}},
		{"form", authz.RouteInput{Method: "POST", ContentType: "application/x-www-form-urlencoded", Body: []byte(`query={listEmails}`)}},
		{"form with escapes", authz.RouteInput{Method: "POST", ContentType: "application/x-www-form-urlencoded", Body: []byte(`query=%7B+listEmails+%7D`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []*Parser{NewParser(), {}} {
				in := tc.in
				in.Body = append([]byte(nil), tc.in.Body...)
				ops, detail, r := p.Operations(&in, nil)
				if r != authz.OK {
					t.Fatalf("%v %q", r, detail)
				}
				for i := range in.Body {
					in.Body[i] = 'X'
				}
				if want := []authz.Operation{q("listEmails")}; !cmp.Equal(ops, want) {
					t.Fatalf("after the body was reused: %v, want %v", ops, want)
				}
			}
		})
	}
}

func TestCache(t *testing.T) {
	p := NewParser()
	opts := route.DefaultGraphQLOptions()
	run := func(in authz.RouteInput) ([]authz.Operation, string) {
		t.Helper()
		ops, detail, _ := p.Operations(&in, &opts)
		return ops, detail
	}
	a := post(`{ listEmails { id } __typename }`)
	first, _ := run(a)
	again, _ := run(a)
	if &first[0] != &again[0] {
		t.Error("the same document was parsed twice")
	}
	if n := p.cache.len(); n != 1 {
		t.Errorf("cache holds %d entries, want 1", n)
	}

	// A batch that starts with a cached document adds to a copy.
	run(postBody(`[` + string(a.Body) + `,{"query":"mutation { sendEmail }"}]`))
	if got, _ := run(a); !cmp.Equal(got, []authz.Operation{q("listEmails"), q("__typename")}) {
		t.Errorf("cached result changed by a batch: %v", got)
	}

	// Refusals are remembered too, per set of options.
	deep := post(nested(10))
	if _, d := run(deep); d != "" {
		t.Fatalf("depth 10 refused: %q", d)
	}
	opts.MaxDepth = 5
	if _, d := run(deep); d != "GraphQL document deeper than 5 levels" {
		t.Fatalf("with max_depth 5: %q", d)
	}
	if _, d := run(deep); d != "GraphQL document deeper than 5 levels" {
		t.Fatalf("remembered refusal: %q", d)
	}
	opts.MaxDepth = 15

	// Another operation name is another entry.
	two := `query A { a } mutation B { sendEmail }`
	if got, _ := run(postJSON(map[string]any{"query": two, "operationName": "B"})); !cmp.Equal(got, []authz.Operation{m("sendEmail")}) {
		t.Errorf("B: %v", got)
	}
	if got, _ := run(postJSON(map[string]any{"query": two, "operationName": "A"})); !cmp.Equal(got, []authz.Operation{q("a")}) {
		t.Errorf("A: %v", got)
	}

	// Big documents are not kept.
	before := p.cache.len()
	big := post("{ a }" + strings.Repeat(" ", cacheMaxQuery))
	if got, _ := run(big); !cmp.Equal(got, []authz.Operation{q("a")}) {
		t.Errorf("big: %v", got)
	}
	if p.cache.len() != before {
		t.Error("a document over cacheMaxQuery was kept")
	}
}

func TestCacheGenerations(t *testing.T) {
	p := NewParser()
	keep := post(`{ keep }`)
	p.Operations(&keep, nil)
	for i := range 3 * cacheGeneration {
		in := post(fmt.Sprintf("{ f%d }", i))
		p.Operations(&in, nil)
		if i%100 == 0 {
			p.Operations(&keep, nil) // in use: moves to the young generation
		}
		if n := p.cache.len(); n > 2*cacheGeneration {
			t.Fatalf("cache holds %d entries", n)
		}
	}
	k := docKey{opts: route.DefaultGraphQLOptions(), query: `{ keep }`}
	if p.cache.get(&k) == nil {
		t.Error("a document in use was dropped")
	}
}

func TestCacheConcurrent(t *testing.T) {
	p := NewParser()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				n := (g + i) % 20
				var in authz.RouteInput
				want := []authz.Operation{q(fmt.Sprintf("f%d", n)), q("shared")}
				if i%3 == 0 {
					in = postBody(fmt.Sprintf(`[{"query":"{ f%d shared }"},{"query":"{ shared }"}]`, n))
				} else {
					in = post(fmt.Sprintf("{ f%d shared }", n))
				}
				ops, detail, r := p.Operations(&in, nil)
				if r != authz.OK || !cmp.Equal(ops, want) {
					t.Errorf("got %v %v %q, want %v", ops, r, detail, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestParseConcurrently parses documents without the cache from many
// goroutines: the pooled parser states are never shared, and the names
// answered never alias a state another parse reuses.
func TestParseConcurrently(t *testing.T) {
	var p Parser // no cache: every request is parsed
	var wg sync.WaitGroup
	results := make([][]authz.Operation, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				n := g*1000 + i
				in := post(fmt.Sprintf("query Q%d { field%d other: field%d_b ...F } fragment F on Query { frag%d }", n, n, n, n))
				ops, detail, r := p.Operations(&in, nil)
				want := []authz.Operation{q(fmt.Sprintf("field%d", n)), q(fmt.Sprintf("field%d_b", n)), q(fmt.Sprintf("frag%d", n))}
				if r != authz.OK || !cmp.Equal(ops, want) {
					t.Errorf("got %v %v %q, want %v", ops, r, detail, want)
					return
				}
				if i == 0 {
					results[g] = ops
				}
			}
		}()
	}
	wg.Wait()
	// The first answers still hold their names after every later parse.
	for g, ops := range results {
		want := []authz.Operation{q(fmt.Sprintf("field%d", g*1000)), q(fmt.Sprintf("field%d_b", g*1000)), q(fmt.Sprintf("frag%d", g*1000))}
		if !cmp.Equal(ops, want) {
			t.Errorf("goroutine %d's first answer became %v, want %v", g, ops, want)
		}
	}
}
