package yamlfile

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// The fields of the test files: a mapping of items, each an entry.
var (
	topFields  = []string{"name", "items"}
	itemFields = []string{"id", "on", "at", "n", "tags"}
)

// item is what a test file's entry reads as.
type item struct {
	ID   string
	On   bool
	At   time.Time
	N    int
	Tags []string
}

// read walks a test file the way keyfile and route do: the reader does the
// YAML, this function knows the fields.
func read(data string, w Wording) (name string, items []item, errs []string) {
	r := NewReader("f.yaml", w)
	defer func() {
		for _, e := range r.Errors() {
			errs = append(errs, e.Error())
		}
	}()
	root, ok := r.Document([]byte(data))
	if !ok || root == nil {
		return "", nil, nil
	}
	top := r.Mapping(root, "", topFields, "")
	if top == nil {
		return "", nil, nil
	}
	name, _ = r.String(top["name"].Value, "", "name")
	list, _ := r.List(top["items"].Value, "", "items")
	for i, n := range list {
		entry := fmt.Sprintf("items[%d]", i)
		if id := Peek(n, "id"); id != "" {
			entry += fmt.Sprintf(" (id %q)", id)
		}
		f := r.Mapping(n, entry, itemFields, "")
		if f == nil {
			continue
		}
		var it item
		it.ID, _ = r.String(f["id"].Value, entry, "id")
		it.On, _ = r.Bool(f["on"].Value, entry, "on")
		it.At, _ = r.Time(f["at"].Value, entry, "at")
		it.N, _ = r.Int(f["n"].Value, entry, "n", 1, 100)
		tags, _ := r.List(f["tags"].Value, entry, "tags")
		for j, t := range tags {
			if s, ok := r.String(t, entry, fmt.Sprintf("tags[%d]", j)); ok {
				it.Tags = append(it.Tags, s)
			}
		}
		items = append(items, it)
	}
	return name, items, nil
}

