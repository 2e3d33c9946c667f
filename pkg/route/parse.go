package route

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/pkg/authz"
)

// LoadFile reads and compiles a routes file; see Parse.
func LoadFile(path string) (*Table, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("routes file: %w", err)
	}
	return Parse(data, path)
}

// Parse compiles a routes file; filename only names it in messages.
//
// Every problem is reported at once, joined with errors.Join, each as
// "file:line: entry: field: what is wrong", so that one run of check-config
// shows everything to fix. Warnings describe what loads but is probably
// not meant (a prefix route hiding a gRPC service, a path written in a
// non-normal form); they are returned with or without an error. The table
// is nil exactly when the error is not.
//
// GraphQL routes need an OperationParser, set with Table.SetOperationParser.
func Parse(data []byte, filename string) (*Table, []string, error) {
	// Aliases let a small document name the same node many times; the
	// budget bounds the nodes visited to a multiple of the input's size.
	l := &loader{file: filename, budget: 10*len(data) + 1000}
	t := l.load(data)
	if len(l.errs) > 0 {
		return nil, l.warns, errors.Join(l.errs...)
	}
	return t, l.warns, nil
}

// Route fields. Users' files depend on these names.
var (
	topFields     = []string{"services", "allow_encoded_slashes"}
	serviceFields = []string{"name", "key_types", "accounts", "routes", "grpc_services"}
	routeFields   = append([]string{"host", "path", "path_prefix", "methods", "kind", "operation", "protocol"}, graphqlFields...)
	// graphqlFields set a protocol: graphql route's GraphQLOptions.
	graphqlFields = []string{"allow_persisted_queries", "max_body_bytes", "max_depth", "max_root_fields", "max_batch"}
	grpcFields    = []string{"name", "kind"}
)

type loader struct {
	file string
	// allowSlashes is the file's allow_encoded_slashes, read before the
	// routes so that their paths are normalised as requests will be.
	allowSlashes bool
	errs         []error
	warns        []string
	budget       int
	exhausted    bool
}

type field struct{ key, val *yaml.Node }

// grpcDecl is a grpc_services entry, kept to name it in messages.
type grpcDecl struct {
	name, where string
	line        int
}

