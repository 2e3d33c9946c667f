package extauthz

import (
	"net/http"
	"slices"
	"strings"
)

// Forged identity headers (SPEC §9 "Responses"). keygate overwrites or
// removes the identity headers and removes the key header, by their exact
// names. An upstream that folds "_" into "-" (many CGI-style frameworks,
// some proxies) would still read a client's `x_keygate_tenant_id: victim`
// as x-keygate-tenant-id. So every request header whose name folds — ASCII
// case-insensitively, "_" read as "-" — to a protected name without being
// it is removed too. Envoy sends names lower-cased; header_map entries are
// compared without case all the same.

// protectedNames are the names forged spellings are looked for: the key
// header and the identity headers, lower-cased, with what lets most
// request headers be passed over at once.
type protectedNames struct {
	names []string
	// lengths has bit n set when some name is n bytes long (names over 63
	// bytes set bit 63 and are compared whatever their length).
	lengths uint64
	// underscore is set when some protected name holds "_": only then can
	// a request header without "_" fold to one without being it.
	underscore bool
}

func newProtectedNames(names []string) protectedNames {
	p := protectedNames{names: names}
	for _, n := range names {
		p.lengths |= 1 << min(len(n), 63)
		p.underscore = p.underscore || strings.IndexByte(n, '_') >= 0
	}
	return p
}

// forged reports whether name folds to one of the protected names without
// being it. Most names are passed over here, inlined, by their length or
// (with the default names) for holding no "_".
func (p *protectedNames) forged(name string) bool {
	if p.lengths&(1<<min(len(name), 63)) == 0 || !p.underscore && strings.IndexByte(name, '_') < 0 {
		return false
	}
	return p.compare(name)
}

func (p *protectedNames) compare(name string) bool {
	for _, n := range p.names {
		if len(name) == len(n) && foldEqual(name, n) && !strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// foldEqual compares two names of equal length with ASCII case folded and
// "_" read as "-".
func foldEqual(a, b string) bool {
	for i := 0; i < len(a); i++ {
		if foldByte(a[i]) != foldByte(b[i]) {
			return false
		}
	}
	return true
}

func foldByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_':
		return '-'
	}
	return c
}

// addForged appends name, lower-cased, to dst unless dst has it already.
func addForged(dst []string, name string) []string {
	name = strings.ToLower(name)
	for _, d := range dst {
		if d == name {
			return dst
		}
	}
	return append(dst, name)
}

// forgedNames returns the request's header names that pass for a
// protected one (protectedNames.forged), lower-cased, each once and sorted (whatever
// the decoding, one answer); nil, without
// allocating, when there is none, as for nearly every request. Both of
// Envoy's encodings are read: the headers map and header_map.
func (hs headerSource) forgedNames(protected *protectedNames) []string {
	var out []string
	if w := hs.w; w != nil {
		if !w.underscore && !protected.underscore {
			return nil // noted while decoding: no name holds "_"
		}
		for i := range w.headers {
			if protected.forged(w.headers[i].key) {
				out = addForged(out, w.headers[i].key)
			}
		}
		for i := range w.headerMap {
			if protected.forged(w.headerMap[i].key) {
				out = addForged(out, w.headerMap[i].key)
			}
		}
		slices.Sort(out) // as for the map, below
		return out
	}
	for name := range hs.m {
		if protected.forged(name) {
			out = addForged(out, name)
		}
	}
	for _, hv := range hs.list {
		if name := hv.GetKey(); protected.forged(name) {
			out = addForged(out, name)
		}
	}
	slices.Sort(out) // the map's order is random
	return out
}

// forgedHTTPNames is forgedNames for the HTTP mode's forwarded request.
func forgedHTTPNames(hd http.Header, protected *protectedNames) []string {
	var out []string
	for name := range hd {
		if protected.forged(name) {
			out = addForged(out, name)
		}
	}
	slices.Sort(out) // the map's order is random
	return out
}
