// Package gqlref is the tests' second opinion on what a GraphQL document
// runs: gqlparser's tree (the parser of gqlgen servers, strict to the
// specification), read naively and independently of package graphql.
// Tests of package graphql and of the Check handler hold keygate's
// reading to it.
package gqlref

import (
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/keygate/keygate/pkg/authz"
)

// RootFields reads the root operations of the operation opName selects
// (the only one when opName is empty), fragments expanded where they are
// spread, in document order and with repeats. parsed is false when
// gqlparser refuses the document; ok is false also when the operation is
// not there or expanding it is too big.
func RootFields(query, opName string) (ops []authz.Operation, parsed, ok bool) {
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return nil, false, false
	}
	var op *ast.OperationDefinition
	for _, o := range doc.Operations {
		if opName == "" && len(doc.Operations) == 1 || opName != "" && o.Name == opName {
			op = o
		}
	}
	if op == nil {
		return nil, true, false
	}
	budget := 10000
	var walk func(ss ast.SelectionSet) bool
	walk = func(ss ast.SelectionSet) bool {
		for _, sel := range ss {
			if budget--; budget < 0 {
				return false
			}
			switch s := sel.(type) {
			case *ast.Field:
				kind := string(op.Operation)
				if strings.HasPrefix(s.Name, "__") {
					kind = "query"
				}
				ops = append(ops, authz.Operation{Kind: kind, Name: s.Name})
			case *ast.InlineFragment:
				if !walk(s.SelectionSet) {
					return false
				}
			case *ast.FragmentSpread:
				fd := doc.Fragments.ForName(s.Name)
				if fd == nil || !walk(fd.SelectionSet) {
					return false
				}
			}
		}
		return true
	}
	return ops, true, walk(op.SelectionSet)
}

// Described is whether query holds a description (of an operation or a
// fragment, a recent addition to the specification's drafts): a string
// outside every bracket, where nothing else may be one.
func Described(query string) bool {
	l := lexer.New(&ast.Source{Input: query})
	depth := 0
	for {
		tok, err := l.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			return false
		}
		switch tok.Kind {
		case lexer.BraceL, lexer.BracketL, lexer.ParenL:
			depth++
		case lexer.BraceR, lexer.BracketR, lexer.ParenR:
			depth--
		case lexer.String, lexer.BlockString:
			if depth == 0 {
				return true
			}
		}
	}
}
