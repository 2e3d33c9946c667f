package telemetry_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keygate/keygate/pkg/admin"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/metrics"
)

type dtoMetric = dto.Metric

// scrapeFamilies GETs /metrics from the admin handler and parses it.
func scrapeFamilies(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(admin.Handler(func() (bool, string) { return true, "" }, m.Registry))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func hasherSHA256Hex(secret string) string {
	d := hasher.Sum(secret)
	return hex.EncodeToString(d[:])
}

// TestMetricsAfterChecks sends a handful of checks through the server as
// serve wires it (cache, metrics, tracing off) and reads /metrics.
func TestMetricsAfterChecks(t *testing.T) {
	f := newFixture(t, nil)
	m := metrics.New("v9.9.9", func() float64 { return float64(f.cache.Len()) })
	m.ObserveCache(f.cache.Stats)
	srv := extauthz.NewServer(f.engine, f.cfg, m, nil)
	for _, req := range []struct{ path, key string }{
		{"/email/read", f.secret},
		{"/email/read", f.secret},
		{"/email/send", f.scoped},
		{"/email/read", "an-unknown-custom-key-0001"},
		{"/email/read", ""},
		{"/nowhere", f.secret},
	} {
		if _, err := srv.Check(context.Background(), request(req.path, req.key, nil)); err != nil {
			t.Fatal(err)
		}
	}
	m.ObserveReload("routes", nil)

	fams := scrapeFamilies(t, m)
	want := map[string]float64{
		"keygate_keys_loaded":         2,
		"keygate_cache_hits_total":    4, // the unknown route too: lookup comes first
		"keygate_cache_rejects_total": 1,
		"keygate_cache_misses_total":  0,
		"keygate_build_info":          1,
	}
	for name, v := range want {
		mf, ok := fams[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		met := mf.GetMetric()[0]
		got := met.GetGauge().GetValue() + met.GetCounter().GetValue()
		if got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	for _, name := range []string{"keygate_cache_negative_hits_total", "keygate_config_reloads_total", "keygate_check_duration_seconds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if got := labelValue(fams["keygate_build_info"].GetMetric()[0], "version"); got != "v9.9.9" {
		t.Errorf("build_info version %q", got)
	}
	decisions := map[string]float64{}
	for _, met := range fams["keygate_decisions_total"].GetMetric() {
		decisions[labelValue(met, "result")+"/"+labelValue(met, "reason")] = met.GetCounter().GetValue()
	}
	for k, v := range map[string]float64{"allow/ok": 2, "deny/scope_denied": 1, "deny/unknown_key": 1, "deny/missing_key": 1, "deny/unknown_route": 1} {
		if decisions[k] != v {
			t.Errorf("decisions %s = %v, want %v", k, decisions[k], v)
		}
	}
	if n := fams["keygate_check_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n != 6 {
		t.Errorf("check duration count %d, want 6", n)
	}
}
