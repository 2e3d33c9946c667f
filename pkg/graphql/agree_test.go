package graphql

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/graphql/gqlref"
)

// The documents keygate lets through must be read exactly as the GraphQL
// server behind it reads them, or a key could run a field its scope does
// not allow. gqlparser (the parser of gqlgen servers, strict to the
// specification) is the second opinion: a document both read must have
// the same root fields for both, and a document gqlparser reads must not
// be refused by keygate as a syntax error.

// spacedVariable finds a variable whose name is apart from its $, which
// the specification allows and astparser does not.
var spacedVariable = regexp.MustCompile(`\$[ \t\r\n,#\x{feff}]`)

// agreeWithGQLParser fails t when keygate and gqlparser read query
// differently in a way that matters. Unless strict, keygate may refuse a
// document because the two lexers read its tokens differently (which a
// fuzzer finds in pathological strings and which is refused by design).
func agreeWithGQLParser(t *testing.T, query, opName string, strict bool) {
	t.Helper()
	opts := Options{MaxBodyBytes: 1 << 20, MaxDepth: 1000, MaxRootFields: 100000, MaxBatch: 100}
	got, err := parseDocument(query, opName, &opts)
	fields, parsed, ok := gqlref.RootFields(query, opName)
	if err != nil {
		// astparser does not know the descriptions of operations and
		// fragments the specification's drafts added; keygate refuses
		// them.
		if parsed && strings.HasPrefix(err.Error(), "GraphQL syntax error") && !gqlref.Described(query) &&
			!spacedVariable.MatchString(query) && (strict || !errors.Is(err, errLexersDisagree)) {
			t.Fatalf("keygate refuses a document gqlparser reads: %v\n%q", err, query)
		}
		return
	}
	if !parsed || !ok {
		// astparser's grammar is more lenient than the specification in
		// places (a variable in a default value, for one): keygate checks
		// the root fields of such a document, and the server refuses it,
		// so no field runs.
		return
	}
	want := map[authz.Operation]bool{}
	for _, op := range fields {
		want[op] = true
	}
	if len(got) != len(want) {
		t.Fatalf("keygate reads %v, gqlparser %v:\n%q", got, want, query)
	}
	for _, op := range got {
		if !want[op] {
			t.Fatalf("keygate reads %v, gqlparser %v:\n%q", got, want, query)
		}
	}
}

// tricky are documents where lexers go wrong: strings, block strings and
// their escapes, comments, commas, Unicode, numbers, names next to
// punctuation.
var tricky = []string{
	`{ a }`,
	"# c1\n# c2\n{ a # c3\n b }",
	`{ a(x: "q\" b") c }`,
	`{ a(x: "q\\") b }`,
	`{ a(x: """ \""" b """) c }`,
	`{ a(x: """ "" b """) c }`,
	`{ a(x: """ \"" b """) c }`,
	"{ a(x: \"\"\"\n  multi\n  line\n\"\"\") b }",
	`{ a(x: "\u00e9\uD83D\uDE00") b }`,
	`{ a(x: "é😀") b }`,
	`{ a(x: "#not a comment") b }`,
	`{ a(x: "{") b }`,
	`{ a(x: ["}", "{", ")"]) b }`,
	`{ a(x: {y: "}"}) b }`,
	`{ a, b,, ,c }`,
	`{ a(x: 1, y: -2.5e+3, z: 0.0) b }`,
	`{ a(x: 1e5) b(y: true, z: null, w: ENUM) }`,
	`{ alias: a b: c }`,
	`{ a @skip(if: true) b @include(if: $v) }`,
	`query Q($v: [Int!]! = [1, 2] @d) @op { a(x: $v) }`,
	`query Q { a } mutation M { b } subscription S { c }`,
	`{ ... on Query { a } ... @include(if: true) { b } ...F } fragment F on Query { c }`,
	"{ a }\r\n",
	"{\ta\r\nb }",
	`{ __typename a { __typename } }`,
	`{ a(x: "") b(y: """""") }`,
	`{ a(x: """\\""") b }`,
	`{ a(x: "\\\"") b }`,
	`{ on fragment query mutation subscription true false null }`,
	`query query { query }`,
	`fragment F on Q { a } query { ...F }`,
	`{ a(x: $query) }`,
	`{ a(x: 0x10) }`,
	`{ a(x: 01) }`,
	`{ a(x: 1.) }`,
	`{ a(x: .5) }`,
	`{ a(x: "unterminated) }`,
	`{ a(x: """unterminated) }`,
	`{ a(x: "\uZZZZ") b }`,
	`{ a(x: "\q") b }`,
	"{ a(x: \"line\nbreak\") b }",
	`{ a{} b }`,
	`{}`,
	`{ a } { b }`,
	`{ a } trailing`,
	"\ufeff{ a }",
	`{ a } type T { f: Int }`,
	`"description" query { a }`,
	`extend type Query { a: Int }`,
	`{ a(x: $) }`,
	`{ a(x: @) }`,
	`{ .. a }`,
	`{ ....F } fragment F on Q { a }`,
	`{ a(x:"a"b:"c") d }`,
	`{ a(x: 1)(y: 2) }`,
	`{ a: b: c }`,
	`{ 1a }`,
	`{ a-b }`,
	`{ a.b }`,
	`{ a ... }`,
	`{ a & b }`,
	`{ a | b }`,
	`{ a ! }`,
	`{ a = b }`,
	`{ a [b] }`,
	`{ a }}`,
	`{ a(x: [1, 2,]) }`,
	`{ a(x: {}) b(y: []) }`,
}

// ambiguous are documents the two lexers read differently: refused.
var ambiguous = []string{
	`{ a(x: """"""") b }`,
	// The specification: a block string holding ` \"""  ) b `, then c;
	// astparser: a block string ending at the third quote, then b.
	`{ a(x: """ \\"""  ) b """) c }`,
}

func TestParserAgreesWithGQLParser(t *testing.T) {
	for _, q := range tricky {
		agreeWithGQLParser(t, q, "", true)
	}
	agreeWithGQLParser(t, `query A { a } query B { b }`, "B", true)
	agreeWithGQLParser(t, typicalDocument(), "Inbox", true)
	opts := Options{MaxBodyBytes: 1 << 20, MaxDepth: 1000, MaxRootFields: 1000, MaxBatch: 100}
	for _, q := range ambiguous {
		if _, err := parseDocument(q, "", &opts); !errors.Is(err, errLexersDisagree) {
			t.Errorf("%q: got %v, want the lexers to disagree", q, err)
		}
	}
}

// FuzzParserAgreesWithGQLParser holds keygate's reading of random
// documents to gqlparser's.
func FuzzParserAgreesWithGQLParser(f *testing.F) {
	for _, q := range tricky {
		f.Add(q, "")
	}
	f.Add(`query A { a } query B { b }`, "B")
	f.Add(typicalDocument(), "Inbox")
	f.Fuzz(func(t *testing.T, query, opName string) {
		if len(query) > 1<<14 {
			return
		}
		agreeWithGQLParser(t, query, opName, false)
	})
}

// typicalDocument is the document of typicalQuery.
func typicalDocument() string {
	var r struct{ Query string }
	if err := json.Unmarshal([]byte(typicalQuery), &r); err != nil {
		panic(err)
	}
	return r.Query
}
