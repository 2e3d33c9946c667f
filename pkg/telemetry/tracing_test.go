package telemetry_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/cache"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/grpctest"
	"github.com/keygate/keygate/pkg/metrics"
	"github.com/keygate/keygate/pkg/telemetry"
)

const (
	parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpan  = "00f067aa0ba902b7"
	traceparent = "00-" + parentTrace + "-" + parentSpan + "-01"
)

func noEnv(string) string { return "" }

// traced is a server as serve wires it with tracing on, recording spans.
type traced struct {
	*fixture
	rec *tracetest.SpanRecorder
	tr  *telemetry.Tracing
	srv *extauthz.Server // with the tracer, as serve installs it
}

// withTracer installs tr's tracer on srv, as serve does.
func withTracer(tr *telemetry.Tracing, srv *extauthz.Server) *extauthz.Server {
	srv.SetTracer(tr.CheckTracer())
	return srv
}

func newTraced(t *testing.T) *traced {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tr, err := telemetry.Setup(context.Background(), telemetry.Config{SpanProcessor: rec, Version: "test", Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	f := newFixture(t, nil)
	m := metrics.New("test", nil)
	inner := extauthz.NewServer(f.engine, f.cfg, tr.Observer(m, f.engine.Keys), nil)
	return &traced{fixture: f, rec: rec, tr: tr, srv: withTracer(tr, inner)}
}

// secrets are every form of key material the fixture knows: no span may
// carry any of them.
func (f *fixture) secrets(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, s := range []string{f.secret, f.scoped} {
		d := hasher.Sum(s)
		out = append(out, s, hasher.HashString(s), hex.EncodeToString(d[:]))
		// The part after the prefix, in case something trims it.
		if i := strings.LastIndexByte(s, '_'); i > 0 {
			out = append(out, s[i+1:])
		}
	}
	return out
}

// assertNoSecret scans every string a span exports.
func assertNoSecret(t *testing.T, spans []sdktrace.ReadOnlySpan, secrets []string) {
	t.Helper()
	for _, s := range spans {
		texts := []string{s.Name(), s.Status().Description}
		for _, kv := range s.Attributes() {
			texts = append(texts, string(kv.Key), kv.Value.String())
		}
		for _, e := range s.Events() {
			texts = append(texts, e.Name)
			for _, kv := range e.Attributes {
				texts = append(texts, kv.Value.String())
			}
		}
		for _, l := range s.Links() {
			for _, kv := range l.Attributes {
				texts = append(texts, kv.Value.String())
			}
		}
		texts = append(texts, s.SpanContext().TraceState().String())
		for _, text := range texts {
			for _, secret := range secrets {
				if secret != "" && strings.Contains(text, secret) {
					t.Errorf("span %q exports key material in %q", s.Name(), text)
				}
			}
		}
	}
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

func onlySpan(t *testing.T, rec *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	ended := rec.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want 1", len(ended))
	}
	rec.Reset()
	return ended[0]
}

func TestCheckSpanJoinsTraceparent(t *testing.T) {
	x := newTraced(t)
	all := map[string]string{"traceparent": traceparent, "tracestate": "vendor=opaque"}
	cases := []struct {
		name      string
		req       *authv3.CheckRequest
		want      map[attribute.Key]string // Emit()ted values
		wantUnset []attribute.Key
	}{
		{
			name: "allow",
			req:  request("/email/read?page=2", x.secret, all),
			want: map[attribute.Key]string{
				telemetry.AttrDecision: "allow", telemetry.AttrReason: "ok",
				telemetry.AttrKeyID: "k-svc", telemetry.AttrKeyType: "service",
				telemetry.AttrApp: "billing", telemetry.AttrTenant: "acme",
				telemetry.AttrService: "email-api", telemetry.AttrKind: "query", telemetry.AttrOperation: "listEmails",
				telemetry.AttrCacheHit: "true",
			},
		},
		{
			name: "scope denied",
			req:  request("/email/send", x.scoped, all),
			want: map[attribute.Key]string{
				telemetry.AttrDecision: "deny", telemetry.AttrReason: "scope_denied", telemetry.AttrKeyID: "k-scoped",
				telemetry.AttrService: "email-api", telemetry.AttrOperation: "sendEmail", telemetry.AttrCacheHit: "true",
			},
		},
		{
			name: "unknown key, answered by the key set",
			req:  request("/email/read", "an-unknown-custom-key-0001", all),
			want: map[attribute.Key]string{
				telemetry.AttrDecision: "deny", telemetry.AttrReason: "unknown_key", telemetry.AttrCacheHit: "true",
			},
			wantUnset: []attribute.Key{telemetry.AttrKeyID, telemetry.AttrService},
		},
		{
			name:      "missing key",
			req:       request("/email/read", "", all),
			want:      map[attribute.Key]string{telemetry.AttrDecision: "deny", telemetry.AttrReason: "missing_key"},
			wantUnset: []attribute.Key{telemetry.AttrKeyID, telemetry.AttrCacheHit},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := x.srv.Check(context.Background(), tc.req); err != nil {
				t.Fatal(err)
			}
			s := onlySpan(t, x.rec)
			if s.Name() != telemetry.CheckSpanName || s.SpanKind() != trace.SpanKindServer {
				t.Errorf("span %q kind %v, want %q server", s.Name(), s.SpanKind(), telemetry.CheckSpanName)
			}
			if got := s.SpanContext().TraceID().String(); got != parentTrace {
				t.Errorf("trace id %s, want the traceparent's %s", got, parentTrace)
			}
			p := s.Parent()
			if p.SpanID().String() != parentSpan || p.TraceID().String() != parentTrace || !p.IsRemote() {
				t.Errorf("parent %s/%s remote=%v, want the traceparent's %s/%s", p.TraceID(), p.SpanID(), p.IsRemote(), parentTrace, parentSpan)
			}
			if got := s.SpanContext().TraceState().String(); got != "vendor=opaque" {
				t.Errorf("tracestate %q, want the caller's", got)
			}
			got := attrs(s)
			for k, v := range tc.want {
				if g, ok := got[k]; !ok || g.String() != v {
					t.Errorf("%s = %q (set: %v), want %q", k, g.String(), ok, v)
				}
			}
			for _, k := range tc.wantUnset {
				if _, ok := got[k]; ok {
					t.Errorf("%s is set", k)
				}
			}
			if s.Status().Code == codes.Error {
				t.Errorf("a deny is not an error: status %v", s.Status())
			}
			assertNoSecret(t, []sdktrace.ReadOnlySpan{s}, x.secrets(t))
		})
	}
}

func TestCheckSpanFromHeaderMap(t *testing.T) {
	x := newTraced(t)
	req := request("/email/read", "", nil)
	req.Attributes.Request.Http.Headers = nil
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "x-api-key", RawValue: []byte(x.secret)},
		{Key: "Traceparent", RawValue: []byte(traceparent)},
	}}
	if _, err := x.srv.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, x.rec)
	if s.Parent().SpanID().String() != parentSpan {
		t.Errorf("parent %s, want %s from header_map", s.Parent().SpanID(), parentSpan)
	}
	if got := attrs(s)[telemetry.AttrReason].String(); got != "ok" {
		t.Errorf("reason %q, want ok", got)
	}
	assertNoSecret(t, []sdktrace.ReadOnlySpan{s}, x.secrets(t))
}

