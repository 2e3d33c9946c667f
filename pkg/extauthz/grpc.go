package extauthz

import (
	"context"
	"fmt"
	"sync"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	protobuf "google.golang.org/protobuf/proto"
)

// The gRPC wiring of the Authorization service. A cache-hit Check costs
// keygate's decision well under a microsecond; what the wire costs around
// it is most of a request's CPU: protobuf-go decoding the CheckRequest
// (its headers map by reflection) and encoding a response of a dozen
// messages. So keygate registers the service with a handler of its own
// (Register) that decodes the request itself (wire.go) and answers with
// bytes encoded once — when a key's allow is first built, and for each
// deny reason at start — through a server codec (ServerCodec) that sends
// such bytes as they are. Everything else on the server (health,
// reflection) goes through gRPC's proto codec unchanged, and Check on the
// standard interface (AuthorizationServer) still works for in-process use.

// encoded is a response's wire form, sent as it is by codec.Marshal. It is
// shared by every request that gets the same answer (a reason's deny, a
// denial's) and never changes. A key's kept allow is not one: it lives in
// the server's slabs and goes out as an outgoing (allowslabs.go).
type encoded struct {
	// one and bytes are the wire form's only buffer, held inside the
	// value (set): one object besides its bytes, not three.
	one   [1]mem.Buffer
	bytes mem.SliceBuffer
}

// set makes b the wire form. e must not move afterwards (one points into
// it): encoded values live in heap objects and are used by pointer.
func (e *encoded) set(b []byte) {
	e.bytes = b
	e.one[0] = &e.bytes
}

// bufs is the wire form as gRPC sends it; it allocates nothing.
func (e *encoded) bufs() mem.BufferSlice { return e.one[:] }

// encode returns resp's wire form, nil if it cannot be encoded (it then
// goes through the proto codec per request, which reports the error).
func encode(resp *authv3.CheckResponse) *encoded {
	b, err := protobuf.Marshal(resp)
	if err != nil {
		return nil
	}
	e := new(encoded)
	e.set(b)
	return e
}

// ServerCodec is the grpc.ServerOption the server Register is used with
// must be built with: gRPC's proto codec, except that it decodes keygate's
// own request form and sends encoded responses as they are.
func ServerCodec() grpc.ServerOption {
	return grpc.ForceServerCodecV2(codec{inner: encoding.GetCodecV2(proto.Name)})
}

type codec struct {
	inner encoding.CodecV2
}

func (codec) Name() string { return proto.Name }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	switch e := v.(type) {
	case *outgoing:
		return e.bufs(), nil
	case *encoded:
		return e.bufs(), nil
	}
	return c.inner.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	w, ok := v.(*wireRequest)
	if !ok {
		return c.inner.Unmarshal(data, v)
	}
	if err := w.decodeCheckRequest(requestBytes(data)); err != nil {
		return fmt.Errorf("envoy.service.auth.v3.CheckRequest: %w", err)
	}
	return nil
}

// requestBytes are data's bytes for the decoded request's strings to
// alias; some outlive the request (a key's kept allow names its target
// with them, the usage counter its operations). gRPC reuses the buffers of
// messages over its pooling threshold once Unmarshal returns, so those are
// copied (Materialize). A smaller message that arrived in one frame is one
// mem.SliceBuffer over a slice gRPC allocated for that frame alone, whose
// Free does nothing: it is not reused, and the strings alias it as they
// would alias a copy (TestRequestStringsOutliveTheirFrame sends both
// kinds). That copy was 9% of the bytes keygate allocated in the round
// robin, which pace the collector.
func requestBytes(data mem.BufferSlice) []byte {
	if len(data) == 1 {
		if b, ok := data[0].(mem.SliceBuffer); ok {
			return b
		}
	}
	return data.Materialize()
}

// wireChecker is the handler type of checkServiceDesc.
type wireChecker interface {
	checkWire(ctx context.Context, w *wireRequest) (any, error)
}

// Register registers s on g as envoy.service.auth.v3.Authorization, with
// the Check handler described above. g must be built with ServerCodec().
func (s *Server) Register(g *grpc.Server) {
	g.RegisterService(&checkServiceDesc, s)
}

var checkServiceDesc = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*wireChecker)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

var wireRequests = sync.Pool{New: func() any { return new(wireRequest) }}

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	w := wireRequests.Get().(*wireRequest)
	defer func() {
		w.reset()
		wireRequests.Put(w)
	}()
	if err := dec(w); err != nil {
		return nil, err
	}
	c := srv.(wireChecker)
	if interceptor == nil {
		return c.checkWire(ctx, w)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, w, info, func(ctx context.Context, req any) (any, error) {
		return c.checkWire(ctx, req.(*wireRequest))
	})
}

// checkWire is Check for keygate's own decoding: the answer's encoded form
// when there is one, else the response for the proto codec. A response
// built for this request may hold strings of it (a GraphQL deny's field
// name); they alias the request's copy of the message, not w, so w may go
// back to its pool before gRPC encodes the response.
func (s *Server) checkWire(ctx context.Context, w *wireRequest) (any, error) {
	v := w.view()
	a, err := s.check(ctx, &v)
	if err != nil {
		return nil, err
	}
	switch {
	case a.kept != nil:
		return sendable(a.kept), nil
	case a.wire != nil:
		return a.wire, nil
	}
	return a.resp, nil
}
