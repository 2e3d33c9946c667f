// Matching a request against the route table: the host (exact, then
// wildcards, longest first), then the path (exact, templates, prefixes)
// and the methods; and index, which files the routes in that precedence
// order once when the table is built.

package route

import (
	"slices"
	"strings"
)

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
