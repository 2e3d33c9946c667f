package telemetry_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/metrics"
	"github.com/keygate/keygate/pkg/telemetry"
)

// BenchmarkCheckObserved is the in-process Check handler on a cache hit
// (CheckRequest in, CheckResponse out) as serve wires it, with:
//
//   - nop: no observer at all, the baseline;
//   - metrics: the OpenTelemetry metrics, tracing off (no endpoint) — the
//     default deployment; it must stay within 5% of nop and allocate
//     nothing;
//   - metrics+tracing-unsampled: tracing on, the caller's traceparent not
//     sampled (parentbased sampler);
//   - metrics+tracing: tracing on, every Check sampled and exported to a
//     batcher with a no-op exporter.
//
// Every case sends the same request, traceparent included, so that the
// differences are the observers' alone (the extra header costs the
// handler about 25 ns whether tracing is on or off).
func BenchmarkCheckObserved(b *testing.B) {
	const (
		sampled   = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	)
	on := func(b *testing.B) *telemetry.Tracing {
		tr, err := telemetry.Setup(context.Background(), telemetry.Config{
			SpanProcessor: sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter()),
			Getenv:        func(string) string { return "" },
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
		return tr
	}
	cases := []struct {
		name        string
		metrics     bool
		tracing     func(*testing.B) *telemetry.Tracing
		traceparent string
	}{
		{"nop", false, func(*testing.B) *telemetry.Tracing { return telemetry.Disabled() }, sampled},
		{"metrics", true, func(*testing.B) *telemetry.Tracing { return telemetry.Disabled() }, sampled},
		{"metrics+tracing-unsampled", true, on, unsampled},
		{"metrics+tracing", true, on, sampled},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			f := newFixture(b, nil)
			tr := tc.tracing(b)
			var obs extauthz.Observer
			if tc.metrics {
				obs = metrics.New("bench", nil)
			}
			srv := withTracer(tr, extauthz.NewServer(f.engine, f.cfg, tr.Observer(obs, f.engine.Keys), nil))
			var extra map[string]string
			if tc.traceparent != "" {
				extra = map[string]string{"traceparent": tc.traceparent}
			}
			req := request("/email/read", f.secret, extra)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := srv.Check(ctx, req)
				if err != nil || resp.GetOkResponse() == nil {
					b.Fatal("not allowed")
				}
			}
		})
	}
}
