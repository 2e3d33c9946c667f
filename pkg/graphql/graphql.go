// Package graphql reads which operations a GraphQL request calls, so that
// keygate can check every one of them against a key's scope (SPEC §4 item
// 4). It implements route.OperationParser with a real GraphQL parser
// (graphql-go-tools' astparser, its tokens checked against gqlparser's
// lexer: see parse.go).
//
// A request is read the way GraphQL servers read it over HTTP:
//
//   - POST with a JSON body: {"query", "operationName", "extensions"}, or
//     a batch, a JSON array of such objects;
//   - POST application/graphql: the body is the document, operationName
//     may be in the URL;
//   - POST application/x-www-form-urlencoded: the parameters in the body;
//   - GET: the parameters in the query string.
//
// Each operation a request runs answers one authz.Operation per root
// field: the kind is the operation type (query, mutation, subscription)
// and the name is the field's name, never its alias, read through inline
// fragments and fragment spreads at the root. The introspection fields
// __schema, __type and __typename are operations of kind "query" of their
// own wherever they appear, so `service:query:*` allows them and
// `service:query:listEmails` does not. A request without a query but with
// a persisted-query hash (extensions.persistedQuery) is operation
// "persistedQuery" of kind "query" on a route that allows persisted
// queries, and refused elsewhere. Directives (@skip, @include) are not
// evaluated: a field is checked even if it would be skipped.
//
// Whatever servers may read differently is refused rather than guessed:
// duplicate or case-variant JSON keys, a parameter given twice, GraphQL
// parameters in both the URL and a POST body, several operations without
// an operationName, an anonymous operation beside others, two operations
// or fragments of one name, spreads of undefined fragments and fragment
// cycles. So are bodies past the route's limits (size, depth, root
// fields, batch size) and bodies the proxy truncated. A refusal answers
// authz.InvalidGraphQL with a message, safe to show the caller, that says
// which rule the request broke.
package graphql

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/route"
)

// Options are a route's GraphQL limits (see route.GraphQLOptions).
type Options = route.GraphQLOptions

// Parser reads the operations of GraphQL requests. It remembers what the
// documents it read recently call (see docCache), so that a document
// clients send again is not parsed again. One Parser serves any number of
// routes tables and goroutines; the zero Parser works, without memory.
type Parser struct {
	cache *docCache
}

var _ route.OperationParser = (*Parser)(nil)

// NewParser returns a Parser. Make one at start and give it to every
// routes table that is loaded, before the table serves:
// table.SetOperationParser(p).
func NewParser() *Parser { return &Parser{cache: newDocCache()} }

// maxDetail bounds the messages of a refusal.
const maxDetail = 300

// Operations reads every operation a request calls under opts (the
// defaults when nil, and for the limits it leaves zero). It answers
// authz.OK with at least one operation, or authz.InvalidGraphQL with a
// message that says why.
func (p *Parser) Operations(in *authz.RouteInput, opts *Options) (ops []authz.Operation, detail string, r authz.Reason) {
	if opts == nil || opts.MaxBodyBytes <= 0 || opts.MaxDepth <= 0 || opts.MaxRootFields <= 0 || opts.MaxBatch <= 0 {
		opts = withDefaults(opts)
	}
	defer func() {
		// A parser bug must cost one request, never the process.
		if v := recover(); v != nil {
			ops, detail, r = nil, "the GraphQL request could not be read", authz.InvalidGraphQL
		}
	}()
	return p.operations(in, opts)
}

// withDefaults fills the limits opts leaves unset (nil: all of them).
func withDefaults(opts *Options) *Options {
	d := route.DefaultGraphQLOptions()
	if opts != nil {
		o := *opts
		if o.MaxBodyBytes <= 0 {
			o.MaxBodyBytes = d.MaxBodyBytes
		}
		if o.MaxDepth <= 0 {
			o.MaxDepth = d.MaxDepth
		}
		if o.MaxRootFields <= 0 {
			o.MaxRootFields = d.MaxRootFields
		}
		if o.MaxBatch <= 0 {
			o.MaxBatch = d.MaxBatch
		}
		d = o
	}
	return &d
}

// operations is Operations without the safety net, for the fuzz test.
func (p *Parser) operations(in *authz.RouteInput, opts *Options) ([]authz.Operation, string, authz.Reason) {
	c := collector{opts: opts, cache: p.cache}
	if err := c.read(in); err != nil {
		return nil, clip(err.Error()), authz.InvalidGraphQL
	}
	if len(c.set.ops) == 0 {
		return nil, "the GraphQL request selects no field", authz.InvalidGraphQL
	}
	c.set.primaryFirst()
	return c.set.ops, "", authz.OK
}

// collector gathers the operations of a whole request (every operation of
// a batch), each (kind, name) once.
type collector struct {
	opts  *Options
	cache *docCache
	set   opSet
}

