package extauthz

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/keygate/keygate/pkg/authz"
)

// Denial is how a reason is answered: the one mapping from reason codes to
// transport statuses and messages (DESIGN: one closed list, one table).
type Denial struct {
	HTTPStatus int
	GRPCCode   codes.Code
	Message    string
}

// grpcCodes are the gRPC codes of the HTTP statuses SPEC §5 answers with.
var grpcCodes = map[int]codes.Code{
	400: codes.InvalidArgument,
	401: codes.Unauthenticated,
	403: codes.PermissionDenied,
	429: codes.ResourceExhausted,
	503: codes.Unavailable,
}

// genericKeyMessage replaces key failures' messages when GenericKeyErrors is set.
const genericKeyMessage = "the API key is missing or not valid"

// DenialFor returns how a deny reason is answered: authz's status and
// message, and the gRPC code of that status.
func DenialFor(r authz.Reason) Denial {
	c, ok := grpcCodes[r.Status()]
	if r == authz.OK || !ok {
		return Denial{500, codes.Internal, "internal error"}
	}
	return Denial{r.Status(), c, r.Message()}
}

// DenyBody is the JSON body of a deny for a reason alone. With generic
// set, key failures carry one message and no reason code.
func DenyBody(r authz.Reason, generic bool) string {
	return denyBody(r, "", "", generic)
}

// DecisionBody is the JSON body of a denied decision: DenyBody, with the
// routing detail as the message when there is one (which GraphQL limit)
// and, for a GraphQL scope_denied, the refused field.
func DecisionBody(d *authz.Decision, generic bool) string {
	field := ""
	if d.Reason == authz.ScopeDenied && d.Target.GraphQL {
		field = d.Denied
	}
	if d.Reason == authz.AccessDenied && d.Denial != nil {
		// SPEC §5, §11: the denial's reason text is the body's error.
		return denyBody(d.Reason, d.Denial.Reason, "", generic)
	}
	return denyBody(d.Reason, d.Target.Detail, field, generic)
}

// specificDeny reports whether a deny needs a body of its own rather than
// the reason's shared one.
func specificDeny(d *authz.Decision) bool {
	return d.Target.Detail != "" || (d.Reason == authz.ScopeDenied && d.Target.GraphQL && d.Denied != "")
}

func denyBody(r authz.Reason, detail, field string, generic bool) string {
	var body struct {
		Error  string `json:"error"`
		Reason string `json:"reason,omitempty"`
		Field  string `json:"field,omitempty"`
	}
	switch {
	case generic && r.IsKeyFailure():
		body.Error = genericKeyMessage
	case detail != "":
		body.Error, body.Reason, body.Field = detail, r.String(), field
	default:
		body.Error, body.Reason, body.Field = DenialFor(r).Message, r.String(), field
	}
	// Not HTML-escaped: a GraphQL syntax error reads "<EOF>", not "\u003cEOF\u003e".
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(body)
	return strings.TrimSuffix(b.String(), "\n")
}

// headerOption builds a header that overwrites: `append: false` set
// explicitly, which old and new Envoy both read as overwrite (newer Envoy
// appends when `append` is unset, and refuses append together with
// append_action, so append_action stays unset).
func headerOption(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: name, Value: value},
		//lint:ignore SA1019 SPEC §5: append false, set explicitly, is what old and new Envoy both read as overwrite.
		Append: wrapperspb.Bool(false),
	}
}

// answer is a CheckResponse and, when it was encoded ahead to be shared
// (a reason's deny, a key's allow), its wire form; wire is nil otherwise.
type answer struct {
	resp *authv3.CheckResponse
	wire *encoded
}

// sharedAnswer encodes resp once for every request that gets it.
func sharedAnswer(resp *authv3.CheckResponse) answer {
	return answer{resp: resp, wire: encode(resp)}
}

// buildDenials makes one immutable answer per deny reason at start. gRPC
// only reads them, so all requests share them.
func buildDenials(cfg Config) map[authz.Reason]answer {
	out := make(map[authz.Reason]answer)
	for _, r := range authz.Reasons() {
		if r != authz.OK {
			out[r] = sharedAnswer(denyCheckResponse(r, DenyBody(r, cfg.GenericKeyErrors)))
		}
	}
	return out
}

func denyCheckResponse(r authz.Reason, body string) *authv3.CheckResponse {
	return denyCheckResponseRetry(r, body, 0)
}

