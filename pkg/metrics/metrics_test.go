package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/keygate/keygate/pkg/admin"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/cache"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/metrics"
)

// scrape fetches /metrics from the admin handler, as Prometheus does.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(admin.Handler(func() (bool, string) { return true, "" }, m.Registry))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(body)
}

func families(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestExposition(t *testing.T) {
	m := metrics.New("v1.2.3", func() float64 { return 42 })
	ctx := context.Background()
	for _, c := range []struct {
		reason  authz.Reason
		elapsed time.Duration
	}{
		{authz.OK, 30 * time.Microsecond},
		{authz.OK, 300 * time.Microsecond},
		{authz.OK, 2 * time.Second},
		{authz.UnknownKey, 25 * time.Microsecond}, // on a bucket's bound: counted in it
		{authz.ScopeDenied, time.Millisecond},
	} {
		m.ObserveCheck(ctx, &authz.Decision{Reason: c.reason}, c.elapsed)
	}
	m.ObserveReload("keys", nil)
	m.ObserveReload("routes", errors.New("bad yaml"))
	m.ObserveReload("routes", nil)
	m.ObserveStoreQuery(ctx, metrics.OpSelect, 2*time.Millisecond, false)
	m.ObserveStoreQuery(ctx, metrics.OpSelect, 3*time.Millisecond, true)
	m.ObservePropagationLag(40 * time.Millisecond)
	m.ObserveCache(func() cache.Stats {
		return cache.Stats{Hits: 7, Misses: 3, NegativeHits: 2, NotInSet: 5, ChangesApplied: 4, CatchUpErrors: 1, FeedConnected: true,
			FeedLag: 1500 * time.Millisecond, FeedBacklog: 12, CostBytes: 4096, MaxBytes: 1 << 20, KeysUnloadable: 1}
	})

	m.ObserveKeptAllows(func() extauthz.KeptAllowStats {
		return extauthz.KeptAllowStats{Bytes: 3 << 20, Budget: 64 << 20, Kept: 9, Retired: 2}
	})

	fams := families(t, m)
	want := map[string]dto.MetricType{
		"keygate_kept_allow_size_bytes":        dto.MetricType_GAUGE,
		"keygate_kept_allow_max_size_bytes":    dto.MetricType_GAUGE,
		"keygate_kept_allow_encoded_total":     dto.MetricType_COUNTER,
		"keygate_kept_allow_retired_total":     dto.MetricType_COUNTER,
		"keygate_decisions_total":              dto.MetricType_COUNTER,
		"keygate_check_duration_seconds":       dto.MetricType_HISTOGRAM,
		"keygate_keys_loaded":                  dto.MetricType_GAUGE,
		"keygate_config_reloads_total":         dto.MetricType_COUNTER,
		"keygate_build_info":                   dto.MetricType_GAUGE,
		"keygate_cache_hits_total":             dto.MetricType_COUNTER,
		"keygate_cache_misses_total":           dto.MetricType_COUNTER,
		"keygate_cache_negative_hits_total":    dto.MetricType_COUNTER,
		"keygate_cache_rejects_total":          dto.MetricType_COUNTER,
		"keygate_change_feed_connected":        dto.MetricType_GAUGE,
		"keygate_cache_cost_bytes":             dto.MetricType_GAUGE,
		"keygate_cache_max_bytes":              dto.MetricType_GAUGE,
		"keygate_keys_unloadable":              dto.MetricType_GAUGE,
		"keygate_keys_weak_secrets_total":      dto.MetricType_COUNTER,
		"keygate_change_feed_applied_total":    dto.MetricType_COUNTER,
		"keygate_change_feed_errors_total":     dto.MetricType_COUNTER,
		"keygate_feed_lag_seconds":             dto.MetricType_GAUGE,
		"keygate_feed_backlog":                 dto.MetricType_GAUGE,
		"keygate_store_query_duration_seconds": dto.MetricType_HISTOGRAM,
		"keygate_store_errors_total":           dto.MetricType_COUNTER,
		"keygate_propagation_lag_seconds":      dto.MetricType_HISTOGRAM,
		"go_goroutines":                        dto.MetricType_GAUGE,
		"process_start_time_seconds":           dto.MetricType_GAUGE,
	}
	for name, typ := range want {
		mf, ok := fams[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if mf.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, mf.GetType(), typ)
		}
	}
	for name, mf := range fams {
		if strings.HasPrefix(name, "keygate_") {
			if _, ok := want[name]; !ok {
				t.Errorf("unexpected metric %s", name)
			}
		}
		if name == "target_info" || strings.HasPrefix(name, "otel_") {
			t.Errorf("exporter metadata %s is exported", name)
		}
		for _, met := range mf.GetMetric() {
			for l := range labels(met) {
				if strings.HasPrefix(l, "otel_") {
					t.Errorf("%s has label %s", name, l)
				}
			}
		}
	}

	// Every reason has its series from the start, with fixed labels.
	dec := fams["keygate_decisions_total"].GetMetric()
	if len(dec) != len(authz.Reasons()) {
		t.Errorf("%d decision series, want one per reason (%d)", len(dec), len(authz.Reasons()))
	}
	got := map[string]float64{}
	for _, met := range dec {
		l := labels(met)
		if len(l) != 2 {
			t.Errorf("decision labels %v, want result and reason", l)
		}
		got[l["result"]+"/"+l["reason"]] = met.GetCounter().GetValue()
	}
	for k, v := range map[string]float64{"allow/ok": 3, "deny/unknown_key": 1, "deny/scope_denied": 1, "deny/missing_key": 0} {
		if got[k] != v {
			t.Errorf("decisions %s = %v, want %v", k, got[k], v)
		}
	}

	h := fams["keygate_check_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 5 {
		t.Errorf("check duration count %d, want 5", h.GetSampleCount())
	}
	if want := (30e-6 + 300e-6 + 2 + 25e-6 + 1e-3); abs(h.GetSampleSum()-want) > 1e-9 {
		t.Errorf("check duration sum %v, want %v", h.GetSampleSum(), want)
	}
	cum := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	for bound, n := range map[float64]uint64{25e-6: 1, 50e-6: 2, 500e-6: 3, 1e-3: 4, 1: 4} {
		if cum[bound] != n {
			t.Errorf("bucket le=%v holds %d, want %d (all: %v)", bound, cum[bound], n, cum)
		}
	}

	text := scrape(t, m)
	for _, line := range []string{
		`keygate_decisions_total{reason="ok",result="allow"} 3`,
		`keygate_check_duration_seconds_bucket{le="2.5e-05"} 1`,
		`keygate_check_duration_seconds_count 5`,
		`keygate_keys_loaded 42`,
		`keygate_config_reloads_total{file="keys",result="ok"} 1`,
		`keygate_config_reloads_total{file="routes",result="error"} 1`,
		`keygate_build_info{version="v1.2.3"} 1`,
		`keygate_cache_hits_total 7`,
		`keygate_cache_misses_total 3`,
		`keygate_cache_negative_hits_total 2`,
		`keygate_cache_rejects_total 5`,
		`keygate_change_feed_connected 1`,
		`keygate_cache_cost_bytes 4096`,
		`keygate_kept_allow_size_bytes 3.145728e+06`,
		`keygate_kept_allow_max_size_bytes 6.7108864e+07`,
		`keygate_kept_allow_encoded_total 9`,
		`keygate_kept_allow_retired_total 2`,
		`keygate_cache_max_bytes 1.048576e+06`,
		`keygate_keys_unloadable 1`,
		`keygate_change_feed_applied_total 4`,
		`keygate_change_feed_errors_total 1`,
		`keygate_feed_lag_seconds 1.5`,
		`keygate_feed_backlog 12`,
		`keygate_store_query_duration_seconds_count{operation="select"} 2`,
		`keygate_store_errors_total{operation="select"} 1`,
		`keygate_propagation_lag_seconds_count 1`,
	} {
		if !slices.Contains(strings.Split(text, "\n"), line) {
			t.Errorf("/metrics lacks the line %s", line)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}

func TestKeysLoadedLater(t *testing.T) {
	m := metrics.New("dev", nil)
	if _, ok := families(t, m)["keygate_keys_loaded"]; ok {
		t.Error("keys_loaded reported before a source was given")
	}
	n := 1.0
	m.KeysLoaded(func() float64 { return n })
	n = 5
	mf := families(t, m)["keygate_keys_loaded"]
	if v := mf.GetMetric()[0].GetGauge().GetValue(); v != 5 {
		t.Errorf("keys_loaded = %v, want 5 (read at scrape time)", v)
	}
}

func TestConcurrentObserveAndScrape(t *testing.T) {
	m := metrics.New("dev", nil)
	done := make(chan struct{})
	const n = 4000
	go func() {
		defer close(done)
		d := &authz.Decision{Reason: authz.OK}
		for range n {
			m.ObserveCheck(context.Background(), d, time.Millisecond)
		}
	}()
	for range 5 {
		families(t, m)
	}
	<-done
	h := families(t, m)["keygate_check_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != n {
		t.Errorf("count %d, want %d", h.GetSampleCount(), n)
	}
}

func TestObserveCheckDoesNotAllocate(t *testing.T) {
	m := metrics.New("dev", nil)
	d := &authz.Decision{Reason: authz.ScopeDenied}
	ctx := context.Background()
	if a := testing.AllocsPerRun(1000, func() { m.ObserveCheck(ctx, d, time.Millisecond) }); a != 0 {
		t.Errorf("ObserveCheck allocates %v times", a)
	}
	if a := testing.AllocsPerRun(1000, func() { m.ObserveStoreQuery(ctx, metrics.OpSelect, time.Millisecond, true) }); a != 0 {
		t.Errorf("ObserveStoreQuery allocates %v times", a)
	}
}

func BenchmarkObserveCheck(b *testing.B) {
	m := metrics.New("bench", nil)
	d := &authz.Decision{Reason: authz.OK}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveCheck(ctx, d, 300*time.Microsecond)
	}
}

func BenchmarkObserveCheckParallel(b *testing.B) {
	m := metrics.New("bench", nil)
	d := &authz.Decision{Reason: authz.OK}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			m.ObserveCheck(ctx, d, 300*time.Microsecond)
		}
	})
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
