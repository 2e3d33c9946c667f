package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// pagesFixture makes what the roles, denials, audit and replicas pages
// show: app billing, tenant globex, role r-read held by a service key, a
// denial, and a replica that has reported.
type pagesFixture struct {
	keyID, denialID string
}

func (e *env) pagesFixture() pagesFixture {
	e.t.Helper()
	e.owners()
	ctx := e.t.Context()
	if _, err := e.svc.CreateServiceAccessRole(ctx, e.caller(), account.RoleInput{ID: "r-read", Name: "invoice-reader",
		Description: "reads invoices", Scope: "billing-api:query:*", RateLimit: authz.RateLimit{RequestsPerUnit: 100, Unit: authz.RateUnitMinute}}); err != nil {
		e.t.Fatal(err)
	}
	_, k, _, err := e.svc.GenerateKey(ctx, e.caller(), account.KeyInput{Type: authz.KeyTypeService, AppID: "billing", TenantID: "globex",
		Name: "globex-reader", RoleIDs: []string{"r-read"}})
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := e.svc.CreateServiceAccessDenial(ctx, e.caller(), account.DenialInput{TenantID: "globex", AppID: "billing",
		Scope: "billing-api:mutation:*", Reason: "Invoices are frozen."})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.Heartbeat(ctx, store.Replica{ID: "replica-a", Version: "test", StartedAt: time.Now(), Applied: 1}); err != nil {
		e.t.Fatal(err)
	}
	return pagesFixture{keyID: k.Spec.ID, denialID: d.ID}
}

// The new pages render for an admin key, with their actions, and the
// navigation links them.
func TestPagesRenderForAdmin(t *testing.T) {
	e := newEnv(t)
	fx := e.pagesFixture()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	for _, tc := range []struct {
		path  string
		wants []string
	}{
		{"/roles", []string{"invoice-reader", "100/minute", `id="new-role"`}},
		{"/roles/new", []string{`id="role-form"`, `id="picker"`, `name="rate_limit"`}},
		{"/roles/r-read", []string{`id="role-form"`, `value="billing-api:query:*"`, "globex-reader", `id="delete"`, `value="100/minute"`}},
		{"/roles/r-read/delete", []string{"1 key holds", `id="force"`}},
		{"/denials", []string{"Invoices are frozen.", "Globex", "Billing", `id="new-denial"`}},
		{"/denials?tenant=globex&app=billing", []string{"Invoices are frozen."}},
		{"/denials/" + fx.denialID, []string{`id="denial-form"`, `id="delete"`, "Globex"}},
		{"/account-keys", []string{"admin", `href="/keys/new?type=account"`}},
		{"/audit", []string{"role.create", "denial.create", "key.create"}},
		{"/audit?action=role.*", []string{"role.create"}},
		{"/replicas", []string{"replica-a", "live", `id="sync-form"`}},
		{"/keys/" + fx.keyID + "?tab=usage", []string{`role="tablist"`, `id="usage-chart"`}},
	} {
		r := b.get(tc.path)
		wantStatus(t, r, http.StatusOK)
		for _, want := range tc.wants {
			if !strings.Contains(r.body, want) {
				t.Errorf("GET %s lacks %q", tc.path, want)
			}
		}
	}
	if body := b.get("/denials?tenant=nobody").body; strings.Contains(body, "Invoices are frozen.") {
		t.Error("the tenant filter does not filter")
	}
	if body := b.get("/audit?action=role.*").body; strings.Contains(body, "denial.create") {
		t.Error("the action filter does not filter")
	}
	if body := b.get("/account-keys").body; strings.Contains(body, "globex-reader") {
		t.Error("the account keys page lists a service key")
	}
	nav := find(t, b.get("/").body, func(n *html.Node) bool { return n.Data == "a" && n.Parent != nil && n.Parent.Data == "nav" })
	hrefs := map[string]bool{}
	for _, a := range nav {
		hrefs[attr(a, "href")] = true
	}
	for _, want := range []string{"/roles", "/denials", "/account-keys", "/audit", "/replicas"} {
		if !hrefs[want] {
			t.Errorf("the navigation lacks %s", want)
		}
	}
	r := b.get("/denials/new?tenant=globex")
	wantRedirect(t, r, "/tenants/globex#denial-app")
	r = b.get("/replicas?change=1")
	if n := find(t, r.body, byID("sync-status")); len(n) != 1 || !strings.Contains(text(n[0]), "1 of 1") {
		t.Errorf("sync status of change 1:\n%s", r.body)
	}
	r = b.get("/replicas?change=soon")
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `class="field-error"`) {
		t.Errorf("a bad change number is not refused beside the field:\n%s", r.body)
	}
	r = b.get("/audit?since=yesterday")
	wantStatus(t, r, http.StatusUnprocessableEntity)
	r = b.get("/audit?action=KEY")
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if len(find(t, r.body, func(n *html.Node) bool {
		return attr(n, "class") == "field-error" && strings.Contains(text(n), "action")
	})) == 0 {
		t.Errorf("a bad action is not refused beside the field:\n%s", r.body)
	}
}

