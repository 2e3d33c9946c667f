package graphql

import (
	"errors"
	"fmt"
	"strings"

	"github.com/TykTechnologies/graphql-go-tools/pkg/ast"

	"github.com/keygate/keygate/pkg/authz"
)

// maxFragmentNesting bounds how many fragment spreads may lead into one
// another, which bounds the recursion that walks them.
const maxFragmentNesting = 1000

// kindQuery is the kind of queries, of introspection fields and of
// persisted queries.
const kindQuery = "query"

// Introspection root fields: checked as operations of kind "query" of
// their own, whatever the operation type they appear in.
func isIntrospection(name string) bool {
	return name == "__schema" || name == "__type" || name == "__typename"
}

// parseDocument reads the root fields of the operation a document runs:
// each (kind, name) once, the first non-introspection field first. The
// names it answers own their memory.
func parseDocument(query, opName string, opts *Options) ([]authz.Operation, error) {
	st := parseStates.Get().(*parseState)
	ops, err := st.operations(query, opName, opts)
	// Not deferred: a state a panic left half-way is dropped, not reused.
	st.release(len(query))
	return ops, err
}

func (st *parseState) operations(query, opName string, opts *Options) ([]authz.Operation, error) {
	doc, err := st.parse(query)
	if err != nil {
		return nil, err
	}
	op, err := selectOperation(doc, opName)
	if err != nil {
		return nil, err
	}
	d := docState{doc: doc, maxDepth: opts.MaxDepth}
	if err := d.index(); err != nil {
		return nil, err
	}
	if !doc.OperationDefinitions[op].HasSelections {
		return nil, errors.New("the GraphQL operation selects no field")
	}
	ss := doc.OperationDefinitions[op].SelectionSet
	if _, err := d.depthOf(ss, 1); err != nil {
		return nil, err
	}
	kind := operationKind(doc.OperationDefinitions[op].OperationType)
	fields := 0
	var set opSet
	err = d.roots(ss, func(name string) error {
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
	ownNames(set.ops)
	return set.ops, nil
}

// operationKind names an operation type; the parser gives only these
// three to an operation it read.
func operationKind(t ast.OperationType) string {
	switch t {
	case ast.OperationTypeMutation:
		return "mutation"
	case ast.OperationTypeSubscription:
		return "subscription"
	}
	return kindQuery
}

// ownNames copies the names of ops, which alias the parser's buffer, into
// one string of their own.
func ownNames(ops []authz.Operation) {
	n := 0
	for _, op := range ops {
		n += len(op.Name)
	}
	var b strings.Builder
	b.Grow(n)
	for _, op := range ops {
		b.WriteString(op.Name)
	}
	all := b.String()
	for i := range ops {
		l := len(ops[i].Name)
		ops[i].Name, all = all[:l], all[l:]
	}
}

// selectOperation picks the operation a request runs, refusing the
// documents that servers would refuse or might read differently: several
// operations of one name, an anonymous operation beside others, and
// several operations without an operationName.
func selectOperation(doc *ast.Document, opName string) (int, error) {
	n := len(doc.OperationDefinitions)
	name := doc.OperationDefinitionNameString
	switch {
	case n == 0:
		return -1, errors.New("the GraphQL document has no operation")
	case n > 1:
		for i := range n {
			if name(i) == "" {
				return -1, errors.New("an anonymous GraphQL operation must be the only operation in its document")
			}
		}
		if dup, ok := firstDuplicate(n, name); ok {
			return -1, fmt.Errorf("the GraphQL document defines operation %s twice", quote(dup))
		}
	}
	if opName == "" {
		if n > 1 {
			return -1, fmt.Errorf("operationName is required: the GraphQL document has %d operations", n)
		}
		return 0, nil
	}
	for i := range n {
		if name(i) == opName {
			return i, nil
		}
	}
	return -1, fmt.Errorf("the GraphQL document has no operation named %s", quote(opName))
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

// docState walks one document's fragments. Selection sets, selections
// and fragments are indexes into the document's tables.
type docState struct {
	doc      *ast.Document
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
	n := len(d.doc.FragmentDefinitions)
	if n == 0 {
		return nil
	}
	name := d.doc.FragmentDefinitionNameString
	if dup, ok := firstDuplicate(n, name); ok {
		return fmt.Errorf("the GraphQL document defines fragment %s twice", quote(dup))
	}
	if n > 8 {
		d.byName = make(map[string]int, n)
		for i := range n {
			d.byName[name(i)] = i
		}
	}
	d.depth = make([]int32, n)
	d.rooted = make([]bool, n)
	return nil
}

func (d *docState) fragment(name string) (int, error) {
	if d.byName != nil {
		if i, ok := d.byName[name]; ok {
			return i, nil
		}
	} else {
		for i := range d.doc.FragmentDefinitions {
			if d.doc.FragmentDefinitionNameString(i) == name {
				return i, nil
			}
		}
	}
	return -1, fmt.Errorf("the GraphQL document spreads fragment %s, which it does not define", quote(name))
}

// errUnknownSelection is a selection the parser did not classify, which
// it never answers for a document it read; refused rather than skipped.
var errUnknownSelection = errors.New("the GraphQL document has a selection of an unknown kind")

// depthOf is the depth of a selection set whose fields sit at level
// (1 at the root), counted from it: `a` is 1, `a { b }` is 2. Fragments
// count where they are spread; each fragment's depth is worked out once.
// It stops as soon as a field lies deeper than maxDepth.
func (d *docState) depthOf(ss int, level int) (int, error) {
	if level > d.maxDepth {
		return 0, d.tooDeep()
	}
	best := 0
	for _, ref := range d.doc.SelectionSets[ss].SelectionRefs {
		n := 0
		var err error
		switch sel := d.doc.Selections[ref]; sel.Kind {
		case ast.SelectionKindField:
			n = 1
			if f := &d.doc.Fields[sel.Ref]; f.HasSelections {
				n, err = d.depthOf(f.SelectionSet, level+1)
				n++
			}
		case ast.SelectionKindInlineFragment:
			if f := &d.doc.InlineFragments[sel.Ref]; f.HasSelections {
				n, err = d.depthOf(f.SelectionSet, level)
			}
		case ast.SelectionKindFragmentSpread:
			n, err = d.spreadDepth(d.doc.FragmentSpreadNameString(sel.Ref), level)
		default:
			err = errUnknownSelection
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
	n := 0
	if f := &d.doc.FragmentDefinitions[i]; f.HasSelections {
		n, err = d.depthOf(f.SelectionSet, level)
	}
	d.nesting--
	if err != nil {
		return 0, err
	}
	d.depth[i] = int32(n) + 1
	return n, nil
}

func (d *docState) tooDeep() error { return tooDeep(d.maxDepth) }

func tooDeep(maxDepth int) error {
	return fmt.Errorf("GraphQL document deeper than %d levels", maxDepth)
}

// roots calls field with the name of every root field of a selection set,
// looking through aliases (a field's name, never its alias), inline
// fragments and fragment spreads; each fragment is read once. depthOf has
// already walked the same fragments, so every spread names a fragment
// and none spreads itself.
func (d *docState) roots(ss int, field func(name string) error) error {
	for _, ref := range d.doc.SelectionSets[ss].SelectionRefs {
		switch sel := d.doc.Selections[ref]; sel.Kind {
		case ast.SelectionKindField:
			if err := field(d.doc.FieldNameUnsafeString(sel.Ref)); err != nil {
				return err
			}
		case ast.SelectionKindInlineFragment:
			if f := &d.doc.InlineFragments[sel.Ref]; f.HasSelections {
				if err := d.roots(f.SelectionSet, field); err != nil {
					return err
				}
			}
		case ast.SelectionKindFragmentSpread:
			i, err := d.fragment(d.doc.FragmentSpreadNameString(sel.Ref))
			if err != nil {
				return err
			}
			if d.rooted[i] {
				continue
			}
			d.rooted[i] = true
			if f := &d.doc.FragmentDefinitions[i]; f.HasSelections {
				if err := d.roots(f.SelectionSet, field); err != nil {
					return err
				}
			}
		default:
			return errUnknownSelection
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
