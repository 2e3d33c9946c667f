package telemetry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"

	"github.com/keygate/keygate/pkg/tlsfiles/tlstest"
)

// TestTLSIdentityOnSpans: a client certificate's subject and SANs label
// the span of a gRPC call and of an HTTP request; nothing else of the
// certificate does.
func TestTLSIdentityOnSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr, err := Setup(context.Background(), Config{SpanProcessor: rec, Version: "test", Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Shutdown(context.Background()) }()
	leaf := tlstest.NewCA(t, "ca").Client(t, "envoy")
	state := tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert}}

	// gRPC: the handler runs after otelgrpc's, whose span is in ctx.
	ctx, span := tr.tracer.Start(context.Background(), "grpc call")
	ctx = peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: state}})
	identityHandler{}.TagRPC(ctx, &stats.RPCTagInfo{FullMethodName: "/envoy.service.auth.v3.Authorization/Check"})
	span.End()

	// HTTP: inside WrapHTTP's span.
	h := tr.WrapHTTP(tr.WrapHTTPIdentity(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	r := httptest.NewRequest("GET", "https://keygate/check", nil)
	r.TLS = &state
	h.ServeHTTP(httptest.NewRecorder(), r)

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for _, s := range spans {
		got := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes() {
			got[kv.Key] = kv.Value
		}
		if got[AttrTLSClientSubject].AsString() != "CN=envoy,O=keygate tests" {
			t.Errorf("%s: subject %q", s.Name(), got[AttrTLSClientSubject].AsString())
		}
		if sans := strings.Join(got[AttrTLSClientSANs].AsStringSlice(), " "); !strings.Contains(sans, "spiffe://keygate.test/envoy") {
			t.Errorf("%s: SANs %q", s.Name(), sans)
		}
	}
}
