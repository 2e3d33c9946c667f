// Package route maps a request to the keygate service, kind and operation it
// calls (SPEC §4, §9).
//
// A request is routed by, in this order:
//
//  1. Envoy's per-route context_extensions: a non-empty "service" wins
//     outright, with "kind" and "operation" taken as given;
//  2. the route table of the routes file (host, exact path, template or
//     prefix, methods);
//  3. gRPC: a request whose content-type starts with application/grpc and
//     whose path is /pkg.Service/Method calls operation Method of the
//     keygate service that declares pkg.Service in grpc_services;
//
// and a table route marked protocol: graphql, or context_extensions with
// kind graphql, takes its kinds and operations from the request body
// through an OperationParser (one per root field, every one checked). No
// other request is ever given to the parser.
//
// Table routes are matched on the path without its query string, normalised
// by NormalizePath. A route naming a host beats a host-less one (an exact
// host beats a wildcard, a longer wildcard a shorter); within a host, an
// exact path beats a template (more literal segments first), which beats a
// prefix (longest first); remaining ties go to file order. A route whose
// path matches but whose methods do not is passed over for the next one.
//
// A Table is compiled once by Parse or LoadFile and is read-only afterwards,
// so any number of goroutines may call Resolve; a Router holds the current
// Table and swaps it atomically when the file is reloaded.
package route

import (
	"slices"
	"strings"
	"sync/atomic"

	"github.com/keygate/keygate/pkg/authz"
)

var (
	_ authz.Router = (*Table)(nil)
	_ authz.Router = (*Router)(nil)
)

// Table is a compiled routes file.
type Table struct {
	services map[string]*service
	names    []string // file order

	hosts     map[string]*candidates // exact host, lower case
	wildcards []wildcard             // longest suffix first
	anyHost   candidates
	grpc      map[string]grpcService // by full gRPC service name

	// allowEncodedSlashes keeps %2F inside its segment instead of
	// refusing the path (the routes file's allow_encoded_slashes).
	allowEncodedSlashes bool

	// extGraphQL are the options of requests that context_extensions
	// route to kind graphql: the defaults.
	extGraphQL GraphQLOptions

	// parser is atomic so that SetOperationParser is safe at any time,
	// also on a table a Router already serves.
	parser atomic.Pointer[parserHolder]
}

type parserHolder struct{ p OperationParser }

type service struct {
	name    string
	accepts authz.KeyTypes
	// accounts, when set, are the only accounts whose keys the service
	// accepts (row 6a); nil is every account.
	accounts []string
	// kinds are the kinds its routes and gRPC services name, in file
	// order; anyKind is set when a route leaves the kind unknown.
	kinds   []string
	anyKind bool
	// catalog is the kinds with their operations, for Services.
	catalog catalog
}

func (s *service) addKind(k string) {
	if k == "" {
		s.anyKind = true
	} else if !slices.Contains(s.kinds, k) {
		s.kinds = append(s.kinds, k)
	}
}

// target is the service's target with no kind or operation yet.
func (s *service) target() authz.Target {
	return authz.Target{Service: s.name, Accepts: s.accepts, Accounts: s.accounts}
}

type grpcService struct {
	service  string
	kind     string
	accepts  authz.KeyTypes
	accounts []string
}

type pathKind uint8

const (
	exactPath pathKind = iota
	templatePath
	prefixPath
)

// route is one compiled table entry.
type route struct {
	kind     pathKind
	path     string    // normalised; the prefix itself for prefix routes
	segs     []segment // template routes
	literals int       // literal segments of a template
	methods  []string  // nil: any method
	// gql is set for protocol: graphql routes: their options, complete
	// with defaults.
	gql    *GraphQLOptions
	target authz.Target // Service, Kind, Operation, Accepts

	// host is the lower-case host as compiled ("" for any, "*.x" for a
	// wildcard); where and line name the entry in load messages.
	host  string
	where string
	line  int
}

// segment is one segment of a template: a literal, or a {param}.
type segment struct {
	lit   string
	param bool
}

// candidates are the routes of one host, each list already in precedence
// order: exact paths (by path), then templates (more literal segments
// first), then prefixes (longest first), ties in file order.
type candidates struct {
	exact     map[string][]*route
	templates []*route
	prefixes  []*route
}

type wildcard struct {
	suffix string // ".example.com" for "*.example.com"
	candidates
}

// SetOperationParser sets the parser GraphQL routes read their operations
// with. Without one, every request a GraphQL route matches is answered
// InvalidGraphQL: failing closed beats guessing an operation. It is safe to
// call at any time; a reloaded Table needs it set again before it is swapped
// in.
func (t *Table) SetOperationParser(p OperationParser) {
	if p == nil {
		t.parser.Store(nil)
		return
	}
	t.parser.Store(&parserHolder{p})
}

