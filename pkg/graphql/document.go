package graphql

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/keygate/keygate/pkg/authz"
)

// maxFragmentNesting bounds how many fragment spreads may lead into one
// another, which bounds the recursion that walks them.
const maxFragmentNesting = 1000

// kindQuery is the kind of queries, of introspection fields and of
// persisted queries.
const kindQuery = string(ast.Query)

// Introspection root fields: checked as operations of kind "query" of
// their own, whatever the operation type they appear in.
func isIntrospection(name string) bool {
	return name == "__schema" || name == "__type" || name == "__typename"
}

// parseDocument reads the root fields of the operation a document runs:
// each (kind, name) once, the first non-introspection field first.
func parseDocument(query, opName string, opts *Options) ([]authz.Operation, error) {
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return nil, syntaxError(err, opts.MaxDepth)
	}
	op, err := selectOperation(doc, opName)
	if err != nil {
		return nil, err
	}
	d := docState{doc: doc, maxDepth: opts.MaxDepth}
	if err := d.index(); err != nil {
		return nil, err
	}
	if _, err := d.depthOf(op.SelectionSet, 1); err != nil {
		return nil, err
	}
	kind := string(op.Operation)
	fields := 0
	var set opSet
	err = d.roots(op.SelectionSet, func(name string) error {
		if fields++; fields > opts.MaxRootFields {
			return fmt.Errorf("GraphQL operation has more than %d root fields", opts.MaxRootFields)
		}
		k := kind
		if isIntrospection(name) {
			k = kindQuery
		}
		set.add(authz.Operation{Kind: k, Name: name})
		return nil
	})
	if err != nil {
		return nil, err
	}
	set.primaryFirst()
	return set.ops, nil
}

func syntaxError(err error, maxDepth int) error {
	var gerr *gqlerror.Error
	if !errors.As(err, &gerr) {
		return fmt.Errorf("GraphQL syntax error: %v", err)
	}
	if strings.Contains(gerr.Message, "maximum nesting depth") {
		return tooDeep(maxDepth)
	}
	if len(gerr.Locations) > 0 {
		l := gerr.Locations[0]
		return fmt.Errorf("GraphQL syntax error at line %d, column %d: %s", l.Line, l.Column, gerr.Message)
	}
	return fmt.Errorf("GraphQL syntax error: %s", gerr.Message)
}

func tooDeep(maxDepth int) error {
	return fmt.Errorf("GraphQL document deeper than %d levels", maxDepth)
}

// selectOperation picks the operation a request runs, refusing the
// documents that servers would refuse or might read differently: several
// operations of one name, an anonymous operation beside others, and
// several operations without an operationName.
func selectOperation(doc *ast.QueryDocument, opName string) (*ast.OperationDefinition, error) {
	ops := doc.Operations
	switch {
	case len(ops) == 0:
		return nil, errors.New("the GraphQL document has no operation")
	case len(ops) > 1:
		for _, op := range ops {
			if op.Name == "" {
				return nil, errors.New("an anonymous GraphQL operation must be the only operation in its document")
			}
		}
		if name, dup := firstDuplicate(len(ops), func(i int) string { return ops[i].Name }); dup {
			return nil, fmt.Errorf("the GraphQL document defines operation %s twice", quote(name))
		}
	}
	if opName == "" {
		if len(ops) > 1 {
			return nil, fmt.Errorf("operationName is required: the GraphQL document has %d operations", len(ops))
		}
		return ops[0], nil
	}
	for _, op := range ops {
		if op.Name == opName {
			return op, nil
		}
	}
	return nil, fmt.Errorf("the GraphQL document has no operation named %s", quote(opName))
}

