package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/chunked"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// rollupDay0 is the first day of the usage rollupRows make: 2026-03-29,
// so that the rows span a month's end.
var rollupDay0 = time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)

// rollupRows are n random usage rows of two accounts in the 5 days from
// rollupDay0, over a few tenants, apps, keys, operations and outcomes.
func rollupRows(r *rand.Rand, n int) []store.UsageDelta {
	pick := func(vals ...string) string { return vals[r.IntN(len(vals))] }
	out := make([]store.UsageDelta, n)
	for i := range out {
		out[i] = store.UsageDelta{Count: int64(1 + r.IntN(9)), Row: store.UsageRow{
			AccountID: pick("acc-1", "acc-1", "acc-2"), TenantID: pick("", "acme", "globex"),
			AppID: pick("", "billing", "mail"), KeyID: pick("", "k-1", "k-2", "k-3"),
			Service: pick("email-api", "sms-api"), Operation: pick("read", "send"),
			Outcome: pick("allowed", "allowed", "rate_limited", "scope_denied"),
			Hour:    rollupDay0.Add(time.Duration(r.IntN(5*24)) * time.Hour),
		}}
	}
	return out
}

// wantRollupAgrees runs queries that the rollup answers both through
// QueryUsage and through the hourly rows alone, and wants the same.
// usageBothWays answers q as QueryUsage does (from the rollup where it
// can) and from the hourly rows alone.
func usageBothWays(ctx context.Context, s *postgres.Store, q store.UsageQuery) (got, hourly []store.UsageSeries, err error) {
	if got, err = s.QueryUsage(ctx, q); err != nil {
		return nil, nil, err
	}
	if hourly, err = postgres.QueryUsageHourly(ctx, s, q); err != nil {
		return nil, nil, fmt.Errorf("hourly: %w", err)
	}
	return got, hourly, nil
}

func wantRollupAgrees(t *testing.T, s *postgres.Store) {
	t.Helper()
	day := func(d int) time.Time { return rollupDay0.AddDate(0, 0, d) }
	f := func(kv ...string) map[store.UsageField]string {
		m := map[store.UsageField]string{}
		for i := 0; i < len(kv); i += 2 {
			m[store.UsageField(kv[i])] = kv[i+1]
		}
		return m
	}
	by := func(fs ...store.UsageField) []store.UsageField { return fs }
	ranges := []struct {
		name     string
		from, to time.Time
	}{
		{"whole days", day(0), day(5)},
		{"within a day", day(1).Add(3 * time.Hour), day(1).Add(17 * time.Hour)},
		{"from mid-day", day(1).Add(5 * time.Hour), day(4)},
		{"up to mid-day (now)", day(1), day(3).Add(10*time.Hour + 17*time.Minute + 3*time.Second + 500)},
		{"both ends mid-day", day(-1).Add(23 * time.Hour), day(4).Add(time.Hour + time.Nanosecond)},
		{"a week up to now", day(-2), day(4).Add(12*time.Hour + 30*time.Minute)},
		{"after the rows", day(6), day(8)},
	}
	queries := []struct {
		name string
		q    store.UsageQuery
	}{
		{"total by day", store.UsageQuery{Granularity: store.Daily}},
		{"by outcome", store.UsageQuery{Granularity: store.Daily, GroupBy: by(store.UsageOutcome)}},
		{"tenant by outcome", store.UsageQuery{Granularity: store.Daily, Filters: f("tenant", "acme"), GroupBy: by(store.UsageOutcome)}},
		{"app by outcome", store.UsageQuery{Granularity: store.Daily, Filters: f("app", "billing"), GroupBy: by(store.UsageOutcome)}},
		{"no tenant's", store.UsageQuery{Granularity: store.Daily, Filters: f("tenant", "")}},
		{"allowed by tenant and app", store.UsageQuery{Granularity: store.Daily, Filters: f("outcome", "allowed"),
			GroupBy: by(store.UsageApp, store.UsageTenant)}},
		{"tenant, app and outcome", store.UsageQuery{Granularity: store.Daily, Filters: f("tenant", "globex", "app", "mail", "outcome", "rate_limited")}},
		{"monthly by tenant and outcome", store.UsageQuery{Granularity: store.Monthly, GroupBy: by(store.UsageTenant, store.UsageOutcome)}},
		{"unknown tenant", store.UsageQuery{Granularity: store.Daily, Filters: f("tenant", "initech")}},
	}
	for _, acc := range []string{"acc-1", "acc-2", "acc-3"} {
		for _, rg := range ranges {
			for _, qc := range queries {
				q := qc.q
				q.AccountID, q.From, q.Until = acc, rg.from, rg.to
				got, want, err := usageBothWays(t.Context(), s, q)
				if err != nil {
					t.Fatalf("%s, %s, %s: %v", acc, rg.name, qc.name, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s, %s, %s: rollup (+) and hourly rows (-) differ:\n%s", acc, rg.name, qc.name, diff)
				}
			}
		}
	}
}

func newRollupStore(t *testing.T) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return postgres.New(t.Context(), pool, postgres.Options{}), pool
}

