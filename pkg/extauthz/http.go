package extauthz

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/pkg/authz"
)

// MaxHTTPBody is how much of a forwarded request body the HTTP mode reads
// when the engine's Router is not an authz.BodyRouter, which cannot say
// which routes read a body: then every body is read up to here, a longer
// one cut and marked truncated, as Envoy does with allow_partial_message.
// With a BodyRouter (route.Router) only GraphQL routes read a body, up to
// their own max_body_bytes.
const MaxHTTPBody = 1 << 20

// HeadersToRemoveHeader lists, in an allow, the request headers the proxy
// must remove before it forwards the request upstream: the key header and
// the identity headers that do not apply to the key (the tenant of an app
// key), so that a client's forged value never reaches upstream. Envoy's
// http_service applies it as is; other proxies overwrite each identity
// header with the allow's value, which is absent (empty) for those.
const HeadersToRemoveHeader = "X-Envoy-Auth-Headers-To-Remove"

// DenyBodyHeader repeats, in a deny to an nginx-convention request (one
// with X-Original-URI or X-Original-Method), the deny body as one line of
// ASCII JSON. nginx auth_request drops the auth response's body and answers
// anything but 2xx, 401 and 403 with 500; its error_page locations read the
// body and the status back with auth_request_set (docs/http-mode.md).
const DenyBodyHeader = "X-Keygate-Deny-Body"

// Request headers the HTTP mode reads, in canonical form.
const (
	headerForwardedMethod = "X-Forwarded-Method"
	headerOriginalMethod  = "X-Original-Method"
	headerForwardedURI    = "X-Forwarded-Uri"
	headerOriginalURI     = "X-Original-Uri"
	headerForwardedHost   = "X-Forwarded-Host"
	headerForwardedFor    = "X-Forwarded-For"
	headerContentType     = "Content-Type"
	headerPartialBody     = "X-Envoy-Auth-Partial-Body"
)

// methodOverrideHeaders are authz.MethodOverrideHeaders in canonical form.
var methodOverrideHeaders = func() []string {
	out := make([]string, len(authz.MethodOverrideHeaders))
	for i, h := range authz.MethodOverrideHeaders {
		out[i] = textproto.CanonicalMIMEHeaderKey(h)
	}
	return out
}()

// Shared response header values. The header map keeps them after the
// handler returns; every slice has len == cap so that an Add by a wrapper
// copies instead of writing into the shared array.
var (
	valueJSON       = []string{"application/json"}
	valueRetryAfter = []string{"1"}
	valueClose      = []string{"close"}
)

// bodyKeepLimit is the largest body buffer a pooled state keeps.
const bodyKeepLimit = 64 << 10

// httpHandler is the HTTP mode's handler.
type httpHandler struct {
	engine    *authz.Engine
	cfg       Config
	obs       Observer
	log       *slog.Logger
	keyHeader string // cfg.KeyHeader in canonical form
	names     *headerNames
	protected protectedNames
	denied    map[authz.Reason]*httpDenial
	states    sync.Pool
}

// httpDenial is a deny answer built once: status, body, and the body as a
// header value for nginx.
type httpDenial struct {
	status        int
	body          []byte
	contentLength []string
	bodyHeader    []string
}

type httpState struct {
	req  authz.Request
	dec  authz.Decision
	body bytes.Buffer
	rh   [8]authz.Header
}

// httpKeyParts is the HTTP form of a key's keyParts: canonical header
// names with ready value slices.
type httpKeyParts struct {
	identity []httpHeader // the identity headers that apply to the key
	response []httpHeader // fixed response headers
	remove   []string     // HeadersToRemoveHeader's value
	// dynamicNames are the canonical names of every response header when
	// some of them depend on the request; their values are rendered per
	// request, in AppendResponseHeaders' order.
	dynamicNames []string
}

type httpHeader struct {
	name  string
	value []string
}

