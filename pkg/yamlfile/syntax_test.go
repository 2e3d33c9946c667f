package yamlfile

import (
	"fmt"
	"strings"
	"testing"
)

// brokenAt100 is a file whose list starts at line 10 and is broken by bad
// at line 100, followed by one more entry. Its lines before are valid.
func brokenAt100(bad string) string {
	var b strings.Builder
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "# line %d\n", i)
	}
	b.WriteString("items:\n") // line 10
	for line := 11; line < 100; line++ {
		fmt.Fprintf(&b, "  - id: i%d\n", line)
	}
	b.WriteString(bad + "\n") // line 100
	b.WriteString("  - id: last\n")
	return b.String()
}

// yaml.v3 names the line where the enclosing block began (here 9, its
// 0-based line 10) for a parser error; the reader names the broken line and
// column.
func TestSyntaxErrorAtTheBrokenLine(t *testing.T) {
	for _, tt := range []struct{ name, bad, want string }{
		{"dedented entry", " - id: q", `f.yaml:100:2: did not find expected key`},
		{"value where none may be", "  - id: a: b", `f.yaml:100:10: mapping values are not allowed in this context`},
		{"over-indented field", "      bad: 1", `f.yaml:100:10: mapping values are not allowed in this context`},
		{"tab indentation", "\t- id: x", `f.yaml:100:1: found a tab character that violates indentation`},
		{"unclosed flow list", "  - id: [a, b", `f.yaml:100:13: did not find expected ',' or ']'`},
		{"unclosed quote", `  - id: "abc`, `f.yaml:100:9: found unexpected end of stream`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, errs := read(brokenAt100(tt.bad), Wording{})
			if len(errs) != 1 || errs[0] != tt.want {
				t.Fatalf("errors %q, want [%q]", errs, tt.want)
			}
		})
	}
}

// A broken second document is located in the whole file too.
func TestSyntaxErrorInSecondDocument(t *testing.T) {
	_, _, errs := read("items: []\n---\nname: a\n name: b\n", Wording{})
	if want := `f.yaml:4:6: mapping values are not allowed in this context`; len(errs) != 1 || errs[0] != want {
		t.Fatalf("errors %q, want [%q]", errs, want)
	}
}

// locate finds nothing in a file that does not fail; the caller keeps
// yaml's line then.
func TestLocateWithoutError(t *testing.T) {
	if l, c := locate([]byte("a: 1\n"), "yaml: line 1: nope"); l != 0 || c != 0 {
		t.Fatalf("locate = %d, %d, want 0, 0", l, c)
	}
}

// A file too large to search keeps yaml's line rather than decode it dozens
// of times.
func TestLocateSkipsHugeFiles(t *testing.T) {
	data := []byte(strings.Repeat("#", maxLocateBytes) + "\n[\n")
	if l, c := locate(data, "yaml: line 2: did not find expected node content"); l != 0 || c != 0 {
		t.Fatalf("locate = %d, %d, want 0, 0", l, c)
	}
}
