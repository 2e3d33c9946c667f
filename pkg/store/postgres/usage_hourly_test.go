package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// newUsageStore is a store on a database of its own, and its pool.
func newUsageStore(tb testing.TB) (*postgres.Store, *pgxpool.Pool) {
	pool, err := pgxpool.New(tb.Context(), pgtest.NewDatabase(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return postgres.New(tb.Context(), pool, postgres.Options{}), pool
}

// TestUsagePartitions: AddUsage creates the month partitions it needs,
// EnsureUsagePartitions those ahead, and DropUsageBefore drops whole
// months past retention only.
func TestUsagePartitions(t *testing.T) {
	s, pool := newUsageStore(t)
	ctx := t.Context()
	parts := func() []string {
		rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_hourly' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	if err := s.EnsureUsagePartitions(ctx, time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), 2); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUsage(ctx, map[store.UsageRow]int64{
		{AccountID: "a", KeyID: "k", Outcome: "allowed", Hour: time.Date(2026, 8, 31, 23, 0, 0, 0, time.UTC)}: 1,
	}); err != nil {
		t.Fatal(err)
	}
	want := "[usage_hourly_p202608 usage_hourly_p202609 usage_hourly_p202611 usage_hourly_p202612 usage_hourly_p202701]"
	if got := fmt.Sprint(parts()); got != want {
		t.Fatalf("partitions %s, want %s", got, want)
	}
	// 90 days before 2026-12-15 is 2026-09-16: August and September's
	// partitions end by then only for August.
	n, err := s.DropUsageBefore(ctx, time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC).Add(-90*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("dropped %d, %v; want 1", n, err)
	}
	want = "[usage_hourly_p202609 usage_hourly_p202611 usage_hourly_p202612 usage_hourly_p202701]"
	if got := fmt.Sprint(parts()); got != want {
		t.Fatalf("after retention %s, want %s", got, want)
	}
	// A month dropped is created again when counts for it arrive.
	aug := map[store.UsageRow]int64{{AccountID: "a", KeyID: "k", Outcome: "allowed", Hour: time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)}: 1}
	if err := s.AddUsage(ctx, aug); err != nil {
		t.Fatal(err)
	}
	// Dropped by another replica (another store on the same database):
	// the first write fails, the retry recreates the partition.
	other := postgres.New(ctx, pool, postgres.Options{})
	if n, err := other.DropUsageBefore(ctx, time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 1 {
		t.Fatalf("other replica dropped %d, %v; want 1", n, err)
	}
	if err := s.AddUsage(ctx, aug); err == nil {
		t.Fatal("write into a partition dropped meanwhile: no error")
	}
	if err := s.AddUsage(ctx, aug); err != nil {
		t.Fatalf("retry after the partition was dropped: %v", err)
	}
}

// BenchmarkAddUsage100kKeys is one flush of an hour's counts of 100,000
// active keys, each with two operations and one deny reason: 300,000 rows.
// It reports the flush time per op and the table's bytes per row.
func BenchmarkAddUsage100kKeys(b *testing.B) {
	s, pool := newUsageStore(b)
	h := time.Now().UTC().Truncate(time.Hour)
	deltas := make(map[store.UsageRow]int64, 300_000)
	for i := range 100_000 {
		base := store.UsageRow{AccountID: "acct-" + fmt.Sprint(i%10), TenantID: fmt.Sprintf("tenant-%d", i%1000), AppID: "billing",
			KeyID: fmt.Sprintf("key-%06d", i), Service: "email-api", Hour: h}
		for _, v := range [][2]string{{"listEmails", "allowed"}, {"sendEmail", "allowed"}, {"sendEmail", "scope_denied"}} {
			r := base
			r.Operation, r.Outcome = v[0], v[1]
			deltas[r] = int64(i%7 + 1)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if err := s.AddUsage(b.Context(), deltas); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var bytes int64
	if err := pool.QueryRow(b.Context(), `SELECT pg_total_relation_size('usage_hourly_p'||to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYYMM'))`, h).Scan(&bytes); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(deltas)), "rows/flush")
	b.ReportMetric(float64(bytes)/float64(len(deltas)), "table-bytes/row")
}

// TestUsageFlushUpdatesInPlace: a flush that adds to rows an earlier one
// wrote updates their counts without a new entry in any of usage_hourly's
// indexes (heap-only updates, migration 0018): the indexes of a partition
// the flushes created keep their size. With an index holding count, or
// pages too full for a second version of each row, the flush would add an
// entry a row to each of them. One flush after the first: every new version
// then fits beside the old one without PostgreSQL pruning anything, so the
// outcome does not depend on what else the server runs (later flushes
// depend on pruning the versions the last one left, which a snapshot held
// anywhere in the database delays: docs/performance.md has the steady
// state).
func TestUsageFlushUpdatesInPlace(t *testing.T) {
	s, pool := newUsageStore(t)
	ctx := t.Context()
	h := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	deltas := make(map[store.UsageRow]int64, 2000)
	for i := range 2000 {
		deltas[store.UsageRow{AccountID: "acct", TenantID: "tenant", AppID: "app", KeyID: fmt.Sprintf("key-%06d", i),
			Service: "email-api", Operation: "listEmails", Outcome: "allowed", Hour: h}] = 1
	}
	var fillfactor string
	indexes := func() (n int64) {
		t.Helper()
		err := pool.QueryRow(ctx, `SELECT pg_indexes_size('usage_hourly_p202612'),
			coalesce(array_to_string(reloptions, ','), '') FROM pg_class WHERE relname = 'usage_hourly_p202612'`).Scan(&n, &fillfactor)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := s.AddUsage(ctx, deltas); err != nil {
		t.Fatal(err)
	}
	first := indexes()
	if fillfactor != "fillfactor=45" {
		t.Errorf("partition created with options %q, want fillfactor=45", fillfactor)
	}
	// The quota totals, updated once a flush each likewise.
	var quotaOptions string
	if err := pool.QueryRow(ctx, `SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = 'quota_counts'`).Scan(&quotaOptions); err != nil || quotaOptions != "fillfactor=45" {
		t.Errorf("quota_counts options %q, %v; want fillfactor=45", quotaOptions, err)
	}
	if err := s.AddUsage(ctx, deltas); err != nil {
		t.Fatal(err)
	}
	if after := indexes(); after != first {
		t.Errorf("indexes grew from %d to %d bytes in a flush that only added to the same %d rows: updates are not heap-only",
			first, after, len(deltas))
	}
	var sum int64
	if err := pool.QueryRow(ctx, `SELECT sum(count) FROM usage_hourly WHERE key_id = 'key-000042' AND outcome = 'allowed'`).Scan(&sum); err != nil || sum != 2 {
		t.Fatalf("count %d, %v; want 2", sum, err)
	}
}