func TestReaderAccepts(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		src   string
		want  []item
		wname string
	}{
		{"empty file", "", nil, ""},
		{"comments only", "# nothing\n", nil, ""},
		{"scalars as written", "name: 007\nitems: [{id: 0x1F}, {id: 1e3}, {id: true}]\n",
			[]item{{ID: "0x1F"}, {ID: "1e3"}, {ID: "true"}}, "007"},
		{"null is empty", "name: ~\nitems:\n  - {id: null, tags: ~, at: }\n", []item{{}}, ""},
		{"booleans", "items: [{on: true}, {on: false}, {on: True}, {on: FALSE}]\n",
			[]item{{On: true}, {}, {On: true}, {}}, ""},
		{"timestamps, plain, quoted, with offset", "items:\n  - {at: 2026-01-01T00:00:00Z}\n  - {at: \"2026-01-01T01:00:00+01:00\"}\n",
			[]item{{At: at}, {At: at}}, ""},
		{"whole numbers", "items: [{n: 1}, {n: 100}, {n: 0x10}]\n", []item{{N: 1}, {N: 100}, {N: 16}}, ""},
		{"anchors and aliases", "name: &n x\nitems:\n  - &a {id: a, tags: &t [p, q]}\n  - *a\n  - {id: *n, tags: *t}\n",
			[]item{{ID: "a", Tags: []string{"p", "q"}}, {ID: "a", Tags: []string{"p", "q"}}, {ID: "x", Tags: []string{"p", "q"}}}, "x"},
		{"merge key", "items:\n  - &base {id: a, n: 5, on: true}\n  - {<<: *base, id: b}\n",
			[]item{{ID: "a", N: 5, On: true}, {ID: "b", N: 5, On: true}}, ""},
		{"merge list: written fields win, then the first merged", "items:\n  - <<: [{id: x, n: 1}, {id: y, n: 2, on: true}]\n    n: 3\n",
			[]item{{ID: "x", N: 3, On: true}}, ""},
		{"merged mapping's own merges", "items:\n  - <<: {<<: {tags: [deep]}, id: mid}\n",
			[]item{{ID: "mid", Tags: []string{"deep"}}}, ""},
		{"document marker", "---\nname: a\n", nil, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, got, errs := read(tt.src, Wording{})
			if errs != nil {
				t.Fatalf("errors: %q", errs)
			}
			if name != tt.wname {
				t.Errorf("name = %q, want %q", name, tt.wname)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		// Where the file breaks, not where its block began (yaml says
		// line 1, 0-based, for the first).
		{"syntax error", "items:\n  - {id: [a\n", []string{`f.yaml:2:11: did not find expected ',' or ']'`}},
		{"unclosed flow list", "items: [\n  {id: a}\n", []string{`f.yaml:2:9: did not find expected ',' or ']'`}},
		{"bad indentation", "name: a\n items: []\n", []string{`f.yaml:2:7: mapping values are not allowed in this context`}},
		{"second document", "name: a\n---\nname: b\n", []string{`f.yaml:2: a second YAML document (---); the file must hold exactly one`}},
		{"second empty document", "name: a\n---\n", []string{`f.yaml:2: a second YAML document (---); the file must hold exactly one`}},
		{"not a mapping", "- a\n", []string{`f.yaml:1: want a mapping with fields name, items`}},
		{"entry not a mapping", "items: [a]\n", []string{`f.yaml:1: items[0]: want a mapping with fields id, on, at, n, tags`}},
		{"unknown field", "name: a\nnmae: b\n", []string{`f.yaml:2: unknown field "nmae" (known: name, items)`}},
		{"quoted << is a field name", "\"<<\": {name: a}\n", []string{`f.yaml:1: unknown field "<<" (known: name, items)`}},
		{"repeated field", "name: a\nitems: []\nname: b\n", []string{`f.yaml:3: name: given twice (first on line 1)`}},
		{"non-string field name", "[a]: b\n", []string{`f.yaml:1: a field name must be a plain string`}},
		{"not a string", "name: [a]\n", []string{`f.yaml:1: name: want a string`}},
		{"not a list", "items: {id: a}\n", []string{`f.yaml:1: items: want a list`}},
		{"YAML 1.1 booleans", "items:\n  - {id: a, on: yes}\n  - {id: b, on: 1}\n  - {id: c, on: ~}\n  - {id: d, on: [true]}\n", []string{
			`f.yaml:2: items[0] (id "a"): on: want true or false, got "yes"`,
			`f.yaml:3: items[1] (id "b"): on: want true or false, got "1"`,
			`f.yaml:4: items[2] (id "c"): on: want true or false`,
			`f.yaml:5: items[3] (id "d"): on: want true or false`,
		}},
		{"not RFC 3339", "items:\n  - {at: 2026-01-01}\n  - {at: \"2026-01-01 10:00:00\"}\n", []string{
			`f.yaml:2: items[0]: at: "2026-01-01" is not an RFC 3339 timestamp (like 2026-01-01T00:00:00Z)`,
			`f.yaml:3: items[1]: at: "2026-01-01 10:00:00" is not an RFC 3339 timestamp (like 2026-01-01T00:00:00Z)`,
		}},
		{"numbers out of range or not whole", "items: [{n: 0}, {n: 101}, {n: 1.5}, {n: \"7\"}, {n: ~}]\n", []string{
			`f.yaml:1: items[0]: n: want a whole number from 1 to 100`,
			`f.yaml:1: items[1]: n: want a whole number from 1 to 100`,
			`f.yaml:1: items[2]: n: want a whole number from 1 to 100`,
			`f.yaml:1: items[3]: n: want a whole number from 1 to 100`,
			`f.yaml:1: items[4]: n: want a whole number from 1 to 100`,
		}},
		{"merged mapping's unknown field, at its line", "items:\n  - <<: {id: a,\n      colour: red}\n    n: 2\n", []string{
			`f.yaml:3: items[0]: unknown field "colour" (known: id, on, at, n, tags)`,
		}},
		{"merge of a non-mapping", "items:\n  - {<<: [a], id: b}\n", []string{
			`f.yaml:2: items[0] (id "b"): want a mapping with fields id, on, at, n, tags`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, errs := read(tt.src, Wording{})
			if diff := cmp.Diff(tt.want, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWording: a file's wording changes the words, never the rules or the
// positions.
func TestWording(t *testing.T) {
	w := Wording{
		Document:       "document",
		Want:           "must be",
		Unknown:        "unknown field (known: %[2]s)",
		UnknownAsField: true,
		Twice:          "set twice (first at line %d)",
		SecondDocument: "one document only",
		Budget:         "too big (%d-fold)",
	}
	tests := []struct {
		src  string
		want []string
	}{
		{"- a\n", []string{`f.yaml:1: document: must be a mapping with fields name, items`}},
		{"[a]: b\n", []string{`f.yaml:1: document: a field name must be a plain string`}},
		{"name: a\n---\n", []string{`f.yaml:2: document: one document only`}},
		{"nmae: a\n", []string{`f.yaml:1: nmae: unknown field (known: name, items)`}},
		{"name: a\nname: b\n", []string{`f.yaml:2: name: set twice (first at line 1)`}},
		{"items: [{on: yes, tags: a}]\n", []string{
			`f.yaml:1: items[0]: on: must be true or false, got "yes"`,
			`f.yaml:1: items[0]: tags: must be a list`,
		}},
		{bomb(9), []string{`f.yaml:3: too big (10-fold)`}},
	}
	for _, tt := range tests {
		_, _, errs := read(tt.src, w)
		if diff := cmp.Diff(tt.want, errs); diff != "" {
			t.Errorf("%q: errors (-want +got):\n%s", tt.src, diff)
		}
	}
}

// bomb is a file whose every level merges the one before nine times:
// levels+1 lines expanding to 9^levels mappings.
func bomb(levels int) string {
	var b strings.Builder
	b.WriteString("items:\n  - &m0 {id: x0, tags: [a, b, c, d]}\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "  - &m%d {<<: [%s], id: x%d}\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*m%d, ", i-1), 9), ", "), i)
	}
	return b.String()
}

func TestAliasBudget(t *testing.T) {
	t.Run("merge bomb", func(t *testing.T) {
		_, _, errs := read(bomb(9), Wording{})
		// Reported once, at the alias where the budget ran out: deep in
		// the expansion, the first level's.
		want := []string{`f.yaml:3: aliases expand the file more than 10-fold; write the values out`}
		if diff := cmp.Diff(want, errs); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
	})
	t.Run("wide anchor, many aliases", func(t *testing.T) {
		// One alias names 2,000 nodes: a byte or visit count would let
		// each cost one.
		var b strings.Builder
		b.WriteString("name: x\nitems:\n  - &w {id: w, tags: [")
		for i := range 2000 {
			fmt.Fprintf(&b, "t%d, ", i)
		}
		b.WriteString("]}\n")
		for range 100 {
			b.WriteString("  - *w\n")
		}
		_, items, errs := read(b.String(), Wording{})
		if len(errs) != 1 || !strings.Contains(errs[0], "aliases expand the file more than 10-fold") {
			t.Fatalf("errors: %.300q", errs)
		}
		if len(items) > 12 {
			t.Errorf("read %d items past the budget", len(items))
		}
	})
	t.Run("small files may share freely", func(t *testing.T) {
		src := "items:\n  - &a {id: a, tags: [p, q, r]}\n" + strings.Repeat("  - *a\n", 500)
		_, items, errs := read(src, Wording{})
		if errs != nil || len(items) != 501 {
			t.Fatalf("%d items, errors %q", len(items), errs)
		}
	})
}

func TestErrorFormat(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "f", Err: base}, "f: boom"},
		{Error{File: "f", Line: 3, Err: base}, "f:3: boom"},
		{Error{File: "f", Line: 3, Entry: "keys[0]", Err: base}, "f:3: keys[0]: boom"},
		{Error{File: "f", Line: 3, Field: "id", Err: base}, "f:3: id: boom"},
		{Error{File: "f", Line: 3, Entry: "keys[0]", Field: "id", Err: base}, "f:3: keys[0]: id: boom"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.e, got, tt.want)
		}
		if !errors.Is(&tt.e, base) {
			t.Errorf("%+v does not unwrap", tt.e)
		}
	}
	if Join(nil) != nil {
		t.Error("Join(nil) is not nil")
	}
}

func TestWarnings(t *testing.T) {
	r := NewReader("f.yaml", Wording{})
	root, _ := r.Document([]byte("name: a\n"))
	r.Warnf(root, "", "name", "odd %s", "name")
	r.Warn(0, "e", "", errors.New("no line"))
	want := []string{"f.yaml:1: name: odd name", "f.yaml: e: no line"}
	if diff := cmp.Diff(want, r.Warnings()); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if r.NumErrors() != 0 {
		t.Errorf("warnings counted as errors")
	}
}

func TestPeek(t *testing.T) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("{a: &x 1, b: *x, c: ~, d: [1], <<: {e: 2}}"), &n); err != nil {
		t.Fatal(err)
	}
	m := n.Content[0]
	for field, want := range map[string]string{"a": "1", "b": "1", "c": "", "d": "", "e": "", "z": ""} {
		if got := Peek(m, field); got != want {
			t.Errorf("Peek(%q) = %q, want %q", field, got, want)
		}
	}
	if Peek(nil, "a") != "" {
		t.Error("Peek(nil) is not empty")
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"",
		"name: a\nitems: [{id: a, on: true, at: 2026-01-01T00:00:00Z, n: 3, tags: [x]}]\n",
		"items:\n  - &a {id: a}\n  - {<<: *a, n: 2}\n  - <<: [*a, {tags: [t]}]\n",
		"a: &a [*a]\n",
		"items: [&l [1, 2], *l, {<<: *l}]\n",
		"name: a\n---\nname: b\n",
		"[a]: b\n",
		"items: [{n: 0x7fffffffffffffff}, {n: -1}, {at: 2026-13-01T00:00:00Z}]\n",
		bomb(9),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		_, items, errs := read(src, Wording{})
		for _, e := range errs {
			if !strings.HasPrefix(e, "f.yaml:") {
				t.Fatalf("an error that does not name the file: %q", e)
			}
		}
		// The budget holds: what was read, and what was reported, is at
		// most what the file writes and what the budget lets aliases add.
		limit := max(minAliasBudget, aliasRatio*(len(src)+1)) + len(src)
		read := 0
		for _, it := range items {
			read += 1 + len(it.Tags)
		}
		if read > limit {
			t.Fatalf("read %d values from %d bytes", read, len(src))
		}
		if len(errs) > limit {
			t.Fatalf("%d errors from %d bytes", len(errs), len(src))
		}
	})
}
