package metrics_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/metrics"
)

func TestObserveTLS(t *testing.T) {
	m := metrics.New("dev", nil)
	expiry := time.Unix(1900000000, 0)
	authzFailed, err := m.ObserveTLS("authz", func() time.Time { return expiry })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ObserveTLS("admin", func() time.Time { return expiry.Add(time.Hour) }); err != nil {
		t.Fatal(err)
	}
	authzFailed()
	authzFailed()
	text := scrape(t, m)
	for _, line := range []string{
		`keygate_tls_reload_errors_total{listener="authz"} 2`,
		`keygate_tls_reload_errors_total{listener="admin"} 0`,
		`keygate_tls_certificate_not_after_seconds{listener="authz"} 1.9e+09`,
		`keygate_tls_certificate_not_after_seconds{listener="admin"} 1.9000036e+09`,
	} {
		if !slices.Contains(strings.Split(text, "\n"), line) {
			t.Errorf("/metrics lacks the line %s\n%s", line, text)
		}
	}
}
