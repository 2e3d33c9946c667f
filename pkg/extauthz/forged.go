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

// forgedName reports whether name folds to one of protected (lower-case
// names) without being it.
func forgedName(name string, protected []string) bool {
	for _, p := range protected {
		if len(name) == len(p) && foldEqual(name, p) && !strings.EqualFold(name, p) {
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
// protected one (forgedName), lower-cased, each once and sorted (whatever
// the decoding, one answer); nil, without
// allocating, when there is none, as for nearly every request. Both of
// Envoy's encodings are read: the headers map and header_map.
func (hs headerSource) forgedNames(protected []string) []string {
	var out []string
	if w := hs.w; w != nil {
		for i := range w.headers {
			if forgedName(w.headers[i].key, protected) {
				out = addForged(out, w.headers[i].key)
			}
		}
		for i := range w.headerMap {
			if forgedName(w.headerMap[i].key, protected) {
				out = addForged(out, w.headerMap[i].key)
			}
		}
		slices.Sort(out) // as for the map, below
		return out
	}
	for name := range hs.m {
		if forgedName(name, protected) {
			out = addForged(out, name)
		}
	}
	for _, hv := range hs.list {
		if name := hv.GetKey(); forgedName(name, protected) {
			out = addForged(out, name)
		}
	}
	slices.Sort(out) // the map's order is random
	return out
}

// forgedHTTPNames is forgedNames for the HTTP mode's forwarded request.
func forgedHTTPNames(hd http.Header, protected []string) []string {
	var out []string
	for name := range hd {
		if forgedName(name, protected) {
			out = addForged(out, name)
		}
	}
	slices.Sort(out) // the map's order is random
	return out
}