// denyCheckResponseRetry is denyCheckResponse with a retry-after of
// retry seconds (a quota_exceeded's, until its period resets); 0 means the
// reason's own (1 for store_unavailable, none otherwise).
func denyCheckResponseRetry(r authz.Reason, body string, retry uint32) *authv3.CheckResponse {
	d := DenialFor(r)
	headers := []*corev3.HeaderValueOption{headerOption("content-type", "application/json")}
	switch {
	case retry > 0:
		headers = append(headers, headerOption("retry-after", strconv.FormatUint(uint64(retry), 10)))
	case r == authz.StoreUnavailable:
		headers = append(headers, headerOption("retry-after", "1"))
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(d.GRPCCode)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.HTTPStatus)},
			Headers: headers,
			Body:    body,
		}},
	}
}

// denyResponse is the shared response of the decision's reason, or one of
// its own when the body must say more (a GraphQL field, a routing detail).
func (s *Server) denyResponse(d *authz.Decision) answer {
	if d.Reason == authz.AccessDenied && d.Denial != nil {
		return s.denialAnswer(d)
	}
	if d.Reason == authz.QuotaExceeded && d.RetryAfter > 0 {
		// Its retry-after counts down to the period's reset: an answer of
		// its own (a deny, off the allow path).
		return answer{resp: denyCheckResponseRetry(d.Reason, DenyBody(d.Reason, s.cfg.GenericKeyErrors), d.RetryAfter)}
	}
	if specificDeny(d) {
		return answer{resp: denyCheckResponse(d.Reason, DecisionBody(d, s.cfg.GenericKeyErrors))}
	}
	if a, ok := s.denied[d.Reason]; ok {
		return a
	}
	return answer{resp: denyCheckResponse(d.Reason, DenyBody(d.Reason, s.cfg.GenericKeyErrors))}
}

// keyParts is the part of an allow that depends only on the key, built the
// first time the key allows a request and kept with the key record.
type keyParts struct {
	identity []*corev3.HeaderValueOption
	remove   []string
	// responseHeaders is set when every response header is fixed for the
	// key; otherwise they are rendered per request.
	responseHeaders []*corev3.HeaderValueOption
	dynamicHeaders  bool
	metaKey         map[string]*structpb.Value
	// names and keyHeader are the header names the parts were built for,
	// so that an adapter configured with other names never reuses them.
	names     IdentityHeaders
	keyHeader string
	// http is the HTTP mode's form of the same parts (http.go), built the
	// first time the key is allowed through the HTTP mode.
	http atomic.Pointer[httpKeyParts]
	// last is the allow response this key got most recently. A response is
	// a function of the key and the (service, kind, operation) called, and
	// a key mostly calls the same operation again, so reusing it saves
	// building a dozen messages per request. Responses are never mutated
	// once built, so concurrent sends may share them.
	last atomic.Pointer[cachedAllow]
}

type cachedAllow struct {
	service, kind, operation string
	answer
}

// partsFor returns the key's parts for cfg, building and keeping them with
// the key the first time. Both adapters (gRPC and HTTP) share them; parts
// built for other header names are never reused, only rebuilt.
func partsFor(k *authz.Key, cfg *Config) *keyParts {
	p, ok := k.AdapterData().(*keyParts)
	if ok && p.names == cfg.Identity && p.keyHeader == cfg.KeyHeader {
		return p
	}
	np := buildParts(k, cfg)
	if !ok {
		k.SetAdapterData(np)
	}
	return np
}

func buildParts(k *authz.Key, cfg *Config) *keyParts {
	id := cfg.Identity
	spec := &k.Spec
	p := &keyParts{remove: []string{cfg.KeyHeader}, names: id, keyHeader: cfg.KeyHeader}
	add := func(name, value string) {
		if value == "" {
			// Not applicable to this key (the tenant of an app key): removed,
			// so a client's forged value never reaches upstream.
			p.remove = append(p.remove, name)
			return
		}
		p.identity = append(p.identity, headerOption(name, value))
	}
	add(id.KeyID, spec.ID)
	add(id.KeyName, spec.Name)
	add(id.AppID, spec.AppID)
	add(id.TenantID, spec.TenantID)
	add(id.AccountID, spec.AccountID)

	p.dynamicHeaders = k.ResponseHeadersVary()
	if !p.dynamicHeaders {
		for _, h := range k.AppendResponseHeaders(nil, nil) {
			p.responseHeaders = append(p.responseHeaders, headerOption(h.Name, h.Value))
		}
	}
	// Metadata names only what applies to the key: an app key has no
	// tenant, and an empty tenant_id would group app keys in rate limits.
	p.metaKey = map[string]*structpb.Value{}
	for name, v := range map[string]string{
		"key_id": spec.ID, "key_name": spec.Name, "key_type": spec.Type.String(),
		"app_id": spec.AppID, "tenant_id": spec.TenantID, "account_id": spec.AccountID,
	} {
		if v != "" {
			p.metaKey[name] = structpb.NewStringValue(v)
		}
	}
	if rl, ok := k.RateLimit(); ok {
		p.metaKey[RateLimitMetadataKey] = rateLimitValue(rl)
	}
	return p
}