// A read-only key (account-api:query:*) sees the pages without a button
// that changes anything, and its posts are refused.
func TestPagesReadOnly(t *testing.T) {
	e := newEnv(t)
	fx := e.pagesFixture()
	reader, _ := e.accountKey("reader", "account-api:query:*")
	b := e.browser(e.srv)
	b.signIn(reader)
	wantNoChanges(t, b, []string{"/roles", "/roles/r-read", "/denials", "/denials/" + fx.denialID, "/account-keys", "/audit", "/replicas",
		"/keys/" + fx.keyID + "?tab=settings", "/keys/" + fx.keyID + "?tab=usage", "/keys/" + fx.keyID + "?tab=audit"},
		"new-role", "new-key", "new-denial", "delete", "save", "role-form", "denial-form")
	for _, path := range []string{"/roles/new", "/roles/r-read/delete", "/denials/new?tenant=globex"} {
		wantStatus(t, b.get(path), http.StatusForbidden)
	}
	wantRefused(t, b, []post{
		{"/roles", url.Values{"name": {"evil"}, "scope": {"account-api"}}},
		{"/roles/r-read", url.Values{"name": {"evil"}, "scope": {"account-api"}}},
		{"/roles/r-read/delete", url.Values{"force": {"on"}}},
		{"/denials/" + fx.denialID, url.Values{"scope": {"billing-api"}, "reason": {"evil"}}},
		{"/denials/" + fx.denialID + "/delete", url.Values{}},
	})
	if ro, err := e.svc.GetServiceAccessRole(t.Context(), e.caller(), "r-read"); err != nil || ro.Name != "invoice-reader" {
		t.Errorf("the reader changed the role: %+v, %v", ro, err)
	}
	if d, err := e.svc.GetServiceAccessDenial(t.Context(), e.caller(), fx.denialID); err != nil || d.Reason != "Invoices are frozen." {
		t.Errorf("the reader changed the denial: %+v, %v", d, err)
	}

	// A key that may read keys alone sees none of the new pages' links,
	// and the pages refuse it.
	keysOnly, _ := e.accountKey("keys-only", "account-api:query:keys account-api:query:key")
	k := e.browser(e.srv)
	k.signIn(keysOnly)
	body := k.get("/keys").body
	for _, href := range []string{"/roles", "/denials", "/audit", "/replicas"} {
		if len(find(t, body, func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == href })) > 0 {
			t.Errorf("a key that may not read %s is shown its link", href)
		}
		wantStatus(t, k.get(href), http.StatusForbidden)
	}
	page := k.get("/keys/" + fx.keyID)
	tabs := find(t, page.body, func(n *html.Node) bool { return attr(n, "role") == "tab" })
	if len(tabs) != 1 || attr(tabs[0], "aria-selected") != "true" {
		t.Errorf("a key that may read none of the panels: %d tabs", len(tabs))
	}
}

