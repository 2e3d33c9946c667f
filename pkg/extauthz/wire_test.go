package extauthz_test

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
)

// sameAsProto decodes b with keygate's decoder and with protobuf-go and
// fails unless they agree on everything keygate reads. keygate may accept
// what protobuf-go refuses only inside fields it does not read (see
// wireRequest); it must never refuse what protobuf-go accepts.
func sameAsProto(t *testing.T, b []byte) {
	t.Helper()
	var req authv3.CheckRequest
	perr := proto.Unmarshal(b, &req)
	got, werr := extauthz.DecodeWire(b)
	if perr != nil {
		return
	}
	if werr != nil {
		t.Fatalf("keygate refuses what protobuf-go decodes: %v", werr)
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	want := extauthz.WireView{
		Method: h.GetMethod(), Path: h.GetPath(), Host: h.GetHost(),
		Source: req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress(),
		Body:   h.GetRawBody(),
	}
	if len(want.Body) == 0 {
		want.Body = []byte(h.GetBody())
	}
	ext := authz.ExtensionsFrom(req.GetAttributes().GetContextExtensions())
	want.Service, want.Kind, want.Operation = ext.Service, ext.Kind, ext.Operation
	if got.Method != want.Method || got.Path != want.Path || got.Host != want.Host || got.Source != want.Source ||
		got.Service != want.Service || got.Kind != want.Kind || got.Operation != want.Operation ||
		!bytes.Equal(got.Body, want.Body) {
		t.Fatalf("decoded differently:\n keygate  %+v\n protobuf %+v", got, want)
	}
	if len(got.Headers) != len(h.GetHeaders()) {
		t.Fatalf("headers: keygate %v, protobuf %v", got.Headers, h.GetHeaders())
	}
	for k, v := range h.GetHeaders() {
		if got.Headers[k] != v {
			t.Fatalf("header %q: keygate %q, protobuf %q", k, got.Headers[k], v)
		}
	}
	hm := h.GetHeaderMap().GetHeaders()
	if len(got.HeaderMap) != len(hm) {
		t.Fatalf("header_map: keygate %d entries, protobuf %d", len(got.HeaderMap), len(hm))
	}
	for i, hv := range hm {
		if g := got.HeaderMap[i]; g != [3]string{hv.GetKey(), hv.GetValue(), string(hv.GetRawValue())} {
			t.Fatalf("header_map[%d]: keygate %q, protobuf %v", i, g, hv)
		}
	}
	names := []string{"x-api-key", "traceparent", "content-type", "X-Api-Key"}
	for k := range h.GetHeaders() {
		names = append(names, k)
	}
	for _, hv := range hm {
		names = append(names, hv.GetKey())
	}
	for _, name := range names {
		gv, gn := extauthz.WireGet(b, name)
		pv, pn := extauthz.ProtoGet(&req, name)
		if gv != pv || gn != pn {
			t.Fatalf("get(%q): keygate %q×%d, protobuf %q×%d", name, gv, gn, pv, pn)
		}
	}
	pkeys := extauthz.ProtoKeys(&req)
	sort.Strings(pkeys)
	sort.Strings(got.Keys)
	if strings.Join(pkeys, "\x00") != strings.Join(got.Keys, "\x00") {
		t.Fatalf("keys: keygate %q, protobuf %q", got.Keys, pkeys)
	}
}

// Hand-built wire forms protobuf-go never writes but must read.
func wireField(num protowire.Number, v []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func nest(v []byte, nums ...protowire.Number) []byte {
	for i := len(nums) - 1; i >= 0; i-- {
		v = wireField(nums[i], v)
	}
	return v
}

func entry(k, v string) []byte {
	return append(wireField(1, []byte(k)), wireField(2, []byte(v))...)
}

// httpField is a field of attributes.request.http.
func httpField(num protowire.Number, v []byte) []byte {
	return nest(wireField(num, v), 1, 4, 2)
}

func wireSeeds(t testing.TB) map[string][]byte {
	full := request("/email/read?x=1", "kg_sak_secret", map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	full.Attributes.Destination = &authv3.AttributeContext_Peer{Principal: "spiffe://x", Labels: map[string]string{"a": "b"}}
	full.Attributes.ContextExtensions = map[string]string{"service": "email-api", "kind": "query", "operation": "listEmails", "other": "x"}
	full.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"f": {Fields: map[string]*structpb.Value{"a": structpb.NewStringValue("b")}}}}
	full.Attributes.Request.Http.Body = `{"query":"{ a }"}`
	full.Attributes.Request.Http.Id = "req-1"
	full.Attributes.Request.Http.Size = 17
	full.Attributes.Request.Http.Protocol = "HTTP/1.1"
	full.Attributes.TlsSession = &authv3.AttributeContext_TLSSession{Sni: "api.example.com"}
	raw := request("/x", "", nil)
	raw.Attributes.Request.Http.Headers = nil
	raw.Attributes.Request.Http.RawBody = []byte{0xff, 0x00, 0x01}
	raw.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "X-Api-Key", RawValue: []byte("kg_sak_a")}, {Key: "x-api-key", Value: "b"}, {Key: "k", Value: "v", RawValue: []byte("raw")},
	}}
	pipe := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{
		Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/x"}}}}}}
	seeds := map[string][]byte{"empty": nil}
	for name, m := range map[string]proto.Message{"full": full, "header_map": raw, "pipe": pipe} {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		seeds[name] = b
	}
	sock := func(addr string) []byte { return nest(wireField(2, []byte(addr)), 1, 1, 1, 1) } // attributes.source.address.socket_address.address
	seeds["duplicate map key: the last wins"] = append(httpField(3, entry("x-api-key", "first")), httpField(3, entry("x-api-key", "second"))...)
	seeds["map entry without key or value"] = append(httpField(3, wireField(2, []byte("v"))), httpField(3, wireField(1, []byte("k")))...)
	seeds["attributes twice: merged"] = append(httpField(4, []byte("/a")), httpField(2, []byte("GET"))...)
	seeds["scalar twice: the last wins"] = append(httpField(4, []byte("/a")), httpField(4, []byte("/b"))...)
	seeds["socket address, then pipe"] = append(sock("10.0.0.1"), nest(wireField(2, []byte("p")), 1, 1, 1)...)
	seeds["pipe, then socket port only"] = append(nest(wireField(2, nil), 1, 1, 1), nest(protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 80), 1, 1, 1, 1)...)
	seeds["socket twice: merged"] = append(sock("10.0.0.1"), nest(protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 80), 1, 1, 1, 1)...)
	seeds["path with the wrong wire type"] = nest(protowire.AppendVarint(protowire.AppendTag(nil, 4, protowire.VarintType), 7), 1, 4, 2)
	seeds["context extensions twice"] = append(nest(entry("service", "a"), 1, 10), nest(entry("service", "b"), 1, 10)...)
	seeds["group at the top"] = protowire.AppendTag(protowire.AppendTag(nil, 5, protowire.StartGroupType), 5, protowire.EndGroupType)
	seeds["stray end group"] = protowire.AppendTag(nil, 5, protowire.EndGroupType)
	seeds["field number 0"] = []byte{0x02, 0x00}
	seeds["truncated"] = seeds["full"][:len(seeds["full"])/2]
	seeds["invalid UTF-8 in a path"] = httpField(4, []byte{'/', 0xff})
	seeds["invalid UTF-8 in a header value"] = httpField(3, entry("x-api-key", "\xff"))
	seeds["invalid UTF-8 in a header_map key"] = httpField(13, wireField(1, wireField(1, []byte{0xc3})))
	seeds["invalid UTF-8 in the scheme"] = httpField(6, []byte{0xff})
	seeds["invalid UTF-8 in a skipped field"] = nest(wireField(1, []byte{0xff}), 1, 12) // tls_session.sni
	seeds["a huge length"] = []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}
	return seeds
}

