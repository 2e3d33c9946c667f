package console_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/chunked"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// BenchmarkTenantPageBusyWeek measures a tenant's page (its quota, its
// 7 days of usage, keys and denials) over an account of 100,000 keys
// whose tenant had a busy week: 1,000 of its keys counted every hour of
// the last 8 days, allowed and rate limited (384,000 rows of usage_hourly,
// every one of the tenant, their daily rollup and the tenant's quota total),
// vacuumed and analysed. "no-usage" is the same page to a session that
// may not run usage (the page without its usage read); "overview" the
// overview, whose 7 days of usage read the same days; the keys list, a
// busy key's Usage tab and the app's page read them too.
func BenchmarkTenantPageBusyWeek(b *testing.B) {
	e := newEnv(b)
	ctx := b.Context()
	pool := pgtest.Pool(b, e.url)
	// Made first: the account holds at most 100,000 keys.
	reader, _ := e.accountKey("tenant-reader", "account-api:query:tenant account-api:query:keys account-api:query:serviceAccessDenials account-api:query:apps")
	if err := pgtest.SeedKeys(ctx, pool, "acme", 100_000); err != nil {
		b.Fatal(err)
	}
	if err := pgtest.SeedFeatures(ctx, pool, "acme"); err != nil { // the tenant's quota and denials
		b.Fatal(err)
	}
	now := e.clock.Now().UTC().Truncate(time.Hour)
	// One row through the store makes the months' partitions; the rest
	// are written in one statement.
	if err := e.st.AddUsage(ctx, map[store.UsageRow]int64{
		{AccountID: "acme", Outcome: store.UsageOutcomeAllowed, Hour: now}:                   1,
		{AccountID: "acme", Outcome: store.UsageOutcomeAllowed, Hour: now.AddDate(0, 0, -8)}: 1,
	}); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO usage_hourly (account_id, hour, tenant_id, app_id, key_id, service, operation, outcome, count)
		SELECT 'acme', $1::timestamptz - h * interval '1 hour', $2, $3, 'acme-key-' || lpad(k::text, 9, '0'), 'email-api', 'query:listEmails', o, 1 + (k + h) % 17
		FROM generate_series(0, 8*24 - 1) h, generate_series(0, 999) k, unnest(ARRAY['allowed', 'rate_limited']) o`,
		now, pgtest.SeedTenantID, pgtest.SeedAppID); err != nil {
		b.Fatal(err)
	}
	// Rows written around the flush: their days of the daily rollup are
	// rebuilt, as the migration does.
	if _, err := pool.Exec(ctx, `SELECT keygate_usage_daily_rebuild(NULL, NULL)`); err != nil {
		b.Fatal(err)
	}
	// A flush that counts the tenant's quota begins its month's total in
	// quota_counts (the sum of its allowed rows so far), as every replica's
	// does once the tenant has requests.
	month, _ := authz.QuotaPeriodMonth.Bounds(now)
	if _, err := e.st.AddUsageQuotas(ctx, chunked.Of(store.UsageDelta{Count: 1, Row: store.UsageRow{AccountID: "acme",
		TenantID: pgtest.SeedTenantID, Outcome: store.UsageOutcomeAllowed, Hour: now}}),
		chunked.Of(store.QuotaDelta{Subject: authz.QuotaSubject{AccountID: "acme", Tenant: true, ID: pgtest.SeedTenantID, Period: authz.QuotaPeriodMonth},
			Start: month, Delta: 1, Expected: authz.QuotaTotalUnknown}), "bench"); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil { // what autovacuum leaves after the load
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, secret, path string }{
		{"usage", e.admin, "/tenants/" + pgtest.SeedTenantID},
		{"no-usage", reader, "/tenants/" + pgtest.SeedTenantID},
		{"overview", e.admin, "/"},
		// The keys list's first page draws the busy keys' sparklines; a
		// busy key's Usage tab and the app's page read its rows too.
		{"keys", e.admin, "/keys"},
		{"key-usage", e.admin, "/keys/" + pgtest.SeedKeyID("acme", 1) + "?tab=usage"},
		{"app", e.admin, "/apps/" + pgtest.SeedAppID},
	} {
		br := e.browser(e.srv)
		br.signIn(bc.secret)
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				e.clock.Add(time.Second) // the session key's rate limit refills
				if r := br.get(bc.path); r.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", bc.path, r.StatusCode)
				}
			}
		})
	}
}
