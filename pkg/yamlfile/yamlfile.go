// Package yamlfile is the one strict YAML reader of keygate's files (the
// keys file and the routes file). Its rules are the same for every file:
//
//   - exactly one YAML document; an empty file has no root; a second
//     document is an error naming its line; syntax errors read
//     file:line:column, where the broken text is (not where its block began);
//   - mappings hold only known fields, each written once, under plain
//     string names; merge keys (<<) are honoured, and fields written in the
//     mapping itself win over merged ones;
//   - anchors and aliases are allowed, within one budget: following aliases
//     may add at most aliasRatio times the nodes the file writes (and at
//     least minAliasBudget), reported once; after that nothing more is
//     reported, since the walk no longer sees the whole file;
//   - scalars read as written (`id: 007` is "007"), null as "" or an empty
//     list; booleans are YAML 1.2 true and false only; timestamps RFC 3339;
//     whole numbers within a range;
//   - every finding is an Error, "file:line: entry: field: message".
//
// What the fields mean is the caller's. Every helper reports its own
// problems and tells the caller whether it got a usable value, so that one
// run reports everything there is to fix.
package yamlfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a file; warnings have the same form.
type Error struct {
	File   string
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based, in bytes; 0 when unknown (only syntax errors have one)
	Entry  string // e.g. `keys[2] (id "k-3")`; "" for the top level
	Field  string // e.g. "tenant"; "" when the entry as a whole is wrong
	Err    error
}