// TestUsageRollupAgrees: usage written by flushes, some of them late
// (rows of hours and days past, after later ones), and by replicas at
// once, reads the same from the daily rollup as from the hourly rows, for
// ranges of whole days and ranges that begin or end mid-day (rows after
// the range's end included: a replica's clock ahead), and after the
// retention drops a month.
func TestUsageRollupAgrees(t *testing.T) {
	t.Parallel()
	s, pool := newRollupStore(t)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(1, 2))
	// Flushes in time order, then late ones over every day again.
	for _, batch := range [][]store.UsageDelta{rollupRows(r, 3000), rollupRows(r, 3000), rollupRows(r, 500)} {
		if _, err := s.AddUsageQuotas(ctx, chunked.Of(batch...), nil, "replica-1"); err != nil {
			t.Fatal(err)
		}
	}
	// Two replicas flushing the same rows at once.
	other := postgres.New(ctx, pool, postgres.Options{})
	shared := rollupRows(r, 2000)
	errs := make(chan error, 2)
	for _, st := range []*postgres.Store{s, other} {
		go func() {
			_, err := st.AddUsageQuotas(ctx, chunked.Of(shared...), nil, fmt.Sprintf("%p", st))
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var rolled, hourly int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM usage_daily_owner), (SELECT count(*) FROM usage_hourly)`).Scan(&rolled, &hourly); err != nil {
		t.Fatal(err)
	}
	// 2 accounts × 5 days × 3 tenants × 3 apps × 3 outcomes at most.
	if rolled > 270 || rolled >= hourly {
		t.Fatalf("%d rollup rows for %d hourly ones, want at most 270", rolled, hourly)
	}
	wantRollupAgrees(t, s)

	// The retention drops March: its days go from the rollup too.
	if _, err := s.DropUsageBefore(ctx, time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	var march int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM usage_daily_owner WHERE day < '2026-04-01Z'`).Scan(&march); err != nil {
		t.Fatal(err)
	}
	if march != 0 {
		t.Fatalf("%d rollup rows of March after its partition was dropped", march)
	}
	wantRollupAgrees(t, s)
}

// TestUsageRollupMigration: migration 0017 fills the rollup from the
// hourly rows already there, and keygate_usage_daily_rebuild repairs the
// days of rows written around the flush.
func TestUsageRollupMigration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.NewEmptyDatabase(t)
	if err := postgres.MigrateURLUpTo(ctx, url, 15); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	r := rand.New(rand.NewPCG(3, 4))
	// Written by a replica of the version before the rollup.
	old := postgres.New(ctx, pool, postgres.Options{})
	if err := old.EnsureUsagePartitions(ctx, rollupDay0, 1); err != nil {
		t.Fatal(err)
	}
	insertHourly := func(rows []store.UsageDelta) {
		t.Helper()
		for _, d := range rows {
			row := d.Row
			if _, err := pool.Exec(ctx, `INSERT INTO usage_hourly (account_id, hour, tenant_id, app_id, key_id, service, operation, outcome, count)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (account_id, hour, key_id, service, operation, outcome, tenant_id, app_id)
				DO UPDATE SET count = usage_hourly.count + excluded.count`,
				row.AccountID, row.Hour, row.TenantID, row.AppID, row.KeyID, row.Service, row.Operation, row.Outcome, d.Count); err != nil {
				t.Fatal(err)
			}
		}
	}
	insertHourly(rollupRows(r, 1500))
	if err := postgres.MigrateURL(ctx, url); err != nil {
		t.Fatal(err)
	}
	s := postgres.New(ctx, pool, postgres.Options{})
	if _, err := s.AddUsageQuotas(ctx, chunked.Of(rollupRows(r, 1000)...), nil, "new"); err != nil {
		t.Fatal(err)
	}
	wantRollupAgrees(t, s)

	// Rows an older replica wrote after the migration: the rollup lacks
	// them until the days are rebuilt.
	insertHourly(rollupRows(r, 300))
	q := store.UsageQuery{AccountID: "acc-1", Granularity: store.Daily, From: rollupDay0, Until: rollupDay0.AddDate(0, 0, 5)}
	got, want, err := usageBothWays(ctx, s, q)
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Equal(got, want) {
		t.Fatal("rows written around the flush: the rollup agrees before it is rebuilt")
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT keygate_usage_daily_rebuild($1, $2)`, rollupDay0.Add(5*time.Hour), rollupDay0.AddDate(0, 0, 5)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the rebuild wrote no rows")
	}
	wantRollupAgrees(t, s)
}

// TestUsageRollupRead: a query the rollup answers reads it (a row put
// there alone shows), one it does not reads the hourly rows.
func TestUsageRollupRead(t *testing.T) {
	t.Parallel()
	s, pool := newRollupStore(t)
	ctx := t.Context()
	h := rollupDay0.Add(30 * time.Hour)
	if err := s.AddUsage(ctx, map[store.UsageRow]int64{
		{AccountID: "acc-1", TenantID: "acme", KeyID: "k-1", Operation: "read", Outcome: "allowed", Hour: h}: 5,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE usage_daily_owner SET count = 7`); err != nil {
		t.Fatal(err)
	}
	day := rollupDay0.AddDate(0, 0, 1)
	for _, tc := range []struct {
		name string
		q    store.UsageQuery
		want int64
	}{
		{"daily by tenant", store.UsageQuery{Granularity: store.Daily, GroupBy: []store.UsageField{store.UsageTenant}}, 7},
		{"monthly, allowed", store.UsageQuery{Granularity: store.Monthly, Filters: map[store.UsageField]string{store.UsageOutcome: "allowed"}}, 7},
		{"hourly", store.UsageQuery{Granularity: store.Hourly}, 5},
		{"by key", store.UsageQuery{Granularity: store.Daily, GroupBy: []store.UsageField{store.UsageKey}}, 5},
		{"an operation", store.UsageQuery{Granularity: store.Daily, Filters: map[store.UsageField]string{store.UsageOperation: "read"}}, 5},
		{"a page of keys", store.UsageQuery{Granularity: store.Daily, KeyIDs: []string{"k-1"}}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.AccountID, q.From, q.Until = "acc-1", day, day.AddDate(0, 0, 1)
			got, err := s.QueryUsage(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Total != tc.want {
				t.Fatalf("QueryUsage = %+v, want a total of %d", got, tc.want)
			}
		})
	}
}

