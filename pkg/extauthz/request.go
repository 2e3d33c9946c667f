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
// may be in raw_value. Envoy lower-cases names in both. It reads them from
// a decoded CheckRequest (m, list) or from keygate's own decoding (w).
type headerSource struct {
	m    map[string]string
	list []*corev3.HeaderValue
	w    *wireRequest
}

func newHeaderSource(h *authv3.AttributeContext_HttpRequest) headerSource {
	return headerSource{m: h.GetHeaders(), list: h.GetHeaderMap().GetHeaders()}
}

// get returns the first value of a header and how many values were sent;
// Envoy joins repeated headers with "," in the map form.
func (hs headerSource) get(name string) (string, int) {
	if hs.w != nil {
		return hs.w.get(name)
	}
	var first string
	n := 0
	if v, ok := hs.m[name]; ok {
		first, n = addValue(first, n, v)
	}
	for _, hv := range hs.list {
		if strings.EqualFold(hv.GetKey(), name) {
			first, n = addValue(first, n, headerMapValue(hv.GetValue(), hv.GetRawValue()))
		}
	}
	return first, n
}

// addValue counts one more sent value v of a header, given the first so
// far and how many: Envoy joins repeated headers with ",".
func addValue(first string, n int, v string) (string, int) {
	if n == 0 {
		first = v
	}
	return first, n + 1 + strings.Count(v, ",")
}

// headerMapValue is a header_map entry's value: raw_value when set.
func headerMapValue(value string, raw []byte) string {
	if len(raw) > 0 {
		return bytesToString(raw)
	}
	return value
}

// overridesMethod reports whether a method-override header (SPEC §9)
// names another method than method. It walks the headers once, comparing
// only names of the right length, so that the requests that carry none
// (nearly all) pay a length check per header.
func (hs headerSource) overridesMethod(method string) bool {
	if hs.w != nil {
		for i := range hs.w.headers {
			if h := &hs.w.headers[i]; isOverrideHeader(h.key) && overrides(method, h.value) {
				return true
			}
		}
		for i := range hs.w.headerMap {
			if h := &hs.w.headerMap[i]; isOverrideHeader(h.key) && overrides(method, headerMapValue(h.value, h.raw)) {
				return true
			}
		}
		return false
	}
	for _, name := range authz.MethodOverrideHeaders {
		if v, ok := hs.m[name]; ok && overrides(method, v) {
			return true
		}
	}
	for _, hv := range hs.list {
		if isOverrideHeader(hv.GetKey()) && overrides(method, headerMapValue(hv.GetValue(), hv.GetRawValue())) {
			return true
		}
	}
	return false
}

// isOverrideHeader reports whether name is a method-override header, in
// any case.
func isOverrideHeader(name string) bool {
	switch len(name) {
	case len("x-http-method"), len("x-method-override"), len("x-http-method-override"):
		for _, h := range authz.MethodOverrideHeaders {
			if strings.EqualFold(name, h) {
				return true
			}
		}
	}
	return false
}

// overrides reports whether a method-override header value v, possibly
// several values joined with ",", names another method than method.
func overrides(method, v string) bool {
	for {
		one, rest, more := strings.Cut(v, ",")
		if authz.OverridesMethod(method, one) {
			return true
		}
		if !more {
			return false
		}
		v = rest
	}
}

// Get returns the first value of a header ("" when absent): Headers.
func (hs headerSource) Get(name string) string {
	v, _ := hs.get(name)
	return v
}

// Keys lists the header names, the map's and then header_map's: Headers.
func (hs headerSource) Keys() []string {
	if hs.w != nil {
		return hs.w.keys()
	}
	keys := make([]string, 0, len(hs.m)+len(hs.list))
	for k := range hs.m {
		keys = append(keys, k)
	}
	for _, hv := range hs.list {
		keys = append(keys, hv.GetKey())
	}
	return keys
}

// Headers reads the HTTP headers of the request a Check is about, in
// either of Envoy's encodings, without case for header_map. A CheckTracer
// reads the caller's trace context from them.
type Headers interface {
	// Get returns the header's first value, "" when absent.
	Get(name string) string
	// Keys lists the header names sent.
	Keys() []string
}

