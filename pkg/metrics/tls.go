package metrics

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The TLS instruments, one series per listener serving TLS.
const (
	nameTLSReloadErrors = "keygate.tls.reload_errors"         // keygate_tls_reload_errors_total{listener}
	nameTLSNotAfter     = "keygate.tls.certificate.not_after" // keygate_tls_certificate_not_after_seconds{listener}
)

// ObserveTLS exports a TLS listener's certificate expiry (Unix seconds,
// read at scrape time from notAfter, so that an alert can fire days
// before it) and returns the function that counts a refused reload of its
// files.
func (m *Metrics) ObserveTLS(listener string, notAfter func() time.Time) (reloadFailed func(), err error) {
	set := metric.WithAttributeSet(attribute.NewSet(attribute.String("listener", listener)))
	errs, err := m.meter.Int64Counter(nameTLSReloadErrors,
		metric.WithDescription("Reloads of a listener's TLS files refused (unreadable, not PEM, a key that does not match, expired); the last good certificate keeps serving."))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// The counter's series exists from the start, at 0: an alert on its
	// rate needs no absent() special case.
	errs.Add(context.Background(), 0, set)
	// One gauge, a callback per listener: a callback given to the
	// instrument's constructor would only be kept for the first listener.
	gauge, err := m.meter.Float64ObservableGauge(nameTLSNotAfter, metric.WithUnit("s"),
		metric.WithDescription("When the certificate a TLS listener serves expires, as a Unix time."))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	_, err = m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveFloat64(gauge, float64(notAfter().Unix()), set)
		return nil
	}, gauge)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return func() { errs.Add(context.Background(), 1, set) }, nil
}