// NewHTTPHandler returns the HTTP mode's handler: every request it serves
// is a check of the original request the forwarded headers describe, on
// any path. cfg should have passed Validate; obs and log may be nil. Each
// decision is recorded with obs.ObserveCheck(r.Context(), …).
//
// The HTTP mode speaks the forward-auth protocol of Envoy's ext_authz
// http_service, nginx auth_request, Traefik ForwardAuth and Caddy
// forward_auth. The proxy
// sends keygate a copy of the request's headers (and, with Envoy's
// with_request_body, its body); keygate answers 200 with the headers to
// copy upstream, or the deny status with the JSON body. docs/http-mode.md
// has a working configuration for each proxy.
//
// What the HTTP mode reads:
//   - method: X-Forwarded-Method (Traefik, Caddy), then X-Original-Method
//     (nginx, set by its config), then the request's own method;
//   - request target (path and query, not decoded): X-Forwarded-Uri, then
//     X-Original-URI, then the request's own target (Envoy's http_service
//     sends the original path as the request path: leave its path_prefix
//     empty, since keygate strips nothing);
//   - host: X-Forwarded-Host, then Host;
//   - the key from the key header and, when configured, the query parameter
//     of the original target;
//   - the client IP from X-Forwarded-For with XFFTrustedHops >= 1. With 0
//     the client IP is unknown: keygate's peer is the proxy, never the
//     client, and taking the proxy's address would let anyone through a key
//     filtered to the proxy's network. Keys with IP filters then fail closed
//     (ip_not_allowed); keys without filters are unaffected;
//   - the body, when the proxy forwards one, only for a route that reads
//     it (authz.BodyRouter: GraphQL routes) and at most its limit: a
//     Content-Length over the limit is refused (400 invalid_graphql)
//     before a byte is read, a longer body without one is cut at the limit
//     and marked truncated. A route that reads no body never reads it
//     (SPEC §16).
//
// An empty forwarded header counts as absent. More than one value of a
// forwarded header is ambiguous and answered 400 invalid_path: a proxy sets
// each of them exactly once. Envoy's context_extensions do not exist in
// this protocol: requests are routed by the route table only.
//
// The proxy must set or clear every forwarded header keygate reads: nginx
// and Traefik pass the client's own headers on to the auth request, so a
// header the proxy leaves alone is the client's to choose.
func NewHTTPHandler(engine *authz.Engine, cfg Config, obs Observer, log *slog.Logger) http.Handler {
	cfg = cfg.WithDefaults()
	if obs == nil {
		obs = nopObserver{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &httpHandler{
		engine:    engine,
		cfg:       cfg,
		obs:       obs,
		log:       log,
		keyHeader: textproto.CanonicalMIMEHeaderKey(cfg.KeyHeader),
		names:     namesFor(&cfg),
		protected: newProtectedNames(cfg.protectedHeaders()),
		denied:    make(map[authz.Reason]*httpDenial),
	}
	for _, r := range authz.Reasons() {
		if r != authz.OK {
			h.denied[r] = newHTTPDenial(r, DenyBody(r, cfg.GenericKeyErrors))
		}
	}
	if cfg.XFFTrustedHops == 0 {
		log.Warn("http authz: xff-trusted-hops is 0, so the HTTP mode cannot know client IPs and denies keys with IP filters; "+
			"have the proxy append the client to X-Forwarded-For and set xff-trusted-hops to the number of proxies that append",
			"listener", "http")
	}
	return h
}

func newHTTPDenial(r authz.Reason, body string) *httpDenial {
	return &httpDenial{
		status:        DenialFor(r).HTTPStatus,
		body:          []byte(body),
		contentLength: []string{strconv.Itoa(len(body))},
		bodyHeader:    []string{asciiJSON(body)},
	}
}

// ServeHTTP checks one forwarded request.
func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st, _ := h.states.Get().(*httpState)
	if st == nil {
		st = new(httpState)
	}
	defer h.putState(st)

	ctx := r.Context()
	d := &st.dec
	if problem := h.fillRequest(&st.req, r); problem != "" {
		*d = authz.Decision{Reason: authz.InvalidPath, Target: authz.Target{Detail: problem}}
	} else if detail := h.readBody(w, r, &st.req.Route, &st.body); detail != "" {
		*d = authz.Decision{Reason: authz.InvalidGraphQL, Target: authz.Target{GraphQL: true, Detail: detail}}
		// The body stays unread: the connection cannot carry another
		// request, and net/http must not drain it first.
		w.Header()["Connection"] = valueClose
	} else {
		*d = h.engine.Check(ctx, &st.req)
	}
	if d.Allowed() {
		h.writeAllow(w, d, st, forgedHTTPNames(r.Header, &h.protected))
	} else {
		h.writeDeny(w, r, d)
		logDeny(ctx, h.log, d)
	}
	h.obs.ObserveCheck(ctx, d, time.Since(start))
}

func (h *httpHandler) putState(st *httpState) {
	// Drop references to the request and the key; keep a small buffer.
	st.req, st.dec = authz.Request{}, authz.Decision{}
	st.rh = [8]authz.Header{}
	if st.body.Cap() > bodyKeepLimit {
		st.body = bytes.Buffer{}
	}
	st.body.Reset()
	h.states.Put(st)
}

// fillRequest lifts the original request out of the forwarded one. It
// returns a problem, safe to show the caller, when the forwarded headers
// are ambiguous.
func (h *httpHandler) fillRequest(req *authz.Request, r *http.Request) string {
	hd := r.Header
	method, problem := forwarded(hd, headerForwardedMethod, headerOriginalMethod)
	if problem != "" {
		return problem
	}
	if method == "" {
		method = r.Method
	}
	target, problem := forwarded(hd, headerForwardedURI, headerOriginalURI)
	if problem != "" {
		return problem
	}
	if target == "" {
		target = r.RequestURI
		if target == "" || target[0] != '/' {
			// Absolute-form target, or a request not read by a server.
			target = r.URL.RequestURI()
		}
	}
	host, problem := forwarded(hd, headerForwardedHost, "")
	if problem != "" {
		return problem
	}
	if strings.IndexByte(host, ',') >= 0 {
		return "several hosts in " + headerForwardedHost
	}
	if host == "" {
		host = r.Host
	}

	if vs := hd[h.keyHeader]; len(vs) > 0 {
		req.Key = vs[0]
		for _, v := range vs {
			req.KeyCount += 1 + strings.Count(v, ",")
		}
	}
	addQueryKey(req, target, h.cfg.KeyQueryParam)

	req.Route.Host = host
	req.Route.Method = method
	req.Route.Path = target
	if vs := hd[headerContentType]; len(vs) > 0 {
		req.Route.ContentType = vs[0]
	}
	for _, name := range methodOverrideHeaders {
		for _, v := range hd[name] {
			if overrides(method, v) {
				req.Route.MethodOverridden = true
			}
		}
	}

	if h.cfg.XFFTrustedHops > 0 {
		// Repeated header lines are one list, in order (SPEC §9).
		req.ClientIP = clientIPFromXFFLines(hd[headerForwardedFor], h.cfg.XFFTrustedHops)
	}
	return ""
}

// forwarded returns the value of the first of two headers that is present
// and not empty. A header sent more than once is a problem: a proxy sets
// each of them exactly once, so a second value came from somewhere else.
func forwarded(hd http.Header, first, second string) (string, string) {
	for _, name := range [2]string{first, second} {
		if name == "" {
			break
		}
		switch vs := hd[name]; {
		case len(vs) > 1:
			return "", "several " + name + " headers"
		case len(vs) == 1 && vs[0] != "":
			return vs[0], ""
		}
	}
	return "", ""
}

// readBody reads the forwarded body into buf and in.Body when the route of
// in reads one, at most its limit (SPEC §16): a route that reads no body
// leaves it unread. It returns a detail, safe to show the caller, when the
// Content-Length alone is over the limit: refused without reading. A body
// longer than the limit, or that could not be read to its end, is marked
// truncated, which GraphQL routes refuse.
func (h *httpHandler) readBody(w http.ResponseWriter, r *http.Request, in *authz.RouteInput, buf *bytes.Buffer) string {
	if vs := r.Header[headerPartialBody]; len(vs) > 0 && vs[0] == "true" {
		in.BodyTruncated = true
	}
	if r.Body == nil || r.Body == http.NoBody {
		return ""
	}
	limit := MaxHTTPBody
	if br, ok := h.engine.Routes.(authz.BodyRouter); ok {
		if limit = br.BodyLimit(in); limit <= 0 {
			return ""
		}
		if r.ContentLength > int64(limit) {
			return "the request body (Content-Length " + strconv.FormatInt(r.ContentLength, 10) +
				") is larger than this route's limit of " + strconv.Itoa(limit) + " bytes"
		}
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, int64(limit)))
	in.Body = buf.Bytes()
	if err != nil {
		in.BodyTruncated = true
	}
	return ""
}