func TestCheckSpanWithoutParent(t *testing.T) {
	x := newTraced(t)
	for _, tp := range []string{"", "00-garbage", "00-" + parentTrace + "-0000000000000000-01"} {
		if _, err := x.srv.Check(context.Background(), request("/email/read", x.secret, map[string]string{"traceparent": tp})); err != nil {
			t.Fatal(err)
		}
		s := onlySpan(t, x.rec)
		if s.Parent().IsValid() {
			t.Errorf("traceparent %q: span has parent %v, want a root span", tp, s.Parent())
		}
		if s.SpanKind() != trace.SpanKindServer {
			t.Errorf("kind %v, want server", s.SpanKind())
		}
	}
}

func TestUnsampledParentRecordsNothing(t *testing.T) {
	x := newTraced(t)
	unsampled := "00-" + parentTrace + "-" + parentSpan + "-00"
	if _, err := x.srv.Check(context.Background(), request("/email/read", x.secret, map[string]string{"traceparent": unsampled})); err != nil {
		t.Fatal(err)
	}
	if n := len(x.rec.Started()); n != 0 {
		t.Errorf("%d spans recorded for an unsampled caller (parentbased sampler)", n)
	}
}

func TestStoreUnavailableSpanIsAnError(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr, err := telemetry.Setup(context.Background(), telemetry.Config{SpanProcessor: rec, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, nil)
	cold, err := cache.New(f.src, cache.Options{}) // never warmed: every lookup fails
	if err != nil {
		t.Fatal(err)
	}
	engine := &authz.Engine{Keys: cold, Routes: routes, Hasher: hasher}
	srv := withTracer(tr, extauthz.NewServer(engine, f.cfg, tr.Observer(nil, cold), nil))
	if _, err := srv.Check(context.Background(), request("/email/read", f.secret, nil)); err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, rec)
	if s.Status().Code != codes.Error || s.Status().Description != "store_unavailable" {
		t.Errorf("status %v, want error store_unavailable", s.Status())
	}
	if got := attrs(s)[telemetry.AttrCacheHit].String(); got != "false" {
		t.Errorf("cache hit %q, want false", got)
	}
}

