package route

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/yamlfile"
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
// "file:line: entry: field: what is wrong" (a *yamlfile.Error), so that one
// run of check-config shows everything to fix. Warnings describe what loads
// but is probably not meant (a prefix route hiding a gRPC service, a path
// written in a non-normal form); they are returned with or without an
// error. The table is nil exactly when the error is not.
//
// GraphQL routes need an OperationParser, set with Table.SetOperationParser.
func Parse(data []byte, filename string) (*Table, []string, error) {
	l := &loader{Reader: yamlfile.NewReader(filename, wording)}
	t := l.load(data)
	if err := yamlfile.Join(l.Errors()); err != nil {
		return nil, l.Warnings(), err
	}
	return t, l.Warnings(), nil
}

// wording is how routes files have always worded the YAML reader's findings.
var wording = yamlfile.Wording{
	Document:       "document",
	Want:           "must be",
	Unknown:        "unknown field (known: %[2]s)",
	UnknownAsField: true,
	Twice:          "set twice (first at line %d)",
	SecondDocument: "a routes file holds one YAML document",
	Budget:         "too large once its YAML aliases are expanded (more than %d-fold); write the values out",
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

// loader reads a routes file with the one YAML reader; it knows the fields
// and what they mean.
type loader struct {
	*yamlfile.Reader
	// allowSlashes is the file's allow_encoded_slashes, read before the
	// routes so that their paths are normalised as requests will be.
	allowSlashes bool
}

// grpcDecl is a grpc_services entry, kept to name it in messages.
type grpcDecl struct {
	name, where string
	line        int
}

func (l *loader) load(data []byte) *Table {
	root, ok := l.Document(data)
	if !ok {
		return nil
	}
	if root == nil {
		l.Errorf(nil, "", "services", "missing: the file declares no service")
		return nil
	}
	top := l.Mapping(root, "", topFields, "")
	if top == nil {
		return nil
	}
	if af, ok := top["allow_encoded_slashes"]; ok {
		l.allowSlashes, _ = l.Bool(af.Value, "", "allow_encoded_slashes")
	}
	sf, ok := top["services"]
	if !ok {
		l.Errorf(root, "", "services", "missing: the file declares no service")
		return nil
	}
	items, ok := l.List(sf.Value, "", "services")
	if !ok {
		return nil
	}
	if len(items) == 0 {
		l.Errorf(sf.Value, "", "services", "empty: the file declares no service")
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
		if name := yamlfile.Peek(sn, "name"); checkName(name) == nil {
			where = fmt.Sprintf("%s (%s)", index, name)
		}
		f := l.Mapping(sn, where, serviceFields, "")
		if f == nil {
			continue
		}
		s := &service{}
		nf, ok := f["name"]
		if !ok {
			l.Errorf(sn, where, "name", "missing")
		} else if name, ok := l.String(nf.Value, where, "name"); ok {
			if err := checkName(name); err != nil {
				l.Errorf(nf.Value, where, "name", "%v", err)
			} else {
				s.name = name
				if first, dup := declared[name]; dup {
					l.Errorf(nf.Value, where, "name", "service %q is already declared by %s", name, first)
				} else {
					declared[name] = fmt.Sprintf("%s (line %d)", index, nf.Value.Line)
					t.services[name] = s
					t.names = append(t.names, name)
				}
				where = fmt.Sprintf("%s (%s)", index, name)
			}
		}
		s.accepts = l.keyTypes(f, sn, where)
		if af, ok := f["accounts"]; ok {
			s.accounts = l.accounts(af.Value, where, "accounts")
		}

		rs, _ := l.List(f["routes"].Value, where, "routes")
		for j, rn := range rs {
			if r := l.route(rn, fmt.Sprintf("%s: routes[%d]", where, j), s); r != nil {
				routes = append(routes, r)
			}
		}
		gs, _ := l.List(f["grpc_services"].Value, where, "grpc_services")
		for j, gn := range gs {
			gwhere := fmt.Sprintf("%s: grpc_services[%d]", where, j)
			g, d, ok := l.grpcService(gn, gwhere, s)
			if !ok {
				continue
			}
			if first, dup := grpcSeen[d.name]; dup {
				l.Errorf(gn, gwhere, "name", "gRPC service %s is already declared by %s (line %d)", d.name, first.where, first.line)
				continue
			}
			grpcSeen[d.name] = d
			grpcDecls = append(grpcDecls, d)
			t.grpc[d.name] = g
			s.addKind(g.kind)
			s.catalog.add(g.kind, "") // its methods are not in the file
		}
	}

	l.checkOverlaps(routes)
	l.warnHostConflicts(routes)
	l.warnGRPCShadows(routes, grpcDecls)
	if l.NumErrors() > 0 {
		return nil
	}
	t.index(routes)
	return t
}

// keyTypes reads a service's key_types. Account keys serve only the Account
// API, so a routes file may not open a service to them.
func (l *loader) keyTypes(f yamlfile.Fields, sn *yaml.Node, where string) authz.KeyTypes {
	kf, ok := f["key_types"]
	if !ok {
		l.Errorf(sn, where, "key_types", "missing: list the key types the service accepts (service, app)")
		return 0
	}
	items, ok := l.List(kf.Value, where, "key_types")
	if !ok {
		return 0
	}
	if len(items) == 0 {
		l.Errorf(kf.Value, where, "key_types", "empty: list the key types the service accepts (service, app)")
		return 0
	}
	var accepts authz.KeyTypes
	for i, n := range items {
		field := fmt.Sprintf("key_types[%d]", i)
		v, ok := l.String(n, where, field)
		if !ok {
			continue
		}
		kt, err := authz.ParseKeyType(v)
		switch {
		case err != nil:
			l.Errorf(n, where, field, "unknown key type %q (want service or app)", v)
		case kt == authz.KeyTypeAccount:
			l.Errorf(n, where, field, "%q is not allowed: account keys serve only the Account API", v)
		case accepts.Has(kt):
			l.Errorf(n, where, field, "%q is listed twice", v)
		default:
			accepts = accepts.With(kt)
		}
	}
	return accepts
}

// accounts reads a service's accounts: the only accounts whose keys it
// accepts (row 6a). Listing none would lock every key out, which is
// never what the file means, so an empty list is an error.
func (l *loader) accounts(n *yaml.Node, where, field string) []string {
	items, ok := l.List(n, where, field)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		l.Errorf(n, where, field, "empty: list the account ids the service serves, or leave accounts out to serve every account")
		return nil
	}
	out := make([]string, 0, len(items))
	for i, n := range items {
		ifield := fmt.Sprintf("%s[%d]", field, i)
		v, ok := l.String(n, where, ifield)
		switch {
		case !ok:
		case checkName(v) != nil:
			l.Errorf(n, where, ifield, "account id: %v", checkName(v))
		case slices.Contains(out, v):
			l.Errorf(n, where, ifield, "%q is listed twice", v)
		default:
			out = append(out, v)
		}
	}
	return out
}