// clip bounds a message, cutting at a rune boundary.
func clip(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// read dispatches on the method and content type.
func (c *collector) read(in *authz.RouteInput) error {
	switch in.Method {
	case "GET":
		q := rawQuery(in.Path)
		if len(q) > c.opts.MaxBodyBytes {
			return fmt.Errorf("GraphQL query string is longer than %d bytes", c.opts.MaxBodyBytes)
		}
		return c.runParams(q, "query string")
	case "POST":
	default:
		return fmt.Errorf("GraphQL requests are GET or POST, not %s", quote(in.Method))
	}

	switch {
	case in.BodyTruncated:
		return fmt.Errorf("request body was truncated by the proxy (raise max_request_bytes)")
	case len(in.Body) == 0:
		return fmt.Errorf("request body is empty (is with_request_body set on the Envoy route?)")
	case len(in.Body) > c.opts.MaxBodyBytes:
		return fmt.Errorf("GraphQL request body is larger than %d bytes", c.opts.MaxBodyBytes)
	}
	// Some servers read GraphQL parameters from the URL of a POST too,
	// and prefer them to the body's: a request naming them in both places
	// would be checked as one thing and run as another.
	url, err := readParams(rawQuery(in.Path), "URL")
	if err != nil {
		return err
	}
	inURL := func(allowed uint8) error {
		for _, n := range paramNames {
			if url.seen&^allowed&n.bit != 0 {
				return fmt.Errorf("GraphQL parameter %q in the URL of a POST request: send it in the body only", n.name)
			}
		}
		return nil
	}

	mt := mediaType(in.ContentType)
	switch {
	case strings.EqualFold(mt, "application/graphql"):
		if err := inURL(paramOperationName); err != nil {
			return err
		}
		return c.run(-1, &request{query: bytesToString(in.Body), opName: url.opName})
	case strings.EqualFold(mt, "application/x-www-form-urlencoded"):
		if err := inURL(0); err != nil {
			return err
		}
		return c.runParams(bytesToString(in.Body), "form body")
	case len(mt) >= 10 && strings.EqualFold(mt[:10], "multipart/"):
		return fmt.Errorf("content type %s is not supported for GraphQL (send application/json)", quote(mt))
	}
	if err := inURL(paramOperationName); err != nil {
		return err
	}
	return c.json(in.Body, &url)
}

// json reads a JSON body: one request object, or a batch of them.
func (c *collector) json(body []byte, url *params) error {
	s := scanner{b: body}
	switch s.peek() {
	case '{':
		var r request
		if err := s.request(&r); err != nil {
			return err
		}
		if err := s.end(); err != nil {
			return err
		}
		if url.seen&paramOperationName != 0 {
			if r.opName != "" && r.opName != url.opName {
				return fmt.Errorf("operationName %s in the URL differs from %s in the body", quote(url.opName), quote(r.opName))
			}
			r.opName = url.opName
		}
		return c.run(-1, &r)
	case '[':
	default:
		return fmt.Errorf("request body must be a JSON object, or an array of them (a batch)")
	}
	if url.seen&paramOperationName != 0 {
		return fmt.Errorf("GraphQL parameter %q in the URL of a batch: send it in each request", "operationName")
	}
	s.i++
	if s.peek() == ']' {
		return fmt.Errorf("the GraphQL batch is empty")
	}
	for n := 0; ; n++ {
		if n == c.opts.MaxBatch {
			return fmt.Errorf("GraphQL batch has more than %d operations", c.opts.MaxBatch)
		}
		if s.peek() != '{' {
			return fmt.Errorf("batch[%d]: must be a JSON object", n)
		}
		var r request
		if err := s.request(&r); err != nil {
			return fmt.Errorf("batch[%d]: %w", n, err)
		}
		if err := c.run(n, &r); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return s.end()
		default:
			return s.unexpected("',' or ']'")
		}
	}
}

// run reads one request's operations; batch is its index in a batch, or
// -1.
func (c *collector) run(batch int, r *request) error {
	var err error
	switch {
	case r.query != "":
		err = c.document(r)
	case !r.persisted:
		err = fmt.Errorf("the GraphQL request has no query")
	case !c.opts.AllowPersistedQueries:
		err = fmt.Errorf("persisted queries are not allowed on this route: send the query")
	default:
		c.set.add(authz.Operation{Kind: kindQuery, Name: route.PersistedQueryOperation})
	}
	if err != nil && batch >= 0 {
		err = fmt.Errorf("batch[%d]: %w", batch, err)
	}
	return err
}

// document adds the operations of a request's document, parsed or
// remembered. The document is parsed from a copy, so that no operation
// name aliases the request, which an adapter may reuse once the check is
// answered (names may outlive it: a cached allow keeps the first).
func (c *collector) document(r *request) error {
	key := docKey{opts: *c.opts, escaped: r.escaped, opName: r.opName, query: r.query}
	res := c.cache.get(&key)
	if res == nil {
		var text string
		if r.escaped {
			text = unescape(stringToBytes(r.query), true)
			key.query = strings.Clone(r.query)
		} else {
			text = strings.Clone(r.query)
			key.query = text
		}
		key.opName = strings.Clone(r.opName)
		res = &docResult{key: key}
		ops, err := parseDocument(text, key.opName, c.opts)
		if err != nil {
			res.detail = err.Error()
		} else {
			res.ops = ops
		}
		c.cache.put(res)
	}
	if res.detail != "" {
		return errors.New(res.detail)
	}
	c.set.addShared(res.ops)
	return nil
}

// runParams reads one request from URL-encoded parameters (a GET's query
// string, a form body; where names it in errors) and its operations.
func (c *collector) runParams(params, where string) error {
	ps, err := readParams(params, where)
	if err != nil {
		return err
	}
	r, err := ps.request()
	if err != nil {
		return err
	}
	return c.run(-1, &r)
}
