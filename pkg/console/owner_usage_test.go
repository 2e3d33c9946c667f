package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// seedOwnerUsage gives tenant globex (quota 1,000 a month) and another
// tenant, initech, of the same app usage in and out of the last 7 days,
// and returns what globex's quota has used this month: its allowed
// requests since the month began.
func seedOwnerUsage(t *testing.T, e *env) int64 {
	t.Helper()
	ctx := t.Context()
	e.owners()
	q := authz.Monthly(1000)
	if _, err := e.svc.UpdateTenant(ctx, e.caller(), "globex", account.OwnerUpdate{Quota: &q}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateTenant(ctx, e.caller(), account.OwnerInput{ID: "initech", Name: "Initech"}); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now().UTC().Truncate(time.Hour)
	row := func(tenant, outcome string, hoursAgo int) store.UsageRow {
		return store.UsageRow{AccountID: "acme", TenantID: tenant, AppID: "billing", KeyID: "k-" + tenant, Service: "billing-api",
			Operation: "query:listInvoices", Outcome: outcome, Hour: now.Add(-time.Duration(hoursAgo) * time.Hour)}
	}
	rows := map[store.UsageRow]int64{
		row("globex", "allowed", 0):       30,
		row("globex", "allowed", 48):      12,
		row("globex", "scope_denied", 0):  3,
		row("globex", "allowed", 24*10):   100, // before the 7 days
		row("initech", "allowed", 0):      1000,
		row("initech", "scope_denied", 0): 50,
	}
	if err := e.st.AddUsage(ctx, rows); err != nil {
		t.Fatal(err)
	}
	monthStart := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	var used int64
	for r, n := range rows {
		if r.TenantID == "globex" && r.Outcome == "allowed" && !r.Hour.Before(monthStart) {
			used += n
		}
	}
	return used
}

// legendOf is the usage chart's legend as "outcome total" items.
func legendOf(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	for _, ul := range find(t, body, byID("usage-legend")) {
		for li := range ul.ChildNodes() {
			if li.Type == html.ElementNode && li.Data == "li" {
				out = append(out, strings.TrimSpace(text(li)))
			}
		}
	}
	return out
}

// A tenant's page shows its requests of the last 7 days by outcome and
// by day (another tenant's and older ones not counted) and its quota's
// consumption this month, to a session that may run usage; without usage
// the chart is left out and the quota stays. An app's page shows its own.
func TestOwnerPageUsage(t *testing.T) {
	e := newEnv(t)
	used := seedOwnerUsage(t, e)
	withUsage, _ := e.accountKey("usage-reader", "account-api:query:tenant account-api:query:app account-api:query:usage")
	without, _ := e.accountKey("tenant-reader", "account-api:query:tenant account-api:query:app account-api:query:keys")
	for _, c := range []struct {
		name, secret, path string
		legend             []string // nil: no usage on the page
	}{
		{"admin, tenant", e.admin, "/tenants/globex", []string{"allowed 42", "scope_denied 3"}},
		{"usage reader, tenant", withUsage, "/tenants/globex", []string{"allowed 42", "scope_denied 3"}},
		{"admin, other tenant", e.admin, "/tenants/initech", []string{"allowed 1000", "scope_denied 50"}},
		{"without usage, tenant", without, "/tenants/globex", nil},
		{"admin, app", e.admin, "/apps/billing", []string{"allowed 1042", "scope_denied 53"}},
		{"without usage, app", without, "/apps/billing", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := e.browser(e.srv)
			b.signIn(c.secret)
			r := b.get(c.path)
			wantStatus(t, r, http.StatusOK)
			if got := legendOf(t, r.body); strings.Join(got, ", ") != strings.Join(c.legend, ", ") {
				t.Errorf("usage legend %q, want %q", got, c.legend)
			}
			charts := find(t, r.body, byID("usage-chart"))
			if c.legend == nil {
				if len(charts) != 0 || strings.Contains(r.body, "Requests, last 7 days") {
					t.Error("a session without usage sees the usage")
				}
			} else if len(charts) != 1 || !strings.Contains(r.body, "Requests by outcome, last 7 days, by day") {
				t.Errorf("no chart of the last 7 days:\n%s", r.body)
			}
			if c.path != "/tenants/globex" {
				return
			}
			if c.legend != nil {
				// Today's bar and the one of two days ago, each day labelled.
				bars := find(t, r.body, func(n *html.Node) bool { return n.Data == "g" })
				labels := find(t, r.body, func(n *html.Node) bool { return n.Data == "text" && attr(n, "text-anchor") == "middle" })
				if len(bars) != 2 || len(labels) != 7 {
					t.Errorf("%d bars and %d day labels, want 2 and 7", len(bars), len(labels))
				}
			}
			{
				q := find(t, r.body, byID("quota-state"))
				if want := fmt.Sprintf("%d of 1000 requests used this month, %d left", used, 1000-used); len(q) != 1 || !strings.Contains(text(q[0]), want) {
					t.Errorf("quota state lacks %q:\n%s", want, r.body)
				}
			}
		})
	}
}

