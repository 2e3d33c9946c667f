package telemetry

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
)

// CheckSpanName is the name of the span around each Check.
const CheckSpanName = "keygate.Check"

// Span attribute keys of the Check span. Values are ids, codes and names
// from the routes table: never a secret, a hash or a request header.
const (
	AttrDecision  = attribute.Key("keygate.decision") // allow | deny
	AttrReason    = attribute.Key("keygate.reason")   // authz.Reason code
	AttrKeyID     = attribute.Key("keygate.key.id")
	AttrKeyType   = attribute.Key("keygate.key.type")
	AttrApp       = attribute.Key("keygate.app.id")
	AttrTenant    = attribute.Key("keygate.tenant.id")
	AttrService   = attribute.Key("keygate.service")
	AttrKind      = attribute.Key("keygate.operation.kind")
	AttrOperation = attribute.Key("keygate.operation")
	AttrCacheHit  = attribute.Key("keygate.cache.hit")
)

// CheckTracer returns the extauthz.CheckTracer that puts a span around
// each Check: install it with Server.SetTracer. The parent is the W3C
// traceparent/tracestate of the CheckRequest's HTTP headers (the request
// Envoy asks about), unless ctx already holds a local span of that same
// trace (the otelgrpc server span of this call, made from the gRPC
// metadata), which is then the parent. A header trace that differs from
// ctx's is the parent and ctx's span becomes a link. Without a header the
// span continues ctx's trace, or starts one.
//
// The span's attributes come from the decision: pass the Observer that
// Observer(next) returns to extauthz.NewServer. With tracing off it
// returns nil, which costs the Check nothing.
func (t *Tracing) CheckTracer() extauthz.CheckTracer {
	if !t.Enabled() {
		return nil
	}
	return checkTracer{t}
}

type checkTracer struct{ t *Tracing }

func (c checkTracer) StartCheck(ctx context.Context, h extauthz.Headers) context.Context {
	ctx, _ = c.t.startCheck(ctx, headersCarrier{h})
	return ctx
}

func (checkTracer) EndCheck(ctx context.Context, err error) {
	span := trace.SpanFromContext(ctx)
	if err != nil {
		st, _ := status.FromError(err)
		span.SetStatus(codes.Error, st.Code().String())
	}
	span.End()
}

// startCheck starts the Check span with the parent chosen as
// CheckTracer describes. It runs on every Check with tracing on, sampled
// or not, so the common cases allocate only what the SDK must: the span
// options are shared, and the caller's trace context is extracted once,
// straight into the context the span starts from.
func (t *Tracing) startCheck(ctx context.Context, carrier propagation.TextMapCarrier) (context.Context, trace.Span) {
	local := trace.SpanContextFromContext(ctx)
	opts := serverSpan
	if local.IsValid() && !local.IsRemote() {
		opts = internalSpan // below the otelgrpc server span
	}
	// Extract puts the request's traceparent in ctx, as the parent to be;
	// without a valid one it returns ctx as it is, at no cost (remote is
	// then local). It is taken only when it is a trace of its own.
	withRemote := t.prop.Extract(ctx, carrier)
	if remote := trace.SpanContextFromContext(withRemote); remote.IsValid() && !remote.Equal(local) &&
		(!local.IsValid() || local.TraceID() != remote.TraceID() || local.IsRemote()) {
		ctx, opts = withRemote, serverSpan
		if local.IsValid() {
			opts = []trace.SpanStartOption{trace.WithLinks(trace.Link{SpanContext: local}), serverSpan[0]}
		}
	}
	return t.tracer.Start(ctx, CheckSpanName, opts...)
}

// The options of a Check span, made once: passing them costs nothing.
var (
	serverSpan   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	internalSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
)

// Observer returns an extauthz.Observer that calls next and then labels
// the span in ctx (the one CheckTracer started) with the decision.
// keys is the engine's key store: when it reports cache hits
// (authz.HitReporter), spans carry keygate.cache.hit. With tracing off
// it returns next itself.
func (t *Tracing) Observer(next extauthz.Observer, keys authz.KeyStore) extauthz.Observer {
	if next == nil {
		next = nopObserver{}
	}
	if !t.Enabled() {
		return next
	}
	_, hits := keys.(authz.HitReporter)
	return &spanObserver{next: next, hits: hits}
}

type nopObserver struct{}

func (nopObserver) ObserveCheck(context.Context, *authz.Decision, time.Duration) {}

type spanObserver struct {
	next extauthz.Observer
	hits bool
}

func (o *spanObserver) ObserveCheck(ctx context.Context, d *authz.Decision, elapsed time.Duration) {
	o.next.ObserveCheck(ctx, d, elapsed)
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(DecisionAttributes(d, o.hits)...)
	if d.Reason == authz.StoreUnavailable {
		span.SetStatus(codes.Error, d.Reason.String())
	}
}

// DecisionAttributes are the span attributes of a decision: allow or deny,
// the reason, the key's id, type, app and tenant once the key is known, the
// routed service and operation, and (cacheHits) whether the key store
// answered from memory. It allocates: call it only for recording spans.
func DecisionAttributes(d *authz.Decision, cacheHits bool) []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, 10)
	decision := "deny"
	if d.Allowed() {
		decision = "allow"
	}
	kv = append(kv, AttrDecision.String(decision), AttrReason.String(d.Reason.String()))
	if k := d.Key; k != nil {
		kv = append(kv, AttrKeyID.String(k.Spec.ID), AttrKeyType.String(k.Spec.Type.String()))
		if k.Spec.AppID != "" {
			kv = append(kv, AttrApp.String(k.Spec.AppID))
		}
		if k.Spec.TenantID != "" {
			kv = append(kv, AttrTenant.String(k.Spec.TenantID))
		}
	}
	if d.Target.Service != "" {
		kv = append(kv, AttrService.String(d.Target.Service), AttrKind.String(d.Target.Kind),
			AttrOperation.String(d.Target.Operation))
	}
	// Missing and malformed keys never reach the store.
	if cacheHits && d.Reason != authz.MissingKey && d.Reason != authz.MalformedKey {
		kv = append(kv, AttrCacheHit.Bool(d.CacheHit))
	}
	return kv
}

// headersCarrier reads the trace context from a CheckRequest's HTTP
// headers (extauthz.Headers: the headers map, or header_map without case).
// It never writes.
type headersCarrier struct {
	h extauthz.Headers
}

func (c headersCarrier) Get(key string) string { return c.h.Get(key) }
func (headersCarrier) Set(string, string)      {}
func (c headersCarrier) Keys() []string        { return c.h.Keys() }

// WrapHTTP is CheckTracer for the HTTP ext_authz mode: a span around
// each request, parented by its traceparent header (or ctx's span). The
// handler's Observer labels it, as for gRPC. With tracing off it returns
// next itself.
func (t *Tracing) WrapHTTP(next http.Handler) http.Handler {
	if !t.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := t.startCheck(r.Context(), propagation.HeaderCarrier(r.Header))
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
