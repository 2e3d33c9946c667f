package route

import (
	"github.com/keygate/keygate/pkg/authz"
)

var (
	_ authz.BodyRouter = (*Table)(nil)
	_ authz.BodyRouter = (*Router)(nil)
)

// BodyLimit reports how many body bytes the route of in reads: the
// MaxBodyBytes of a GraphQL route (protocol: graphql, or context_extensions
// with kind graphql and the defaults), 0 for every other route and for a
// request Resolve refuses without reading the body (an invalid path, a
// method override, host routes and host-less routes that disagree).
func (t *Table) BodyLimit(in *authz.RouteInput) int {
	if t == nil || in == nil || in.MethodOverridden {
		return 0
	}
	if name := in.Extensions.Service; name != "" {
		if _, ok := t.services[name]; ok && in.Extensions.Kind == ExtensionKindGraphQL {
			return t.extGraphQL.MaxBodyBytes
		}
		return 0
	}
	f, r := t.find(in)
	if r != authz.OK || f.conflict || f.route == nil || f.route.gql == nil {
		return 0
	}
	return f.route.gql.MaxBodyBytes
}

// BodyLimit is the current table's BodyLimit.
func (r *Router) BodyLimit(in *authz.RouteInput) int {
	return r.t.Load().BodyLimit(in)
}