func TestCancelledCheckSpan(t *testing.T) {
	x := newTraced(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := x.srv.Check(ctx, request("/email/read", x.secret, nil)); err == nil {
		t.Fatal("a cancelled check answered")
	}
	s := onlySpan(t, x.rec)
	if s.Status().Code != codes.Error {
		t.Errorf("status %v, want an error", s.Status())
	}
}

// TestGRPCStatsHandler runs Check over gRPC with the otelgrpc stats
// handler: the call's metadata carries trace A.
// TestGRPCStatsHandler serves Check as serve does (keygate's codec and
// handler, the hook on the server, otelgrpc's stats handler) and checks
// the parentage of the two spans of a call.
func TestGRPCStatsHandler(t *testing.T) {
	x := newTraced(t)
	gs := grpc.NewServer(append(x.tr.GRPCServerOptions(), extauthz.ServerCodec())...)
	x.srv.Register(gs)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	conn := grpctest.Serve(t, gs)
	client := authv3.NewAuthorizationClient(conn)

	const (
		metaTrace = "11111111111111111111111111111111"
		metaSpan  = "2222222222222222"
		hdrSpan   = "3333333333333333"
		otherTr   = "44444444444444444444444444444444"
	)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+metaTrace+"-"+metaSpan+"-01")
	call := func(t *testing.T, header string) (grpcSpan, checkSpan sdktrace.ReadOnlySpan) {
		t.Helper()
		x.rec.Reset()
		var extra map[string]string
		if header != "" {
			extra = map[string]string{"traceparent": header}
		}
		if _, err := client.Check(ctx, request("/email/read", x.secret, extra)); err != nil {
			t.Fatal(err)
		}
		// The stats handler ends its span after the response is sent.
		waitFor(t, "two spans", func() bool { return len(x.rec.Ended()) == 2 })
		for _, s := range x.rec.Ended() {
			if s.Name() == telemetry.CheckSpanName {
				checkSpan = s
			} else {
				grpcSpan = s
			}
		}
		if grpcSpan == nil || checkSpan == nil {
			t.Fatalf("spans %v", x.rec.Ended())
		}
		if grpcSpan.Parent().SpanID().String() != metaSpan || grpcSpan.SpanContext().TraceID().String() != metaTrace {
			t.Errorf("gRPC span parent %v, want the metadata's", grpcSpan.Parent())
		}
		assertNoSecret(t, x.rec.Ended(), x.secrets(t))
		return grpcSpan, checkSpan
	}

	t.Run("metadata only: child of the gRPC span", func(t *testing.T) {
		g, c := call(t, "")
		if c.Parent().SpanID() != g.SpanContext().SpanID() || c.SpanKind() != trace.SpanKindInternal {
			t.Errorf("check span parent %v kind %v, want the gRPC span, internal", c.Parent().SpanID(), c.SpanKind())
		}
	})
	t.Run("header of the same trace: child of the gRPC span", func(t *testing.T) {
		g, c := call(t, "00-"+metaTrace+"-"+hdrSpan+"-01")
		if c.Parent().SpanID() != g.SpanContext().SpanID() {
			t.Errorf("check span parent %v, want the gRPC span %v", c.Parent().SpanID(), g.SpanContext().SpanID())
		}
	})
	t.Run("header of another trace: its child, linked to the gRPC span", func(t *testing.T) {
		g, c := call(t, "00-"+otherTr+"-"+hdrSpan+"-01")
		if c.SpanContext().TraceID().String() != otherTr || c.Parent().SpanID().String() != hdrSpan {
			t.Errorf("check span %v parent %v, want the header's", c.SpanContext().TraceID(), c.Parent().SpanID())
		}
		if c.SpanKind() != trace.SpanKindServer {
			t.Errorf("kind %v, want server", c.SpanKind())
		}
		if l := c.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != g.SpanContext().SpanID() {
			t.Errorf("links %v, want the gRPC span", l)
		}
	})
	t.Run("health checks are not traced", func(t *testing.T) {
		x.rec.Reset()
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if n := len(x.rec.Ended()); n != 0 {
			t.Errorf("%d spans for a health check", n)
		}
	})
}