// Error reads like `keys.yaml:12: keys[2] (id "k-3"): tenant: required for service keys`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": ")
	if e.Entry != "" {
		b.WriteString(e.Entry)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Join joins errs with errors.Join; nil when there are none.
func Join(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// Wording words the reader's findings for one kind of file. The rules are
// the reader's and the same for every file; the words are the file's,
// because its users (and their scripts) know them. An empty field takes
// the default shown.
type Wording struct {
	// Document names the top level in messages about it as a whole, and
	// about a second document ("" leaves the entry out).
	Document string
	// Want opens a message about a value of the wrong type: "want" (a
	// list, true or false, …).
	Want string
	// Unknown words an unknown field from its name (%[1]q) and the known
	// fields (%[2]s): `unknown field %[1]q (known: %[2]s)`.
	Unknown string
	// UnknownAsField reports an unknown field's name as the message's
	// field rather than in its text.
	UnknownAsField bool
	// Twice words a repeated field from its first line:
	// "given twice (first on line %d)".
	Twice string
	// SecondDocument words a second YAML document:
	// "a second YAML document (---); the file must hold exactly one".
	SecondDocument string
	// Budget words the alias budget running out, from aliasRatio:
	// "aliases expand the file more than %d-fold; write the values out".
	Budget string
}

func (w Wording) withDefaults() Wording {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&w.Want, "want")
	def(&w.Unknown, "unknown field %[1]q (known: %[2]s)")
	def(&w.Twice, "given twice (first on line %d)")
	def(&w.SecondDocument, "a second YAML document (---); the file must hold exactly one")
	def(&w.Budget, "aliases expand the file more than %d-fold; write the values out")
	return w
}

// The alias budget. Without it a few kilobytes of nested aliases make
// millions of entries to check and an error message of gigabytes.
// It counts nodes, not bytes or visits: following an alias costs the nodes
// of what it names (aliases in it as one each), so a wide anchor costs as
// much as it adds, however short its name.
const (
	// aliasRatio is how many times its own size aliases may expand a file.
	aliasRatio = 10
	// minAliasBudget keeps small files free to share lists through anchors.
	minAliasBudget = 10_000
)

// Field is a field of a mapping.
type Field struct {
	Key   *yaml.Node // the key as written
	Value *yaml.Node // the value, aliases followed
}

// Fields are the fields of a mapping by name, merged ones included.
type Fields map[string]Field

// Reader reads one file. Call Document first: it sets the alias budget.
type Reader struct {
	file  string
	words Wording
	errs  []*Error
	warns []*Error

	budget  int
	sizes   map[*yaml.Node]int
	stopped bool // the budget ran out
}

// NewReader reads a file named file in messages, worded by w.
func NewReader(file string, w Wording) *Reader {
	return &Reader{file: file, words: w.withDefaults()}
}

// File is the name the reader gives the file.
func (r *Reader) File() string { return r.file }

// Errors are the problems found, in the order found.
func (r *Reader) Errors() []*Error { return r.errs }

// NumErrors is len(Errors()), for a caller to tell whether a step found any.
func (r *Reader) NumErrors() int { return len(r.errs) }

// Warnings are the warnings given, formatted, in the order given.
func (r *Reader) Warnings() []string {
	out := make([]string, len(r.warns))
	for i, w := range r.warns {
		out[i] = w.Error()
	}
	return out
}

// Stopped reports whether the alias budget ran out; the walk can stop.
func (r *Reader) Stopped() bool { return r.stopped }

// Fail reports err at line (0 for none). Nothing is reported once the
// budget has run out.
func (r *Reader) Fail(line int, entry, field string, err error) {
	if !r.stopped {
		r.errs = append(r.errs, &Error{File: r.file, Line: line, Entry: entry, Field: field, Err: err})
	}
}

// Errorf reports a problem at n's line (none for nil).
func (r *Reader) Errorf(n *yaml.Node, entry, field, format string, args ...any) {
	r.Fail(line(n), entry, field, fmt.Errorf(format, args...))
}

// Warn gives a warning at line (0 for none).
func (r *Reader) Warn(line int, entry, field string, err error) {
	if !r.stopped {
		r.warns = append(r.warns, &Error{File: r.file, Line: line, Entry: entry, Field: field, Err: err})
	}
}

// Warnf gives a warning at n's line (none for nil).
func (r *Reader) Warnf(n *yaml.Node, entry, field, format string, args ...any) {
	r.Warn(line(n), entry, field, fmt.Errorf(format, args...))
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// Document reads the file's one YAML document and returns its root, nil
// for a file without content. It reports false, having said why, for a
// file that is not one YAML document.
func (r *Reader) Document(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		r.syntax(data, err)
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		r.syntax(data, err)
		return nil, false
	default:
		// Silently ignoring a second document would drop what it says.
		r.Fail(extra.Line, r.words.Document, "", errors.New(r.words.SecondDocument))
		return nil, false
	}
	r.sizes = map[*yaml.Node]int{}
	r.budget = max(minAliasBudget, aliasRatio*r.size(&doc))
	root := &doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, true
		}
		root = doc.Content[0]
	}
	return r.Follow(root), true
}

// syntax reports a syntax error at the place where the file breaks.
// yaml.v3's message names the line of the enclosing block when there is one
// (its context mark, 0-based for parser errors), not the broken token (its
// problem mark, which it does not export): a list starting at line 10 and
// broken at line 100 reads "line 9". locate finds the broken place; yaml's
// line stays the fallback.
func (r *Reader) syntax(data []byte, err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, text
			}
		}
	}
	e := &Error{File: r.file, Line: line, Err: errors.New(msg)}
	if l, c := locate(data, err.Error()); l > 0 {
		e.Line, e.Column = l, c
	}
	r.errs = append(r.errs, e)
}

