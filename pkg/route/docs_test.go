package route

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// yamlBlock is a fenced YAML block of a Markdown page.
var yamlBlock = regexp.MustCompile("(?s)```ya?ml\n(.*?)```")

// TestShippedRoutesFiles loads every routes file the project ships or
// shows — examples/routes.yaml and each YAML block of README.md and
// docs/*.md that is a routes file (one with a top-level services list) —
// and fails on any error or warning: a user copying one must get a file
// that check-config passes clean (issue 13). deploy/'s ConfigMaps are
// checked the same way by deploy's tests.
func TestShippedRoutesFiles(t *testing.T) {
	files := map[string][]byte{}
	ex, err := os.ReadFile("../../examples/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files["examples/routes.yaml"] = ex
	pages, _ := filepath.Glob("../../docs/*.md")
	pages = append(pages, "../../README.md")
	for _, p := range pages {
		md, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range yamlBlock.FindAllSubmatch(md, -1) {
			if strings.HasPrefix(string(m[1]), "services:") || strings.Contains(string(m[1]), "\nservices:") {
				files[fmt.Sprintf("%s (YAML block %d)", strings.TrimPrefix(p, "../../"), i+1)] = m[1]
			}
		}
	}
	if len(files) < 3 {
		t.Fatalf("found %d routes files, want the example and the docs' (is the block syntax still ```yaml?)", len(files))
	}
	for name, src := range files {
		_, warns, err := Parse(src, name)
		if err != nil {
			t.Errorf("%s does not load:\n%v", name, err)
		}
		for _, w := range warns {
			t.Errorf("%s: warning: %s", name, w)
		}
	}
}