func (l *loader) load(data []byte) *Table {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errorf(nil, "services", "missing: the file declares no service")
			return nil
		}
		l.errs = append(l.errs, fmt.Errorf("%s: %w", l.file, err))
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		l.errs = append(l.errs, fmt.Errorf("%s: %w", l.file, err))
		return nil
	default:
		l.errorf(&next, "document", "a routes file holds one YAML document")
		return nil
	}

	root := l.deref(&doc)
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			l.errorf(root, "services", "missing: the file declares no service")
			return nil
		}
		root = l.deref(root.Content[0])
	}
	top := l.fields(root, "", topFields)
	if top == nil {
		return nil
	}
	if af, ok := top["allow_encoded_slashes"]; ok {
		l.allowSlashes = l.boolean(af, "allow_encoded_slashes")
	}
	sf, ok := top["services"]
	if !ok {
		l.errorf(root, "services", "missing: the file declares no service")
		return nil
	}
	items, ok := l.list(sf, "services")
	if !ok {
		return nil
	}
	if len(items) == 0 {
		l.errorf(sf.val, "services", "empty: the file declares no service")
		return nil
	}

	t := &Table{
		services: make(map[string]*service),
		hosts:    make(map[string]*candidates),
		grpc:     make(map[string]grpcService),

		allowEncodedSlashes: l.allowSlashes,
		extGraphQL:          DefaultGraphQLOptions(),
	}
	var (
		routes    []*route
		grpcDecls []grpcDecl
		declared  = make(map[string]string) // service name → where
		grpcSeen  = make(map[string]grpcDecl)
	)
	for i, sn := range items {
		index := fmt.Sprintf("services[%d]", i)
		where := index
		// Every message about the entry names the service, also those
		// about fields written before its name.
		if name := peekName(l.deref(sn)); checkName(name) == nil {
			where = fmt.Sprintf("%s (%s)", index, name)
		}
		f := l.fields(sn, where, serviceFields)
		if f == nil {
			continue
		}
		s := &service{}
		nf, ok := f["name"]
		if !ok {
			l.errorf(sn, join(where, "name"), "missing")
		} else if name, ok := l.scalar(nf, join(where, "name")); ok {
			if err := checkName(name); err != nil {
				l.errorf(nf.val, join(where, "name"), "%v", err)
			} else {
				s.name = name
				if first, dup := declared[name]; dup {
					l.errorf(nf.val, join(where, "name"), "service %q is already declared by %s", name, first)
				} else {
					declared[name] = fmt.Sprintf("%s (line %d)", index, nf.val.Line)
					t.services[name] = s
					t.names = append(t.names, name)
				}
				where = fmt.Sprintf("%s (%s)", index, name)
			}
		}
		s.accepts = l.keyTypes(f, sn, where)
		if af, ok := f["accounts"]; ok {
			s.accounts = l.accounts(af, join(where, "accounts"))
		}

		if rf, ok := f["routes"]; ok {
			rs, _ := l.list(rf, join(where, "routes"))
			for j, rn := range rs {
				if r := l.route(rn, fmt.Sprintf("%s: routes[%d]", where, j), s); r != nil {
					routes = append(routes, r)
				}
			}
		}
		if gf, ok := f["grpc_services"]; ok {
			gs, _ := l.list(gf, join(where, "grpc_services"))
			for j, gn := range gs {
				gwhere := fmt.Sprintf("%s: grpc_services[%d]", where, j)
				g, d, ok := l.grpcService(gn, gwhere, s)
				if !ok {
					continue
				}
				if first, dup := grpcSeen[d.name]; dup {
					l.errorf(gn, join(gwhere, "name"), "gRPC service %s is already declared by %s (line %d)", d.name, first.where, first.line)
					continue
				}
				grpcSeen[d.name] = d
				grpcDecls = append(grpcDecls, d)
				t.grpc[d.name] = g
			}
		}
	}

	l.checkOverlaps(routes)
	l.warnHostConflicts(routes)
	l.warnGRPCShadows(routes, grpcDecls)
	if len(l.errs) > 0 {
		return nil
	}
	t.index(routes)
	return t
}

// peekName is the name a service mapping writes itself, for messages.
func peekName(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "name" && v.Kind == yaml.ScalarNode {
			return v.Value
		}
	}
	return ""
}

// keyTypes reads a service's key_types. Account keys serve only the Account
// API, so a routes file may not open a service to them.
func (l *loader) keyTypes(f map[string]field, sn *yaml.Node, where string) authz.KeyTypes {
	where = join(where, "key_types")
	kf, ok := f["key_types"]
	if !ok {
		l.errorf(sn, where, "missing: list the key types the service accepts (service, app)")
		return 0
	}
	items, ok := l.list(kf, where)
	if !ok {
		return 0
	}
	if len(items) == 0 {
		l.errorf(kf.val, where, "empty: list the key types the service accepts (service, app)")
		return 0
	}
	var accepts authz.KeyTypes
	for i, n := range items {
		iwhere := fmt.Sprintf("%s[%d]", where, i)
		v, ok := l.scalar(field{val: n}, iwhere)
		if !ok {
			continue
		}
		kt, err := authz.ParseKeyType(v)
		switch {
		case err != nil:
			l.errorf(n, iwhere, "unknown key type %q (want service or app)", v)
		case kt == authz.KeyTypeAccount:
			l.errorf(n, iwhere, "%q is not allowed: account keys serve only the Account API", v)
		case accepts.Has(kt):
			l.errorf(n, iwhere, "%q is listed twice", v)
		default:
			accepts = accepts.With(kt)
		}
	}
	return accepts
}

