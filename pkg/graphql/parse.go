package graphql

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/TykTechnologies/graphql-go-tools/pkg/ast"
	"github.com/TykTechnologies/graphql-go-tools/pkg/astparser"
	"github.com/TykTechnologies/graphql-go-tools/pkg/lexer"
	"github.com/TykTechnologies/graphql-go-tools/pkg/lexer/keyword"
	"github.com/TykTechnologies/graphql-go-tools/pkg/operationreport"
	gqlast "github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	gqllexer "github.com/vektah/gqlparser/v2/lexer"
	gqlparser "github.com/vektah/gqlparser/v2/parser"
)

// Documents are parsed by graphql-go-tools' astparser (Tyk's maintained
// fork of WunderGraph's), a full GraphQL parser that keeps a document in
// flat tables it reuses from one parse to the next: a 1 KiB query costs a
// few microseconds and almost no garbage, where a parser that builds a
// tree of pointers costs about twenty. A parser and its document are
// reused through a pool; nothing read from the document may outlive the
// parse (parseDocument copies the names it answers).

// maxNesting bounds how deeply brackets of any kind ({ [ ( ) may nest in
// a document. The parser recurses once per level and Go cannot recover
// from a goroutine running out of stack, so deeper documents are refused
// before they are parsed. Real documents nest a few dozen levels; the
// route's own depth limit (MaxDepth) is far below this.
const maxNesting = 1000

// pooledInputMax is the largest document whose parser state goes back to
// the pool: the tables a huge document grew are dropped with it rather
// than kept for every later parse.
const pooledInputMax = 64 << 10

// parseState is a parser with the document it fills.
type parseState struct {
	parser *astparser.Parser
	lexer  lexer.Lexer
	scan   ast.Input // what lexer reads
	open   []bool    // checkTokens' brackets
	doc    ast.Document
	report operationreport.Report
}

var parseStates = sync.Pool{New: func() any {
	st := &parseState{parser: astparser.NewParser()}
	st.doc = *ast.NewDocument()
	return st
}}

// release returns st to the pool after a document of n bytes.
func (st *parseState) release(n int) {
	if n <= pooledInputMax {
		parseStates.Put(st)
	}
}

// parse reads an executable document (operations and fragments). The
// document it answers is valid until st is released.
func (st *parseState) parse(query string) (*ast.Document, error) {
	st.doc.Reset()
	st.report.Reset()
	st.doc.Input.ResetInputString(query)
	blankBOMs(st.doc.Input.RawBytes)
	if err := st.checkTokens(query); err != nil {
		if errors.Is(err, errLexersDisagree) {
			// Most such documents are plain errors: say which.
			if _, perr := gqlparser.ParseQuery(&gqlast.Source{Input: query}); perr != nil {
				return nil, lexError(perr)
			}
		}
		return nil, err
	}
	st.parser.Parse(&st.doc, &st.report)
	if st.report.HasErrors() {
		return nil, syntaxError(query, &st.report)
	}
	// astparser lets these go without a selection set; the
	// specification does not.
	for i := range st.doc.InlineFragments {
		if !st.doc.InlineFragments[i].HasSelections {
			return nil, errors.New("GraphQL syntax error: an inline fragment selects no field")
		}
	}
	for i := range st.doc.FragmentDefinitions {
		if !st.doc.FragmentDefinitions[i].HasSelections {
			return nil, fmt.Errorf("GraphQL syntax error: fragment %s selects no field", quote(st.doc.FragmentDefinitionNameString(i)))
		}
	}
	for _, n := range st.doc.RootNodes {
		switch n.Kind {
		case ast.NodeKindOperationDefinition, ast.NodeKindFragmentDefinition:
		default:
			// A server reading the request as a query refuses type
			// system definitions; so does keygate.
			return nil, syntaxError(query, nil)
		}
	}
	return &st.doc, nil
}

// specTokens maps the kinds of gqlparser's tokens to astparser's. Int and
// Float are one kind (number) here: the two lexers may classify a number
// differently, and no root field depends on which it is.
var specTokens = [...]keyword.Keyword{
	gqllexer.EOF:         keyword.EOF,
	gqllexer.Bang:        keyword.BANG,
	gqllexer.Dollar:      keyword.DOLLAR,
	gqllexer.Amp:         keyword.AND,
	gqllexer.ParenL:      keyword.LPAREN,
	gqllexer.ParenR:      keyword.RPAREN,
	gqllexer.Spread:      keyword.SPREAD,
	gqllexer.Colon:       keyword.COLON,
	gqllexer.Equals:      keyword.EQUALS,
	gqllexer.At:          keyword.AT,
	gqllexer.BracketL:    keyword.LBRACK,
	gqllexer.BracketR:    keyword.RBRACK,
	gqllexer.BraceL:      keyword.LBRACE,
	gqllexer.BraceR:      keyword.RBRACE,
	gqllexer.Pipe:        keyword.PIPE,
	gqllexer.Name:        keyword.IDENT,
	gqllexer.Int:         keyword.INTEGER,
	gqllexer.Float:       keyword.INTEGER,
	gqllexer.String:      keyword.STRING,
	gqllexer.BlockString: keyword.BLOCKSTRING,
}

// errLexersDisagree refuses a document whose tokens astparser reads
// differently from the specification.
var errLexersDisagree = errors.New("GraphQL syntax error: the document's strings, comments or punctuation are ambiguous (check escapes in strings and block strings)")