// locate finds where a file's syntax error shows: the first line, and in it
// the first byte, through which a prefix of the file fails with the same
// error (want). The parser stops at the first thing it cannot read, so the
// prefixes that end before it read (or fail otherwise) and the ones that
// include it fail alike; both searches are binary, so a large file costs a
// few dozen decodes, and only when it is broken. 0, 0 when no prefix fails
// alike, or the file is too large to search.
func locate(data []byte, want string) (line, column int) {
	if len(data) > maxLocateBytes {
		return 0, 0
	}
	ends := lineEnds(data)
	failsThrough := func(end int) bool { return firstError(data[:end]) == want }
	k := sort.Search(len(ends), func(i int) bool { return failsThrough(ends[i]) })
	if k == len(ends) {
		return 0, 0
	}
	start := 0
	if k > 0 {
		start = ends[k-1]
	}
	text := bytes.TrimRight(data[start:ends[k]], "\r\n")
	c := sort.Search(len(text), func(j int) bool { return failsThrough(start + j + 1) })
	if c == len(text) {
		return k + 1, 0
	}
	return k + 1, c + 1
}

// maxLocateBytes bounds the files locate searches: each of its decodes
// costs up to the whole file, and a reload of a huge broken file must not
// take minutes to say so. Larger files keep yaml's line.
const maxLocateBytes = 16 << 20

// lineEnds are the offsets just past each line, its newline included.
func lineEnds(data []byte) []int {
	var ends []int
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		ends = append(ends, len(data))
	}
	return ends
}

// firstError is the text of the first error decoding every document of
// data gives, "" for none.
func firstError(data []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		switch {
		case errors.Is(err, io.EOF):
			return ""
		case err != nil:
			return err.Error()
		}
	}
}

// size counts the nodes of a tree as written, aliases as one node each.
func (r *Reader) size(n *yaml.Node) int {
	if s, ok := r.sizes[n]; ok {
		return s
	}
	s := 1
	if n.Kind != yaml.AliasNode {
		for _, c := range n.Content {
			s += r.size(c)
		}
	}
	r.sizes[n] = s
	return s
}

// Follow resolves an alias and charges what it adds to the walk. It
// returns n itself when n is not an alias, and nil (having reported it
// once) when the budget has run out.
func (r *Reader) Follow(n *yaml.Node) *yaml.Node {
	if n == nil || n.Kind != yaml.AliasNode {
		if r.stopped {
			return nil
		}
		return n
	}
	t := n
	for t != nil && t.Kind == yaml.AliasNode {
		t = t.Alias
	}
	if r.stopped || t == nil {
		return nil
	}
	if r.budget -= r.size(t); r.budget < 0 {
		r.Errorf(n, "", "", r.words.Budget, aliasRatio)
		r.stopped = true
		return nil
	}
	return t
}

// IsNull reports whether n is absent or null.
func IsNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func (r *Reader) top(entry string) string {
	if entry == "" {
		return r.words.Document
	}
	return entry
}

// Mapping reads n as a mapping of the known fields, each written once, and
// returns them by name; merge keys add the fields they name that the
// mapping does not write itself. want words a value that is not a mapping
// ("" for "want a mapping with fields …"). Mapping returns nil, having
// said why, when n is not a mapping, and nil for nil.
func (r *Reader) Mapping(n *yaml.Node, entry string, known []string, want string) Fields {
	n = r.Follow(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if want == "" {
			want = fmt.Sprintf("%s a mapping with fields %s", r.words.Want, strings.Join(known, ", "))
		}
		r.Errorf(n, r.top(entry), "", "%s", want)
		return nil
	}
	out := make(Fields, len(known))
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := r.Follow(n.Content[i])
		if k == nil {
			return nil
		}
		name := k.Value
		prev, dup := out[name]
		switch {
		case k.Kind != yaml.ScalarNode:
			r.Errorf(k, r.top(entry), "", "a field name must be a plain string")
		case k.ShortTag() == "!!merge":
			merges = append(merges, n.Content[i+1])
		case !slices.Contains(known, name):
			field := ""
			if r.words.UnknownAsField {
				field = name
			}
			r.Errorf(k, entry, field, r.words.Unknown, name, strings.Join(known, ", "))
		case dup:
			r.Errorf(k, entry, name, r.words.Twice, prev.Key.Line)
		default:
			v := r.Follow(n.Content[i+1])
			if v == nil {
				return nil
			}
			out[name] = Field{Key: k, Value: v}
		}
	}
	// The first merged mapping that has a field wins, as YAML's merge key
	// type says; a merged mapping's own merges count as its fields.
	for _, m := range merges {
		if m = r.Follow(m); m == nil {
			return nil
		}
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, src := range srcs {
			got := r.Mapping(src, entry, known, want)
			if r.stopped {
				return nil
			}
			for name, f := range got {
				if _, set := out[name]; !set {
					out[name] = f
				}
			}
		}
	}
	return out
}