// writeAllow answers 200 with the key's response headers, the identity
// headers and the headers to remove, in that order: keygate's own control
// headers are written last, so that no key header spelled like one of them
// can replace it (the name rules refuse such names; this is the second
// line). forged are request headers spelled like a protected one
// (forgedHTTPNames), removed too.
func (h *httpHandler) writeAllow(w http.ResponseWriter, d *authz.Decision, st *httpState, forged []string) {
	p := h.httpPartsFor(d.Key)
	hd := w.Header()
	for i := range p.response {
		hd[p.response[i].name] = p.response[i].value
	}
	if p.dynamicNames != nil {
		for i, rh := range d.Key.AppendResponseHeaders(st.rh[:0], &d.Target) {
			if i < len(p.dynamicNames) {
				hd[p.dynamicNames[i]] = []string{rh.Value}
			}
		}
	}
	for i := range p.identity {
		hd[p.identity[i].name] = p.identity[i].value
	}
	if forged != nil {
		hd[HeadersToRemoveHeader] = []string{p.remove[0] + ", " + strings.Join(forged, ", ")}
	} else {
		hd[HeadersToRemoveHeader] = p.remove
	}
	w.WriteHeader(http.StatusOK)
}

// httpPartsFor returns the key's HTTP parts, built once with the names the
// gRPC adapter's parts use too.
func (h *httpHandler) httpPartsFor(k *authz.Key) *httpKeyParts {
	p := partsFor(k, h.names)
	if hp := p.http.Load(); hp != nil {
		return hp
	}
	hp := &httpKeyParts{remove: []string{strings.Join(h.names.removes(k), ", ")}}
	for _, ih := range h.names.identityOf(k) {
		if ih.value != "" {
			hp.identity = append(hp.identity, httpHeader{name: textproto.CanonicalMIMEHeaderKey(ih.name), value: []string{ih.value}})
		}
	}
	if k.ResponseHeadersVary() {
		for _, rh := range k.AppendResponseHeaders(nil, nil) {
			hp.dynamicNames = append(hp.dynamicNames, textproto.CanonicalMIMEHeaderKey(rh.Name))
		}
	} else {
		for _, rh := range k.AppendResponseHeaders(nil, nil) {
			hp.response = append(hp.response, httpHeader{name: textproto.CanonicalMIMEHeaderKey(rh.Name), value: []string{rh.Value}})
		}
	}
	p.http.Store(hp)
	return hp
}

