package telemetry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"

	"github.com/keygate/keygate/pkg/tlsfiles"
)

// The client certificate's identity on a span (mTLS listeners): the
// subject as OpenTelemetry's semantic conventions name it, and the
// subject alternative names. Neither is secret.
const (
	AttrTLSClientSubject = attribute.Key("tls.client.subject")
	AttrTLSClientSANs    = attribute.Key("keygate.tls.client.sans")
)

// TLSIdentityAttributes are the span attributes of a client certificate.
func TLSIdentityAttributes(c *x509.Certificate) []attribute.KeyValue {
	id := tlsfiles.IdentityOf(c)
	return []attribute.KeyValue{AttrTLSClientSubject.String(id.Subject), AttrTLSClientSANs.StringSlice(id.SANs)}
}

// GRPCIdentityOptions label each call's server span (the one
// GRPCServerOptions starts, which must come first) with the caller's
// client certificate. Only recorded spans pay for it; with tracing off
// there is no option at all.
func (t *Tracing) GRPCIdentityOptions() []grpc.ServerOption {
	if !t.Enabled() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(identityHandler{})}
}

// identityHandler is a stats handler that only tags calls.
type identityHandler struct{}

func (identityHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return ctx
	}
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			setIdentity(span, &info.State)
		}
	}
	return ctx
}

func (identityHandler) HandleRPC(context.Context, stats.RPCStats)                         {}
func (identityHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (identityHandler) HandleConn(context.Context, stats.ConnStats)                       {}

// WrapHTTPIdentity labels the span in each request's context (WrapHTTP's)
// with the client certificate of the request's connection.
func (t *Tracing) WrapHTTPIdentity(next http.Handler) http.Handler {
	if !t.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
			setIdentity(span, r.TLS)
		}
		next.ServeHTTP(w, r)
	})
}

func setIdentity(span trace.Span, cs *tls.ConnectionState) {
	if cs != nil && len(cs.PeerCertificates) > 0 {
		span.SetAttributes(TLSIdentityAttributes(cs.PeerCertificates[0])...)
	}
}