// List reads a list and returns its items, aliases followed; absent or
// null is an empty list. It reports false, having said why, when n is not
// a list.
func (r *Reader) List(n *yaml.Node, entry, field string) ([]*yaml.Node, bool) {
	n = r.Follow(n)
	if IsNull(n) {
		return nil, !r.stopped
	}
	if n.Kind != yaml.SequenceNode {
		r.Errorf(n, entry, field, "%s a list", r.words.Want)
		return nil, false
	}
	items := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		if c = r.Follow(c); c == nil {
			return nil, false
		}
		items = append(items, c)
	}
	return items, true
}

// String reads a scalar as the text written, so that `id: 007` stays
// "007"; absent or null is "".
func (r *Reader) String(n *yaml.Node, entry, field string) (string, bool) {
	n = r.Follow(n)
	if IsNull(n) {
		return "", !r.stopped
	}
	if n.Kind != yaml.ScalarNode {
		r.Errorf(n, entry, field, "%s a string", r.words.Want)
		return "", false
	}
	return n.Value, true
}

// Bool accepts only YAML 1.2 true and false: "yes" or "off" is more likely
// a mistake than an intent. Absent is false; null is an error.
func (r *Reader) Bool(n *yaml.Node, entry, field string) (bool, bool) {
	n = r.Follow(n)
	if n == nil {
		return false, !r.stopped
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		switch strings.ToLower(n.Value) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	if n.Kind == yaml.ScalarNode && !IsNull(n) {
		r.Errorf(n, entry, field, "%s true or false, got %q", r.words.Want, n.Value)
	} else {
		r.Errorf(n, entry, field, "%s true or false", r.words.Want)
	}
	return false, false
}

// Time accepts an RFC 3339 time, written as a YAML timestamp or a quoted
// string; YAML's looser forms (a bare date, a space for the T) are refused.
// Absent or null is the zero time. The time is in UTC.
func (r *Reader) Time(n *yaml.Node, entry, field string) (time.Time, bool) {
	n = r.Follow(n)
	s, ok := r.String(n, entry, field)
	if !ok || s == "" {
		return time.Time{}, ok
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		r.Errorf(n, entry, field, "%q is not an RFC 3339 timestamp (like 2026-01-01T00:00:00Z)", s)
		return time.Time{}, false
	}
	return t.UTC(), true
}

// Int reads a whole number from lo to hi (a YAML integer: 1000, 0x3e8,
// 1_000). Absent is 0; null or anything else is an error.
func (r *Reader) Int(n *yaml.Node, entry, field string, lo, hi int) (int, bool) {
	n = r.Follow(n)
	if n == nil {
		return 0, !r.stopped
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil || v < int64(lo) || v > int64(hi) {
		r.Errorf(n, entry, field, "%s a whole number from %d to %d", r.words.Want, lo, hi)
		return 0, false
	}
	return int(v), true
}

// Peek is the scalar a mapping writes itself for field, "" when it writes
// none (or null), for naming an entry in messages before it is read. It
// charges nothing: it looks at one value of a node already paid for.
func Peek(n *yaml.Node, field string) string {
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == field {
			v := n.Content[i+1]
			for v != nil && v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			if v == nil || v.Kind != yaml.ScalarNode || IsNull(v) {
				return ""
			}
			return v.Value
		}
	}
	return ""
}
