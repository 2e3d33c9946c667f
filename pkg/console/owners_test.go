package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

// Apps and tenants: the same pages over the service's app and tenant
// operations.
func TestOwnersCreateEditDelete(t *testing.T) {
	for _, kind := range []string{"apps", "tenants"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser(e.srv)
			b.signIn(e.admin)

			r := b.form("/"+kind, url.Values{"name": {""}})
			wantStatus(t, r, http.StatusUnprocessableEntity)
			if len(find(t, r.body, func(n *html.Node) bool { return attr(n, "class") == "field-error" && strings.Contains(text(n), "name") })) == 0 {
				t.Errorf("an empty name is not refused beside the name field:\n%s", r.body)
			}
			wantRedirect(t, b.form("/"+kind, url.Values{"id": {"acme-1"}, "name": {"Acme One"}, "description": {"first"}}), "/"+kind+"/acme-1")
			r = b.form("/"+kind, url.Values{"name": {"Acme One"}})
			wantStatus(t, r, http.StatusUnprocessableEntity)
			if !strings.Contains(r.body, "already exists") {
				t.Errorf("a duplicate name:\n%s", r.body)
			}

			list := b.get("/" + kind)
			if len(find(t, list.body, func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == "/"+kind+"/acme-1" })) != 1 {
				t.Errorf("the list does not link the new one:\n%s", list.body)
			}

			wantRedirect(t, b.form("/"+kind+"/acme-1", url.Values{"name": {"Acme Uno"}, "description": {"renamed"}}), "/"+kind+"/acme-1?saved=1")
			page := b.get("/" + kind + "/acme-1?saved=1")
			if !strings.Contains(page.body, "Acme Uno") || !strings.Contains(page.body, "badge-inactive") || !strings.Contains(page.body, "Saved.") {
				t.Errorf("after the edit (active unticked):\n%s", page.body)
			}

			// Keys go with it: the confirmation counts them and wants the name.
			in := account.KeyInput{Type: authz.KeyTypeApp, AppID: "acme-1"}
			if kind == "tenants" {
				if _, err := e.svc.CreateApp(t.Context(), e.caller(), account.OwnerInput{ID: "app", Name: "App"}); err != nil {
					t.Fatal(err)
				}
				in = account.KeyInput{Type: authz.KeyTypeService, AppID: "app", TenantID: "acme-1"}
			}
			for range 3 {
				if _, _, _, err := e.svc.GenerateKey(t.Context(), e.caller(), in); err != nil {
					t.Fatal(err)
				}
			}
			confirm := b.get("/" + kind + "/acme-1/delete")
			if n := find(t, confirm.body, byID("delete-count")); len(n) != 1 || !strings.Contains(text(n[0]), "3 keys") {
				t.Errorf("the confirmation does not count 3 keys:\n%s", confirm.body)
			}
			r = b.form("/"+kind+"/acme-1/delete", url.Values{"confirm": {"Acme"}})
			wantStatus(t, r, http.StatusUnprocessableEntity)
			wantStatus(t, b.get("/"+kind+"/acme-1"), http.StatusOK)
			wantRedirect(t, b.form("/"+kind+"/acme-1/delete", url.Values{"confirm": {"Acme Uno"}}), "/"+kind)
			wantStatus(t, b.get("/"+kind+"/acme-1"), http.StatusNotFound)
			keys, _, _ := e.svc.ListKeys(t.Context(), e.caller(), account.KeyFilter{}, account.PageInput{})
			if len(keys) != 1 { // the admin key
				t.Errorf("%d keys left, want the admin key alone", len(keys))
			}
		})
	}
}

