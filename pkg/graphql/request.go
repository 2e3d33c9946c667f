package graphql

import (
	"fmt"
	"net/url"
	"strings"
	"unsafe"
)

// request is one GraphQL request: a document with an optional operation
// name, or (no query) a persisted-query hash. Its strings may alias the
// request.
type request struct {
	// query is the document; as the JSON body writes it (not decoded yet)
	// when escaped is set.
	query     string
	escaped   bool
	opName    string
	persisted bool
}

// The parameters of a GraphQL request, as bits of a set.
const (
	paramQuery uint8 = 1 << iota
	paramOperationName
	paramExtensions
)

var paramNames = [...]struct {
	bit  uint8
	name string
}{
	{paramQuery, "query"},
	{paramOperationName, "operationName"},
	{paramExtensions, "extensions"},
}

// params are the GraphQL parameters of a query string or a form body.
type params struct {
	seen                      uint8
	query, opName, extensions string
}

// readParams reads the GraphQL parameters of an application/x-www-form-
// urlencoded string: a URL's query string or a form body (where says
// which). Every other parameter is skipped without being decoded. A
// parameter given twice, a malformed escape or a ";" (which some servers
// take as a separator) is refused: servers disagree on what they mean.
func readParams(q, where string) (params, error) {
	var p params
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" {
			continue
		}
		if strings.IndexByte(pair, ';') >= 0 {
			return p, fmt.Errorf("the %s has a %q: separate parameters with %q", where, ';', '&')
		}
		k, v, _ := strings.Cut(pair, "=")
		if strings.IndexByte(k, '%') >= 0 || strings.IndexByte(k, '+') >= 0 {
			dk, err := url.QueryUnescape(k)
			if err != nil {
				return p, fmt.Errorf("the %s has a malformed escape in a parameter name", where)
			}
			k = dk
		}
		var bit uint8
		for _, n := range paramNames {
			if k == n.name {
				bit = n.bit
			}
		}
		if bit == 0 {
			continue
		}
		if p.seen&bit != 0 {
			return p, fmt.Errorf("the %s has parameter %q twice", where, k)
		}
		p.seen |= bit
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return p, fmt.Errorf("the %s has a malformed escape in parameter %q", where, k)
		}
		switch bit {
		case paramQuery:
			p.query = dv
		case paramOperationName:
			p.opName = dv
		case paramExtensions:
			p.extensions = dv
		}
	}
	return p, nil
}

// request turns parameters into a request; extensions are JSON.
func (p *params) request() (request, error) {
	r := request{query: p.query, opName: p.opName}
	if p.seen&paramExtensions != 0 && p.query == "" {
		s := scanner{b: stringToBytes(p.extensions)}
		var err error
		if r.persisted, err = s.extensions(); err != nil {
			return r, fmt.Errorf("parameter \"extensions\": %w", err)
		}
		if err := s.end(); err != nil {
			return r, fmt.Errorf("parameter \"extensions\": %w", err)
		}
	}
	return r, nil
}

// rawQuery is the query string of a request target.
func rawQuery(path string) string {
	_, q, ok := strings.Cut(path, "?")
	if !ok {
		return ""
	}
	q, _, _ = strings.Cut(q, "#")
	return q
}

// request reads one JSON request object: query, operationName and
// extensions; everything else (variables) is skipped. Keys are matched
// exactly; a key that differs from one of them only in case is refused,
// since some servers match keys case-insensitively, and so is a key given
// twice, since servers disagree on which one counts.
func (s *scanner) request(r *request) error {
	var seen uint8
	return s.object(1, func(raw []byte, escaped bool) error {
		var bit uint8
		for _, n := range paramNames {
			if keyIs(raw, escaped, n.name) {
				bit = n.bit
				break
			}
		}
		if bit == 0 {
			key := bytesToString(raw)
			if escaped {
				key = unescape(raw, true)
			}
			for _, n := range paramNames {
				if strings.EqualFold(key, n.name) {
					return fmt.Errorf("GraphQL request key %s is not %q (keys are case-sensitive)", quote(key), n.name)
				}
			}
			return s.skip(1)
		}
		if seen&bit != 0 {
			return fmt.Errorf("GraphQL request key %q appears twice", fieldName(bit))
		}
		seen |= bit
		var err error
		switch bit {
		case paramQuery:
			r.query, r.escaped, err = s.rawStringOrNull()
		case paramOperationName:
			var raw string
			var escaped bool
			raw, escaped, err = s.rawStringOrNull()
			r.opName = raw
			if escaped {
				r.opName = unescape(stringToBytes(raw), true)
			}
		default:
			r.persisted, err = s.extensions()
		}
		if err == errNotString {
			return fmt.Errorf("GraphQL request key %q must be a string", fieldName(bit))
		}
		return err
	})
}

func fieldName(bit uint8) string {
	for _, n := range paramNames {
		if n.bit == bit {
			return n.name
		}
	}
	return ""
}

// extensions reads an extensions object (or null) and reports whether it
// carries a persisted query.
func (s *scanner) extensions() (persisted bool, err error) {
	switch s.peek() {
	case 'n':
		return false, s.literal("null")
	case '{':
	default:
		return false, fmt.Errorf("GraphQL request key %q must be an object", "extensions")
	}
	err = s.object(2, func(raw []byte, escaped bool) error {
		if keyIs(raw, escaped, "persistedQuery") && s.peek() != 'n' {
			persisted = true
		}
		return s.skip(2)
	})
	return persisted, err
}

// stringToBytes views s as bytes, which must not be changed.
func stringToBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// bytesToString views b as a string; the caller keeps b unchanged while
// the string is in use.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// mediaType is the media type of a content-type value, without
// parameters; it is compared case-insensitively.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(mt)
}

// quote quotes a caller-supplied string for a message, clipped so that a
// message never grows with the request.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		return fmt.Sprintf("%q…", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}
