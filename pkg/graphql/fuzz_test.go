package graphql

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/route"
)

// typicalQuery is a typical client request of about 1 KiB: a named query
// with variables, a fragment, nested selections, an alias and three root
// fields. pkg/extauthz benchmarks the whole Check handler on the same one.
const typicalQuery = `{"operationName":"Inbox","variables":{"folder":"INBOX","first":25,"after":null,"withBody":false},` +
	`"query":"query Inbox($folder: String!, $first: Int = 20, $after: String, $withBody: Boolean = false) {\n` +
	`  me { id name email settings { signature timezone } }\n` +
	`  unread: countEmails(folder: $folder, unread: true)\n` +
	`  listEmails(folder: $folder, first: $first, after: $after) {\n` +
	`    pageInfo { hasNextPage endCursor }\n` +
	`    edges {\n` +
	`      cursor\n` +
	`      node {\n` +
	`        ...EmailSummary\n` +
	`        body @include(if: $withBody) { text html }\n` +
	`        attachments { id filename contentType size }\n` +
	`        labels { id name color }\n` +
	`      }\n` +
	`    }\n` +
	`  }\n` +
	`}\n\n` +
	`fragment EmailSummary on Email {\n` +
	`  id\n` +
	`  subject\n` +
	`  snippet\n` +
	`  receivedAt\n` +
	`  isRead\n` +
	`  isStarred\n` +
	`  from { name address }\n` +
	`  to { name address }\n` +
	`  cc { name address }\n` +
	`  thread { id messageCount lastMessageAt participants { name address } }\n` +
	`}\n"}`

var validKinds = map[string]bool{"query": true, "mutation": true, "subscription": true}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func FuzzOperations(f *testing.F) {
	seeds := []struct {
		method, ct, path, body string
	}{
		{"POST", "application/json", "/graphql", typicalQuery},
		{"POST", "application/json", "/graphql", `{"query":"mutation { ...F } fragment F on Mutation { sendEmail(to: \"x\") { id } }"}`},
		{"POST", "application/json", "/graphql", `[{"query":"{ a }"},{"query":"query A { __schema { types { name } } } query B { b }","operationName":"B"}]`},
		{"POST", "application/json", "/graphql", `{"query":"{ ...A } fragment A on Q { a { ...B } } fragment B on T { b { ...A } }"}`},
		{"POST", "application/json", "/graphql", `{"qu\u0065ry":"{ a }","QUERY":"{ b }"}`},
		{"POST", "application/json", "/graphql", persisted},
		{"POST", "application/json", "/graphql?operationName=B", `{"query":"query A { a } mutation B { b }"}`},
		{"POST", "application/graphql", "/graphql", `subscription { s { id } }`},
		{"POST", "application/x-www-form-urlencoded", "/graphql", `query=%7Ba%7D&operationName=`},
		{"GET", "", "/graphql?query=%7B+a+b%3A+c+%7D&extensions=%7B%7D", ""},
		{"GET", "", "/graphql?extensions=%7B%22persistedQuery%22%3A%7B%7D%7D", ""},
		{"POST", "application/json", "/graphql", `{"query":"` + nested(40) + `"}`},
		{"POST", "", "/graphql", `{"query":"{ a(x: [[[{y: \"\"\"z\"\"\"}]]]) }","variables":{"a":[1,-2.5e-3,{"b":"\ud800"}]}}`},
		{"PUT", "", "/graphql", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.ct, s.path, []byte(s.body))
	}
	p := NewParser()
	var uncached Parser
	opts := route.DefaultGraphQLOptions()
	opts.AllowPersistedQueries = true
	f.Fuzz(func(t *testing.T, method, ct, path string, body []byte) {
		in := authz.RouteInput{Method: method, ContentType: ct, Path: path, Body: body}
		// The bare method: a panic must fail the fuzz test, not be
		// turned into a deny.
		ops, detail, r := p.operations(&in, &opts)
		// Remembered answers are the answers.
		ops2, detail2, r2 := p.operations(&in, &opts)
		ops3, detail3, r3 := uncached.operations(&in, &opts)
		if !cmp.Equal(ops, ops2) || detail != detail2 || r != r2 || !cmp.Equal(ops, ops3) || detail != detail3 || r != r3 {
			t.Fatalf("answers differ: %v %q %v / again %v %q %v / uncached %v %q %v", ops, detail, r, ops2, detail2, r2, ops3, detail3, r3)
		}
		switch r {
		case authz.InvalidGraphQL:
			if detail == "" || len(detail) > maxDetail+len("…") || ops != nil {
				t.Fatalf("deny with detail %q and ops %v", detail, ops)
			}
			return
		case authz.OK:
		default:
			t.Fatalf("reason %v", r)
		}
		if len(ops) == 0 || detail != "" {
			t.Fatalf("allow with ops %v and detail %q", ops, detail)
		}
		seen := map[authz.Operation]bool{}
		for _, op := range ops {
			if !validKinds[op.Kind] || !isName(op.Name) || seen[op] {
				t.Fatalf("bad or repeated operation %+v in %v", op, ops)
			}
			if isIntrospection(op.Name) && op.Kind != "query" {
				t.Fatalf("introspection field %s of kind %s", op.Name, op.Kind)
			}
			seen[op] = true
		}
		// Every field named is in the query a server would read.
		if method != "POST" || len(body) == 0 || body[0] != '{' || strings.Contains(path, "?") {
			return
		}
		if mt := mediaType(ct); strings.EqualFold(mt, "application/graphql") || strings.EqualFold(mt, "application/x-www-form-urlencoded") {
			return
		}
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("allowed a body encoding/json refuses: %v", err)
		}
		query, _ := req["query"].(string)
		for _, op := range ops {
			if op.Name != route.PersistedQueryOperation && !strings.Contains(query, op.Name) && !strings.Contains(string(body), op.Name) {
				t.Fatalf("operation %s is not in the request %q", op.Name, body)
			}
		}
	})
}

// BenchmarkOperations is the parser alone on typicalQuery: warm, a
// document clients send again (remembered), and cold, parsed every time.
func BenchmarkOperations(b *testing.B) {
	for _, bc := range []struct {
		name string
		p    *Parser
	}{{"warm", NewParser()}, {"cold", &Parser{}}} {
		b.Run(bc.name, func(b *testing.B) {
			opts := route.DefaultGraphQLOptions()
			in := authz.RouteInput{Method: "POST", Path: "/graphql", ContentType: "application/json", Body: []byte(typicalQuery)}
			b.SetBytes(int64(len(in.Body)))
			b.ReportAllocs()
			for b.Loop() {
				ops, _, r := bc.p.Operations(&in, &opts)
				if r != authz.OK || len(ops) != 3 {
					b.Fatalf("%v %v", ops, r)
				}
			}
		})
	}
}
