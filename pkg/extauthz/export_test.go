package extauthz

import (
	"context"
	"fmt"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/protobuf/proto"
)

// CheckWire runs req through the gRPC path Register installs, without the
// transport: encoded as Envoy sends it, decoded by keygate's own decoder,
// decided, and the answer decoded back from what the codec would send.
func CheckWire(s *Server, ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	out, err := CheckWireBytes(s, ctx, new(WireDecoder), b)
	if err != nil {
		return nil, err
	}
	switch r := out.(type) {
	case *authv3.CheckResponse:
		return r, nil
	case *encoded:
		var resp authv3.CheckResponse
		if err := proto.Unmarshal(r.bufs().Materialize(), &resp); err != nil {
			return nil, err
		}
		return &resp, nil
	case *outgoing:
		var resp authv3.CheckResponse
		err := proto.Unmarshal(Sent(r), &resp)
		if err != nil {
			return nil, err
		}
		return &resp, nil
	}
	return nil, fmt.Errorf("checkWire answered a %T", out)
}

// Sent is what gRPC does with a value checkWire answered: the codec's
// buffers, read and freed as its transport does (a kept allow's outgoing
// goes back to its pool). It returns the bytes sent.
func Sent(v any) []byte {
	bufs, err := (codec{inner: encoding.GetCodecV2(protocodec.Name)}).Marshal(v)
	if err != nil {
		panic(err)
	}
	b := bufs.Materialize()
	bufs.Free()
	return b
}

// UseSlabs gives s new kept-allow slabs: budget bytes in slabs of
// slabSize, so that a test can make slabs leave the ring with few keys.
func UseSlabs(s *Server, budget int64, slabSize int) { s.allows = newAllowSlabs(budget, slabSize) }

// Release is what gRPC does with a value checkWire answered once it has
// sent it: the codec's buffers, freed (a kept allow's outgoing goes back
// to its pool).
func Release(v any) {
	if bufs, err := (codec{inner: encoding.GetCodecV2(protocodec.Name)}).Marshal(v); err == nil {
		bufs.Free()
	}
}

// WireView is what keygate's own decoder reads of a CheckRequest's wire
// form, for comparison with protobuf-go's decoding.
type WireView struct {
	Method, Path, Host, Source string
	Service, Kind, Operation   string
	Body                       []byte
	// Headers is the headers map as the map would hold it.
	Headers map[string]string
	// HeaderMap is header_map: key, value, raw_value.
	HeaderMap [][3]string
	Keys      []string
}

// DecodeWire decodes b with keygate's decoder.
func DecodeWire(b []byte) (*WireView, error) {
	w := new(wireRequest)
	if err := w.decodeCheckRequest(b); err != nil {
		return nil, err
	}
	v := w.view()
	out := &WireView{Method: v.method, Path: v.path, Host: v.host, Source: v.source,
		Service: v.ext.Service, Kind: v.ext.Kind, Operation: v.ext.Operation, Body: v.body,
		Keys: v.hs.Keys()}
	for _, h := range w.headers {
		if out.Headers == nil {
			out.Headers = map[string]string{}
		}
		out.Headers[h.key] = h.value
	}
	for _, h := range w.headerMap {
		out.HeaderMap = append(out.HeaderMap, [3]string{h.key, h.value, string(h.raw)})
	}
	return out, nil
}

// WireGet is headerSource.get over keygate's decoding of b.
func WireGet(b []byte, name string) (string, int) {
	w := new(wireRequest)
	if err := w.decodeCheckRequest(b); err != nil {
		return "", -1
	}
	return w.get(name)
}

// ProtoGet is headerSource.get over protobuf-go's decoding.
func ProtoGet(req *authv3.CheckRequest, name string) (string, int) {
	return newHeaderSource(req.GetAttributes().GetRequest().GetHttp()).get(name)
}

// WireDecoder decodes into one reused request, as the gRPC handler does
// with its pool.
type WireDecoder struct{ w wireRequest }

func (d *WireDecoder) Decode(b []byte) error { return d.w.decodeCheckRequest(b) }

// CheckWireBytes is the gRPC handler's work on a request's wire bytes:
// decode into d's reused request, decide, pick the answer's encoded form.
func CheckWireBytes(s *Server, ctx context.Context, d *WireDecoder, b []byte) (any, error) {
	if err := d.w.decodeCheckRequest(b); err != nil {
		return nil, err
	}
	return s.checkWire(ctx, &d.w)
}

// ProtoKeys is headerSource.Keys over protobuf-go's decoding.
func ProtoKeys(req *authv3.CheckRequest) []string {
	return newHeaderSource(req.GetAttributes().GetRequest().GetHttp()).Keys()
}

// ClientIPFromXFFLines is the client IP of x-forwarded-for lines joined in
// order, walked without joining them.
var ClientIPFromXFFLines = clientIPFromXFFLines
