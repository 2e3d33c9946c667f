// Package docs holds no code: its test checks the user documentation and
// the configuration files users copy.
package docs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// internalCitation is one way of citing a document users do not have:
// the product specification and design notes (their sections, "§"), the
// vendor documents keygate was modelled on ("seed 001", "the seed's
// mutation") and the project's issues.
type internalCitation struct {
	what string
	re   *regexp.Regexp
	// historyOK: allowed in README's changelog, whose entries keep the
	// name of the change they record.
	historyOK bool
	// allow: a match followed by one of these is an ordinary word, not a
	// citation ("the seed corpus" of a fuzz target).
	allow []string
}

var internalCitations = []internalCitation{
	{what: "the specification", re: regexp.MustCompile(`\bSPEC(\.md)?\b`)},
	{what: "the design notes", re: regexp.MustCompile(`\bDESIGN(\.md)?\b`)},
	{what: "a section sign", re: regexp.MustCompile(`§`)},
	{what: "a seed document", re: regexp.MustCompile(`(?i)\bseeds?\s*#?\s*0\d\d\b|\bseeds?/`)},
	{what: "a seed document", re: regexp.MustCompile(`(?i)\bthe\s+seeds?('s)?\b`), allow: []string{"corp"}},
	{what: "a project issue", re: regexp.MustCompile(`(?i)\bissues?\s+#?\d+|\bissue\s+#|#\d+\b`), historyOK: true},
}

// userFiles lists the files a user reads or copies, relative to the
// repository root: README.md, SECURITY.md, docs/**/*.md, and every file
// under envoy/, examples/ and deploy/ except Go tests and images.
func userFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md", "SECURITY.md"}
	walk := func(dir string, keep func(string) bool) {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !keep(p) {
				return err
			}
			rel, err := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	walk("docs", func(p string) bool { return strings.HasSuffix(p, ".md") })
	for _, dir := range []string{"envoy", "examples", "deploy"} {
		walk(dir, func(p string) bool {
			switch filepath.Ext(p) {
			case ".png", ".jpg", ".jpeg", ".gif", ".svg":
				return false
			}
			return !strings.HasSuffix(p, "_test.go")
		})
	}
	return files
}

// changelog returns the byte range of README's "## Changelog" section.
func changelog(text string) (start, end int) {
	start = strings.Index(text, "\n## Changelog\n")
	if start < 0 {
		return 0, 0
	}
	end = len(text)
	if next := strings.Index(text[start+1:], "\n## "); next >= 0 {
		end = start + 1 + next
	}
	return start, end
}

// citations returns "file:line: what (text)" for each internal citation
// in text.
func citations(name, text string) []string {
	var found []string
	logStart, logEnd := 0, 0
	if name == "README.md" {
		logStart, logEnd = changelog(text)
	}
	for _, c := range internalCitations {
		for _, m := range c.re.FindAllStringIndex(text, -1) {
			if c.historyOK && m[0] >= logStart && m[0] < logEnd || c.allowed(text[m[1]:]) {
				continue
			}
			line := 1 + strings.Count(text[:m[0]], "\n")
			found = append(found, fmt.Sprintf("%s:%d: cites %s (%s)", name, line, c.what, strings.Join(strings.Fields(text[m[0]:m[1]]), " ")))
		}
	}
	return found
}

// allowed reports whether the text after a match makes it an ordinary word.
func (c internalCitation) allowed(after string) bool {
	after = strings.ToLower(strings.TrimLeft(after, " \t\n"))
	for _, a := range c.allow {
		if strings.HasPrefix(after, a) {
			return true
		}
	}
	return false
}

// TestUserDocsCiteNoInternalDocuments fails, naming file and line, if a
// page or a shipped file cites a document users cannot read: the
// specification or design notes ("SPEC §12"), the vendor documents
// keygate was modelled on ("seed 001", "the seed's mutation"), or the
// project's issues (outside README's changelog). Such a line must say the
// rule itself.
func TestUserDocsCiteNoInternalDocuments(t *testing.T) {
	for _, f := range userFiles(t, "..") {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range citations(f, string(b)) {
			t.Errorf("%s: say the rule itself instead", c)
		}
	}
}

// TestCitationRules: what the rules catch, and the ordinary words they
// leave alone.
func TestCitationRules(t *testing.T) {
	for _, tc := range []struct {
		name, file, text string
		want             int
	}{
		{"spec section", "docs/x.md", "bounded (SPEC §10) and", 2},
		{"spec file", "docs/x.md", "see SPEC.md", 1},
		{"design notes", "deploy/x.yaml", "# as DESIGN.md says", 1},
		{"seed number", "docs/x.md", "in seed 001's form", 1},
		{"seeds numbers", "docs/x.md", "(seeds 000/001)", 1},
		{"seed heading", "docs/x.md", "## Seed 001: generate", 1},
		{"the seed's", "docs/x.md", "The seed's mutation works", 1},
		{"seed across lines", "docs/x.md", "as in the\nseeds, the vendor", 1},
		{"issue", "SECURITY.md", "## Isolation (issue 15)", 1},
		{"issue across lines", "SECURITY.md", "what issue\n13 asked", 1},
		{"issue hash", "docs/x.md", "From issue #21, still", 1},
		{"issue point", "SECURITY.md", "(issue 13 #5)", 2},
		{"line of the citation", "docs/x.md", "a\nb\nc SPEC", 1},
		{"issue in the changelog", "README.md", "# k\n\n## Changelog\n\n- **Issue 17 — x.**\n\n## Layout\n", 0},
		{"issue after the changelog", "README.md", "## Changelog\n\n- x\n\n## Performance\n(issue 15)\n", 1},
		{"spec in the changelog", "README.md", "## Changelog\n\n- (SPEC §14)\n", 2},
		{"fuzz seed corpus", "SECURITY.md", "their seed corpora; the seed corpus", 0},
		{"seeding a database", "docs/x.md", "seeds keys with pgtest.SeedKeys; seed (COPY)", 0},
		{"spec lower case", "docs/x.md", "a Kubernetes spec: field, specification", 0},
		{"yaml comment", "deploy/x.yaml", "# 5 replicas\n#\n# Who may reach", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := citations(tc.file, tc.text)
			if len(got) != tc.want {
				t.Fatalf("citations(%q) = %q, want %d", tc.text, got, tc.want)
			}
		})
	}
	if got := citations("docs/x.md", "a\nb\nc SPEC"); got[0] != "docs/x.md:3: cites the specification (SPEC)" {
		t.Errorf("got %q, want the file and line 3", got[0])
	}
}
