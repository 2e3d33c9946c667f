// Package metrics holds keygate's Prometheus instruments. Every series is
// created once at start (one counter per reason), so recording a decision
// allocates nothing and label cardinality is fixed.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/keygate/keygate/pkg/authz"
)

// Metrics is the set of instruments, registered in its own registry.
type Metrics struct {
	Registry  *prometheus.Registry
	decisions []prometheus.Counter // indexed by authz.Reason
	latency   prometheus.Observer
	reloads   *prometheus.CounterVec
}

// New creates and registers the instruments. keysLoaded, when non-nil, is
// read at scrape time (or set later with KeysLoaded).
func New(version string, keysLoaded func() float64) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg}

	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keygate_decisions_total",
		Help: "Check decisions by result (allow|deny) and reason code.",
	}, []string{"result", "reason"})
	for _, r := range authz.Reasons() {
		result := "deny"
		if r == authz.OK {
			result = "allow"
		}
		m.decisions = append(m.decisions, decisions.WithLabelValues(result, r.String()))
	}
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "keygate_check_duration_seconds",
		Help:    "Time to decide one Check, from request in to response out.",
		Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1},
	})
	m.latency = latency
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keygate_config_reloads_total",
		Help: "Reloads of the keys and routes files by file and result (ok|error).",
	}, []string{"file", "result"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "keygate_build_info",
		Help:        "Always 1; the version label tells which keygate runs.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	reg.MustRegister(decisions, latency, m.reloads, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if keysLoaded != nil {
		m.KeysLoaded(keysLoaded)
	}
	return m
}

// KeysLoaded registers the gauge of loaded keys, read at scrape time. Call
// it once.
func (m *Metrics) KeysLoaded(f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keygate_keys_loaded",
		Help: "Keys currently loaded and able to decide.",
	}, f))
}

// ObserveCheck records one decision; it satisfies extauthz.Observer.
func (m *Metrics) ObserveCheck(_ context.Context, d *authz.Decision, elapsed time.Duration) {
	if int(d.Reason) < len(m.decisions) {
		m.decisions[d.Reason].Inc()
	}
	m.latency.Observe(elapsed.Seconds())
}

// ObserveReload records a reload of file ("keys" or "routes").
func (m *Metrics) ObserveReload(file string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reloads.WithLabelValues(file, result).Inc()
}