func (l *loader) grpcService(n *yaml.Node, where string, s *service) (grpcService, grpcDecl, bool) {
	g := grpcService{service: s.name, kind: "grpc", accepts: s.accepts, accounts: s.accounts}
	var name string
	nameNode := n
	switch n.Kind {
	case yaml.ScalarNode:
		name = n.Value
	case yaml.MappingNode:
		f := l.Mapping(n, where, grpcFields, "")
		if f == nil {
			return grpcService{}, grpcDecl{}, false
		}
		nf, ok := f["name"]
		if !ok {
			l.Errorf(n, where, "name", "missing")
			return grpcService{}, grpcDecl{}, false
		}
		if name, ok = l.String(nf.Value, where, "name"); !ok {
			return grpcService{}, grpcDecl{}, false
		}
		nameNode = nf.Value
		kind, ok := l.String(f["kind"].Value, where, "kind")
		if !ok {
			return grpcService{}, grpcDecl{}, false
		}
		if kind != "" {
			if err := checkName(kind); err != nil {
				l.Errorf(f["kind"].Value, where, "kind", "%v", err)
				return grpcService{}, grpcDecl{}, false
			}
			g.kind = kind
		}
	default:
		l.Errorf(n, where, "", "must be a gRPC service name (pkg.Service) or a mapping with name and kind")
		return grpcService{}, grpcDecl{}, false
	}
	if !isGRPCServiceName(name) {
		l.Errorf(nameNode, where, "name", "%q is not a full gRPC service name like users.v1.UserService", name)
		return grpcService{}, grpcDecl{}, false
	}
	return g, grpcDecl{name: name, where: where, line: nameNode.Line}, true
}