// wantNoChanges checks that each page renders for the session and has no
// form that posts (sign-out aside) nor any element of the ids given.
func wantNoChanges(t *testing.T, b *browser, paths []string, ids ...string) {
	t.Helper()
	for _, path := range paths {
		r := b.get(path)
		wantStatus(t, r, http.StatusOK)
		for _, f := range find(t, r.body, func(n *html.Node) bool { return n.Data == "form" && attr(n, "method") == "post" }) {
			if attr(f, "action") != "/signout" {
				t.Errorf("GET %s: a form posting to %s", path, attr(f, "action"))
			}
		}
		for _, id := range ids {
			if len(find(t, r.body, byID(id))) > 0 {
				t.Errorf("GET %s: shows #%s", path, id)
			}
		}
	}
}

// post is a form posted to a path.
type post struct {
	path string
	form url.Values
}

// wantRefused checks that each post, with the session's CSRF token, is
// refused 403 scope_denied.
func wantRefused(t *testing.T, b *browser, posts []post) {
	t.Helper()
	for _, tc := range posts {
		r := b.form(tc.path, tc.form)
		wantStatus(t, r, http.StatusForbidden)
		if !strings.Contains(r.body, "scope_denied") {
			t.Errorf("POST %s: refusal does not say scope_denied:\n%s", tc.path, r.body)
		}
	}
}

// The new posts need the session's CSRF token.
func TestPagesPostsNeedTheCSRFToken(t *testing.T) {
	e := newEnv(t)
	fx := e.pagesFixture()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	for _, path := range []string{"/roles", "/roles/r-read", "/roles/r-read/delete", "/denials/" + fx.denialID, "/denials/" + fx.denialID + "/delete"} {
		r := b.post(path, url.Values{"name": {"x"}, "force": {"on"}})
		wantStatus(t, r, http.StatusForbidden)
		if !strings.Contains(r.body, "CSRF") {
			t.Errorf("POST %s: the refusal does not say why", path)
		}
	}
	if _, err := e.svc.GetServiceAccessRole(t.Context(), e.caller(), "r-read"); err != nil {
		t.Errorf("the role went: %v", err)
	}
}

