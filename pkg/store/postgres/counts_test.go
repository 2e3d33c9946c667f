package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// TestCountKeysPlans: the counts the console's overview and delete
// confirmations make, over 20,000 keys (KEYGATE_LONG=1: 100,000) with
// roles, expiries and last uses, analysed. Each count reads no key
// row's app, tenant or roles but those its filter names, joins the last
// uses only to filter by them, and a scope of everything is an anti-join
// of the roles, not a lookup per key. The plans and their times are
// logged (go test -v): docs/console.md cites them.
func TestCountKeysPlans(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := seedPlanKeys(t)
	if err := pgtest.SeedFeatures(ctx, pool, "acct"); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`UPDATE keys SET expires_at = now() + (abs(hashtext(id)) % 5000 - 100) * interval '1 hour'
			WHERE abs(hashtext(id)) % 3 <> 0`,
		`UPDATE keys SET scope = '' WHERE abs(hashtext(id)) % 7 = 0`,
		`INSERT INTO key_usage (account_id, key_id, last_used_at)
			SELECT account_id, id, now() - (abs(hashtext(id)) % 200000) * interval '1 minute'
			FROM keys WHERE abs(hashtext(id)) % 2 = 0`,
		// What autovacuum leaves after a bulk load and update: the
		// visibility map set, so that counts read indexes only.
		`VACUUM ANALYZE`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	// The overview's and the delete confirmations' counts read indexes
	// only; a filter no index serves (a type) reads the keys.
	for _, tc := range []struct {
		name    string
		f       store.KeyFilter
		indexed bool
	}{
		{"all", store.KeyFilter{}, true},
		{"app", store.KeyFilter{AppID: pgtest.SeedAppID}, true},
		{"tenant", store.KeyFilter{TenantID: pgtest.SeedTenantID}, true},
		{"inactive", store.KeyFilter{Active: new(false)}, true},
		{"expiring within 30 days", store.KeyFilter{ExpiresAfter: now, ExpiringBefore: now.Add(30 * 24 * time.Hour)}, true},
		{"no IP filters", store.KeyFilter{NoIPFilters: true}, true},
		{"scope of everything", store.KeyFilter{ScopeEverything: true}, true},
		{"unused for 90 days", store.KeyFilter{UnusedSince: now.AddDate(0, 0, -90)}, true},
		{"role", store.KeyFilter{RoleID: "seed-r1"}, true},
		{"service keys", store.KeyFilter{Type: authz.KeyTypeService}, false},
		{"unused service keys", store.KeyFilter{Type: authz.KeyTypeService, UnusedSince: now.AddDate(0, 0, -90)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sql, args, err := postgres.CountKeysSQL("acct", tc.f)
			if err != nil {
				t.Fatal(err)
			}
			text := explainAnalyze(t, pool, sql, args)
			for _, table := range []string{"apps", "tenants", "roles "} {
				if strings.Contains(text, " on "+table) {
					t.Errorf("the count reads %s", table)
				}
			}
			if tc.f.UnusedSince.IsZero() && strings.Contains(text, "key_usage") {
				t.Error("the count joins the last uses without filtering by them")
			}
			if tc.indexed && strings.Contains(text, "Seq Scan on keys") {
				t.Error("the count reads every key")
			}
			if tc.f.ScopeEverything && strings.Contains(text, "SubPlan") {
				t.Error("a scope of everything looks up each key's roles")
			}
		})
	}
}
