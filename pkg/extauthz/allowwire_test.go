package extauthz

import (
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
)

// TestAllowWireMatchesMessage holds the directly encoded allow (what a key
// keeps and the wire path sends) to the message buildAllow builds field by
// field, for every shape of key, header configuration and target.
func TestAllowWireMatchesMessage(t *testing.T) {
	long := strings.Repeat("v", 300) // lengths past one varint byte
	service := authz.KeySpec{ID: "k-1", Name: "acme-billing", Type: authz.KeyTypeService, AccountID: "acct",
		AppID: "billing", AppName: "Billing", TenantID: "acme", TenantName: "ACME Corp", Active: true,
		ResponseHeaders: []authz.HeaderSpec{{Name: "x-tier", Value: "gold"}, {Name: "x-who", Value: "${key.name}@${tenant.id}"},
			{Name: "x-op", Value: "${service}/${operation}"}, {Name: "x-off", Value: "no", Disabled: true}}}
	limited := service
	limited.ResponseHeaders = []authz.HeaderSpec{{Name: "x-long", Value: long}}
	limited.RateLimit = authz.RateLimit{RequestsPerUnit: 600, Unit: authz.RateUnitMinute}
	app := authz.KeySpec{ID: "k-app", Name: long, Type: authz.KeyTypeApp, AccountID: "acct", AppID: "billing", AppName: "Billing", Active: true}
	account := authz.KeySpec{ID: "k-acct", Name: "admin", Type: authz.KeyTypeAccount, AccountID: "acct", Active: true}
	configs := map[string]Config{
		"defaults":     {},
		"query key":    {KeyQueryParam: "api_key"},
		"custom names": {KeyHeader: "authorization-key", Identity: IdentityHeaders{KeyID: "x-id", KeyName: "x-name", AppID: "x-app", TenantID: "x-tenant", AccountID: "x-account"}},
	}
	targets := []authz.Target{
		{Service: "email-api", Kind: "query", Operation: "listEmails"},
		{Service: "graph-api", Kind: "mutation", Operation: long},
		{Service: "users-api"},
	}
	for cname, cfg := range configs {
		s := NewServer(nil, cfg, nil, nil)
		for _, spec := range []authz.KeySpec{service, limited, app, account} {
			spec.Hash = "sha256:" + strings.Repeat("ab", 32)
			k, err := authz.Compile(spec, authz.CompileOptions{ReservedHeaders: s.cfg.ReservedHeaders()})
			if err != nil {
				t.Fatal(err)
			}
			for _, target := range targets {
				d := &authz.Decision{Key: k, Target: target}
				want := s.buildAllow(d)
				var got authv3.CheckResponse
				if err := proto.Unmarshal(appendAllow(nil, k, &d.Target, s.names, s.queryRemove), &got); err != nil {
					t.Fatalf("%s, %s, %s: the encoded allow does not decode: %v", cname, spec.ID, target.Operation, err)
				}
				if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
					t.Errorf("%s, key %s, %s/%s: encoded allow differs from the message (-message +encoded):\n%s",
						cname, spec.ID, target.Service, target.Operation, diff)
				}
			}
		}
	}
}

// FuzzAllowWire: whatever the key's names and header values and the
// target, the encoded allow decodes to the message.
func FuzzAllowWire(f *testing.F) {
	f.Add("k-1", "a name", "x-h", "value ${key.name}", "svc", "op")
	f.Add(strings.Repeat("i", 200), "", "x-h", strings.Repeat("é", 100), "", "")
	s := NewServer(nil, Config{KeyQueryParam: "k"}, nil, nil)
	f.Fuzz(func(t *testing.T, id, name, header, value, service, op string) {
		spec := authz.KeySpec{ID: id, Name: name, Type: authz.KeyTypeApp, AccountID: "a", AppID: "app", Active: true,
			Hash: "sha256:" + strings.Repeat("cd", 32), ResponseHeaders: []authz.HeaderSpec{{Name: header, Value: value}}}
		k, err := authz.Compile(spec, authz.CompileOptions{ReservedHeaders: s.cfg.ReservedHeaders()})
		if err != nil {
			return // not a key keygate would load
		}
		d := &authz.Decision{Key: k, Target: authz.Target{Service: service, Kind: "query", Operation: op}}
		if !allowEncodable(k, &d.Target) {
			// Not encoded: the call fails, as the message's marshalling
			// would fail it.
			if a, err := s.allowResponse(d, nil, false); a.wire != nil || a.kept != nil || a.resp != nil || status.Code(err) != codes.Internal {
				t.Fatal("an allow with invalid UTF-8 was encoded")
			}
			if _, err := proto.Marshal(s.buildAllow(d)); err == nil {
				t.Fatal("the message with invalid UTF-8 marshals")
			}
			return
		}
		var got authv3.CheckResponse
		if err := proto.Unmarshal(appendAllow(nil, k, &d.Target, s.names, s.queryRemove), &got); err != nil {
			t.Fatalf("does not decode: %v", err)
		}
		if !proto.Equal(s.buildAllow(d), &got) {
			t.Fatal("encoded allow differs from the message")
		}
	})
}

// buildAllow is the allow as a message, built field by field from
// Envoy's and protobuf's Go types: the reference appendAllow's encoding is
// held to.
func (s *Server) buildAllow(d *authz.Decision) *authv3.CheckResponse {
	k := d.Key
	ok := &authv3.OkHttpResponse{HeadersToRemove: s.names.removes(k)}
	for _, h := range s.names.identityOf(k) {
		if h.value != "" {
			ok.Headers = append(ok.Headers, headerOption(h.name, h.value))
		}
	}
	if s.cfg.KeyQueryParam != "" {
		ok.QueryParametersToRemove = s.queryRemove
	}
	var hs [8]authz.Header
	for _, h := range k.AppendResponseHeaders(hs[:0], &d.Target) {
		ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, headerOption(h.Name, h.Value))
	}
	fields := make(map[string]*structpb.Value, 10)
	for _, f := range metaFields(k) {
		if f[1] != "" {
			fields[f[0]] = structpb.NewStringValue(f[1])
		}
	}
	if rl, ok := k.RateLimit(); ok {
		fields[RateLimitMetadataKey] = rateLimitValue(rl)
	}
	fields["service"] = structpb.NewStringValue(d.Target.Service)
	fields["kind"] = structpb.NewStringValue(d.Target.Kind)
	fields["operation"] = structpb.NewStringValue(d.Target.Operation)
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: &structpb.Struct{Fields: fields},
	}
}

// rateLimitValue is the struct Envoy's RateLimit.Override.DynamicMetadata
// reads: requests_per_unit (a number) and unit (RateLimitUnit's name,
// "SECOND"): the reference for what appendAllow encodes.
func rateLimitValue(rl authz.RateLimit) *structpb.Value {
	return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"requests_per_unit": structpb.NewNumberValue(float64(rl.RequestsPerUnit)),
		"unit":              structpb.NewStringValue(rl.Unit.EnvoyName()),
	}})
}
