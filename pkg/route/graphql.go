package route

import (
	"github.com/keygate/keygate/pkg/authz"
)

// GraphQLOptions are the limits and switches of one GraphQL route, set in
// the routes file and handed to the OperationParser
// with every request the route matches. A route that sets none gets
// DefaultGraphQLOptions.
type GraphQLOptions struct {
	// MaxBodyBytes bounds the request body (POST) or the query string
	// (GET) in bytes.
	MaxBodyBytes int
	// MaxDepth bounds how deeply the selected operation's selection sets
	// nest, through fragments: `{ a }` is 1, `{ a { b } }` is 2.
	MaxDepth int
	// MaxRootFields bounds the root fields of one operation, counted
	// through aliases and root fragments.
	MaxRootFields int
	// MaxBatch bounds the operations of a batched request (a JSON array).
	MaxBatch int
	// AllowPersistedQueries lets a request that carries a persisted-query
	// hash (extensions.persistedQuery) and no query through, checked as
	// operation PersistedQueryOperation of kind "query". Off, such a
	// request is denied invalid_graphql.
	AllowPersistedQueries bool
}

// Defaults and bounds of the GraphQL route fields.
const (
	DefaultGraphQLMaxBodyBytes  = 64 << 10
	DefaultGraphQLMaxDepth      = 15
	DefaultGraphQLMaxRootFields = 50
	DefaultGraphQLMaxBatch      = 10

	// The largest values the routes file accepts: beyond them a limit no
	// longer protects anything (the parser itself refuses documents that
	// nest more than 1000 levels).
	MaxGraphQLMaxBodyBytes  = 16 << 20
	MaxGraphQLMaxDepth      = 500
	MaxGraphQLMaxRootFields = 10000
	MaxGraphQLMaxBatch      = 1000
)

// PersistedQueryOperation is the operation, of kind "query", that a
// persisted-query request without a query is checked as on a route with
// allow_persisted_queries.
const PersistedQueryOperation = "persistedQuery"

// DefaultGraphQLOptions are the limits of a GraphQL route that sets none,
// and of requests that context_extensions route to kind graphql.
func DefaultGraphQLOptions() GraphQLOptions {
	return GraphQLOptions{
		MaxBodyBytes:  DefaultGraphQLMaxBodyBytes,
		MaxDepth:      DefaultGraphQLMaxDepth,
		MaxRootFields: DefaultGraphQLMaxRootFields,
		MaxBatch:      DefaultGraphQLMaxBatch,
	}
}

// OperationParser reads the operations a GraphQL request calls. It is a
// seam so that this package does not depend on a GraphQL parser; package
// graphql implements it.
type OperationParser interface {
	// Operations reads every operation a request calls under the route's
	// options: one authz.Operation per root field, each with its own Kind
	// (query|mutation|subscription, and "query" for introspection
	// fields). The first entry names the request in logs and metadata.
	//
	// It answers authz.OK with at least one operation, or
	// authz.InvalidGraphQL with a detail that says why (which limit, the
	// parse error); the detail is shown to the caller. It is called
	// concurrently, and ops[1:] becomes Target.More, so the slice must
	// not be changed after it is returned. The names must not alias
	// in.Body, which an adapter may reuse once the check is answered,
	// while Target.Operation may be kept longer (a cached allow).
	Operations(in *authz.RouteInput, opts *GraphQLOptions) (ops []authz.Operation, detail string, r authz.Reason)
}

// ExtensionKindGraphQL is the context_extensions kind that routes a
// request to the GraphQL parser: with a "service", the body is parsed the
// way a protocol: graphql route's is, with DefaultGraphQLOptions.
const ExtensionKindGraphQL = "graphql"

// Details of the denials the route package answers itself.
const (
	detailNoParser  = "GraphQL parsing is not configured for this route"
	detailNoField   = "the GraphQL request selects no field"
	detailNoDetails = "the GraphQL request is invalid"
)

func (t *Table) resolveGraphQL(tg authz.Target, opts *GraphQLOptions, in *authz.RouteInput) (authz.Target, authz.Reason) {
	tg = authz.Target{Service: tg.Service, Accepts: tg.Accepts, Accounts: tg.Accounts, GraphQL: true}
	h := t.parser.Load()
	if h == nil {
		tg.Detail = detailNoParser
		return tg, authz.InvalidGraphQL
	}
	ops, detail, reason := h.p.Operations(in, opts)
	// Anything but a clean answer with at least one field is denied: an
	// operation-less target would be matched only by whole-service scopes,
	// which is not what the parser meant.
	switch {
	case reason != authz.OK:
		if detail == "" {
			detail = detailNoDetails
		}
		tg.Detail = detail
		return tg, authz.InvalidGraphQL
	case len(ops) == 0:
		tg.Detail = detailNoField
		return tg, authz.InvalidGraphQL
	}
	tg.Kind, tg.Operation = ops[0].Kind, ops[0].Name
	if len(ops) > 1 {
		tg.More = ops[1:]
	}
	return tg, authz.OK
}
