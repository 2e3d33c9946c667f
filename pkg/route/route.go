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

// Kinds is the current table's Kinds.
func (r *Router) Kinds(service string) ([]string, bool, bool) { return r.t.Load().Kinds(service) }

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

// matchHost finds the first route naming host in precedence order: the
// exact host, then wildcard hosts (longest suffix first).
func (t *Table) matchHost(host, method, path string, nsegs int) *route {
	if c := t.exactHost(host); c != nil {
		if r := c.match(method, path, nsegs); r != nil {
			return r
		}
	}
	for i := range t.wildcards {
		w := &t.wildcards[i]
		if wildcardMatches(w.suffix, host) {
			if r := w.match(method, path, nsegs); r != nil {
				return r
			}
		}
	}
	return nil
}

func (c *candidates) match(method, path string, nsegs int) *route {
	for _, r := range c.exact[path] {
		if r.allows(method) {
			return r
		}
	}
	for _, r := range c.templates {
		if r.matchTemplate(path, nsegs) && r.allows(method) {
			return r
		}
	}
	for _, r := range c.prefixes {
		if matchPrefix(r.path, path) && r.allows(method) {
			return r
		}
	}
	return nil
}

// exactHost looks host up case-insensitively. Hosts are nearly always sent
// in lower case, so only the rare upper-case one is copied, to a stack
// buffer: a map index with string(bytes) does not allocate.
func (t *Table) exactHost(host string) *candidates {
	if len(t.hosts) == 0 {
		return nil
	}
	if !hasUpper(host) {
		return t.hosts[host]
	}
	var buf [maxHostLen]byte
	if len(host) > len(buf) {
		return nil // longer than any host a route may name
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return t.hosts[string(buf[:len(host)])]
}

// maxHostLen bounds the hosts routes may name: a DNS name is at most 253
// bytes, and an IPv6 literal far less.
const maxHostLen = 253

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// wildcardMatches reports whether host is one or more labels followed by
// suffix (".example.com"): never the bare "example.com".
func wildcardMatches(suffix, host string) bool {
	n := len(host) - len(suffix)
	if n <= 0 || host[0] == '.' || host[n-1] == '.' {
		return false
	}
	return strings.EqualFold(host[n:], suffix)
}

// requestHost strips the port and a trailing dot from a Host or
// :authority value; "[::1]:8080" becomes "::1". Case is left alone:
// comparisons fold it.
func requestHost(h string) string {
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return h
		}
		if rest := h[end+1:]; rest != "" && !(rest[0] == ':' && allDigits(rest[1:])) {
			return h
		}
		return h[1:end]
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		// More than one colon is a bare IPv6 address, not host:port.
		if strings.IndexByte(h[:i], ':') >= 0 || !allDigits(h[i+1:]) {
			return h
		}
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (r *route) allows(method string) bool {
	if r.methods == nil {
		return true
	}
	for _, m := range r.methods {
		if m == method {
			return true
		}
	}
	return false
}

// matchPrefix: a prefix ending in "/" matches by string; any other matches
// itself and what lies below it, so "/a/b" never matches "/a/bc".
func matchPrefix(prefix, path string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// matchTemplate matches a path of nsegs segments (its count of "/"), segment
// by segment; a trailing slash is an empty last segment, so it is
// significant. Counting segments once per request lets most templates be
// skipped without looking at the path.
func (r *route) matchTemplate(path string, nsegs int) bool {
	if len(r.segs) != nsegs {
		return false
	}
	rest := path[1:]
	for i, s := range r.segs {
		last := i == len(r.segs)-1
		switch {
		case last && s.param:
			// The counts agree, so rest is one whole segment.
			return rest != ""
		case last:
			return rest == s.lit
		case s.param:
			j := strings.IndexByte(rest, '/')
			if j <= 0 {
				return false
			}
			rest = rest[j+1:]
		default:
			if len(rest) <= len(s.lit) || rest[len(s.lit)] != '/' || rest[:len(s.lit)] != s.lit {
				return false
			}
			rest = rest[len(s.lit)+1:]
		}
	}
	return true
}

// isGRPC reports whether a content-type is gRPC's (SPEC §9):
// application/grpc, application/grpc+<codec> and application/grpc-web*,
// compared without case and up to parameters. "application/grpcx" is not.
func isGRPC(contentType string) bool {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	contentType = strings.TrimRight(contentType, " \t")
	const p, web = "application/grpc", "application/grpc-web"
	switch {
	case len(contentType) < len(p) || !strings.EqualFold(contentType[:len(p)], p):
		return false
	case len(contentType) == len(p) || contentType[len(p)] == '+':
		return true
	}
	return len(contentType) >= len(web) && strings.EqualFold(contentType[:len(web)], web)
}

// resolveGRPC reads /pkg.Service/Method.
func (t *Table) resolveGRPC(path string) (authz.Target, bool) {
	rest := path[1:]
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return authz.Target{}, false
	}
	name, method := rest[:i], rest[i+1:]
	g, ok := t.grpc[name]
	if !ok || !isIdent(method) {
		return authz.Target{}, false
	}
	return authz.Target{Service: g.service, Kind: g.kind, Operation: method, Accepts: g.accepts, Accounts: g.accounts}, true
}

// isIdent is a protobuf identifier, the form of gRPC service-name parts and
// method names.
func isIdent(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Router holds the current Table and swaps it atomically on reload, so a
// request is always resolved against one whole table, old or new. The zero
// Router serves no table and routes nothing.
type Router struct {
	t atomic.Pointer[Table]
}

// NewRouter returns a Router serving t. A nil table routes nothing.
func NewRouter(t *Table) *Router {
	r := &Router{}
	r.t.Store(t)
	return r
}

// Swap makes t the table later requests are resolved against.
func (r *Router) Swap(t *Table) { r.t.Store(t) }

// Current returns the table being served.
func (r *Router) Current() *Table { return r.t.Load() }

// Resolve resolves in against the current table.
func (r *Router) Resolve(in *authz.RouteInput) (authz.Target, authz.Reason) {
	return r.t.Load().Resolve(in)
}

// index files the routes by host and sorts each list by precedence once.
// The sorts are stable and routes arrive in file order, so file order
// breaks ties.
func (t *Table) index(routes []*route) {
	wild := make(map[string]*candidates)
	for _, r := range routes {
		if svc := t.services[r.target.Service]; svc != nil {
			if r.gql != nil {
				// Its operations are the fields each request selects.
				for _, k := range []string{"query", "mutation", "subscription"} {
					svc.addKind(k)
					svc.catalog.add(k, "")
				}
			} else {
				svc.addKind(r.target.Kind)
				svc.catalog.add(r.target.Kind, r.target.Operation)
			}
		}
		var c *candidates
		switch {
		case r.host == "":
			c = &t.anyHost
		case strings.HasPrefix(r.host, "*."):
			suffix := r.host[1:]
			if c = wild[suffix]; c == nil {
				c = &candidates{}
				wild[suffix] = c
			}
		default:
			if c = t.hosts[r.host]; c == nil {
				c = &candidates{}
				t.hosts[r.host] = c
			}
		}
		switch r.kind {
		case exactPath:
			if c.exact == nil {
				c.exact = make(map[string][]*route)
			}
			c.exact[r.path] = append(c.exact[r.path], r)
		case templatePath:
			c.templates = append(c.templates, r)
		case prefixPath:
			c.prefixes = append(c.prefixes, r)
		}
	}
	for suffix, c := range wild {
		t.wildcards = append(t.wildcards, wildcard{suffix: suffix, candidates: *c})
	}
	// Longer suffixes are more specific; equal lengths are different
	// suffixes, never both matching one host, so their order is moot.
	slices.SortFunc(t.wildcards, func(a, b wildcard) int {
		if d := len(b.suffix) - len(a.suffix); d != 0 {
			return d
		}
		return strings.Compare(a.suffix, b.suffix)
	})
	sortCandidates(&t.anyHost)
	for _, c := range t.hosts {
		sortCandidates(c)
	}
	for i := range t.wildcards {
		sortCandidates(&t.wildcards[i].candidates)
	}
}

func sortCandidates(c *candidates) {
	slices.SortStableFunc(c.templates, func(a, b *route) int { return b.literals - a.literals })
	slices.SortStableFunc(c.prefixes, func(a, b *route) int { return len(b.path) - len(a.path) })
}
