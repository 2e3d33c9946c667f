// Package admin is keygate's operator HTTP listener: liveness, readiness
// and Prometheus metrics. It never serves request data or key material.
package admin

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness reports whether keygate can decide requests, and why not.
type Readiness func() (ready bool, detail string)

// Handler serves /healthz (the process is up), /readyz (keys are loaded;
// 503 until then, 200 with the detail when degraded) and /metrics.
func Handler(ready Readiness, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, detail := ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + detail + "\n"))
			return
		}
		if detail != "" && detail != "ok" {
			// Ready but degraded (e.g. the database is unreachable and cached
			// keys keep deciding): still 200, so that an outage of the store
			// does not also take every replica out of the load balancer.
			_, _ = w.Write([]byte("ready; " + detail + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}