// TestUsageRollupBatches: a flush of more hourly and rollup rows than one
// statement carries writes them all, each chunk's columns in their place
// (the hourly columns are built again in one buffer for every chunk).
func TestUsageRollupBatches(t *testing.T) {
	t.Parallel()
	s, pool := newRollupStore(t)
	ctx := context.Background()
	rows := make([]store.UsageDelta, 12_000)
	for i := range rows {
		rows[i] = store.UsageDelta{Count: int64(1 + i%3), Row: store.UsageRow{AccountID: "acc-1", TenantID: fmt.Sprintf("t-%05d", i),
			KeyID: fmt.Sprintf("k-%05d", i), Service: "svc", Operation: fmt.Sprintf("op-%d", i%7), Outcome: "allowed",
			Hour: rollupDay0.Add(time.Duration(i%48) * time.Hour)}}
	}
	if _, err := s.AddUsageQuotas(ctx, chunked.Of(rows...), nil, "r"); err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	for _, r := range rows {
		want += r.Count
	}
	got, err := s.QueryUsage(ctx, store.UsageQuery{AccountID: "acc-1", Granularity: store.Daily, From: rollupDay0, Until: rollupDay0.AddDate(0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Total != want || len(got[0].Points) != 2 {
		t.Fatalf("QueryUsage = %+v, want %d over 2 days", got, want)
	}
	// Every hourly row as it was given: a row whose columns came from two
	// chunks would name another tenant, operation, hour or count.
	stored, err := pool.Query(ctx, `SELECT tenant_id, key_id, operation, hour, count FROM usage_hourly WHERE account_id = 'acc-1'`)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for stored.Next() {
		var (
			tenant, key, op string
			hour            time.Time
			n               int64
		)
		if err := stored.Scan(&tenant, &key, &op, &hour, &n); err != nil {
			t.Fatal(err)
		}
		var i int
		if _, err := fmt.Sscanf(key, "k-%05d", &i); err != nil || i >= len(rows) {
			t.Fatalf("stored key %q", key)
		}
		r := rows[i]
		if tenant != r.Row.TenantID || op != r.Row.Operation || !hour.Equal(r.Row.Hour) || n != r.Count {
			t.Fatalf("row %d stored as %s %s %s %v %d, want %+v", i, tenant, key, op, hour, n, r)
		}
		seen++
	}
	if err := stored.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(rows) {
		t.Fatalf("%d hourly rows stored, want %d", seen, len(rows))
	}
}

// TestUsageRollupReconcile: hourly rows written around the flush (by a
// replica of the version before the rollup, during a rolling upgrade)
// make the rollup short; ReconcileUsageRollup finds the account days
// that differ among the last two and rebuilds them, and then finds none.
// Days before those two are left to keygate_usage_daily_rebuild.
func TestUsageRollupReconcile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, pool := newRollupStore(t)
	now := time.Date(2026, 4, 1, 10, 30, 0, 0, time.UTC) // rollupRows span 03-29 to 04-02
	if _, err := s.AddUsageQuotas(ctx, chunked.Of(rollupRows(rand.New(rand.NewPCG(7, 8)), 800)...), nil, "r1"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ReconcileUsageRollup(ctx, now); err != nil || n != 0 {
		t.Fatalf("with every row through the flush: %d rebuilt, %v; want none", n, err)
	}
	// An older replica's flush: hourly rows only, today, yesterday and a
	// day before those two, of one account.
	for _, h := range []time.Time{now.Add(-time.Hour), now.Add(-20 * time.Hour), now.Add(-50 * time.Hour)} {
		if _, err := pool.Exec(ctx, `INSERT INTO usage_hourly (account_id, hour, tenant_id, app_id, key_id, service, operation, outcome, count)
			VALUES ('acc-2', $1, 'acme', 'mail', 'k-9', 'email-api', 'send', 'allowed', 7)
			ON CONFLICT (account_id, hour, key_id, service, operation, outcome, tenant_id, app_id) DO UPDATE SET count = usage_hourly.count + 7`,
			h.Truncate(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.ReconcileUsageRollup(ctx, now)
	if err != nil || n != 2 {
		t.Fatalf("after an older replica's rows: %d account days rebuilt, %v; want 2 (today and yesterday of acc-2)", n, err)
	}
	if n, err := s.ReconcileUsageRollup(ctx, now); err != nil || n != 0 {
		t.Fatalf("reconciled twice: %d rebuilt the second time, %v; want none", n, err)
	}
	// The two days read the same from the rollup and the hourly rows;
	// the day before them is still short.
	day := time.Unix(now.Unix()-now.Unix()%86400, 0).UTC()
	for _, tc := range []struct {
		from  time.Time
		agree bool
	}{{day.AddDate(0, 0, -1), true}, {day, true}, {day.AddDate(0, 0, -2), false}} {
		q := store.UsageQuery{AccountID: "acc-2", Granularity: store.Daily, From: tc.from, Until: tc.from.AddDate(0, 0, 1),
			GroupBy: []store.UsageField{store.UsageTenant, store.UsageOutcome}}
		got, want, err := usageBothWays(ctx, s, q)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); (diff == "") != tc.agree {
			t.Errorf("%s: rollup against hourly rows (-hourly +rollup), want agreeing %v:\n%s", tc.from.Format("2006-01-02"), tc.agree, diff)
		}
	}
}

// BenchmarkUsageRollupReconcile is the hourly check when nothing differs:
// an account whose 1,000 keys were counted every hour of the last two
// days, allowed and rate limited (96,000 hourly rows), and its rollup.
func BenchmarkUsageRollupReconcile(b *testing.B) {
	ctx := b.Context()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	s := postgres.New(ctx, pool, postgres.Options{})
	now := time.Now().UTC()
	// One row through the store makes the months' partitions.
	if err := s.AddUsage(ctx, map[store.UsageRow]int64{
		{AccountID: "acme", Outcome: "allowed", Hour: now.Truncate(time.Hour)}:                   1,
		{AccountID: "acme", Outcome: "allowed", Hour: now.Truncate(time.Hour).AddDate(0, 0, -2)}: 1,
	}); err != nil {
		b.Fatal(err)
	}
	for _, sql := range []string{
		`INSERT INTO accounts (id, name) VALUES ('acme', 'acme')`,
		`INSERT INTO usage_hourly (account_id, hour, tenant_id, app_id, key_id, service, operation, outcome, count)
			SELECT 'acme', date_trunc('hour', $1::timestamptz) - h * interval '1 hour', 'globex', 'billing', 'key-' || k,
				'email-api', 'query:listEmails', o, 1 + (k + h) % 17
			FROM generate_series(1, 47) h, generate_series(0, 999) k, unnest(ARRAY['allowed', 'rate_limited']) o`,
		`SELECT keygate_usage_daily_rebuild(NULL, NULL)`,
		`VACUUM ANALYZE`,
	} {
		args := []any{}
		if strings.Contains(sql, "$1") {
			args = append(args, now)
		}
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if n, err := s.ReconcileUsageRollup(ctx, now); err != nil || n != 0 {
			b.Fatalf("%d rebuilt, %v; want none", n, err)
		}
	}
}