// accounts reads a service's accounts: the only accounts whose keys it
// accepts (row 6a). Listing none would lock every key out, which is
// never what the file means, so an empty list is an error.
func (l *loader) accounts(f field, where string) []string {
	items, ok := l.list(f, where)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		l.errorf(f.val, where, "empty: list the account ids the service serves, or leave accounts out to serve every account")
		return nil
	}
	out := make([]string, 0, len(items))
	for i, n := range items {
		iwhere := fmt.Sprintf("%s[%d]", where, i)
		v, ok := l.scalar(field{val: n}, iwhere)
		switch {
		case !ok:
		case checkName(v) != nil:
			l.errorf(n, iwhere, "account id: %v", checkName(v))
		case slices.Contains(out, v):
			l.errorf(n, iwhere, "%q is listed twice", v)
		default:
			out = append(out, v)
		}
	}
	return out
}

// boolean reads a true/false field.
func (l *loader) boolean(f field, where string) bool {
	v := l.deref(f.val)
	var b bool
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
		l.errorf(f.val, where, "must be true or false")
		return false
	}
	return b
}

func (l *loader) grpcService(n *yaml.Node, where string, s *service) (grpcService, grpcDecl, bool) {
	n = l.deref(n)
	if n == nil {
		return grpcService{}, grpcDecl{}, false
	}
	g := grpcService{service: s.name, kind: "grpc", accepts: s.accepts, accounts: s.accounts}
	var name string
	nameNode := n
	switch n.Kind {
	case yaml.ScalarNode:
		name = n.Value
	case yaml.MappingNode:
		f := l.fields(n, where, grpcFields)
		if f == nil {
			return grpcService{}, grpcDecl{}, false
		}
		nf, ok := f["name"]
		if !ok {
			l.errorf(n, join(where, "name"), "missing")
			return grpcService{}, grpcDecl{}, false
		}
		if name, ok = l.scalar(nf, join(where, "name")); !ok {
			return grpcService{}, grpcDecl{}, false
		}
		nameNode = nf.val
		if kf, ok := f["kind"]; ok {
			kind, ok := l.scalar(kf, join(where, "kind"))
			if !ok {
				return grpcService{}, grpcDecl{}, false
			}
			if kind != "" {
				if err := checkName(kind); err != nil {
					l.errorf(kf.val, join(where, "kind"), "%v", err)
					return grpcService{}, grpcDecl{}, false
				}
				g.kind = kind
			}
		}
	default:
		l.errorf(n, where, "must be a gRPC service name (pkg.Service) or a mapping with name and kind")
		return grpcService{}, grpcDecl{}, false
	}
	if !isGRPCServiceName(name) {
		l.errorf(nameNode, join(where, "name"), "%q is not a full gRPC service name like users.v1.UserService", name)
		return grpcService{}, grpcDecl{}, false
	}
	return g, grpcDecl{name: name, where: where, line: nameNode.Line}, true
}

// isGRPCServiceName is package.Service: dot-separated protobuf identifiers,
// at least one dot.
func isGRPCServiceName(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if !isIdent(p) {
			return false
		}
	}
	return true
}

