package console_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// seedOverview gives the account 450 seeded keys besides the admin key
// (key i a service key when i%3 == 0, an app key when 1, an account key
// when 2; keys 0, 10, 20, … with IP filters), 110 more apps and 120 more
// tenants, and figures past the 100 the overview used to count up to:
// 120 inactive keys (330 on), 25 expired keys (0 to 24) and 130 expiring
// within 30 days (25 to 154, a minute apart from a day on, 154 first), an empty scope
// on the 160 service and app keys below 240, role reader held by the 140
// service and app keys from 240 and by keys 0 and 1, and 50 keys used a
// day ago (0 to 49) and 10 used 200 days ago (50 to 59).
func seedOverview(t *testing.T, e *env) {
	t.Helper()
	ctx := t.Context()
	pool := pgtest.Pool(t, e.url)
	if err := pgtest.SeedKeys(ctx, pool, "acme", 450); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	// seed selects the seeded keys, num is a seeded key's number.
	seed := `account_id = 'acme' AND id LIKE '` + strings.TrimSuffix(pgtest.SeedKeyID("acme", 0), "000000000") + `%'`
	const num = `substr(id, length(id) - 8)::int`
	for _, sql := range []string{
		`INSERT INTO apps (account_id, id, name) SELECT 'acme', 'app-' || g, 'App ' || g FROM generate_series(1, 110) g`,
		`INSERT INTO tenants (account_id, id, name) SELECT 'acme', 'ten-' || g, 'Tenant ' || g FROM generate_series(1, 120) g`,
		`INSERT INTO roles (account_id, id, name, scope) VALUES ('acme', 'reader', 'Reader', 'email-api:query:*')`,
		`UPDATE keys SET active = false WHERE ` + seed + ` AND ` + num + ` >= 330`,
		`UPDATE keys SET expires_at = $1::timestamptz - interval '1 hour' - ` + num + ` * interval '1 second' WHERE ` + seed + ` AND ` + num + ` < 25`,
		`UPDATE keys SET expires_at = $1::timestamptz + interval '1 day' + (200 - ` + num + `) * interval '1 minute' WHERE ` + seed + ` AND ` + num + ` BETWEEN 25 AND 154`,
		`UPDATE keys SET scope = '' WHERE ` + seed + ` AND type <> 'account' AND ` + num + ` < 240`,
		`INSERT INTO key_roles (account_id, key_id, role_id) SELECT account_id, id, 'reader' FROM keys WHERE ` + seed + ` AND type <> 'account' AND (` + num + ` >= 240 OR ` + num + ` IN (0, 1))`,
		`INSERT INTO key_usage (account_id, key_id, last_used_at) SELECT account_id, id, $1::timestamptz - interval '1 day' FROM keys WHERE ` + seed + ` AND ` + num + ` < 50`,
		`INSERT INTO key_usage (account_id, key_id, last_used_at) SELECT account_id, id, $1::timestamptz - interval '200 days' FROM keys WHERE ` + seed + ` AND ` + num + ` BETWEEN 50 AND 59`,
	} {
		var args []any
		if strings.Contains(sql, "$1") {
			args = append(args, now)
		}
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// TestOverviewExactCounts: every figure of the overview is exact past 100
// and links to the keys list filtered to what it counted (walked to its
// last page here); the expiring keys are the first 20 to expire, soonest
// first, none already expired.
func TestOverviewExactCounts(t *testing.T) {
	e := newEnv(t)
	seedOverview(t, e)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	body := b.get("/").body
	// The admin key (an account key, unused, no IP filters) is the 451st.
	for _, tc := range []struct {
		id, href string
		want     int
	}{
		{"count-apps", "/apps", 111},
		{"count-tenants", "/tenants", 121},
		{"count-keys", "/keys", 451},
		{"count-inactive", "/keys?active=false", 120},
		{"count-expiring", "", 130},
		{"count-no-ip-filters", "/keys?ip_filters=none", 406},
		// The service and app keys below 240 less keys 0 and 1 (a role).
		{"count-everything", "/keys?scope=everything", 158},
		{"count-unused", "", 401},
	} {
		t.Run(tc.id, func(t *testing.T) {
			n := find(t, body, byID(tc.id))
			if len(n) != 1 {
				t.Fatalf("no #%s on the overview", tc.id)
			}
			if got := strings.Fields(text(n[0]))[0]; got != fmt.Sprint(tc.want) {
				t.Errorf("#%s says %q, want %d", tc.id, text(n[0]), tc.want)
			}
			href := attr(n[0], "href")
			if tc.href != "" && href != tc.href {
				t.Errorf("#%s links to %q, want %q", tc.id, href, tc.href)
			}
			if !strings.HasPrefix(href, "/keys") {
				return
			}
			if got := len(listedKeys(t, e, b, href)); got != tc.want {
				t.Errorf("#%s links to %s, which lists %d keys, not %d", tc.id, href, got, tc.want)
			}
		})
	}
	var expiring []string
	for _, h2 := range find(t, body, func(n *html.Node) bool { return n.Data == "h2" && text(n) == "Expiring within 30 days" }) {
		for n := h2.NextSibling; n != nil; n = n.NextSibling {
			if n.Data == "table" {
				expiring = namesIn(t, n)
				break
			}
		}
	}
	var want []string
	for i := range 20 {
		want = append(want, pgtest.SeedKeyID("acme", 154-i))
	}
	if !slices.Equal(expiring, want) {
		t.Errorf("the expiring keys listed are %v, want the 20 to expire first in order: %v", expiring, want)
	}
	if !strings.Contains(body, "The 20 to expire first of 130") {
		t.Error("the overview does not say that 130 keys expire within 30 days, 20 listed")
	}
}

// listedKeys walks the keys list from path through its next links and
// returns the names listed.
func listedKeys(t *testing.T, e *env, b *browser, path string) []string {
	t.Helper()
	var names []string
	for range 20 {
		e.clock.Add(time.Second) // the session key's read rate refills
		r := b.get(path)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, r.StatusCode)
		}
		for _, table := range find(t, r.body, byID("keys-table")) {
			names = append(names, namesIn(t, table)...)
		}
		next := find(t, r.body, func(n *html.Node) bool { return n.Data == "a" && attr(n, "rel") == "next" })
		if len(next) == 0 {
			return names
		}
		path = attr(next[0], "href")
	}
	t.Fatalf("more than 20 pages from %s", path)
	return nil
}

