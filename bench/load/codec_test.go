package main

// Benchmarks of the wire work around a Check, for the optimisation notes
// in docs/performance.md: what gRPC's default codec (protobuf-go) costs to
// decode the harness's CheckRequest and to encode keygate's allow response
// (its golden file) and the floor's. With -tags vtprotobuf, the same
// response encoded with the code go-control-plane generates for
// vtprotobuf (codec_vt_test.go).
//
//	go test -run=NONE -bench=. -benchmem ./bench/load/
//	go test -tags vtprotobuf -run=NONE -bench=. -benchmem ./bench/load/

import (
	"os"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// allowResponse is keygate's allow response for a service key, as its
// golden test pins it.
func allowResponse(tb testing.TB) *authv3.CheckResponse {
	tb.Helper()
	b, err := os.ReadFile("../../pkg/extauthz/testdata/golden/allow_service_key.json")
	if err != nil {
		tb.Fatal(err)
	}
	var r authv3.CheckResponse
	if err := protojson.Unmarshal(b, &r); err != nil {
		tb.Fatal(err)
	}
	return &r
}

func BenchmarkMarshalAllowResponse(b *testing.B) {
	r := allowResponse(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proto.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(proto.Size(r)), "wire-bytes")
}

func BenchmarkMarshalFloorResponse(b *testing.B) {
	r := &authv3.CheckResponse{Status: &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proto.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(proto.Size(r)), "wire-bytes")
}

func BenchmarkUnmarshalCheckRequest(b *testing.B) {
	wire, err := proto.Marshal(checkRequest("seed-bench-000000003", 0))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var r authv3.CheckRequest
		if err := proto.Unmarshal(wire, &r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(wire)), "wire-bytes")
}