// route compiles one routes entry; nil if it has errors.
func (l *loader) route(n *yaml.Node, where string, s *service) *route {
	if n = l.deref(n); n == nil {
		return nil
	}
	f := l.fields(n, where, routeFields)
	if f == nil {
		return nil
	}
	errsBefore := len(l.errs)
	r := &route{
		where:  where,
		line:   n.Line,
		target: s.target(),
	}

	if pf, ok := f["protocol"]; ok {
		if v, ok := l.scalar(pf, join(where, "protocol")); ok {
			switch v {
			case "", "http":
			case "graphql":
				opts := DefaultGraphQLOptions()
				r.gql = &opts
			default:
				l.errorf(pf.val, join(where, "protocol"), "unknown protocol %q (want http or graphql)", v)
			}
		}
	}

	l.graphqlOptions(f, where, r.gql)

	if hf, ok := f["host"]; ok {
		if v, ok := l.scalar(hf, join(where, "host")); ok {
			h, err := compileHost(v)
			if err != nil {
				l.errorf(hf.val, join(where, "host"), "%v", err)
			}
			r.host = h
		}
	}

	pf, hasPath := f["path"]
	xf, hasPrefix := f["path_prefix"]
	switch {
	case hasPath && hasPrefix:
		l.errorf(xf.key, join(where, "path_prefix"), "set together with path: a route matches by path or by path_prefix, not both")
	case !hasPath && !hasPrefix:
		l.errorf(n, join(where, "path"), "missing: a route needs path or path_prefix")
	case hasPath:
		fw := join(where, "path")
		if p, ok := l.routePath(pf, fw); ok {
			r.path = p
			if strings.ContainsAny(p, "{}") {
				segs, lits, err := parseTemplate(p)
				if err != nil {
					l.errorf(pf.val, fw, "malformed template %q: %v", p, err)
				}
				r.kind, r.segs, r.literals = templatePath, segs, lits
			}
		}
	default:
		fw := join(where, "path_prefix")
		if p, ok := l.routePath(xf, fw); ok {
			if strings.ContainsAny(p, "{}") {
				l.errorf(xf.val, fw, "%q has a brace: templates are written in path, not path_prefix", p)
			}
			r.kind, r.path = prefixPath, p
		}
	}

	if mf, ok := f["methods"]; ok {
		r.methods = l.methods(mf, join(where, "methods"))
	}

	for _, name := range []string{"kind", "operation"} {
		vf, ok := f[name]
		if !ok {
			continue
		}
		fw := join(where, name)
		v, ok := l.scalar(vf, fw)
		switch {
		case !ok:
		case r.gql != nil:
			l.errorf(vf.key, fw, "not allowed on a graphql route: the kind and operations come from the request body")
		case v != "":
			if err := checkName(v); err != nil {
				l.errorf(vf.val, fw, "%v", err)
			}
			if name == "kind" && v == ExtensionKindGraphQL {
				l.warnf(vf.val, fw, "%q is matched as a literal kind here: write protocol: graphql to have the request body parsed", v)
			}
		}
		if name == "kind" {
			r.target.Kind = v
		} else {
			r.target.Operation = v
		}
	}

	if len(l.errs) > errsBefore {
		return nil
	}
	return r
}

// graphqlOptions reads the GraphQL fields of a route into opts, which is
// nil for a route that is not protocol: graphql (the fields are refused).
func (l *loader) graphqlOptions(f map[string]field, where string, opts *GraphQLOptions) {
	for _, name := range graphqlFields {
		vf, ok := f[name]
		if !ok {
			continue
		}
		fw := join(where, name)
		if opts == nil {
			l.errorf(vf.key, fw, "only allowed on a route with protocol: graphql")
			continue
		}
		v := l.deref(vf.val)
		if v == nil {
			continue
		}
		var (
			dst   *int
			limit int
		)
		switch name {
		case "allow_persisted_queries":
			opts.AllowPersistedQueries = l.boolean(vf, fw)
			continue
		case "max_body_bytes":
			dst, limit = &opts.MaxBodyBytes, MaxGraphQLMaxBodyBytes
		case "max_depth":
			dst, limit = &opts.MaxDepth, MaxGraphQLMaxDepth
		case "max_root_fields":
			dst, limit = &opts.MaxRootFields, MaxGraphQLMaxRootFields
		case "max_batch":
			dst, limit = &opts.MaxBatch, MaxGraphQLMaxBatch
		}
		var n int64
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || v.Decode(&n) != nil || n < 1 || n > int64(limit) {
			l.errorf(v, fw, "must be a whole number from 1 to %d", limit)
			continue
		}
		*dst = int(n)
	}
}