// namesIn are the names of a keys table's rows.
func namesIn(t *testing.T, table *html.Node) []string {
	var names []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Data == "td" && attr(n, "data-label") == "Name" {
			names = append(names, strings.Fields(text(n))[0])
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(table)
	return names
}

// TestOverviewCountsNeedTheList: a key whose scope cannot list keys sees
// no key figure (nor a link to one), only the lists it may read: the
// counts are authorised as the lists.
func TestOverviewCountsNeedTheList(t *testing.T) {
	e := newEnv(t)
	seedOverview(t, e)
	for _, tc := range []struct {
		scope string
		see   []string
		not   []string
	}{
		{"account-api:query:apps", []string{"count-apps"}, []string{"count-tenants", "count-keys", "count-inactive", "count-expiring",
			"count-no-ip-filters", "count-everything", "count-unused"}},
		{"account-api:query:keys", []string{"count-keys", "count-expiring", "count-unused"}, []string{"count-apps", "count-tenants"}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			secret, _ := e.accountKey("overview "+tc.scope, tc.scope)
			b := e.browser(e.srv)
			b.signIn(secret)
			r := b.get("/")
			wantStatus(t, r, http.StatusOK)
			for _, id := range tc.see {
				if len(find(t, r.body, byID(id))) != 1 {
					t.Errorf("no #%s", id)
				}
			}
			for _, id := range tc.not {
				if len(find(t, r.body, byID(id))) != 0 {
					t.Errorf("#%s shown to a key that may not list it", id)
				}
			}
			if tc.scope == "account-api:query:apps" && strings.Contains(r.body, "Expiring within 30 days") {
				t.Error("expiring keys listed to a key that may not list keys")
			}
		})
	}
	// The service refuses the count itself, whatever a page asks.
	secret, _ := e.accountKey("apps only", "account-api:query:apps")
	c, err := e.svc.OpenSession(t.Context(), account.Credentials{Keys: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CountKeys(t.Context(), c, account.KeyFilter{}); err == nil || !strings.Contains(err.Error(), "scope_denied") {
		t.Errorf("CountKeys by a key that may not list keys: %v", err)
	}
}

// TestDeleteConfirmationsCount: the delete confirmations of an app, a
// tenant and a role say how many keys go with it or hold it, exactly
// (past 100); a key that may delete but not list keys is told no number.
func TestDeleteConfirmationsCount(t *testing.T) {
	e := newEnv(t)
	seedOverview(t, e)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	for _, tc := range []struct{ path, want string }{
		{"/apps/" + pgtest.SeedAppID + "/delete", "Its 300 keys will be deleted"},
		{"/tenants/" + pgtest.SeedTenantID + "/delete", "Its 150 keys will be deleted"},
		{"/apps/app-1/delete", "It has no keys."},
		{"/roles/reader/delete", "142 keys hold it"},
	} {
		r := b.get(tc.path)
		wantStatus(t, r, http.StatusOK)
		if n := find(t, r.body, byID("delete-count")); len(n) != 1 || !strings.Contains(strings.Join(strings.Fields(text(n[0])), " "), tc.want) {
			t.Errorf("%s does not say %q:\n%s", tc.path, tc.want, r.body)
		}
	}
	secret, _ := e.accountKey("deleter", "account-api:query:app account-api:mutation:deleteApp")
	d := e.browser(e.srv)
	d.signIn(secret)
	r := d.get("/apps/" + pgtest.SeedAppID + "/delete")
	wantStatus(t, r, http.StatusOK)
	if n := find(t, r.body, byID("delete-count")); len(n) != 1 || !strings.Contains(text(n[0]), "if it has any") {
		t.Errorf("a key that may not list keys is told a number of keys:\n%s", r.body)
	}
}
