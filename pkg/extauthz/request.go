package extauthz

import (
	"net/netip"
	"net/url"
	"strings"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/authz"
)

// partialBodyHeader is what Envoy adds to the check request when it cut the
// body at max_request_bytes (allow_partial_message).
const partialBodyHeader = "x-envoy-auth-partial-body"

// headerSource reads headers from either of Envoy's encodings: the
// `headers` map, or `header_map` (with encode_raw_headers), whose values
// may be in raw_value. Envoy lower-cases names in both.
type headerSource struct {
	m    map[string]string
	list []*corev3.HeaderValue
}

func newHeaderSource(h *authv3.AttributeContext_HttpRequest) headerSource {
	return headerSource{m: h.GetHeaders(), list: h.GetHeaderMap().GetHeaders()}
}

// get returns the first value of a header and how many values were sent;
// Envoy joins repeated headers with "," in the map form.
func (hs headerSource) get(name string) (string, int) {
	var first string
	n := 0
	if v, ok := hs.m[name]; ok {
		first, n = v, 1+strings.Count(v, ",")
	}
	for _, hv := range hs.list {
		if !strings.EqualFold(hv.GetKey(), name) {
			continue
		}
		v := hv.GetValue()
		if len(hv.GetRawValue()) > 0 {
			v = bytesToString(hv.GetRawValue())
		}
		if n == 0 {
			first = v
		}
		n += 1 + strings.Count(v, ",")
	}
	return first, n
}

// bytesToString views b as a string without copying. The CheckRequest
// outlives every use: the engine never keeps request strings past Check.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// stringToBytes views s as read-only bytes without copying.
func stringToBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// fillRequest lifts what the decision needs out of a CheckRequest.
func (s *Server) fillRequest(r *authz.Request, req *authv3.CheckRequest) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	hs := newHeaderSource(h)

	r.Key, r.KeyCount = hs.get(s.cfg.KeyHeader)
	addQueryKey(r, h.GetPath(), s.cfg.KeyQueryParam)

	r.Route.Host = h.GetHost()
	r.Route.Method = h.GetMethod()
	r.Route.Path = h.GetPath()
	r.Route.ContentType, _ = hs.get("content-type")
	r.Route.Extensions = attrs.GetContextExtensions()
	if raw := h.GetRawBody(); len(raw) > 0 {
		r.Route.Body = raw
	} else {
		r.Route.Body = stringToBytes(h.GetBody())
	}
	if v, _ := hs.get(partialBodyHeader); v == "true" {
		r.Route.BodyTruncated = true
	}

	if s.cfg.XFFTrustedHops == 0 {
		r.ClientIP = parseIP(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress())
	} else {
		xff, _ := hs.get("x-forwarded-for")
		r.ClientIP = ClientIPFromXFF(xff, s.cfg.XFFTrustedHops)
	}
}

// addQueryKey adds the key query parameter of a request target, when one
// is configured, to the key values r already holds from the key header:
// both adapters count header and parameter together, so that a request
// carrying both is malformed_key.
func addQueryKey(r *authz.Request, target, param string) {
	if param == "" {
		return
	}
	if v, n := queryParam(target, param); n > 0 {
		if r.KeyCount == 0 {
			r.Key = v
		}
		r.KeyCount += n
	}
}

// parseIP parses a peer address strictly; anything else is the zero Addr,
// which fails closed for keys with IP filters.
func parseIP(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a
}

// ClientIPFromXFF takes the hops-th address from the right of an
// x-forwarded-for value (1 = the rightmost, appended by the nearest trusted
// proxy). Too few entries or an unparseable entry give the zero Addr.
func ClientIPFromXFF(xff string, hops int) netip.Addr {
	if hops <= 0 {
		return netip.Addr{}
	}
	for i := 1; ; i++ {
		comma := strings.LastIndexByte(xff, ',')
		entry := xff[comma+1:]
		if i == hops {
			return parseIP(strings.TrimSpace(entry))
		}
		if comma < 0 {
			return netip.Addr{}
		}
		xff = xff[:comma]
	}
}

// queryParam finds a query parameter in a request target and how often it
// occurs. Only the first value is decoded.
func queryParam(path, name string) (string, int) {
	_, query, ok := strings.Cut(path, "?")
	if !ok {
		return "", 0
	}
	query, _, _ = strings.Cut(query, "#")
	var first string
	n := 0
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k != name {
			continue
		}
		if n == 0 {
			if dec, err := url.QueryUnescape(v); err == nil {
				first = dec
			} else {
				first = "\x00" // undecodable: malformed, never looked up
			}
		}
		n++
	}
	return first, n
}
