package route

import (
	"strings"
	"testing"
)

// A routes file whose services list starts at line 10 and breaks at line
// 100 is reported at line 100, not where the list's block began.
func TestSyntaxErrorNamesTheBrokenLine(t *testing.T) {
	src := strings.Repeat("\n", 9) + "services:\n" + // line 10
		strings.Repeat("  - name: a\n    key_types: [app]\n    routes: []\n", 29) + // lines 11-97
		"  - name: b\n    key_types: [app]\n" + // lines 98-99
		"\t  routes: []\n" // line 100: a tab in the indentation
	_, _, err := Parse([]byte(src), "routes.yaml")
	if want := "routes.yaml:100:1: found character that cannot start any token"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}