// Roles: create with the picker, errors beside the field, edit, and a
// delete that needs force while keys hold the role.
func TestRoleCreateEditDelete(t *testing.T) {
	e := newEnv(t)
	fx := e.pagesFixture()
	b := e.browser(e.srv)
	b.signIn(e.admin)

	r := b.form("/roles", url.Values{"name": {"writer"}, "scope": {""}, "rate_limit": {"fast"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if len(find(t, r.body, func(n *html.Node) bool {
		return attr(n, "class") == "field-error" && strings.Contains(text(n), "rate_limit")
	})) == 0 {
		t.Errorf("a bad rate limit is not refused beside the field:\n%s", r.body)
	}
	r = b.form("/roles", url.Values{"name": {"writer"}, "scope": {""}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if len(find(t, r.body, func(n *html.Node) bool {
		return attr(n, "class") == "field-error" && strings.Contains(text(n), "scope")
	})) == 0 {
		t.Errorf("an empty scope is not refused beside the field:\n%s", r.body)
	}
	if n := find(t, r.body, byID("name")); len(n) != 1 || attr(n[0], "value") != "writer" {
		t.Error("the refused form does not keep what was typed")
	}
	wantRedirect(t, b.form("/roles", url.Values{"id": {"r-write"}, "name": {"writer"}, "perm": {"billing-api:mutation:createInvoice"}, "rate_limit": {"5/s"}}), "/roles/r-write")
	ro, err := e.svc.GetServiceAccessRole(t.Context(), e.caller(), "r-write")
	if err != nil || ro.Scope != "billing-api:mutation:createInvoice" || ro.RateLimit.String() != "5/second" {
		t.Fatalf("created role %+v, %v", ro, err)
	}
	wantRedirect(t, b.form("/roles/r-write", url.Values{"name": {"invoice-writer"}, "scope": {"billing-api:mutation:*"}, "rate_limit": {""}}), "/roles/r-write?saved=1")
	ro, _ = e.svc.GetServiceAccessRole(t.Context(), e.caller(), "r-write")
	if ro.Name != "invoice-writer" || ro.Scope != "billing-api:mutation:*" || !ro.RateLimit.IsZero() {
		t.Errorf("edited role %+v", ro)
	}
	r = b.form("/roles/r-write", url.Values{"name": {"invoice-reader"}, "scope": {"billing-api"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, "already exists") {
		t.Errorf("a duplicate name:\n%s", r.body)
	}
	wantRedirect(t, b.form("/roles/r-write/delete", url.Values{}), "/roles")

	// r-read is held by a key: without force the delete is refused beside
	// the force box, with it the key loses the role.
	r = b.form("/roles/r-read/delete", url.Values{})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if len(find(t, r.body, func(n *html.Node) bool {
		return attr(n, "class") == "field-error" && strings.Contains(text(n), "1 key holds it")
	})) == 0 || len(find(t, r.body, byID("force"))) != 1 {
		t.Errorf("a held role's delete without force:\n%s", r.body)
	}
	if _, err := e.svc.GetServiceAccessRole(t.Context(), e.caller(), "r-read"); err != nil {
		t.Fatalf("the role went without force: %v", err)
	}
	wantRedirect(t, b.form("/roles/r-read/delete", url.Values{"force": {"on"}}), "/roles")
	if k, _ := e.svc.GetKey(t.Context(), e.caller(), fx.keyID); len(k.RoleIDs) != 0 {
		t.Errorf("the key still holds %v", k.RoleIDs)
	}
}

// Denials: edit the reason, a bad scope refused beside the field, lift.
func TestDenialEditAndLift(t *testing.T) {
	e := newEnv(t)
	fx := e.pagesFixture()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	path := "/denials/" + fx.denialID
	wantRedirect(t, b.form(path, url.Values{"scope": {"billing-api:mutation:*"}, "reason": {"Frozen until March."}}), path+"?saved=1")
	if d, _ := e.svc.GetServiceAccessDenial(t.Context(), e.caller(), fx.denialID); d.Reason != "Frozen until March." {
		t.Errorf("reason %q", d.Reason)
	}
	r := b.form(path, url.Values{"scope": {"!billing-api"}, "reason": {"x"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if len(find(t, r.body, func(n *html.Node) bool {
		return attr(n, "class") == "field-error" && strings.Contains(text(n), "scope")
	})) == 0 {
		t.Errorf("a deny pattern is not refused beside the field:\n%s", r.body)
	}
	wantRedirect(t, b.form(path+"/delete", url.Values{}), "/denials")
	wantStatus(t, b.get(path), http.StatusNotFound)
}

// The audit log shows each change's fields before and after, and no
// secret.
func TestAuditDiff(t *testing.T) {
	e := newEnv(t)
	fx := e.pagesFixture()
	name := "globex-renamed"
	if _, _, err := e.svc.UpdateKey(t.Context(), e.caller(), fx.keyID, account.KeyUpdate{Name: &name}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.RegenerateKey(t.Context(), e.caller(), fx.keyID, time.Hour); err != nil {
		t.Fatal(err)
	}
	b := e.browser(e.srv)
	b.signIn(e.admin)
	for _, path := range []string{"/audit?key=" + fx.keyID + "&action=key.update", "/keys/" + fx.keyID + "?tab=audit"} {
		r := b.get(path)
		wantStatus(t, r, http.StatusOK)
		items := find(t, r.body, func(n *html.Node) bool {
			return n.Data == "li" && n.Parent != nil && attr(n.Parent, "class") == "diff" && strings.HasPrefix(text(n), "name:")
		})
		found := false
		for _, li := range items {
			dels := find(t, renderNode(li), func(n *html.Node) bool { return n.Data == "del" })
			ins := find(t, renderNode(li), func(n *html.Node) bool { return n.Data == "ins" })
			if len(dels) == 1 && len(ins) == 1 && strings.Contains(text(dels[0]), `"globex-reader"`) && strings.Contains(text(ins[0]), `"globex-renamed"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("GET %s: no diff name \"globex-reader\" → \"globex-renamed\":\n%s", path, r.body)
		}
		for _, secret := range []string{"hash", "secret\"", "kg_"} {
			if strings.Contains(strings.ToLower(r.body), secret) {
				t.Errorf("GET %s: the page holds %q", path, secret)
			}
		}
	}
	if body := b.get("/audit?action=key.regenerate").body; !strings.Contains(body, "previous_valid_until") {
		t.Errorf("the regenerate event does not show its grace:\n%s", body)
	}
}

// renderNode renders a node back to HTML (to search inside it).
func renderNode(n *html.Node) string {
	var sb strings.Builder
	_ = html.Render(&sb, n)
	return sb.String()
}

// The Usage tab draws the key's requests by outcome as an SVG chart with
// a legend and a table, by hour and by day; with no usage it says so.
func TestUsageChart(t *testing.T) {
	e := newEnv(t)
	fx := e.pagesFixture()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	path := "/keys/" + fx.keyID + "?tab=usage"

	r := b.get(path)
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(r.body, "No requests counted") || len(find(t, r.body, func(n *html.Node) bool { return n.Data == "rect" })) != 0 {
		t.Errorf("an empty chart:\n%s", r.body)
	}

	now := e.clock.Now().UTC().Truncate(time.Hour)
	row := func(outcome string, hoursAgo int) store.UsageRow {
		return store.UsageRow{AccountID: "acme", TenantID: "globex", AppID: "billing", KeyID: fx.keyID, Service: "billing-api",
			Operation: "query:listInvoices", Outcome: outcome, Hour: now.Add(-time.Duration(hoursAgo) * time.Hour)}
	}
	if err := e.st.AddUsage(t.Context(), map[store.UsageRow]int64{
		row("allowed", 0): 30, row("allowed", 5): 12, row("scope_denied", 5): 3, row("allowed", 24*10): 7,
	}); err != nil {
		t.Fatal(err)
	}
	r = b.get(path)
	wantStatus(t, r, http.StatusOK)
	svg := find(t, r.body, func(n *html.Node) bool { return n.Data == "svg" })
	if len(svg) != 1 || attr(svg[0], "role") != "img" || attr(svg[0], "aria-labelledby") == "" {
		t.Fatalf("no accessible svg:\n%s", r.body)
	}
	if rects := find(t, r.body, func(n *html.Node) bool { return n.Data == "rect" }); len(rects) != 3 { // two bars, one of two outcomes
		t.Errorf("48 h: %d bar segments, want 3", len(rects))
	}
	legend := find(t, r.body, byID("usage-legend"))
	if len(legend) != 1 || !strings.Contains(text(legend[0]), "allowed 42") || !strings.Contains(text(legend[0]), "scope_denied 3") {
		t.Errorf("legend: %q", text(legend[0]))
	}
	cells := find(t, r.body, func(n *html.Node) bool { return n.Data == "td" && attr(n, "data-label") == "scope_denied" })
	if len(cells) != 2 || text(cells[0]) != "3" || text(cells[1]) != "0" { // 5 hours ago, now
		t.Errorf("the table's scope_denied column: %d cells", len(cells))
	}
	// 30 days by day: the request of 10 days ago shows too.
	r = b.get(path + "&range=30d")
	legend = find(t, r.body, byID("usage-legend"))
	if len(legend) != 1 || !strings.Contains(text(legend[0]), "allowed 49") {
		t.Errorf("30 days legend: %q", text(legend[0]))
	}
	// The tabs: one selected, each a link that works without a script.
	tabs := find(t, r.body, func(n *html.Node) bool { return attr(n, "role") == "tab" })
	if len(tabs) != 5 {
		t.Fatalf("%d tabs, want 5", len(tabs))
	}
	for _, tab := range tabs {
		sel := attr(tab, "aria-selected") == "true"
		if sel != (text(tab) == "Usage") || !strings.HasPrefix(attr(tab, "href"), "/keys/"+fx.keyID+"?tab=") {
			t.Errorf("tab %q: aria-selected %q href %q", text(tab), attr(tab, "aria-selected"), attr(tab, "href"))
		}
	}
}
