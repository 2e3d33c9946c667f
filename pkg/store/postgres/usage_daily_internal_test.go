package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/chunked"
	"github.com/keygate/keygate/pkg/store"
)

// TestDayOf: a row's day is the start of its UTC day, before 1970 too.
func TestDayOf(t *testing.T) {
	for _, tc := range []struct{ t, want time.Time }{
		{time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 4, 1, 1, 0, 0, 0, time.FixedZone("CEST", 2*3600)), time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)},
		{time.Date(1969, 12, 31, 5, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)},
	} {
		if got := time.Unix(dayOf(tc.t), 0).UTC(); !got.Equal(tc.want) {
			t.Errorf("dayOf(%s) = %s, want %s", tc.t, got, tc.want)
		}
	}
}

// BenchmarkDailySums is the rollup's work in Go for a flush of 100,000
// keys' rows (one account, one tenant and app, two outcomes).
func BenchmarkDailySums(b *testing.B) {
	h := time.Now().UTC().Truncate(time.Hour)
	rows := make([]store.UsageDelta, 100_000)
	for i := range rows {
		rows[i] = store.UsageDelta{Count: 1, Row: store.UsageRow{AccountID: "acct", TenantID: "tenant", AppID: "app",
			KeyID: fmt.Sprintf("key-%06d", i), Service: "email-api", Operation: "read", Outcome: [2]string{"allowed", "rate_limited"}[i%2], Hour: h}}
	}
	for b.Loop() {
		if keys, _ := dailySums(chunked.Of(rows...)); len(keys) != 2 {
			b.Fatalf("%d rollup rows, want 2", len(keys))
		}
	}
}