// A tenant's page is SBS's: its service access keys and its denials, with
// a form to add one.
func TestTenantPageDenials(t *testing.T) {
	e := newEnv(t)
	e.owners()
	if _, _, _, err := e.svc.GenerateKey(t.Context(), e.caller(), account.KeyInput{Type: authz.KeyTypeService, AppID: "billing", TenantID: "globex", Name: "globex-key"}); err != nil {
		t.Fatal(err)
	}
	b := e.browser(e.srv)
	b.signIn(e.admin)
	page := b.get("/tenants/globex")
	if !strings.Contains(page.body, "globex-key") || len(find(t, page.body, byID("denials"))) != 1 {
		t.Fatalf("tenant page:\n%s", page.body)
	}
	r := b.form("/tenants/globex/denials", url.Values{"app_id": {"billing"}, "scope": {"billing-api:mutation:*"}, "reason": {"Invoices are frozen for Globex."}})
	wantRedirect(t, r, "/tenants/globex?saved=1")
	ds, _, err := e.svc.ListServiceAccessDenials(t.Context(), e.caller(), account.DenialFilter{TenantID: "globex"}, account.PageInput{})
	if err != nil || len(ds) != 1 || ds[0].AppID != "billing" || ds[0].Scope != "billing-api:mutation:*" {
		t.Fatalf("denials %+v, %v", ds, err)
	}
	if page = b.get("/tenants/globex"); !strings.Contains(page.body, "Invoices are frozen for Globex.") {
		t.Error("the denial is not listed")
	}
	r = b.form("/tenants/globex/denials", url.Values{"app_id": {"billing"}, "scope": {""}, "reason": {"x"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if len(find(t, r.body, func(n *html.Node) bool {
		return attr(n, "class") == "field-error" && strings.Contains(text(n), "scope")
	})) == 0 {
		t.Errorf("an empty denial scope is not refused beside the field:\n%s", r.body)
	}
}

func TestOverviewCounts(t *testing.T) {
	e := newEnv(t)
	e.owners()
	soon := e.clock.Now().Add(7 * 24 * 3600e9)
	if _, _, _, err := e.svc.GenerateKey(t.Context(), e.caller(), account.KeyInput{Type: authz.KeyTypeService, AppID: "billing", TenantID: "globex", Name: "soon", ExpiresAt: &soon, IPFilters: []string{"10.0.0.0/8"}}); err != nil {
		t.Fatal(err)
	}
	b := e.browser(e.srv)
	b.signIn(e.admin)
	body := b.get("/").body
	for _, want := range []string{"1</span> apps", "1</span> tenants", "2</span> keys", "0</span> inactive", "1</span> without IP filters", "1</span> expiring within 30 days",
		"1</span> with a scope of everything", "2</span> never used or unused for 90 days", "No requests counted.", "No replica has reported."} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if !strings.Contains(body, `href="/keys/`) || !strings.Contains(body, "soon") {
		t.Error("the expiring key is not listed")
	}
}

// TestTenantQuota: a tenant's page sets its monthly quota (a value that is
// not a whole number is refused beside the field and nothing is changed),
// shows it with what the fleet used this month, and clears it; an app's
// page has no quota field.
func TestTenantQuota(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	wantRedirect(t, b.form("/tenants", url.Values{"id": {"acme"}, "name": {"Acme"}, "quota": {"1,000"}}), "/tenants/acme")
	if tn, err := e.svc.GetTenant(t.Context(), e.caller(), "acme"); err != nil || tn.Quota != 1000 {
		t.Fatalf("tenant after create: quota %d, %v; want 1000", tn.Quota, err)
	}
	page := b.get("/tenants/acme")
	if n := find(t, page.body, byID("quota-state")); len(n) != 1 || !strings.Contains(text(n[0]), "0 of 1000 requests used this month") {
		t.Errorf("the tenant page does not show its quota's state:\n%s", page.body)
	}
	r := b.form("/tenants/acme", url.Values{"name": {"Acme"}, "active": {"on"}, "quota": {"lots"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if len(find(t, r.body, func(n *html.Node) bool {
		return attr(n, "class") == "field-error" && strings.Contains(text(n), "quota")
	})) == 0 {
		t.Errorf("a quota that is not a number is not refused beside the field:\n%s", r.body)
	}
	if tn, _ := e.svc.GetTenant(t.Context(), e.caller(), "acme"); tn.Quota != 1000 {
		t.Errorf("a refused form changed the quota to %d", tn.Quota)
	}
	wantRedirect(t, b.form("/tenants/acme", url.Values{"name": {"Acme"}, "active": {"on"}, "quota": {""}}), "/tenants/acme?saved=1")
	if tn, _ := e.svc.GetTenant(t.Context(), e.caller(), "acme"); tn.Quota != 0 {
		t.Errorf("an empty quota field left the quota at %d, want none", tn.Quota)
	}
	wantRedirect(t, b.form("/apps", url.Values{"id": {"billing"}, "name": {"Billing"}}), "/apps/billing")
	if n := find(t, b.get("/apps/billing").body, func(n *html.Node) bool { return attr(n, "id") == "quota" || attr(n, "id") == "quota-state" }); len(n) != 0 {
		t.Error("an app's page has a quota field")
	}
}

// TestOwnersSearch: the apps and tenants lists find by a part of the name
// or id, in any case; past maxOwnerMatches the first are shown and the page
// says so.
func TestOwnersSearch(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	for i := range 105 { // past the 100 matches a search shows
		if _, err := e.svc.CreateTenant(t.Context(), e.caller(), account.OwnerInput{ID: fmt.Sprintf("t-%03d", i), Name: fmt.Sprintf("Customer %03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.CreateTenant(t.Context(), e.caller(), account.OwnerInput{ID: "globex", Name: "Globex Corporation"}); err != nil {
		t.Fatal(err)
	}
	links := func(body string) int {
		return len(find(t, body, func(n *html.Node) bool {
			return n.Data == "a" && strings.HasPrefix(attr(n, "href"), "/tenants/") && attr(n, "href") != "/tenants/new"
		}))
	}
	for _, c := range []struct {
		q    string
		want int
		says string
	}{
		{"GLOBEX", 1, "1 tenants whose name or id contains"},
		{"corp", 1, "1 tenants"},
		{"t-01", 10, "10 tenants"},
		{"customer", 100, "The first 100 tenants"},
		{"nothing-like-it", 0, "None matches."},
	} {
		r := b.get("/tenants?" + url.Values{"q": {c.q}}.Encode())
		wantStatus(t, r, http.StatusOK)
		if got := links(r.body); got != c.want || !strings.Contains(r.body, c.says) {
			t.Errorf("search %q: %d tenants linked, want %d, and %q on the page", c.q, got, c.want, c.says)
		}
	}
	if r := b.get("/tenants?q=" + url.QueryEscape("<script>")); strings.Contains(r.body, "<script>\"") || strings.Contains(r.body, "contains “<script>") {
		t.Errorf("the search text is not escaped:\n%s", r.body)
	}
}
