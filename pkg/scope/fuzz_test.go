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
		}
	})
}
