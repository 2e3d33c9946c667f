package console_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// BenchmarkNewPagesWith100kKeys measures the roles, denials, account
// keys, audit and replicas pages and the key page's tabs over an account
// of 100,000 keys with SeedFeatures' roles (every service key holds
// three) and denials, 500 audit events and 30 days of hourly usage of
// the key shown, its tables analysed (issue #21: under 100 ms each). The figures are in
// docs/console.md.
func BenchmarkNewPagesWith100kKeys(b *testing.B) {
	e := newEnv(b)
	ctx := b.Context()
	pool := pgtest.Pool(b, e.url)
	if err := pgtest.SeedKeys(ctx, pool, "acme", 100_000); err != nil {
		b.Fatal(err)
	}
	if err := pgtest.SeedFeatures(ctx, pool, "acme"); err != nil {
		b.Fatal(err)
	}
	key := pgtest.SeedKeyID("acme", 42) // a service key
	for i := range 500 {
		d := fmt.Sprintf("change %d", i)
		if _, _, err := e.svc.UpdateKey(ctx, e.caller(), pgtest.SeedKeyID("acme", i*3), account.KeyUpdate{Description: &d}); err != nil {
			b.Fatal(err)
		}
	}
	now := e.clock.Now().UTC().Truncate(time.Hour)
	usage := map[store.UsageRow]int64{}
	for h := range 30 * 24 {
		for j, outcome := range []string{"allowed", "scope_denied", "rate_limited"} {
			usage[store.UsageRow{AccountID: "acme", TenantID: pgtest.SeedTenantID, AppID: pgtest.SeedAppID, KeyID: key,
				Service: "email-api", Operation: "query:listEmails", Outcome: outcome, Hour: now.Add(-time.Duration(h) * time.Hour)}] = int64(100/(j+1) + h%7)
		}
	}
	if err := e.st.AddUsage(ctx, usage); err != nil {
		b.Fatal(err)
	}
	if err := e.st.Heartbeat(ctx, store.Replica{ID: "replica-a", Version: "bench", StartedAt: time.Now(), Applied: 1}); err != nil {
		b.Fatal(err)
	}
	// What autovacuum does after a bulk load: without statistics the
	// planner takes the freshly copied tables for empty and joins every
	// key of a role before sorting them (seconds, not milliseconds).
	if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	br := e.browser(e.srv)
	br.signIn(e.admin)
	for _, bc := range []struct{ name, path string }{
		{"roles", "/roles"},
		{"role", "/roles/seed-r1"},
		{"role-delete", "/roles/seed-r1/delete"},
		{"denials", "/denials"},
		{"denials-filtered", "/denials?tenant=" + pgtest.SeedTenantID + "&app=" + pgtest.SeedAppID},
		{"denial", "/denials/seed-d3"},
		{"account-keys", "/account-keys"},
		{"audit", "/audit"},
		{"audit-key", "/audit?key=" + pgtest.SeedKeyID("acme", 3)},
		{"audit-action", "/audit?action=key.update&outcome=allowed"},
		{"replicas", "/replicas?change=1"},
		{"key-settings", "/keys/" + key},
		{"key-endpoints", "/keys/" + key + "?tab=endpoints"},
		{"key-usage-48h", "/keys/" + key + "?tab=usage"},
		{"key-usage-30d", "/keys/" + key + "?tab=usage&range=30d"},
		{"key-audit", "/keys/" + key + "?tab=audit"},
		{"key-sync", "/keys/" + key + "?tab=sync"},
	} {
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