// RateLimitMetadataKey is the dynamic metadata field that carries a key's
// rate limit (SPEC §12), in the form Envoy's
// rate_limits[].limit.dynamic_metadata override reads.
const RateLimitMetadataKey = "rate_limit"

// rateLimitValue is the struct Envoy's RateLimit.Override.DynamicMetadata
// reads: requests_per_unit (a number) and unit (RateLimitUnit's name,
// "SECOND"). Built once per key with the rest of its parts.
func rateLimitValue(rl authz.RateLimit) *structpb.Value {
	return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"requests_per_unit": structpb.NewNumberValue(float64(rl.RequestsPerUnit)),
		"unit":              structpb.NewStringValue(rl.Unit.EnvoyName()),
	}})
}

// allowResponse builds the OkHttpResponse for an allowed request, with its
// wire form: the key's last response when the target is the same. forged
// are request headers spelled like a protected one (forgedNames): a
// request that sends any gets a response of its own that removes them
// too, never shared.
func (s *Server) allowResponse(d *authz.Decision, forged []string) answer {
	p := partsFor(d.Key, &s.cfg)
	if forged != nil {
		resp := s.buildAllow(d, p)
		remove := make([]string, 0, len(p.remove)+len(forged))
		resp.GetOkResponse().HeadersToRemove = append(append(remove, p.remove...), forged...)
		return answer{resp: resp}
	}
	t := &d.Target
	if c := p.last.Load(); c != nil && c.service == t.Service && c.kind == t.Kind && c.operation == t.Operation {
		return c.answer
	}
	c := &cachedAllow{service: t.Service, kind: t.Kind, operation: t.Operation, answer: sharedAnswer(s.buildAllow(d, p))}
	p.last.Store(c)
	return c.answer
}

func (s *Server) buildAllow(d *authz.Decision, p *keyParts) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{
		Headers:         p.identity,
		HeadersToRemove: p.remove,
	}
	if s.cfg.KeyQueryParam != "" {
		ok.QueryParametersToRemove = s.queryRemove
	}
	if p.dynamicHeaders {
		var hs [8]authz.Header
		for _, h := range d.Key.AppendResponseHeaders(hs[:0], &d.Target) {
			ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, headerOption(h.Name, h.Value))
		}
	} else {
		ok.ResponseHeadersToAdd = p.responseHeaders
	}
	fields := make(map[string]*structpb.Value, len(p.metaKey)+3)
	for k, v := range p.metaKey {
		fields[k] = v
	}
	fields["service"] = structpb.NewStringValue(d.Target.Service)
	fields["kind"] = structpb.NewStringValue(d.Target.Kind)
	fields["operation"] = structpb.NewStringValue(d.Target.Operation)
	return &authv3.CheckResponse{
		Status:          s.okStatus,
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: &structpb.Struct{Fields: fields},
	}
}

// denialParts is the answer to requests a service access denial blocks,
// built the first time it blocks one and kept with the compiled denial
// (which is replaced, never changed, when the denial is).
type denialParts struct {
	generic bool
	answer
}

// denialAnswer is a denial's access_denied answer: its reason text as the
// body's error, and dynamic metadata naming the denial (so that access
// logs can say which denial decided).
func (s *Server) denialAnswer(d *authz.Decision) answer {
	dn := d.Denial
	if p, ok := dn.AdapterData().(*denialParts); ok && p.generic == s.cfg.GenericKeyErrors {
		return p.answer
	}
	resp := denyCheckResponse(d.Reason, DecisionBody(d, s.cfg.GenericKeyErrors))
	resp.DynamicMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{
		"denial_id":  structpb.NewStringValue(dn.ID),
		"reason":     structpb.NewStringValue(d.Reason.String()),
		"account_id": structpb.NewStringValue(dn.AccountID),
		"tenant_id":  structpb.NewStringValue(dn.TenantID),
		"app_id":     structpb.NewStringValue(dn.AppID),
	}}
	p := &denialParts{generic: s.cfg.GenericKeyErrors, answer: sharedAnswer(resp)}
	if dn.AdapterData() == nil {
		dn.SetAdapterData(p)
	}
	return p.answer
}