// TestWireDecoderAgreesWithProto: keygate's decoder against protobuf-go on
// what Envoy sends and on the wire's corner cases.
func TestWireDecoderAgreesWithProto(t *testing.T) {
	for name, b := range wireSeeds(t) {
		t.Run(name, func(t *testing.T) { sameAsProto(t, b) })
	}
	// The corner cases must say what they say.
	seeds := wireSeeds(t)
	if v, _ := extauthz.DecodeWire(seeds["duplicate map key: the last wins"]); v.Headers["x-api-key"] != "second" {
		t.Errorf("duplicate map key: %q", v.Headers["x-api-key"])
	}
	if v, _ := extauthz.DecodeWire(seeds["socket address, then pipe"]); v.Source != "" {
		t.Errorf("the pipe should replace the socket address, got %q", v.Source)
	}
	if v, _ := extauthz.DecodeWire(seeds["socket twice: merged"]); v.Source != "10.0.0.1" {
		t.Errorf("merged socket address lost its address: %q", v.Source)
	}
	for _, name := range []string{"invalid UTF-8 in a path", "invalid UTF-8 in a header value", "truncated", "stray end group", "field number 0", "a huge length"} {
		if _, err := extauthz.DecodeWire(seeds[name]); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzWireRequest compares keygate's CheckRequest decoder with
// protobuf-go's on random bytes.
func FuzzWireRequest(f *testing.F) {
	for _, b := range wireSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameAsProto(t, b) })
}

