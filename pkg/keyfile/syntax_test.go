package keyfile

import (
	"strings"
	"testing"
)

// A keys file whose keys list starts at line 10 and breaks at line 100 is
// reported at line 100 (yaml.v3 alone says 9, where the list's block began).
func TestSyntaxErrorNamesTheBrokenLine(t *testing.T) {
	file := strings.Repeat("# keys\n", 9) + "keys:\n" + // line 10
		strings.Repeat("  - id: k-1\n    name: one\n", 44) + // lines 11-98
		"  - id: k-2\n" + // line 99
		" name: dedented\n" + // line 100
		"  - id: k-3\n"
	_, _, err := Parse([]byte(file), "keys.yaml", testOpts)
	if want := "keys.yaml:100:2: did not find expected key"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}