// routePath checks a path or path_prefix and normalises it the way request
// paths are, so that both sides of a comparison are in the same form.
func (l *loader) routePath(f field, where string) (string, bool) {
	v, ok := l.scalar(f, where)
	if !ok {
		return "", false
	}
	if v == "" || v[0] != '/' {
		l.errorf(f.val, where, "%q must start with \"/\"", v)
		return "", false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '?' || c == '#':
			l.errorf(f.val, where, "%q has %q: routes match the path without query string or fragment", v, c)
			return "", false
		case c <= ' ' || c >= 0x7f:
			l.errorf(f.val, where, "%q has byte %#x at offset %d: percent-encode it", v, c, i)
			return "", false
		}
	}
	n, err := normalizePath(v, l.allowSlashes)
	if err != nil {
		l.errorf(f.val, where, "%q: %v", v, err)
		return "", false
	}
	if n != v {
		l.warnf(f.val, where, "%q is matched as %q, its normal form", v, n)
	}
	return n, true
}

// parseTemplate splits a normalised path into segments; a parameter is a
// whole segment, {name}.
func parseTemplate(p string) (segs []segment, literals int, err error) {
	seen := make(map[string]bool)
	for _, s := range strings.Split(p[1:], "/") {
		if !strings.ContainsAny(s, "{}") {
			segs = append(segs, segment{lit: s})
			literals++
			continue
		}
		if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' || strings.ContainsAny(s[1:len(s)-1], "{}") {
			return nil, 0, fmt.Errorf("segment %q: a parameter is a whole segment, like {id}", s)
		}
		name := s[1 : len(s)-1]
		switch {
		case name == "":
			return nil, 0, errors.New("empty parameter {}: name it, like {id}")
		case !isIdent(name):
			return nil, 0, fmt.Errorf("parameter name %q: use letters, digits and _", name)
		case seen[name]:
			return nil, 0, fmt.Errorf("parameter {%s} appears twice", name)
		}
		seen[name] = true
		segs = append(segs, segment{param: true})
	}
	return segs, literals, nil
}

func (l *loader) methods(f field, where string) []string {
	items, ok := l.list(f, where)
	if !ok {
		return nil
	}
	var out []string
	for i, n := range items {
		iwhere := fmt.Sprintf("%s[%d]", where, i)
		m, ok := l.scalar(field{val: n}, iwhere)
		switch {
		case !ok:
		case !isToken(m):
			l.errorf(n, iwhere, "%q is not an HTTP method", m)
		case strings.ToUpper(m) != m:
			// Methods match exactly; "get" would never match a GET.
			l.errorf(n, iwhere, "%q: methods match exactly, write it in upper case", m)
		case slices.Contains(out, m):
			l.errorf(n, iwhere, "%q is listed twice", m)
		default:
			out = append(out, m)
		}
	}
	return out
}

// isToken is RFC 9110's token, the syntax of a method.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// compileHost lower-cases a route's host and checks it. IPv6 literals are
// kept without brackets, the form requestHost gives.
func compileHost(v string) (string, error) {
	h := strings.ToLower(v)
	if strings.HasPrefix(h, "[") {
		if !strings.HasSuffix(h, "]") {
			return "", fmt.Errorf("%q: a host must not include a port (requests are matched without theirs)", v)
		}
		h = h[1 : len(h)-1]
		if a, err := netip.ParseAddr(h); err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("%q is not an IPv6 address", v)
		}
		return h, nil
	}
	if strings.Count(h, ":") > 1 {
		if a, err := netip.ParseAddr(h); err == nil && a.Is6() && a.Zone() == "" {
			return h, nil
		}
		return "", fmt.Errorf("%q is not a host name or address", v)
	}
	if strings.Contains(h, ":") {
		return "", fmt.Errorf("%q: a host must not include a port (requests are matched without theirs)", v)
	}
	h = strings.TrimSuffix(h, ".")
	switch {
	case h == "":
		return "", errors.New("empty: leave host out to match any host")
	case h == "*":
		return "", errors.New(`"*" is any host: leave host out instead`)
	case len(h) > maxHostLen:
		return "", fmt.Errorf("%q is longer than %d bytes", v, maxHostLen)
	}
	labels := strings.Split(strings.TrimPrefix(h, "*."), ".")
	for _, label := range labels {
		if label == "" {
			return "", fmt.Errorf("%q has an empty label", v)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_':
			case c == '*':
				return "", fmt.Errorf("%q: a wildcard is a whole first label, like *.example.com", v)
			default:
				return "", fmt.Errorf("%q has invalid character %q", v, c)
			}
		}
	}
	return h, nil
}