// Service reports the key types a declared service accepts.
func (t *Table) Service(name string) (authz.KeyTypes, bool) {
	if t == nil {
		return 0, false
	}
	s, ok := t.services[name]
	if !ok {
		return 0, false
	}
	return s.accepts, true
}

// Kinds reports whether service is declared and the kinds its routes
// (GraphQL routes: query, mutation, subscription) and gRPC services name;
// anyKind is set when one of its routes leaves the kind unknown.
func (t *Table) Kinds(service string) (kinds []string, anyKind, ok bool) {
	if t == nil {
		return nil, false, false
	}
	s, ok := t.services[service]
	if !ok {
		return nil, false, false
	}
	return slices.Clone(s.kinds), s.anyKind, true
}

// ServiceNames lists the declared services in file order.
func (t *Table) ServiceNames() []string {
	if t == nil {
		return nil
	}
	return append([]string(nil), t.names...)
}

// Resolve maps a request to its target (SPEC §4). It answers OK,
// UnknownRoute, InvalidPath, InvalidRequest or InvalidGraphQL. With
// InvalidGraphQL the target names the route's service (for logs) but no
// operation. A nil table routes nothing.
//
// The Host is the client's to set, and whether Envoy routes by it depends
// on virtual hosts keygate cannot see (SPEC §9). So a table request is
// resolved twice, by the routes naming its host and by the host-less
// routes (then gRPC) alone; when both find a target and the targets
// differ, the request is refused as unknown_route rather than decided by
// whichever the client steered it to.
func (t *Table) Resolve(in *authz.RouteInput) (authz.Target, authz.Reason) {
	if t == nil || in == nil {
		return authz.Target{}, authz.UnknownRoute
	}
	if in.MethodOverridden {
		// An upstream honouring the override would run another
		// operation than the one decided here.
		return authz.Target{}, authz.InvalidRequest
	}
	if name := in.Extensions.Service; name != "" {
		s, ok := t.services[name]
		if !ok {
			return authz.Target{}, authz.UnknownRoute
		}
		if in.Extensions.Kind == ExtensionKindGraphQL {
			return t.resolveGraphQL(s.target(), &t.extGraphQL, in)
		}
		tg := s.target()
		tg.Kind, tg.Operation = in.Extensions.Kind, in.Extensions.Operation
		return tg, authz.OK
	}

	m, reason := t.find(in)
	switch {
	case reason != authz.OK:
		return authz.Target{}, reason
	case m.conflict:
		return authz.Target{Detail: detailHostConflict}, authz.UnknownRoute
	case m.route == nil && !m.grpcOK:
		return authz.Target{}, authz.UnknownRoute
	case m.route == nil:
		return m.grpc, authz.OK
	case m.route.gql != nil:
		return t.resolveGraphQL(m.route.target, m.route.gql, in)
	}
	return m.route.target, authz.OK
}

// detailHostConflict is the message of an unknown_route whose host routes
// and host-less routes disagree.
const detailHostConflict = "the request's host and path map to different operations"

// found is what the two resolutions of a table request found: the route
// or gRPC target that decides, or a conflict between them.
type found struct {
	route    *route       // the deciding table route, if any
	grpc     authz.Target // the gRPC target, when no host-less route matches
	grpcOK   bool
	conflict bool

	// For explain: what each resolution found on its own.
	byHost, hostless *route
}

// find resolves a table request (no context_extensions) by its host
// routes and by the host-less routes and gRPC services, and picks the
// target: the one found, or the host route's when both agree.
func (t *Table) find(in *authz.RouteInput) (found, authz.Reason) {
	p := in.Path
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	p, perr, _ := normalize(p, t.allowEncodedSlashes)
	if perr != pathOK {
		return found{}, authz.InvalidPath
	}
	var f found
	nsegs := strings.Count(p, "/")
	if host := requestHost(in.Host); host != "" {
		f.byHost = t.matchHost(host, in.Method, p, nsegs)
	}
	f.hostless = t.anyHost.match(in.Method, p, nsegs)
	if f.hostless == nil && isGRPC(in.ContentType) {
		f.grpc, f.grpcOK = t.resolveGRPC(p)
	}
	switch {
	case f.byHost == nil:
		f.route = f.hostless
	case f.hostless != nil:
		f.route = f.byHost
		f.conflict = !f.byHost.sameTarget(f.hostless.target, f.hostless.gql != nil)
	case f.grpcOK:
		f.route = f.byHost
		f.conflict = !f.byHost.sameTarget(f.grpc, false)
	default:
		f.route = f.byHost
	}
	return f, authz.OK
}

// sameTarget reports whether r decides as a route or gRPC service with
// target tg does: the same service, kind and operation, or both GraphQL
// routes of one service (whose operations come from the same body).
func (r *route) sameTarget(tg authz.Target, gql bool) bool {
	return r.target.Service == tg.Service && r.target.Kind == tg.Kind &&
		r.target.Operation == tg.Operation && (r.gql != nil) == gql
}