// firstDuplicate finds a name given twice among n.
func firstDuplicate(n int, name func(int) string) (string, bool) {
	if n <= 8 {
		for i := 1; i < n; i++ {
			for j := 0; j < i; j++ {
				if name(i) == name(j) {
					return name(i), true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, n)
	for i := 0; i < n; i++ {
		if _, dup := seen[name(i)]; dup {
			return name(i), true
		}
		seen[name(i)] = struct{}{}
	}
	return "", false
}

// docState walks one document's fragments.
type docState struct {
	doc      *ast.QueryDocument
	maxDepth int
	byName   map[string]int // fragment index by name; nil for few fragments
	// state per fragment: depth is 0 unknown, -1 being walked, else its
	// relative depth + 1; rooted is set once its fields were read at the
	// root.
	depth   []int32
	rooted  []bool
	nesting int
}

func (d *docState) index() error {
	frags := d.doc.Fragments
	if len(frags) == 0 {
		return nil
	}
	if name, dup := firstDuplicate(len(frags), func(i int) string { return frags[i].Name }); dup {
		return fmt.Errorf("the GraphQL document defines fragment %s twice", quote(name))
	}
	if len(frags) > 8 {
		d.byName = make(map[string]int, len(frags))
		for i, f := range frags {
			d.byName[f.Name] = i
		}
	}
	d.depth = make([]int32, len(frags))
	d.rooted = make([]bool, len(frags))
	return nil
}

func (d *docState) fragment(name string) (int, error) {
	if d.byName != nil {
		if i, ok := d.byName[name]; ok {
			return i, nil
		}
	} else {
		for i, f := range d.doc.Fragments {
			if f.Name == name {
				return i, nil
			}
		}
	}
	return -1, fmt.Errorf("the GraphQL document spreads fragment %s, which it does not define", quote(name))
}

// depthOf is the depth of a selection set whose fields sit at level
// (1 at the root), counted from it: `a` is 1, `a { b }` is 2. Fragments
// count where they are spread; each fragment's depth is worked out once.
// It stops as soon as a field lies deeper than maxDepth.
func (d *docState) depthOf(ss ast.SelectionSet, level int) (int, error) {
	if level > d.maxDepth {
		return 0, d.tooDeep()
	}
	best := 0
	for _, sel := range ss {
		n := 0
		var err error
		switch s := sel.(type) {
		case *ast.Field:
			n = 1
			if len(s.SelectionSet) > 0 {
				n, err = d.depthOf(s.SelectionSet, level+1)
				n++
			}
		case *ast.InlineFragment:
			n, err = d.depthOf(s.SelectionSet, level)
		case *ast.FragmentSpread:
			n, err = d.spreadDepth(s.Name, level)
		}
		if err != nil {
			return 0, err
		}
		best = max(best, n)
	}
	return best, nil
}

func (d *docState) spreadDepth(name string, level int) (int, error) {
	i, err := d.fragment(name)
	if err != nil {
		return 0, err
	}
	switch st := d.depth[i]; {
	case st < 0:
		return 0, fmt.Errorf("GraphQL fragment %s spreads itself", quote(name))
	case st > 0:
		n := int(st) - 1
		if level-1+n > d.maxDepth {
			return 0, d.tooDeep()
		}
		return n, nil
	}
	if d.nesting++; d.nesting > maxFragmentNesting {
		return 0, fmt.Errorf("GraphQL fragments nest more than %d deep", maxFragmentNesting)
	}
	d.depth[i] = -1
	n, err := d.depthOf(d.doc.Fragments[i].SelectionSet, level)
	d.nesting--
	if err != nil {
		return 0, err
	}
	d.depth[i] = int32(n) + 1
	return n, nil
}

func (d *docState) tooDeep() error { return tooDeep(d.maxDepth) }

// roots calls field with the name of every root field of a selection set,
// looking through aliases (a field's name, never its alias), inline
// fragments and fragment spreads; each fragment is read once. depthOf has
// already walked the same fragments, so every spread names a fragment
// and none spreads itself.
func (d *docState) roots(ss ast.SelectionSet, field func(name string) error) error {
	for _, sel := range ss {
		switch s := sel.(type) {
		case *ast.Field:
			if err := field(s.Name); err != nil {
				return err
			}
		case *ast.InlineFragment:
			if err := d.roots(s.SelectionSet, field); err != nil {
				return err
			}
		case *ast.FragmentSpread:
			i, err := d.fragment(s.Name)
			if err != nil {
				return err
			}
			if d.rooted[i] {
				continue
			}
			d.rooted[i] = true
			if err := d.roots(d.doc.Fragments[i].SelectionSet, field); err != nil {
				return err
			}
		}
	}
	return nil
}

// opSet is a set of operations in the order they were first added.
type opSet struct {
	ops []authz.Operation
	// seen indexes ops once there are many.
	seen map[authz.Operation]struct{}
	// shared is set while ops is a cached slice, which others read
	// concurrently: it is copied before it is changed.
	shared bool
}

func (s *opSet) add(op authz.Operation) {
	if s.seen != nil {
		if _, dup := s.seen[op]; dup {
			return
		}
	} else {
		for _, o := range s.ops {
			if o == op {
				return
			}
		}
	}
	if s.shared {
		s.ops = append(make([]authz.Operation, 0, len(s.ops)+4), s.ops...)
		s.shared = false
	}
	s.ops = append(s.ops, op)
	switch {
	case s.seen != nil:
		s.seen[op] = struct{}{}
	case len(s.ops) > 16:
		s.seen = make(map[authz.Operation]struct{}, 2*len(s.ops))
		for _, o := range s.ops {
			s.seen[o] = struct{}{}
		}
	}
}

// addShared adds a cached slice, taking it as it is when the set is empty.
func (s *opSet) addShared(ops []authz.Operation) {
	if len(s.ops) == 0 {
		s.ops, s.shared = ops, true
		return
	}
	for _, op := range ops {
		s.add(op)
	}
}

// primaryFirst moves the first field that is not introspection to the
// front: the first operation names the request in logs, metadata and
// response headers, and `{ __typename listEmails }` is a listEmails. It
// changes nothing when the order is already right (a cached slice always
// is).
func (s *opSet) primaryFirst() {
	for i, op := range s.ops {
		if !isIntrospection(op.Name) {
			if i > 0 {
				copy(s.ops[1:i+1], s.ops[:i])
				s.ops[0] = op
			}
			return
		}
	}
}