// requestView is what fill reads of a CheckRequest, from either decoding.
type requestView struct {
	hs                 headerSource
	method, path, host string
	body               []byte
	ext                authz.Extensions
	source             string
	// message: the caller wants the answer as a message (Check on the
	// protobuf API), not in its wire form.
	message bool
}

func protoView(req *authv3.CheckRequest) requestView {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	return requestView{
		hs:     newHeaderSource(h),
		method: h.GetMethod(), path: h.GetPath(), host: h.GetHost(),
		ext:    authz.ExtensionsFrom(attrs.GetContextExtensions()),
		source: attrs.GetSource().GetAddress().GetSocketAddress().GetAddress(),
		body:   requestBody(h.GetRawBody(), h.GetBody()),
	}
}

func (w *wireRequest) view() requestView {
	return requestView{
		hs:     headerSource{w: w},
		method: w.method, path: w.path, host: w.host,
		ext: w.ext, source: w.source, body: requestBody(w.rawBody, w.body),
	}
}

// requestBody is the body Envoy sent: raw_body (pack_as_bytes), else body.
func requestBody(raw []byte, body string) []byte {
	if len(raw) > 0 {
		return raw
	}
	return stringToBytes(body)
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
func (s *Server) fillRequest(r *authz.Request, v *requestView) {
	r.Key, r.KeyCount = v.hs.get(s.cfg.KeyHeader)
	addQueryKey(r, v.path, s.cfg.KeyQueryParam)

	r.Route.Host = v.host
	r.Route.Method = v.method
	r.Route.Path = v.path
	r.Route.ContentType, _ = v.hs.get("content-type")
	r.Route.Extensions = v.ext
	r.Route.Body = v.body
	if b, _ := v.hs.get(partialBodyHeader); b == "true" {
		r.Route.BodyTruncated = true
	}
	r.Route.MethodOverridden = v.hs.overridesMethod(v.method)

	if s.cfg.XFFTrustedHops == 0 {
		r.ClientIP = parseIP(v.source)
	} else {
		r.ClientIP = v.hs.clientIPFromXFF(s.cfg.XFFTrustedHops)
	}
}

// headerForwardedForLower is x-forwarded-for as Envoy sends header names.
const headerForwardedForLower = "x-forwarded-for"

// clientIPFromXFF is ClientIPFromXFF over every x-forwarded-for line the
// request carries, joined in order (SPEC §9): the map's value, then each
// header_map entry. It walks the lines from the last one back, so it
// neither joins nor allocates.
func (hs headerSource) clientIPFromXFF(hops int) netip.Addr {
	if hs.w != nil {
		return hs.w.clientIPFromXFF(hops)
	}
	x := xffWalk{hops: hops}
	for i := len(hs.list) - 1; i >= 0; i-- {
		if hv := hs.list[i]; strings.EqualFold(hv.GetKey(), headerForwardedForLower) {
			if x.line(headerMapValue(hv.GetValue(), hv.GetRawValue())) {
				return x.addr
			}
		}
	}
	if v, ok := hs.m[headerForwardedForLower]; ok && x.line(v) {
		return x.addr
	}
	return netip.Addr{}
}

// xffWalk finds the hops-th address from the right of x-forwarded-for
// lines given from the last to the first: the same answer as
// ClientIPFromXFF over the lines joined in order with ",".
type xffWalk struct {
	hops int // >= 1
	seen int // entries passed so far, from the right
	addr netip.Addr
}

// line takes the next line to the left. It reports true when the hops-th
// entry was in it, with x.addr set (the zero Addr when unparseable).
func (x *xffWalk) line(v string) bool {
	for {
		comma := strings.LastIndexByte(v, ',')
		x.seen++
		if x.seen == x.hops {
			x.addr = parseIP(strings.TrimSpace(v[comma+1:]))
			return true
		}
		if comma < 0 {
			return false
		}
		v = v[:comma]
	}
}

// clientIPFromXFFLines is ClientIPFromXFF over lines joined in order.
func clientIPFromXFFLines(lines []string, hops int) netip.Addr {
	if hops <= 0 {
		return netip.Addr{}
	}
	x := xffWalk{hops: hops}
	for i := len(lines) - 1; i >= 0; i-- {
		if x.line(lines[i]) {
			return x.addr
		}
	}
	return netip.Addr{}
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
