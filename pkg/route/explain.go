package route

import (
	"fmt"

	"github.com/keygate/keygate/pkg/authz"
)

// Resolutions says what each of a table request's two resolutions found
// (SPEC §9), for explain: the route naming the request's host, and the
// host-less route or gRPC service. Each is "" when nothing matched; Note
// says which decided, or why the request is refused.
type Resolutions struct {
	ByHost, Hostless string
	Note             string
}

// Explain resolves in the way Resolve does and describes both
// resolutions. Requests that context_extensions route are not resolved by
// the table: Note says so.
func (t *Table) Explain(in *authz.RouteInput) Resolutions {
	switch {
	case t == nil || in == nil:
		return Resolutions{Note: "no routes are loaded"}
	case in.MethodOverridden:
		return Resolutions{Note: "a method-override header names another method: refused before routing"}
	case in.Extensions.Service != "":
		return Resolutions{Note: "context_extensions name the service: the route table is not consulted"}
	}
	f, r := t.find(in)
	if r != authz.OK {
		return Resolutions{Note: "the path is invalid: " + r.String()}
	}
	var res Resolutions
	if f.byHost != nil {
		res.ByHost = f.byHost.describe()
	}
	switch {
	case f.hostless != nil:
		res.Hostless = f.hostless.describe()
	case f.grpcOK:
		res.Hostless = fmt.Sprintf("grpc_services of %s → kind %q, operation %q", f.grpc.Service, f.grpc.Kind, f.grpc.Operation)
	}
	switch {
	case f.conflict:
		res.Note = "the two disagree: denied as unknown_route (the client sets the Host; give the host its own Envoy virtual host with context_extensions)"
	case res.ByHost != "" && res.Hostless != "":
		res.Note = "the two agree"
	case res.ByHost != "":
		res.Note = "only a host route matches: it decides"
	case res.Hostless != "":
		res.Note = "only a host-less route matches: it decides"
	default:
		res.Note = "no route matches: unknown_route"
	}
	return res
}

// describe names a route and its target, as load messages do.
func (r *route) describe() string {
	on := ""
	if r.host != "" {
		on = " on host " + r.host
	}
	what := fmt.Sprintf("service %s, kind %q, operation %q", r.target.Service, r.target.Kind, r.target.Operation)
	if r.gql != nil {
		what = fmt.Sprintf("service %s, GraphQL (operations from the body)", r.target.Service)
	}
	return fmt.Sprintf("%s (line %d): %s %q%s → %s", r.where, r.line, r.pathField(), r.path, on, what)
}