// checkTokens makes sure astparser will parse the document the way the
// GraphQL specification (and so the server behind keygate) reads it.
// astparser's lexer is fast but lenient: it reads backslashes in block
// strings as escapes, ends a string at a line break and takes a stray
// character for an empty name, so a document could mean one set of
// fields to it and another to the server. gqlparser's lexer follows the
// specification exactly; the document is read by both, token by token,
// and refused unless they agree on every token's kind and on the text of
// every name and number (a string's contents never decide a root field).
// This also refuses what the specification does not allow at all
// (control characters, unterminated strings, bad escapes), with
// gqlparser's message, and brackets nested deeper than maxNesting.
func (st *parseState) checkTokens(query string) error {
	// The lexer advances the input it reads; a second Input over the same
	// bytes leaves the document's own for the parser.
	st.scan.ResetInputBytes(nil)
	st.scan.RawBytes, st.scan.Length = st.doc.Input.RawBytes, st.doc.Input.Length
	st.lexer.SetInput(&st.scan)
	spec := gqllexer.New(&gqlast.Source{Input: query})
	// open holds, for every bracket open at this point, whether it is a
	// selection set: a { is one unless it opens inside arguments, a list
	// or an object value, where it is an object value.
	open := st.open[:0]
	defer func() { st.open = open[:0] }()
	emptySet := false // the last token opened a selection set
	prev := gqllexer.Invalid
	for {
		want, err := spec.ReadToken()
		if err != nil {
			return lexError(err)
		}
		if want.Kind == gqllexer.Comment {
			continue
		}
		got := st.lexer.Read()
		for got.Keyword == keyword.COMMENT {
			got = st.lexer.Read()
		}
		if int(want.Kind) >= len(specTokens) || specTokens[want.Kind] == keyword.UNDEFINED {
			return errLexersDisagree
		}
		value := want.Value
		switch want.Kind {
		case gqllexer.Int, gqllexer.Float:
			// astparser reads the sign of a number as a token of its own.
			if strings.HasPrefix(value, "-") {
				if got.Keyword != keyword.SUB {
					return errLexersDisagree
				}
				value = value[1:]
				got = st.lexer.Read()
			}
			if got.Keyword == keyword.FLOAT {
				got.Keyword = keyword.INTEGER
			}
		}
		if got.Keyword != specTokens[want.Kind] {
			return errLexersDisagree
		}
		switch want.Kind {
		case gqllexer.EOF:
			return nil
		case gqllexer.Name, gqllexer.Int, gqllexer.Float:
			if string(st.scan.ByteSlice(got.Literal)) != value {
				return errLexersDisagree
			}
		case gqllexer.BraceR:
			// astparser takes `{}` for no selection set at all and `()`
			// for no arguments; the specification refuses both.
			if emptySet {
				return fmt.Errorf("GraphQL syntax error at line %d, column %d: a selection set selects no field", want.Pos.Line, want.Pos.Column)
			}
		case gqllexer.ParenR:
			if prev == gqllexer.ParenL {
				return fmt.Errorf("GraphQL syntax error at line %d, column %d: empty parentheses", want.Pos.Line, want.Pos.Column)
			}
		}
		emptySet, prev = false, want.Kind
		switch want.Kind {
		case gqllexer.BraceL, gqllexer.BracketL, gqllexer.ParenL:
			if len(open) >= maxNesting {
				return fmt.Errorf("GraphQL document nests brackets more than %d deep", maxNesting)
			}
			set := want.Kind == gqllexer.BraceL && (len(open) == 0 || open[len(open)-1])
			open = append(open, set)
			emptySet = set
		case gqllexer.BraceR, gqllexer.BracketR, gqllexer.ParenR:
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
		}
	}
}

// lexError words gqlparser's refusal of a document.
func lexError(err error) error {
	var gerr *gqlerror.Error
	if errors.As(err, &gerr) && len(gerr.Locations) > 0 {
		l := gerr.Locations[0]
		return fmt.Errorf("GraphQL syntax error at line %d, column %d: %s", l.Line, l.Column, gerr.Message)
	}
	return fmt.Errorf("GraphQL syntax error: %v", err)
}

// blankBOMs turns every byte order mark into three spaces. The
// specification ignores a BOM like white space and astparser does not
// know it; outside strings the spaces mean the same, and inside one they
// change only the string's contents, which decide no root field.
func blankBOMs(b []byte) {
	for {
		i := bytes.Index(b, bom)
		if i < 0 {
			return
		}
		copy(b[i:], "   ")
		b = b[i+3:]
	}
}

var bom = []byte("\ufeff")

// syntaxError says what is wrong with a document astparser refused (r
// nil: a document defining types, which it reads but a request may not
// carry). The words are gqlparser's, which name what was expected and
// where, as the GraphQL server would; refusals are rare and remembered,
// so parsing the document again costs nothing that matters. astparser's
// own words serve for the documents only it refuses.
func syntaxError(query string, r *operationreport.Report) error {
	if _, err := gqlparser.ParseQuery(&gqlast.Source{Input: query}); err != nil {
		return lexError(err)
	}
	if r == nil {
		return errors.New("GraphQL syntax error: a request carries operations and fragments only, not type system definitions")
	}
	if len(r.ExternalErrors) == 0 {
		return errors.New("GraphQL syntax error")
	}
	e := r.ExternalErrors[0]
	if len(e.Locations) > 0 && e.Locations[0].Line > 0 {
		l := e.Locations[0]
		return fmt.Errorf("GraphQL syntax error at line %d, column %d: %s", l.Line, l.Column, e.Message)
	}
	return fmt.Errorf("GraphQL syntax error at the end of the document: %s", e.Message)
}
