package extauthz

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	protobuf "google.golang.org/protobuf/proto"
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
	// kept is set, instead of both, for a key's kept allow on the gRPC
	// path: its wire form in a slab (allowslabs.go). Check asks for a
	// message and never gets one.
	kept []byte
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

// keyParts is what the adapters keep with a key record (its AdapterData)
// besides its kept allow, which the gRPC path keeps in its slabs
// (allowslabs.go), not here: the HTTP mode's header form of the key, and
// for callers of Check on the protobuf API (in-process: `keygate
// explain`, tests) the allow as a message. A key checked over gRPC alone,
// as Envoy checks it, has none.
type keyParts struct {
	// names are the header names the parts were built for, so that an
	// adapter configured with other names never reuses them.
	names *headerNames
	// http is the HTTP mode's form of the key's headers (http.go), built
	// the first time the key is allowed through the HTTP mode.
	http atomic.Pointer[httpKeyParts]
	// message is the key's last allow as a message, for Check.
	message atomic.Pointer[allowMessage]
}

// allowMessage is a key's allow for one target as a message, decoded from
// its wire form. It is never changed once built, so concurrent callers
// share it.
type allowMessage struct {
	service, kind, operation string
	resp                     *authv3.CheckResponse
}

// headerNames are the header names an adapter's configuration gives the
// key header and the identity headers, interned (namesFor) so that a key's
// parts remember what they were built for with one pointer.
type headerNames struct {
	identity  IdentityHeaders
	keyHeader string
	// queryParam is the key's query parameter, which an allow removes:
	// parts built for another are not reused either.
	queryParam string
}

var internedNames sync.Map // headerNames → *headerNames

// namesFor interns cfg's header names; adapters call it once, when built.
func namesFor(cfg *Config) *headerNames {
	n := headerNames{identity: cfg.Identity, keyHeader: cfg.KeyHeader, queryParam: cfg.KeyQueryParam}
	v, _ := internedNames.LoadOrStore(n, &n)
	return v.(*headerNames)
}

// identityHeader is one identity header of a key: its value, or "" when
// it does not apply to the key (the tenant of an app key) — then the
// header is removed, so a client's forged value never reaches upstream.
type identityHeader struct{ name, value string }

// identityOf is the key's identity headers, in SPEC §5's order.
func (n *headerNames) identityOf(k *authz.Key) [5]identityHeader {
	s, id := &k.Spec, &n.identity
	return [5]identityHeader{{id.KeyID, s.ID}, {id.KeyName, s.Name}, {id.AppID, s.AppID},
		{id.TenantID, s.TenantID}, {id.AccountID, s.AccountID}}
}

// removes is headers_to_remove of the key's allows: the key header and the
// identity headers that do not apply to the key.
func (n *headerNames) removes(k *authz.Key) []string {
	out := []string{n.keyHeader}
	for _, h := range n.identityOf(k) {
		if h.value == "" {
			out = append(out, h.name)
		}
	}
	return out
}

// partsFor returns the key's parts for the names, keeping new ones with
// the key the first time. Both adapters (gRPC and HTTP) share them; parts
// built for other header names are never reused, only rebuilt.
func partsFor(k *authz.Key, names *headerNames) *keyParts {
	p, ok := k.AdapterData().(*keyParts)
	if ok && p.names == names {
		return p
	}
	np := &keyParts{names: names}
	if !ok {
		k.SetAdapterData(np)
	}
	return np
}

// metaFields is the dynamic metadata of the key's allows that depends only
// on the key. It names only what applies to the key: an app key has no
// tenant, and an empty tenant_id would group app keys in rate limits.
func metaFields(k *authz.Key) [6][2]string {
	s := &k.Spec
	return [6][2]string{{"key_id", s.ID}, {"key_name", s.Name}, {"key_type", s.Type.String()},
		{"app_id", s.AppID}, {"tenant_id", s.TenantID}, {"account_id", s.AccountID}}
}

// RateLimitMetadataKey is the dynamic metadata field that carries a key's
// rate limit (SPEC §12), in the form Envoy's
// rate_limits[].limit.dynamic_metadata override reads.
const RateLimitMetadataKey = "rate_limit"

// errAllowNotUTF8 fails a call whose allow cannot be encoded. It is checked only
// where an allow is encoded, never on a key's cached one.
var errAllowNotUTF8 = status.Error(codes.Internal, "the allow holds a string that is not UTF-8")

// allowResponse is the answer to an allowed request: the key's kept allow
// when it was encoded for the same target, else a new one, encoded and
// kept. message asks for it as a message (Check's protobuf API), kept too.
// forged are request headers spelled like a protected one (forgedNames): a
// request that sends any gets a response of its own that removes them
// too, never shared. An allow holding a string that is not UTF-8 (which
// keys and routes are validated against long before) cannot be sent as
// protobuf: the call fails, and Envoy denies.
func (s *Server) allowResponse(d *authz.Decision, forged []string, message bool) (answer, error) {
	t := &d.Target
	if forged != nil {
		if !allowEncodable(d.Key, t) {
			return answer{}, errAllowNotUTF8
		}
		resp := new(authv3.CheckResponse)
		if err := protobuf.Unmarshal(appendAllow(nil, d.Key, t, s.names, s.queryRemove), resp); err != nil {
			return answer{}, status.Errorf(codes.Internal, "the allow does not decode: %v", err)
		}
		ok := resp.GetOkResponse()
		ok.HeadersToRemove = append(ok.HeadersToRemove, forged...)
		return answer{resp: resp}, nil
	}
	var p *keyParts
	if message {
		p = partsFor(d.Key, s.names)
		if m := p.message.Load(); m != nil && m.service == t.Service && m.kind == t.Kind && m.operation == t.Operation {
			return answer{resp: m.resp}, nil
		}
	}
	wire, ok := s.allows.lookup(d.Key.AdapterRef(), t)
	if !ok {
		if !allowEncodable(d.Key, t) {
			return answer{}, errAllowNotUTF8
		}
		var ref uint64
		wire, ref, ok = s.allows.keep(t, func(b []byte) []byte { return appendAllow(b, d.Key, t, s.names, s.queryRemove) })
		if ok {
			d.Key.SetAdapterRef(ref)
		}
	}
	if message {
		resp := new(authv3.CheckResponse)
		if err := protobuf.Unmarshal(wire, resp); err != nil {
			// Encoded by appendAllow, which TestAllowWireMatchesMessage
			// holds to the message form: not reachable.
			return answer{}, status.Errorf(codes.Internal, "the allow does not decode: %v", err)
		}
		p.message.Store(&allowMessage{service: t.Service, kind: t.Kind, operation: t.Operation, resp: resp})
		return answer{resp: resp}, nil
	}
	if !ok {
		// Not kept (see keep): this request's alone.
		e := new(encoded)
		e.set(wire)
		return answer{wire: e}, nil
	}
	return answer{kept: wire}, nil
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