// route compiles one routes entry; nil if it has errors.
func (l *loader) route(n *yaml.Node, where string, s *service) *route {
	f := l.Mapping(n, where, routeFields, "")
	if f == nil {
		return nil
	}
	errsBefore := l.NumErrors()
	r := &route{
		where:  where,
		line:   n.Line,
		target: s.target(),
	}

	if pf, ok := f["protocol"]; ok {
		if v, ok := l.String(pf.Value, where, "protocol"); ok {
			switch v {
			case "", "http":
			case "graphql":
				opts := DefaultGraphQLOptions()
				r.gql = &opts
			default:
				l.Errorf(pf.Value, where, "protocol", "unknown protocol %q (want http or graphql)", v)
			}
		}
	}

	l.graphqlOptions(f, where, r.gql)

	if hf, ok := f["host"]; ok {
		if v, ok := l.String(hf.Value, where, "host"); ok {
			h, err := compileHost(v)
			if err != nil {
				l.Errorf(hf.Value, where, "host", "%v", err)
			}
			r.host = h
		}
	}

	pf, hasPath := f["path"]
	xf, hasPrefix := f["path_prefix"]
	switch {
	case hasPath && hasPrefix:
		l.Errorf(xf.Key, where, "path_prefix", "set together with path: a route matches by path or by path_prefix, not both")
	case !hasPath && !hasPrefix:
		l.Errorf(n, where, "path", "missing: a route needs path or path_prefix")
	case hasPath:
		if p, ok := l.routePath(pf.Value, where, "path"); ok {
			r.path = p
			if strings.ContainsAny(p, "{}") {
				segs, lits, err := parseTemplate(p)
				if err != nil {
					l.Errorf(pf.Value, where, "path", "malformed template %q: %v", p, err)
				}
				r.kind, r.segs, r.literals = templatePath, segs, lits
			}
		}
	default:
		if p, ok := l.routePath(xf.Value, where, "path_prefix"); ok {
			if strings.ContainsAny(p, "{}") {
				l.Errorf(xf.Value, where, "path_prefix", "%q has a brace: templates are written in path, not path_prefix", p)
			}
			r.kind, r.path = prefixPath, p
		}
	}

	if mf, ok := f["methods"]; ok {
		r.methods = l.methods(mf.Value, where, "methods")
	}

	for _, name := range []string{"kind", "operation"} {
		vf, ok := f[name]
		if !ok {
			continue
		}
		v, ok := l.String(vf.Value, where, name)
		switch {
		case !ok:
		case r.gql != nil:
			l.Errorf(vf.Key, where, name, "not allowed on a graphql route: the kind and operations come from the request body")
		case v != "":
			if err := checkName(v); err != nil {
				l.Errorf(vf.Value, where, name, "%v", err)
			}
			if name == "kind" && v == ExtensionKindGraphQL {
				l.Warnf(vf.Value, where, name, "%q is matched as a literal kind here: write protocol: graphql to have the request body parsed", v)
			}
		}
		if name == "kind" {
			r.target.Kind = v
		} else {
			r.target.Operation = v
		}
	}

	if l.NumErrors() > errsBefore {
		return nil
	}
	return r
}

// graphqlOptions reads the GraphQL fields of a route into opts, which is
// nil for a route that is not protocol: graphql (the fields are refused).
func (l *loader) graphqlOptions(f yamlfile.Fields, where string, opts *GraphQLOptions) {
	for _, name := range graphqlFields {
		vf, ok := f[name]
		if !ok {
			continue
		}
		if opts == nil {
			l.Errorf(vf.Key, where, name, "only allowed on a route with protocol: graphql")
			continue
		}
		var (
			dst   *int
			limit int
		)
		switch name {
		case "allow_persisted_queries":
			opts.AllowPersistedQueries, _ = l.Bool(vf.Value, where, name)
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
		if v, ok := l.Int(vf.Value, where, name, 1, limit); ok {
			*dst = v
		}
	}
}

// routePath checks a path or path_prefix and normalises it the way request
// paths are, so that both sides of a comparison are in the same form.
func (l *loader) routePath(n *yaml.Node, where, field string) (string, bool) {
	v, ok := l.String(n, where, field)
	if !ok {
		return "", false
	}
	if v == "" || v[0] != '/' {
		l.Errorf(n, where, field, "%q must start with \"/\"", v)
		return "", false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '?' || c == '#':
			l.Errorf(n, where, field, "%q has %q: routes match the path without query string or fragment", v, c)
			return "", false
		case c <= ' ' || c >= 0x7f:
			l.Errorf(n, where, field, "%q has byte %#x at offset %d: percent-encode it", v, c, i)
			return "", false
		}
	}
	norm, err := normalizePath(v, l.allowSlashes)
	if err != nil {
		l.Errorf(n, where, field, "%q: %v", v, err)
		return "", false
	}
	if norm != v {
		l.Warnf(n, where, field, "%q is matched as %q, its normal form", v, norm)
	}
	return norm, true
}

func (l *loader) methods(n *yaml.Node, where, field string) []string {
	items, _ := l.List(n, where, field)
	var out []string
	for i, n := range items {
		ifield := fmt.Sprintf("%s[%d]", field, i)
		m, ok := l.String(n, where, ifield)
		switch {
		case !ok:
		case !isToken(m):
			l.Errorf(n, where, ifield, "%q is not an HTTP method", m)
		case strings.ToUpper(m) != m:
			// Methods match exactly; "get" would never match a GET.
			l.Errorf(n, where, ifield, "%q: methods match exactly, write it in upper case", m)
		case slices.Contains(out, m):
			l.Errorf(n, where, ifield, "%q is listed twice", m)
		default:
			out = append(out, m)
		}
	}
	return out
}