// checkName is the charset of service names, kinds and operations: the
// characters a scope pattern can name literally.
func checkName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return fmt.Errorf("%q has invalid character %q (allowed: A-Z a-z 0-9 . _ - /)", s, s[i:i+1])
		}
	}
	return nil
}

// index files the routes by host and sorts each list by precedence once.
// The sorts are stable and routes arrive in file order, so file order
// breaks ties.
func (t *Table) index(routes []*route) {
	wild := make(map[string]*candidates)
	for _, r := range routes {
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

// YAML walking. Every helper reports its own errors and tells the caller
// whether it got a usable value.

func (l *loader) errorf(n *yaml.Node, where, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s: %s", l.pos(n), where, fmt.Sprintf(format, args...)))
}

func (l *loader) warnf(n *yaml.Node, where, format string, args ...any) {
	l.warns = append(l.warns, fmt.Sprintf("%s: %s: %s", l.pos(n), where, fmt.Sprintf(format, args...)))
}

func (l *loader) pos(n *yaml.Node) string {
	if n != nil && n.Line > 0 {
		return fmt.Sprintf("%s:%d", l.file, n.Line)
	}
	return l.file
}

func join(where, field string) string {
	if where == "" {
		return field
	}
	return where + ": " + field
}

// spend charges one visited node to the budget.
func (l *loader) spend() bool {
	if l.budget > 0 {
		l.budget--
		return true
	}
	if !l.exhausted {
		l.exhausted = true
		l.errs = append(l.errs, fmt.Errorf("%s: too large once its YAML aliases are expanded", l.file))
	}
	return false
}

func (l *loader) deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		if !l.spend() {
			return nil
		}
		n = n.Alias
	}
	return n
}

// fields reads a mapping strictly: unknown and repeated fields are errors.
// Merge keys (<<) are honoured; fields written in the mapping itself win.
func (l *loader) fields(n *yaml.Node, where string, known []string) map[string]field {
	n = l.deref(n)
	if n == nil || !l.spend() {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n, orEntry(where), "must be a mapping with fields %s", strings.Join(known, ", "))
		return nil
	}
	out := make(map[string]field, len(known))
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := l.deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			return nil
		}
		if k.Kind != yaml.ScalarNode {
			l.errorf(k, orEntry(where), "a field name must be a plain string")
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		fw := join(where, k.Value)
		switch prev, dup := out[k.Value]; {
		case !slices.Contains(known, k.Value):
			l.errorf(k, fw, "unknown field (known: %s)", strings.Join(known, ", "))
		case dup:
			l.errorf(k, fw, "set twice (first at line %d)", prev.key.Line)
		default:
			out[k.Value] = field{key: k, val: v}
		}
	}
	for _, m := range merges {
		m = l.deref(m)
		if m == nil {
			return nil
		}
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, src := range srcs {
			got := l.fields(src, where, known)
			for _, name := range known {
				if f, ok := got[name]; ok {
					if _, set := out[name]; !set {
						out[name] = f
					}
				}
			}
		}
	}
	return out
}

func orEntry(where string) string {
	if where == "" {
		return "document"
	}
	return where
}

// scalar reads a string field; null reads as "".
func (l *loader) scalar(f field, where string) (string, bool) {
	v := l.deref(f.val)
	if v == nil {
		return "", false
	}
	if v.Kind != yaml.ScalarNode {
		l.errorf(v, where, "must be a string")
		return "", false
	}
	if v.ShortTag() == "!!null" {
		return "", true
	}
	return v.Value, true
}

// list reads a sequence; null reads as empty.
func (l *loader) list(f field, where string) ([]*yaml.Node, bool) {
	v := l.deref(f.val)
	if v == nil || !l.spend() {
		return nil, false
	}
	switch {
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
		return nil, true
	case v.Kind != yaml.SequenceNode:
		l.errorf(v, where, "must be a list")
		return nil, false
	}
	return v.Content, true
}
