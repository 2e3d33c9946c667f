package scope

import (
	"slices"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", " ", "*", "!*", "* !*", "email-api", "email-api:query:get*",
		"authorization-api:query:* authorization-api:mutation:*",
		"email-api !email-api:mutation:sendEmail", "a::b", "a:", "!", "a:b:c:d",
		"a\tb\nc", "q*ery", "é", "\xff", "a\u00a0b",
		"email-api:query:get* !email-api:mutation:sendEmail", "email-api:query !email-api:*:delete*",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(sc.String())
		if err != nil {
			t.Fatalf("Parse(%q) works but Parse of its String %q fails: %v", s, sc.String(), err)
		}
		if again.String() != sc.String() {
			t.Fatalf("String not stable: %q then %q", sc.String(), again.String())
		}
		if !slices.Equal(again.Services(), sc.Services()) {
			t.Fatalf("Services differ: %q then %q", sc.Services(), again.Services())
		}
		// Probe with the scope's own words too, so prefixes and literals
		// get exercised, not only misses.
		words := []string{"", "x", "query", "email-api", "get", "getEmail"}
		for w := range strings.FieldsSeq(s) {
			for part := range strings.SplitSeq(strings.TrimPrefix(w, "!"), ":") {
				words = append(words, part, strings.TrimSuffix(part, "*"))
			}
			if len(words) > 20 {
				break
			}
		}
		for i, a := range words {
			b, c := words[(i+1)%len(words)], words[(i+2)%len(words)]
			if sc.Allows(a, b, c) != again.Allows(a, b, c) {
				t.Fatalf("Allows(%q, %q, %q) differs after round trip of %q", a, b, c, s)
			}
			unknownNeverOpensMore(t, sc, s, a, b, c)
		}
		// Each pattern's own service, kind and operation (a deny's too,
		// which is where an unknown operation could slip past).
		for w := range strings.FieldsSeq(s) {
			parts := append(strings.Split(strings.TrimPrefix(w, "!"), ":"), "x", "x")
			for _, p := range [][]string{parts, {parts[0], parts[1], strings.TrimSuffix(parts[2], "*") + "z"}} {
				unknownNeverOpensMore(t, sc, s, p[0], p[1], p[2])
			}
		}
	})
}

// unknownNeverOpensMore checks SPEC §9's rule for unknown ("") kinds and
// operations: an allow pattern matches them only through "*", a deny
// pattern always. So what a scope allows without knowing the operation
// (or the kind and operation) it allows for every operation: the unknown
// never opens more than the scope says.
func unknownNeverOpensMore(t *testing.T, sc *Scope, text, service, kind, operation string) {
	t.Helper()
	if sc.Allows(service, kind, "") && !sc.Allows(service, kind, operation) {
		t.Fatalf("%q allows %s:%s with an unknown operation but not %s:%s:%s", text, service, kind, service, kind, operation)
	}
	if sc.Allows(service, "", "") && !sc.Allows(service, kind, operation) {
		t.Fatalf("%q allows %s with an unknown kind and operation but not %s:%s:%s", text, service, service, kind, operation)
	}
}
