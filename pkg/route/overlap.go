package route

import (
	"fmt"
	"slices"
	"strings"
)

// The checks of a loaded table that look at routes together: duplicates,
// unreachable routes, host routes that disagree with host-less ones
// (SPEC §9), and prefix routes hiding gRPC services.

// specKey is what a route matches apart from methods: two routes with
// the same key and overlapping methods match the same requests.
type specKey struct {
	host string
	kind pathKind
	path string
}

func (r *route) spec() specKey {
	k := specKey{host: r.host, kind: r.kind, path: r.path}
	if r.kind == templatePath {
		// Parameter names do not change what a template matches.
		var b strings.Builder
		for _, s := range r.segs {
			b.WriteByte('/')
			if s.param {
				b.WriteString("{}")
			} else {
				b.WriteString(s.lit)
			}
		}
		k.path = b.String()
	}
	return k
}

func (r *route) pathField() string {
	if r.kind == prefixPath {
		return "path_prefix"
	}
	return "path"
}

// checkOverlaps refuses duplicates and warns about unreachable routes
// (SPEC §9). Two routes with the same host and path are duplicates only
// when their method sets are equal (absent = every method): then the file
// says two things about the same requests. A route listing methods ahead
// of a catch-all for the same path is the normal way to split a path by
// method; the reverse order leaves the later route unreachable, which
// loads but is warned about.
func (l *loader) checkOverlaps(routes []*route) {
	seen := make(map[specKey][]*route)
	for _, r := range routes {
		k := r.spec()
		for _, prev := range seen[k] {
			if sameMethods(prev.methods, r.methods) {
				l.Fail(r.line, r.where, r.pathField(), fmt.Errorf("%q matches exactly the same requests (%s) as %s (line %d): remove one, or give them different methods",
					r.path, describeMethods(r.methods), prev.where, prev.line))
				break
			}
			if coversMethods(prev.methods, r.methods) {
				l.Warn(r.line, r.where, r.pathField(), fmt.Errorf("%q is unreachable: %s (line %d) comes first and matches every request it does (%s); move it after, or drop it",
					r.path, prev.where, prev.line, describeMethods(r.methods)))
				break
			}
		}
		seen[k] = append(seen[k], r)
	}
}

// sameMethods reports whether two method sets are equal (nil is any).
func sameMethods(a, b []string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	return coversMethods(a, b)
}

// coversMethods reports whether set a holds every method of b (nil is
// any).
func coversMethods(a, b []string) bool {
	switch {
	case a == nil:
		return true
	case b == nil:
		return false
	}
	for _, m := range b {
		if !slices.Contains(a, m) {
			return false
		}
	}
	return true
}

func describeMethods(m []string) string {
	if m == nil {
		return "any method"
	}
	return "methods " + strings.Join(m, ", ")
}

// overlapMethods reports whether two method sets share a method (nil is
// any).
func overlapMethods(a, b []string) bool {
	if a == nil || b == nil {
		return true
	}
	for _, m := range b {
		if slices.Contains(a, m) {
			return true
		}
	}
	return false
}

// warnHostConflicts warns about every pair of a host route and a host-less
// route that can match the same request with different targets (SPEC §9):
// keygate refuses such requests (unknown_route), since the Host is the
// client's to set and whether Envoy routes by it is not keygate's to know.
func (l *loader) warnHostConflicts(routes []*route) {
	const shown = 5
	for _, h := range routes {
		if h.host == "" {
			continue
		}
		var others []string
		for _, a := range routes {
			if a.host != "" || h.sameTarget(a.target, a.gql != nil) ||
				!overlapMethods(h.methods, a.methods) || !pathsOverlap(h, a) {
				continue
			}
			others = append(others, fmt.Sprintf("%s (line %d)", a.where, a.line))
		}
		if others == nil {
			continue
		}
		if n := len(others); n > shown {
			others = append(others[:shown], fmt.Sprintf("%d more", n-shown))
		}
		l.Warn(h.line, h.where, "host "+h.host, fmt.Errorf("%s %q can match the same requests as host-less routes with other operations (%s): keygate denies those requests (unknown_route), since the client sets the Host; give the host its own Envoy virtual host with context_extensions, or put the routes on paths of their own",
			h.pathField(), h.path, strings.Join(others, ", ")))
	}
}

// pathsOverlap reports whether some normalised path matches both routes.
// A path witnessing it is built from one route and tried on the other.
func pathsOverlap(a, b *route) bool {
	if a.kind > b.kind {
		a, b = b, a // exact < template < prefix
	}
	switch {
	case a.kind == exactPath:
		return b.matchesPath(a.path)
	case a.kind == templatePath && b.kind == templatePath:
		if len(a.segs) != len(b.segs) {
			return false
		}
		for i := range a.segs {
			if !a.segs[i].param && !b.segs[i].param && a.segs[i].lit != b.segs[i].lit {
				return false
			}
		}
		return true
	case a.kind == templatePath:
		return b.matchesPath(a.witness(b.path))
	}
	return matchPrefix(a.path, b.path) || matchPrefix(b.path, a.path) ||
		matchPrefix(a.path, b.path+"/") || matchPrefix(b.path, a.path+"/")
}

// matchesPath reports whether route r matches path, methods aside.
func (r *route) matchesPath(path string) bool {
	switch r.kind {
	case exactPath:
		return r.path == path
	case templatePath:
		return r.matchTemplate(path, strings.Count(path, "/"))
	}
	return matchPrefix(r.path, path)
}

// witness is a path template r matches that is as close to prefix as it
// can be: each parameter takes the prefix's segment at its place (or "x").
func (r *route) witness(prefix string) string {
	ps := strings.Split(prefix[1:], "/")
	var b strings.Builder
	for i, s := range r.segs {
		b.WriteByte('/')
		switch {
		case !s.param:
			b.WriteString(s.lit)
		case i < len(ps) && ps[i] != "":
			b.WriteString(ps[i])
		default:
			b.WriteString("x")
		}
	}
	return b.String()
}

// warnGRPCShadows warns about prefix and template routes that take gRPC
// requests for a declared service: the table comes first, so grpc_services
// would never see them.
func (l *loader) warnGRPCShadows(routes []*route, decls []grpcDecl) {
	for _, r := range routes {
		if r.kind == exactPath || (r.methods != nil && !slices.Contains(r.methods, "POST")) {
			continue
		}
		var hidden []string
		for _, d := range decls {
			var shadows bool
			if r.kind == prefixPath {
				shadows = matchPrefix(r.path, "/"+d.name+"/")
			} else {
				shadows = len(r.segs) == 2 && r.segs[1].param && (r.segs[0].param || r.segs[0].lit == d.name)
			}
			if shadows {
				hidden = append(hidden, fmt.Sprintf("%s (%s, line %d)", d.name, d.where, d.line))
			}
		}
		if hidden == nil {
			continue
		}
		on := ""
		if r.host != "" {
			on = " on host " + r.host
		}
		l.Warn(r.line, r.where, r.pathField(), fmt.Errorf("%q shadows gRPC services %s: their calls%s match this route, not grpc_services",
			r.path, strings.Join(hidden, ", "), on))
	}
}
