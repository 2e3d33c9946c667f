//go:build vtprotobuf

package main

import "testing"

// BenchmarkMarshalAllowResponseVT encodes the same response with the
// vtprotobuf code go-control-plane ships behind the vtprotobuf build tag:
// no reflection, into a buffer the caller owns (a gRPC codec would take it
// from grpc/mem's pool).
func BenchmarkMarshalAllowResponseVT(b *testing.B) {
	r := allowResponse(b)
	buf := make([]byte, r.SizeVT())
	b.ReportAllocs()
	for b.Loop() {
		n := r.SizeVT()
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		if _, err := r.MarshalToSizedBufferVTStrict(buf[:n]); err != nil {
			b.Fatal(err)
		}
	}
}