// rawCodec lets a test client send bytes that are not a valid message.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(*[]byte); ok {
		return *b, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }

// TestRegisteredOverGRPC serves the Authorization service as keygate does
// (Register, ServerCodec) beside grpc.health.v1 on loopback, and checks
// that every answer equals Check's, under concurrency (for -race on the
// shared encoded answers), and that a malformed message is an error.
func TestRegisteredOverGRPC(t *testing.T) {
	f := newFixture(t, extauthz.Config{})
	g := grpc.NewServer(extauthz.ServerCodec())
	healthpb.RegisterHealthServer(g, health.NewServer())
	conn := serveGRPC(t, f.srv, g)
	client := authv3.NewAuthorizationClient(conn)
	ctx := context.Background()

	reqs := []*authv3.CheckRequest{
		request("/email/read", f.service, nil),
		request("/email/send", f.service, nil),
		request("/users", f.app, nil),
		request("/users", f.app, nil),
		request("/email/read", "", nil),
		request("/email/read", f.expired, nil),
		request("/email/send", f.scoped, nil),
		request("/bad%zz", f.service, nil),
		{},
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				req := reqs[(w+i)%len(reqs)]
				got, err := client.Check(ctx, req)
				if err != nil {
					t.Error(err)
					return
				}
				want, _ := f.srv.Check(ctx, req)
				if !proto.Equal(got, want) {
					t.Errorf("over gRPC:\n got %v\nwant %v", got, want)
					return
				}
			}
		}(w)
	}
	wg.Wait()

	if resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health through the same codec: %v %v", resp, err)
	}

	bad := httpField(3, entry("x-api-key", "\xff"))
	var out authv3.CheckResponse
	err := conn.Invoke(ctx, authv3.Authorization_Check_FullMethodName, &bad, &out, grpc.ForceCodec(rawCodec{}))
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "invalid UTF-8") {
		t.Errorf("malformed CheckRequest: got %v, want an Internal error that says why", err)
	}
}

// BenchmarkDecodeWire is keygate's decoding of the load harness's kind of
// request (bench/load BenchmarkUnmarshalCheckRequest is protobuf-go's).
func BenchmarkDecodeWire(b *testing.B) {
	req := request("/email/inbox", "kg_sak_0123456789abcdefghijklmnopqrstuvwxyz", map[string]string{
		":authority": "api.example.com", ":method": "GET", ":scheme": "https", "user-agent": "bench/1.0",
		"x-request-id": "0f6d1c7e-3b8b-4a55-9d8e-6b1f2a3c4d5e", "x-forwarded-for": "10.1.2.3", "accept": "*/*",
		"x-forwarded-proto": "https"})
	wire, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	var d extauthz.WireDecoder
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(wire); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckWire is the gRPC handler on a cache hit without the
// transport: wire bytes in, the key's encoded allow out.
func BenchmarkCheckWire(b *testing.B) {
	f := newFixture(b, extauthz.Config{})
	wire, err := proto.Marshal(request("/email/read", f.service, nil))
	if err != nil {
		b.Fatal(err)
	}
	var d extauthz.WireDecoder
	ctx := context.Background()
	// One first: a key's allow is kept on its first allow (the slab's
	// first allocation), which a short -benchtime would blur into B/op.
	out, err := extauthz.CheckWireBytes(f.srv, ctx, &d, wire)
	if err != nil || out == nil {
		b.Fatal(err)
	}
	extauthz.Release(out)
	b.ReportAllocs()
	for b.Loop() {
		out, err := extauthz.CheckWireBytes(f.srv, ctx, &d, wire)
		if err != nil || out == nil {
			b.Fatal(err)
		}
		extauthz.Release(out) // as gRPC does once sent
	}
}
