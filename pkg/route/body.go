package route

import (
	"strings"

	"github.com/keygate/keygate/pkg/authz"
)

var (
	_ authz.BodyRouter = (*Table)(nil)
	_ authz.BodyRouter = (*Router)(nil)
)

// BodyLimit reports how many body bytes the route of in reads: the
// MaxBodyBytes of a GraphQL route (protocol: graphql, or context_extensions
// with kind graphql and the defaults), 0 for every other route. A request
// whose route, resolved with its host or without it, is a GraphQL one
// needs its body: Resolve may decide by either (SPEC §9), so the larger
// limit of the two is the one to read.
func (t *Table) BodyLimit(in *authz.RouteInput) int {
	if t == nil || in == nil {
		return 0
	}
	if name := in.Extensions.Service; name != "" {
		if _, ok := t.services[name]; ok && in.Extensions.Kind == ExtensionKindGraphQL {
			return t.extGraphQL.MaxBodyBytes
		}
		return 0
	}
	p, _, _ := strings.Cut(in.Path, "?")
	p, perr, _ := normalize(p)
	if perr != pathOK {
		return 0 // invalid_path: nothing is read
	}
	limit := 0
	for _, host := range [2]string{requestHost(in.Host), ""} {
		if r := t.match(host, in.Method, p); r != nil && r.gql != nil {
			limit = max(limit, r.gql.MaxBodyBytes)
		}
		if host == "" {
			break
		}
	}
	return limit
}

// BodyLimit is the current table's BodyLimit.
func (r *Router) BodyLimit(in *authz.RouteInput) int {
	return r.t.Load().BodyLimit(in)
}