// A failed usage read (here the usage table gone) is said in the usage
// section and in the quota's place; the rest of the page stands.
func TestOwnerPageUsageError(t *testing.T) {
	e := newEnv(t)
	seedOwnerUsage(t, e)
	if _, err := pgtest.Pool(t, e.url).Exec(t.Context(), `ALTER TABLE usage_hourly RENAME TO usage_hourly_gone`); err != nil {
		t.Fatal(err)
	}
	b := e.browser(e.srv)
	b.signIn(e.admin)
	r := b.get("/tenants/globex")
	wantStatus(t, r, http.StatusOK)
	if n := find(t, r.body, byID("usage-error")); len(n) != 1 || !strings.Contains(text(n[0]), "internal") {
		t.Errorf("the usage error is not said in place:\n%s", r.body)
	}
	if n := find(t, r.body, byID("quota-state")); len(n) != 1 || !strings.Contains(text(n[0]), "internal") {
		t.Errorf("the quota's error is not said in place:\n%s", r.body)
	}
	if len(find(t, r.body, byID("denials"))) != 1 || len(find(t, r.body, byID("save"))) != 1 {
		t.Error("the rest of the tenant page is missing")
	}
}

// A key's page shows the state of the quotas that bind it: its tenant's
// this month and its own this day, used of the limit and what is left,
// from the same counts as the tenant's page.
func TestKeyPageQuotaState(t *testing.T) {
	e := newEnv(t)
	tenantUsed := seedOwnerUsage(t, e)
	q := authz.Quota{Requests: 500, Period: authz.QuotaPeriodDay}
	// k-globex is the key the seeded usage rows count: 30 allowed today.
	if _, _, _, err := e.svc.GenerateKey(t.Context(), e.caller(), account.KeyInput{ID: "k-globex", Type: authz.KeyTypeService,
		AppID: "billing", TenantID: "globex", Name: "quota-key", Quota: q}); err != nil {
		t.Fatal(err)
	}
	b := e.browser(e.srv)
	b.signIn(e.admin)
	r := b.get("/keys/k-globex")
	wantStatus(t, r, http.StatusOK)
	var states []string
	for _, n := range find(t, r.body, func(n *html.Node) bool { return attr(n, "class") == "key-quota-state" }) {
		states = append(states, strings.TrimSpace(text(n)))
	}
	want := []string{
		fmt.Sprintf("%d of 1000 requests used this month, %d left", tenantUsed, 1000-tenantUsed),
		"30 of 500 requests used this day, 470 left",
	}
	if len(states) != len(want) {
		t.Fatalf("quota states %q, want two beginning %q", states, want)
	}
	for i := range want {
		if !strings.HasPrefix(states[i], want[i]) {
			t.Errorf("quota state %d: %q, want it to begin %q", i, states[i], want[i])
		}
	}
}
