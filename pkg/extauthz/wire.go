package extauthz

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/keygate/keygate/pkg/authz"
)

// wireRequest is the part of Envoy's CheckRequest keygate reads, decoded
// straight from the protobuf wire bytes (decodeCheckRequest). protobuf-go
// builds the whole message by reflection, the headers map included: about
// 90 allocations and a fifth of a server's CPU per Check under load, for a
// dozen strings keygate looks at. Here the strings alias one copy of the
// message, and the header lists are reused between calls.
//
// Field for field it reads what protobuf-go would (proto.Unmarshal stays the
// reference; FuzzWireRequest compares the two): the last value of a
// repeated scalar field wins, a message field that occurs twice is merged,
// a map entry repeated wins, a known field number with another wire type is
// an unknown field, strings must be valid UTF-8. It is more lenient in one
// way only: the fields keygate does not read (request time, metadata
// contexts, TLS session, the destination peer) are checked for wire
// structure but not decoded, so invalid UTF-8 inside them goes unnoticed.
type wireRequest struct {
	method, path, host string
	body               string
	rawBody            []byte
	// headers are the entries of the headers map in wire order; a later
	// entry with the same name replaces an earlier one, as in the map.
	headers []wireHeader
	// headerMap is header_map (Envoy's encode_raw_headers form).
	headerMap []wireHeader
	ext       authz.Extensions
	// source is the source peer's socket address, "" when it has none.
	source string
	// underscore is set when some header name (of either list) holds
	// "_": only then can one pass for an identity header (forged.go).
	underscore bool
}

type wireHeader struct {
	key, value string
	raw        []byte
}

// reset empties w for reuse, dropping its references to the last message.
func (w *wireRequest) reset() {
	clear(w.headers)
	clear(w.headerMap)
	*w = wireRequest{headers: w.headers[:0], headerMap: w.headerMap[:0]}
}

// errNotUTF8 is protobuf-go's rule for proto3 strings.
var errNotUTF8 = errors.New("string field contains invalid UTF-8")

// decodeCheckRequest fills w from the wire form of an
// envoy.service.auth.v3.CheckRequest. b must not change while w is in use.
func (w *wireRequest) decodeCheckRequest(b []byte) error {
	w.reset()
	return fields(b, func(num protowire.Number, v []byte) error {
		if num == 1 {
			return wrap("attributes", w.decodeAttributes(v))
		}
		return nil
	})
}

// AttributeContext: source 1, request 4, context_extensions 10.
func (w *wireRequest) decodeAttributes(b []byte) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			return wrap("source", w.decodePeer(v))
		case 4:
			return wrap("request", w.decodeRequest(v))
		case 10:
			k, val, err := decodeStringEntry(v)
			w.ext.Set(k, val)
			return wrap("context_extensions", err)
		}
		return nil
	})
}

// AttributeContext.Peer: address 1, a config.core.v3.Address whose oneof is
// socket_address 1 (address 2), pipe 2 or envoy_internal_address 3;
// another member replaces the socket address. The peer's other fields are
// not read.
func (w *wireRequest) decodePeer(b []byte) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		return wrap("address", fields(v, func(num protowire.Number, v []byte) error {
			switch num {
			case 1:
				return wrap("socket_address", fields(v, func(num protowire.Number, v []byte) error {
					if num == 2 {
						return w.setString(&w.source, "address", v)
					}
					return nil
				}))
			case 2, 3:
				w.source = ""
			}
			return nil
		}))
	})
}

// AttributeContext.Request: http 2, an AttributeContext.HttpRequest:
// method 2, headers 3, path 4, host 5, body 11, raw_body 12, header_map 13;
// its other strings are checked, not kept.
func (w *wireRequest) decodeRequest(b []byte) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		if num != 2 {
			return nil
		}
		return wrap("http", fields(v, w.httpField))
	})
}

func (w *wireRequest) httpField(num protowire.Number, v []byte) error {
	switch num {
	case 1, 6, 7, 8, 10: // id, scheme, query, fragment, protocol
		if !utf8.Valid(v) {
			return errNotUTF8
		}
	case 2:
		return w.setString(&w.method, "method", v)
	case 3:
		k, val, err := decodeStringEntry(v)
		w.headers = append(w.headers, wireHeader{key: k, value: val})
		w.underscore = w.underscore || strings.IndexByte(k, '_') >= 0
		return wrap("headers", err)
	case 4:
		return w.setString(&w.path, "path", v)
	case 5:
		return w.setString(&w.host, "host", v)
	case 11:
		return w.setString(&w.body, "body", v)
	case 12:
		w.rawBody = v
	case 13:
		// config.core.v3.HeaderMap: headers 1, each a HeaderValue (key 1,
		// value 2, raw_value 3).
		return wrap("header_map", fields(v, func(num protowire.Number, v []byte) error {
			if num != 1 {
				return nil
			}
			var h wireHeader
			err := fields(v, func(num protowire.Number, v []byte) error {
				switch num {
				case 1:
					return w.setString(&h.key, "key", v)
				case 2:
					return w.setString(&h.value, "value", v)
				case 3:
					h.raw = v
				}
				return nil
			})
			w.headerMap = append(w.headerMap, h)
			w.underscore = w.underscore || strings.IndexByte(h.key, '_') >= 0
			return wrap("headers", err)
		}))
	}
	return nil
}

