// Package telemetry is keygate's OpenTelemetry edge: the tracer provider
// and OTLP export, the Check span (a decorator around the ext_authz server
// plus an Observer that labels the span with the decision), the otelgrpc
// stats handler, a pgx QueryTracer, the change-feed propagation lag, and
// header redaction for logs.
//
// Nothing here is imported by the core: pkg/authz and pkg/extauthz know
// nothing of OpenTelemetry. When tracing is off (no OTLP endpoint and no
// test exporter), Setup returns a Tracing whose decorators hand back what
// they were given, so the hot path pays nothing for it.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of keygate's spans.
const ScopeName = "github.com/keygate/keygate"

// Sampler names, as OTEL_TRACES_SAMPLER spells them.
const (
	SamplerAlwaysOn                = "always_on"
	SamplerAlwaysOff               = "always_off"
	SamplerTraceIDRatio            = "traceidratio"
	SamplerParentBasedAlwaysOn     = "parentbased_always_on"
	SamplerParentBasedAlwaysOff    = "parentbased_always_off"
	SamplerParentBasedTraceIDRatio = "parentbased_traceidratio"
)

// Config configures tracing. Empty fields fall back to the standard
// OpenTelemetry environment variables, then to the defaults noted.
type Config struct {
	// ServiceName is service.name; "" means OTEL_SERVICE_NAME, then
	// "keygate".
	ServiceName string
	// Version is service.version.
	Version string
	// OTLPEndpoint is the OTLP/gRPC collector as a URL: http://host:4317
	// (plaintext) or https://host:4317 (TLS). "" means
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, then OTEL_EXPORTER_OTLP_ENDPOINT
	// (read by the exporter itself, with the other OTEL_EXPORTER_OTLP_*
	// settings: headers, certificates, timeout). With none of them, and no
	// SpanProcessor, tracing is off.
	OTLPEndpoint string
	// Sampler is one of the Sampler* names; "" means OTEL_TRACES_SAMPLER,
	// then parentbased_always_on.
	Sampler string
	// SampleRatio is the ratio of the *traceidratio samplers, in [0, 1];
	// 0 (unset) means OTEL_TRACES_SAMPLER_ARG, then 1. To sample no root
	// spans, use parentbased_always_off.
	SampleRatio float64
	// SpanProcessor, when set, receives every span (tests pass a
	// tracetest.SpanRecorder, or sdktrace.NewSimpleSpanProcessor of an
	// in-memory exporter) and turns tracing on even without an endpoint.
	SpanProcessor sdktrace.SpanProcessor
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// Tracing is what Setup built: a tracer provider (a no-op one when tracing
// is off) and the decorators that use it.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when off
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
}

// Disabled is a Tracing that is off: every decorator returns its argument.
func Disabled() *Tracing {
	tp := noop.NewTracerProvider()
	return &Tracing{provider: tp, tracer: tp.Tracer(ScopeName), prop: propagation.TraceContext{}}
}

// Setup builds the tracer provider from cfg and the environment. It does
// not touch OpenTelemetry's globals. Call Shutdown at exit to flush spans.
func Setup(ctx context.Context, cfg Config) (*Tracing, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return Disabled(), nil
	}
	endpoint := cfg.OTLPEndpoint
	envEndpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
	if getenv("OTEL_TRACES_EXPORTER") == "none" && endpoint == "" {
		envEndpoint = false
	}
	if endpoint == "" && !envEndpoint && cfg.SpanProcessor == nil {
		return Disabled(), nil
	}

	sampler, err := newSampler(cfg, getenv)
	if err != nil {
		return nil, err
	}
	var opts []sdktrace.TracerProviderOption
	if endpoint != "" || envEndpoint {
		var eopts []otlptracegrpc.Option
		if endpoint != "" {
			if err := checkEndpoint(endpoint); err != nil {
				return nil, err
			}
			eopts = append(eopts, otlptracegrpc.WithEndpointURL(endpoint))
		}
		// New does not dial: an unreachable collector only costs the
		// spans it drops, and the batcher never blocks a check.
		exp, err := otlptracegrpc.New(ctx, eopts...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	if cfg.SpanProcessor != nil {
		opts = append(opts, sdktrace.WithSpanProcessor(cfg.SpanProcessor))
	}
	name := cfg.ServiceName
	if name == "" {
		name = getenv("OTEL_SERVICE_NAME")
	}
	if name == "" {
		name = "keygate"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	// Detectors cannot fail with these options; a partial resource is
	// still usable, so its error is only about what was left out.
	res, _ := resource.New(ctx, resource.WithAttributes(attrs...))
	opts = append(opts, sdktrace.WithResource(res), sdktrace.WithSampler(sampler))

	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracing{provider: tp, sdk: tp, tracer: tp.Tracer(ScopeName, trace.WithInstrumentationVersion(cfg.Version)),
		prop: propagation.TraceContext{}}, nil
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// TracerProvider is the provider (a no-op one when tracing is off), for
// other instrumentation such as the pgx tracer.
func (t *Tracing) TracerProvider() trace.TracerProvider { return t.provider }

// Shutdown flushes the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}

func checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("telemetry: OTLP endpoint %q: want a URL such as http://otel-collector:4317 (plaintext) or https://… (TLS)", endpoint)
	}
	return nil
}

func newSampler(cfg Config, getenv func(string) string) (sdktrace.Sampler, error) {
	name := cfg.Sampler
	if name == "" {
		name = strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER"))
	}
	if name == "" {
		name = SamplerParentBasedAlwaysOn
	}
	ratio := cfg.SampleRatio
	if ratio == 0 && strings.HasSuffix(name, SamplerTraceIDRatio) {
		ratio = 1
		if arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")); arg != "" {
			r, err := strconv.ParseFloat(arg, 64)
			if err != nil {
				return nil, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG %q: not a number", arg)
			}
			ratio = r
		}
	}
	if ratio < 0 || ratio > 1 {
		return nil, fmt.Errorf("telemetry: sample ratio %g: want a number in [0, 1]", ratio)
	}
	switch name {
	case SamplerAlwaysOn:
		return sdktrace.AlwaysSample(), nil
	case SamplerAlwaysOff:
		return sdktrace.NeverSample(), nil
	case SamplerTraceIDRatio:
		return sdktrace.TraceIDRatioBased(ratio), nil
	case SamplerParentBasedAlwaysOn:
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case SamplerParentBasedAlwaysOff:
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case SamplerParentBasedTraceIDRatio:
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, errors.New("telemetry: unknown sampler " + strconv.Quote(name) +
		" (want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio)")
}