func TestTracingOff(t *testing.T) {
	tr, err := telemetry.Setup(context.Background(), telemetry.Config{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() {
		t.Fatal("tracing on without an endpoint")
	}
	f := newFixture(t, nil)
	m := metrics.New("test", nil)
	if got := tr.CheckTracer(); got != nil {
		t.Errorf("CheckTracer with tracing off: %v, want nil (nothing on the hot path)", got)
	}

	if got := tr.Observer(m, f.engine.Keys); got != extauthz.Observer(m) {
		t.Error("Observer wraps with tracing off")
	}
	if opts := tr.GRPCServerOptions(); opts != nil {
		t.Error("stats handler installed with tracing off")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestSetupConfig(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		name    string
		cfg     telemetry.Config
		enabled bool
		wantErr string
	}{
		{"nothing set", telemetry.Config{Getenv: env()}, false, ""},
		{"keygate endpoint", telemetry.Config{OTLPEndpoint: "http://127.0.0.1:4317", Getenv: env()}, true, ""},
		{"standard endpoint", telemetry.Config{Getenv: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")}, true, ""},
		{"standard traces endpoint", telemetry.Config{Getenv: env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4317")}, true, ""},
		{"exporter none", telemetry.Config{Getenv: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4317", "OTEL_TRACES_EXPORTER", "none")}, false, ""},
		{"sdk disabled", telemetry.Config{OTLPEndpoint: "http://x:4317", Getenv: env("OTEL_SDK_DISABLED", "true")}, false, ""},
		{"bare host:port", telemetry.Config{OTLPEndpoint: "collector:4317", Getenv: env()}, false, "want a URL"},
		{"ratio sampler", telemetry.Config{OTLPEndpoint: "http://x:4317", Sampler: "parentbased_traceidratio", SampleRatio: 0.1, Getenv: env()}, true, ""},
		{"sampler from env", telemetry.Config{OTLPEndpoint: "http://x:4317", Getenv: env("OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.25")}, true, ""},
		{"bad sampler arg", telemetry.Config{OTLPEndpoint: "http://x:4317", Getenv: env("OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "lots")}, false, "not a number"},
		{"ratio out of range", telemetry.Config{OTLPEndpoint: "http://x:4317", Sampler: "traceidratio", SampleRatio: 2, Getenv: env()}, false, "[0, 1]"},
		{"unknown sampler", telemetry.Config{OTLPEndpoint: "http://x:4317", Sampler: "sometimes", Getenv: env()}, false, "unknown sampler"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := telemetry.Setup(context.Background(), tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = tr.Shutdown(ctx)
			}()
			if tr.Enabled() != tc.enabled {
				t.Errorf("enabled %v, want %v", tr.Enabled(), tc.enabled)
			}
		})
	}
}

func TestSamplers(t *testing.T) {
	sampledCount := func(t *testing.T, sampler string, ratio float64, parentFlags string) int {
		rec := tracetest.NewSpanRecorder()
		tr, err := telemetry.Setup(context.Background(), telemetry.Config{SpanProcessor: rec, Sampler: sampler, SampleRatio: ratio, Getenv: noEnv})
		if err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, nil)
		srv := withTracer(tr, extauthz.NewServer(f.engine, f.cfg, tr.Observer(nil, f.engine.Keys), nil))
		for i := range 100 {
			var extra map[string]string
			if parentFlags != "" {
				extra = map[string]string{"traceparent": fmt.Sprintf("00-%032x-%s-%s", i+1, parentSpan, parentFlags)}
			}
			if _, err := srv.Check(context.Background(), request("/email/read", f.secret, extra)); err != nil {
				t.Fatal(err)
			}
		}
		return len(rec.Ended())
	}
	cases := []struct {
		sampler  string
		ratio    float64
		flags    string
		min, max int
	}{
		{"always_off", 0, "01", 0, 0},
		{"always_on", 0, "00", 100, 100},
		{"parentbased_always_off", 0, "", 0, 0},
		{"parentbased_always_off", 0, "01", 100, 100},
		{"parentbased_traceidratio", 0.5, "", 1, 99},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%v/%s", tc.sampler, tc.ratio, tc.flags), func(t *testing.T) {
			if n := sampledCount(t, tc.sampler, tc.ratio, tc.flags); n < tc.min || n > tc.max {
				t.Errorf("%d of 100 sampled, want %d..%d", n, tc.min, tc.max)
			}
		})
	}
}

// hitless is a key store that does not report cache hits.
type hitless struct{ authz.KeyStore }

func TestNoCacheHitAttributeWithoutHitReporter(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr, err := telemetry.Setup(context.Background(), telemetry.Config{SpanProcessor: rec, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, nil)
	keys := hitless{f.cache}
	engine := &authz.Engine{Keys: keys, Routes: routes, Hasher: hasher}
	srv := withTracer(tr, extauthz.NewServer(engine, f.cfg, tr.Observer(nil, keys), nil))
	if _, err := srv.Check(context.Background(), request("/email/read", f.secret, nil)); err != nil {
		t.Fatal(err)
	}
	if _, ok := attrs(onlySpan(t, rec))[telemetry.AttrCacheHit]; ok {
		t.Error("keygate.cache.hit set for a store that cannot tell")
	}
}

func TestWrapHTTP(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr, err := telemetry.Setup(context.Background(), telemetry.Config{SpanProcessor: rec, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	obs := tr.Observer(nil, nil)
	h := tr.WrapHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		obs.ObserveCheck(r.Context(), &authz.Decision{Reason: authz.MissingKey}, time.Millisecond)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	r := httptest.NewRequest("GET", "/email/read", nil)
	r.Header.Set("Traceparent", traceparent)
	h.ServeHTTP(httptest.NewRecorder(), r)
	s := onlySpan(t, rec)
	if s.Parent().SpanID().String() != parentSpan || s.SpanKind() != trace.SpanKindServer {
		t.Errorf("parent %v kind %v", s.Parent(), s.SpanKind())
	}
	if got := attrs(s)[telemetry.AttrReason].String(); got != "missing_key" {
		t.Errorf("reason %q", got)
	}
	if off := telemetry.Disabled(); off.WrapHTTP(h) == nil {
		t.Error("nil handler")
	}
}