// decodeStringEntry reads one entry of a map<string, string>: key 1,
// value 2, either possibly absent (then "").
func decodeStringEntry(b []byte) (key, value string, err error) {
	err = fields(b, func(num protowire.Number, v []byte) error {
		var err error
		switch num {
		case 1:
			key, err = wireString(v)
		case 2:
			value, err = wireString(v)
		}
		return err
	})
	if err != nil {
		return "", "", err
	}
	return key, value, nil
}

// setString sets *dst to a string field's value, named name in an error.
func (w *wireRequest) setString(dst *string, name string, v []byte) error {
	s, err := wireString(v)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	*dst = s
	return nil
}

// wrap names the field an error was found in; nil stays nil.
func wrap(field string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", field, err)
}

// fields calls fn for each length-delimited field of the message b, the
// only wire type keygate reads; fields of other types are checked for
// structure and skipped, as protobuf-go skips a known field number sent
// with another wire type.
func fields(b []byte, fn func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		num, typ, v, n, err := nextField(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if typ == protowire.BytesType {
			if err := fn(num, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// nextField reads the field at the start of b: its number, wire type, the
// contents of a length-delimited value (nil for other types, which are
// skipped), and how many bytes it took.
func nextField(b []byte) (protowire.Number, protowire.Type, []byte, int, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, 0, protowire.ParseError(n)
	}
	if typ == protowire.BytesType {
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return 0, 0, nil, 0, protowire.ParseError(m)
		}
		return num, typ, v, n + m, nil
	}
	m := protowire.ConsumeFieldValue(num, typ, b[n:])
	if m < 0 {
		return 0, 0, nil, 0, protowire.ParseError(m)
	}
	return num, typ, nil, n + m, nil
}

// wireString views a string field's bytes as a string, after protobuf-go's
// UTF-8 check. The bytes are the request's own copy (see codec.Unmarshal).
func wireString(v []byte) (string, error) {
	if !utf8.Valid(v) {
		return "", errNotUTF8
	}
	return bytesToString(v), nil
}

// get is headerSource.get over the wire form: the headers map entry (the
// last with that exact name), then every header_map entry without case.
func (w *wireRequest) get(name string) (string, int) {
	var first string
	n := 0
	for i := len(w.headers) - 1; i >= 0; i-- {
		if h := &w.headers[i]; h.key == name {
			first, n = addValue(first, n, h.value)
			break
		}
	}
	for i := range w.headerMap {
		if h := &w.headerMap[i]; strings.EqualFold(h.key, name) {
			first, n = addValue(first, n, headerMapValue(h.value, h.raw))
		}
	}
	return first, n
}

// clientIPFromXFF is headerSource.clientIPFromXFF over the wire form: the
// lines in the order get reads them (the headers map entry, then every
// header_map entry), walked from the last.
func (w *wireRequest) clientIPFromXFF(hops int) netip.Addr {
	x := xffWalk{hops: hops}
	for i := len(w.headerMap) - 1; i >= 0; i-- {
		if h := &w.headerMap[i]; strings.EqualFold(h.key, headerForwardedForLower) {
			if x.line(headerMapValue(h.value, h.raw)) {
				return x.addr
			}
		}
	}
	for i := len(w.headers) - 1; i >= 0; i-- {
		if h := &w.headers[i]; h.key == headerForwardedForLower {
			if x.line(h.value) {
				return x.addr
			}
			break
		}
	}
	return netip.Addr{}
}

// keys lists the header names of w once each (the map's), then
// header_map's names as sent.
func (w *wireRequest) keys() []string {
	out := make([]string, 0, len(w.headers)+len(w.headerMap))
	for i, h := range w.headers {
		dup := false
		for _, later := range w.headers[i+1:] {
			if later.key == h.key {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, h.key)
		}
	}
	for _, h := range w.headerMap {
		out = append(out, h.key)
	}
	return out
}
