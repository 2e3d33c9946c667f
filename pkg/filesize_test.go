// Package pkg_test keeps the files under pkg/ small enough to read (issue
// 14): a file over maxLines lines is split by subject into files of the
// same package, or says at its top why it must be one file.
package pkg_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// maxLines is the bound of issue 14 ("no file in pkg/ over ~600 lines").
const maxLines = 600

// whyMarker is what a long file's top comment says to be let through:
// "… is one file because …".
const whyMarker = "one file because"

// splitPending are files other work is splitting now, let through until it
// lands (split pending); the lead empties this list. An entry that is no
// longer over the bound fails the test, so that it does not linger.
var splitPending = map[string]bool{}

// generated matches the "Code generated … DO NOT EDIT" line of a generated
// file (https://go.dev/s/generatedcode), in any comment syntax.
var generated = regexp.MustCompile(`(?m)^\s*(//|#|--|/\*|<!--)?\s*Code generated .* DO NOT EDIT`)

// TestLongFilesSayWhy fails naming every file under pkg/ over maxLines
// lines that is neither generated nor says at its top why it is one file.
// Data under testdata/ (fuzz corpora, goldens) cannot carry a comment and
// is not read as code, so it is left out.
func TestLongFilesSayWhy(t *testing.T) {
	var long []string
	seen := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		path = filepath.ToSlash(path)
		n, ok := fileOK(path, data)
		if splitPending[path] {
			seen[path] = true
			if n <= maxLines {
				long = append(long, fmt.Sprintf("pkg/%s (%d lines): no longer over %d lines; take it off splitPending in pkg/filesize_test.go", path, n, maxLines))
			}
			return nil
		}
		if !ok {
			long = append(long, fmt.Sprintf("pkg/%s (%d lines)", path, n))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path := range splitPending {
		if !seen[path] {
			long = append(long, fmt.Sprintf("pkg/%s: not found; take it off splitPending in pkg/filesize_test.go", path))
		}
	}
	if len(long) > 0 {
		slices.Sort(long)
		t.Errorf("files under pkg/ over %d lines, neither generated nor saying at their top why they are one file:\n\t%s\n"+
			"Split each by subject into files of the same package, or put a comment at its top (before the package clause) "+
			"saying why it must be one file, containing %q.", maxLines, strings.Join(long, "\n\t"), whyMarker)
	}
}

// fileOK reports a file's line count and whether it may have that many:
// at most maxLines, binary, generated, or its top comment has whyMarker.
func fileOK(path string, data []byte) (lines int, ok bool) {
	lines = bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		lines++
	}
	if lines <= maxLines || bytes.IndexByte(data, 0) >= 0 {
		return lines, true
	}
	top := topComment(path, data)
	return lines, generated.MatchString(top) || strings.Contains(strings.ToLower(top), whyMarker)
}

// topComment is the comment at a file's top: for Go, everything before the
// package clause (the package doc and any comment above it); otherwise the
// leading lines that are blank or comments (#, //, --, /* */, <!-- -->).
func topComment(path string, data []byte) string {
	var b strings.Builder
	inBlock := false
	for line := range strings.Lines(string(data)) {
		s := strings.TrimSpace(line)
		if strings.HasSuffix(path, ".go") {
			if !inBlock && (s == "package" || strings.HasPrefix(s, "package ")) {
				break
			}
		} else if !inBlock && s != "" && !hasAnyPrefix(s, "#", "//", "--", "/*", "<!--") {
			break
		}
		switch {
		case strings.HasPrefix(s, "/*") || strings.HasPrefix(s, "<!--"):
			inBlock = !strings.Contains(s, "*/") && !strings.Contains(s, "-->")
		case inBlock && (strings.Contains(s, "*/") || strings.Contains(s, "-->")):
			inBlock = false
		}
		b.WriteString(line)
	}
	return b.String()
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// TestFileOK is fileOK's rule, file by file: the bound, the generated
// header, and where the marker must be to count.
func TestFileOK(t *testing.T) {
	body := strings.Repeat("x := 1\n", maxLines)
	tests := []struct {
		name, path, file string
		ok               bool
	}{
		{"short", "a.go", "package a\n" + strings.Repeat("x := 1\n", maxLines-1), true},
		{"one line over", "a.go", "package a\n" + body, false},
		{"last line without newline", "a.go", "package a\n" + strings.Repeat("x := 1\n", maxLines-1) + "}", false},
		{"package doc says why", "a.go", "// Package a is one file because its parts share one lock.\npackage a\n" + body, true},
		{"detached comment says why", "a.go", "// A is one file because of x.\n\n// Package a does y.\npackage a\n" + body, true},
		{"marker in another case", "a.go", "// One File Because x.\npackage a\n" + body, true},
		{"marker after the package clause", "a.go", "package a\n\n// a is one file because x.\n" + body, false},
		{"marker in a block comment", "a.go", "/*\nPackage a is one file because x.\n*/\npackage a\n" + body, true},
		{"top comment without the marker", "a.go", "// Package a does x.\npackage a\n" + body, false},
		{"generated", "a.go", "// Code generated by protoc-gen-go. DO NOT EDIT.\n\npackage a\n" + body, true},
		{"generated, gqlgen's wording", "a.go", "// Code generated by github.com/99designs/gqlgen, DO NOT EDIT.\n\npackage a\n" + body, true},
		{"generated mentioned in the body only", "a.go", "package a\n\n// Code generated … DO NOT EDIT is gofmt's header.\n" + body, false},
		{"schema says why", "a.graphqls", "# The API is one file because x.\n\ntype Query {\n" + body, true},
		{"schema without a comment", "a.graphqls", "type Query {\n" + body, false},
		{"schema marker below the first definition", "a.graphqls", "type Query {\n# one file because x\n" + body, false},
		{"SQL says why", "a.sql", "-- one file because x\n" + body, true},
		{"binary", "a.bin", "\x00" + body, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := fileOK(tt.path, []byte(tt.file))
			if ok != tt.ok {
				t.Errorf("fileOK(%s, %d lines) = %v, want %v", tt.path, n, ok, tt.ok)
			}
		})
	}
}
