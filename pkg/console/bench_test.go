package console_test

import (
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// BenchmarkPagesWith100kKeys measures the console's pages served from an
// account of 100,000 keys (SPEC §15, issue #21: under 100 ms each), one
// request per iteration over a real PostgreSQL. The figures are in
// docs/console.md.
func BenchmarkPagesWith100kKeys(b *testing.B) {
	e := newEnv(b)
	if err := pgtest.SeedKeys(b.Context(), pgtest.Pool(b, e.url), "acme", 100_000); err != nil {
		b.Fatal(err)
	}
	seedListColumns(b, e)
	br := e.browser(e.srv)
	br.signIn(e.admin)
	for _, bc := range []struct{ name, path string }{
		{"overview", "/"},
		{"keys", "/keys"},
		{"keys-filtered", "/keys?type=service&tenant=" + pgtest.SeedTenantID},
		{"keys-page-2", "/keys?after="},
		{"keys-inactive", "/keys?active=false"},
		{"keys-unused", "/keys?unused_since=2100-01-01"},
		{"keys-no-ip-filters", "/keys?ip_filters=none"},
		{"keys-everything", "/keys?scope=everything"},
		{"keys-expiring", "/keys?expires_after=2000-01-01&expiring_before=2100-01-01&sort=expires"},
		{"keys-search", "/keys?q=initech-prod"},          // about 830 matches
		{"keys-search-few", "/keys?q=initech-prod-0000"}, // a handful
		{"keys-search-none", "/keys?q=nothing"},
		{"keys-search-short", "/keys?q=7"},
		{"keys-sort-created", "/keys?sort=created"},
		{"keys-sort-name", "/keys?sort=name"},
		{"keys-sort--name", "/keys?sort=-name"},
		{"keys-sort-expires", "/keys?sort=expires"},
		{"keys-sort--expires", "/keys?sort=-expires"},
		{"keys-sort-last_used", "/keys?sort=last_used"},
		{"keys-sort--last_used", "/keys?sort=-last_used"},
		{"keys-sort-name-search", "/keys?sort=name&q=globex"},
		{"key", "/keys/" + pgtest.SeedKeyID("acme", 42)},
		{"tenant", "/tenants/" + pgtest.SeedTenantID},
		{"app-delete", "/apps/" + pgtest.SeedAppID + "/delete"},
		{"tenant-delete", "/tenants/" + pgtest.SeedTenantID + "/delete"},
		{"apps", "/apps"},
		{"new-key", "/keys/new"},
	} {
		// The test clock stands still: move it on, so that the key's rate
		// limit (100 reads a second) refills between pages.
		e.clock.Add(2 * time.Second)
		b.Run(bc.name, func(b *testing.B) {
			path := bc.path
			if bc.name == "keys-page-2" {
				path = nextPage(b, br)
			}
			for b.Loop() {
				if r := br.get(path); r.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", path, r.StatusCode)
				}
			}
		})
	}
}

// nextPage is the keys list's second page link.
func nextPage(b *testing.B, br *browser) string {
	r := br.get("/keys")
	for _, n := range find(b, r.body, func(n *html.Node) bool { return n.Data == "a" && attr(n, "rel") == "next" }) {
		return attr(n, "href")
	}
	b.Fatal("no next page")
	return ""
}

// seedListColumns gives the seeded keys what the keys list sorts,
// searches and draws: names of twenty customers and six environments
// (initech-prod-000000042), two in three an expiry, half a last use, and a
// thousand of them allowed requests on each of the last 7 days (counted,
// as the data plane does, with the key's tenant: the tenant page's usage
// and monthly quota, which it is given, read them); then vacuums and
// analyses the tables.
func seedListColumns(b *testing.B, e *env) {
	pool := pgtest.Pool(b, e.url)
	for _, sql := range []string{
		`UPDATE keys SET name = (ARRAY['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark', 'wayne', 'wonka',
				'tyrell', 'cyberdyne', 'soylent', 'oscorp', 'aperture', 'vandelay', 'dunder', 'pied-piper', 'massive',
				'gringotts', 'monarch', 'nakatomi'])[1 + abs(hashtext(id)) % 20] || '-' ||
				(ARRAY['prod', 'staging', 'dev', 'ci', 'eu', 'us'])[1 + abs(hashtext(id || 'env')) % 6] || '-' || substr(id, 10)
			WHERE account_id = 'acme'`,
		`UPDATE keys SET expires_at = now() + (abs(hashtext(id)) % 5000 + 100) * interval '1 hour'
			WHERE account_id = 'acme' AND abs(hashtext(id)) % 3 <> 0`,
		`INSERT INTO key_usage (account_id, key_id, last_used_at)
			SELECT account_id, id, now() - (abs(hashtext(id)) % 100000) * interval '1 minute'
			FROM keys WHERE account_id = 'acme' AND abs(hashtext(id)) % 2 = 0`,
		`UPDATE tenants SET quota = 1000000000 WHERE account_id = 'acme' AND id = '` + pgtest.SeedTenantID + `'`,
		// What autovacuum does after these bulk changes: statistics, and
		// the visibility map that lets counts read indexes only (without
		// it a count of the account's keys reads every row: 30 to 60 ms).
		`VACUUM ANALYZE keys`, `VACUUM ANALYZE key_usage`,
	} {
		if _, err := pool.Exec(b.Context(), sql); err != nil {
			b.Fatal(err)
		}
	}
	rows := map[store.UsageRow]int64{}
	now := time.Now().UTC().Truncate(time.Hour)
	for i := range 1000 {
		tenant := ""
		if (99_999-i)%3 == 0 { // a service key (pgtest.SeedKeys)
			tenant = pgtest.SeedTenantID
		}
		for d := range 7 {
			rows[store.UsageRow{AccountID: "acme", TenantID: tenant, AppID: pgtest.SeedAppID, KeyID: pgtest.SeedKeyID("acme", 99_999-i),
				Service: "email-api", Operation: "listEmails", Outcome: store.UsageOutcomeAllowed, Hour: now.AddDate(0, 0, -d)}] = int64(i%50 + d)
		}
	}
	if err := e.st.AddUsage(b.Context(), rows); err != nil {
		b.Fatal(err)
	}
}