// writeDeny answers the decision's status with the JSON body.
func (h *httpHandler) writeDeny(w http.ResponseWriter, r *http.Request, d *authz.Decision) {
	den := h.denied[d.Reason]
	if den == nil || specificDeny(d) || (d.Reason == authz.AccessDenied && d.Denial != nil) {
		den = newHTTPDenial(d.Reason, DecisionBody(d, h.cfg.GenericKeyErrors))
	}
	hd := w.Header()
	hd[headerContentType] = valueJSON
	hd["Content-Length"] = den.contentLength
	switch {
	case d.Reason == authz.QuotaExceeded && d.RetryAfter > 0:
		hd["Retry-After"] = []string{strconv.FormatUint(uint64(d.RetryAfter), 10)}
	case d.Reason == authz.StoreUnavailable:
		hd["Retry-After"] = valueRetryAfter
	}
	if nginxConvention(r.Header) {
		hd[DenyBodyHeader] = den.bodyHeader
	}
	w.WriteHeader(den.status)
	_, _ = w.Write(den.body)
}

// nginxConvention reports whether the request came from an nginx
// configured as docs/http-mode.md shows.
func nginxConvention(hd http.Header) bool {
	return len(hd[headerOriginalURI]) > 0 || len(hd[headerOriginalMethod]) > 0
}

// asciiJSON rewrites JSON text so that it is a valid header value: every
// byte outside printable ASCII becomes a \u escape (inside strings, the
// only place JSON allows such bytes). Invalid UTF-8 becomes U+FFFD.
func asciiJSON(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 0x20 && c <= 0x7e:
			b.WriteRune(c)
		case c > 0xffff:
			r1, r2 := utf16Surrogates(c)
			b.WriteString(`\u` + hex4(r1) + `\u` + hex4(r2))
		default:
			b.WriteString(`\u` + hex4(c))
		}
	}
	return b.String()
}

func utf16Surrogates(c rune) (rune, rune) {
	c -= 0x10000
	return 0xd800 + (c>>10)&0x3ff, 0xdc00 + c&0x3ff
}

func hex4(c rune) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>12&0xf], digits[c>>8&0xf], digits[c>>4&0xf], digits[c&0xf]})
}

var _ http.Handler = (*httpHandler)(nil)
