package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// serviceKeys makes n service keys of billing/globex named name(i), in
// that order.
func (e *env) serviceKeys(n int, name func(int) string) []string {
	e.t.Helper()
	var ids []string
	c := e.caller()
	for i := range n {
		_, k, _, err := e.svc.GenerateKey(context.Background(), c, account.KeyInput{Type: authz.KeyTypeService,
			AppID: "billing", TenantID: "globex", Name: name(i), Scope: "billing-api"})
		if err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, k.Spec.ID)
	}
	return ids
}

// listed are the key names of a keys list page, in its order.
func listed(t *testing.T, body string) []string {
	t.Helper()
	var names []string
	for _, td := range find(t, body, func(n *html.Node) bool { return n.Data == "td" && attr(n, "data-label") == "Name" }) {
		for a := range td.Descendants() {
			if a.Type == html.ElementNode && a.Data == "a" && a.FirstChild != nil {
				names = append(names, a.FirstChild.Data)
			}
		}
	}
	return names
}

// nextLink is a keys page's next-page link, "" on the last page.
func nextLink(t *testing.T, body string) string {
	t.Helper()
	for _, a := range find(t, body, func(n *html.Node) bool { return n.Data == "a" && attr(n, "rel") == "next" }) {
		return attr(a, "href")
	}
	return ""
}

// The name search finds names containing the text without case; every
// sort pages through all keys (50 a page) in its order, the newest first
// by default, and a page link of one sort is refused by another.
func TestKeysSearchSortAndPages(t *testing.T) {
	e := newEnv(t)
	e.owners()
	// 61 keys with the admin key: names in another order than creation.
	e.serviceKeys(60, func(i int) string { return fmt.Sprintf("Key-%02d", (i*7)%60) })
	b := e.browser(e.srv)
	b.signIn(e.admin)

	r := b.get("/keys?q=" + url.QueryEscape("KEY-0"))
	wantStatus(t, r, http.StatusOK)
	got := listed(t, r.body)
	slices.Sort(got)
	if want := []string{"Key-00", "Key-01", "Key-02", "Key-03", "Key-04", "Key-05", "Key-06", "Key-07", "Key-08", "Key-09"}; !slices.Equal(got, want) {
		t.Errorf("search KEY-0: %v", got)
	}
	if got := listed(t, b.get("/keys?q=%25").body); len(got) != 0 {
		t.Errorf("search %%: %v, want none (a letter, not a wildcard)", got)
	}

	all := func(t *testing.T, sort string) []string {
		t.Helper()
		path := "/keys?sort=" + sort
		var names []string
		for range 5 {
			r := b.get(path)
			wantStatus(t, r, http.StatusOK)
			names = append(names, listed(t, r.body)...)
			if path = nextLink(t, r.body); path == "" {
				break
			}
		}
		return names
	}
	byName := all(t, "name")
	if len(byName) != 61 || !slices.IsSortedFunc(byName, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) }) {
		t.Errorf("sorted by name over two pages: %d keys %v", len(byName), byName)
	}
	desc := all(t, "-name")
	slices.Reverse(desc)
	if !slices.Equal(desc, byName) {
		t.Errorf("-name is not name reversed: %v", desc)
	}
	// Key i is named Key-(7i mod 60): the newest, i = 59, is Key-53; the
	// oldest the bootstrap key.
	if newest := all(t, ""); len(newest) != 61 || newest[0] != "Key-53" || newest[1] != "Key-46" || newest[60] != "admin" {
		t.Errorf("default order (newest first): %v", newest)
	}
	for _, s := range []string{"expires", "-last_used", "created"} {
		if got := all(t, s); len(got) != 61 {
			t.Errorf("sort %s: %d keys over the pages, want 61", s, len(got))
		}
	}

	// Headers: links that sort, aria-sort on the sorted one.
	r = b.get("/keys?sort=name&q=key")
	ths := find(t, r.body, func(n *html.Node) bool { return n.Data == "th" && attr(n, "aria-sort") != "" })
	if len(ths) != 1 || attr(ths[0], "aria-sort") != "ascending" {
		t.Fatalf("aria-sort headers: %d", len(ths))
	}
	var href string
	for a := range ths[0].Descendants() {
		if a.Data == "a" {
			href = attr(a, "href")
		}
	}
	if u, err := url.Parse(href); err != nil || u.Query().Get("sort") != "-name" || u.Query().Get("q") != "key" {
		t.Errorf("sorted header links to %q, want the reverse with the search kept", href)
	}

	// A page link of the name sort, given to another sort.
	next := nextLink(t, b.get("/keys?sort=name").body)
	u, _ := url.Parse(next)
	after := u.Query().Get("after")
	r = b.get("/keys?sort=expires&after=" + url.QueryEscape(after))
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, "sorted by name, not by expires") {
		t.Errorf("a token of another sort: no clear error\n%s", r.body)
	}
	r = b.get("/keys?sort=colour")
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, "order_by") {
		t.Error("an unknown sort: no error")
	}
}

// A key whose quota is used up has the badge; each row has the sparkline
// of its last 7 days, read with the usage operation only.
func TestKeysQuotaBadgeAndSparkline(t *testing.T) {
	e := newEnv(t)
	e.owners()
	ctx := context.Background()
	c := e.caller()
	mk := func(name, quota string) store.Key {
		q, err := authz.ParseQuota(quota)
		if err != nil {
			t.Fatal(err)
		}
		_, k, _, err := e.svc.GenerateKey(ctx, c, account.KeyInput{Type: authz.KeyTypeService, AppID: "billing", TenantID: "globex",
			Name: name, Scope: "billing-api", Quota: q})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	full, spare := mk("full", "5/day"), mk("spare", "500/day")
	now := e.clock.Now().UTC()
	row := func(k store.Key, days int) store.UsageRow {
		return store.UsageRow{AccountID: "acme", TenantID: "globex", AppID: "billing", KeyID: k.Spec.ID, Service: "billing-api",
			Operation: "createInvoice", Outcome: store.UsageOutcomeAllowed, Hour: now.AddDate(0, 0, -days).Truncate(time.Hour)}
	}
	if err := e.st.AddUsage(ctx, map[store.UsageRow]int64{
		row(full, 0): 5, row(spare, 0): 3, row(spare, 2): 11,
	}); err != nil {
		t.Fatal(err)
	}
	b := e.browser(e.srv)
	b.signIn(e.admin)
	r := b.get("/keys?sort=name")
	wantStatus(t, r, http.StatusOK)
	rows := find(t, r.body, func(n *html.Node) bool { return n.Data == "tr" })
	badges := map[string]bool{}
	sparks := map[string]string{}
	for _, tr := range rows {
		var name string
		for n := range tr.Descendants() {
			if n.Type != html.ElementNode {
				continue
			}
			if n.Data == "a" && strings.HasPrefix(attr(n, "href"), "/keys/") && n.FirstChild != nil {
				name = n.FirstChild.Data
			}
			if attr(n, "class") == "badge badge-quota" {
				badges[name] = true
			}
			if n.Data == "svg" {
				sparks[name] = attr(n, "aria-label")
			}
		}
	}
	if !badges["full"] || badges["spare"] || badges["admin"] {
		t.Errorf("quota badges on %v, want full only", badges)
	}
	if !strings.Contains(sparks["spare"], "0, 0, 0, 0, 11, 0, 3 (total 14)") || !strings.Contains(sparks["full"], "(total 5)") ||
		!strings.Contains(sparks["admin"], "(total 0)") {
		t.Errorf("sparklines %v", sparks)
	}

	// Without the usage operation: no sparkline column.
	reader, _ := e.accountKey("keys-reader", "account-api:query:keys")
	rb := e.browser(e.srv)
	rb.signIn(reader)
	r = rb.get("/keys")
	wantStatus(t, r, http.StatusOK)
	if strings.Contains(r.body, "<svg") || strings.Contains(r.body, "Last 7 days") {
		t.Error("a session without usage sees sparklines")
	}
}

// Bulk deactivate and delete go through a confirmation page listing the
// keys; a session without the operation sees no button and is refused
// anyway; a post without the CSRF token or with a stale count is refused.
func TestKeysBulk(t *testing.T) {
	e := newEnv(t)
	e.owners()
	ids := e.serviceKeys(4, func(i int) string { return fmt.Sprintf("bulk-%d", i) })
	b := e.browser(e.srv)
	b.signIn(e.admin)

	r := b.get("/keys")
	if len(find(t, r.body, byID("bulk-deactivate"))) != 1 || len(find(t, r.body, byID("bulk-delete"))) != 1 ||
		len(find(t, r.body, byID("select-all"))) != 1 {
		t.Fatal("no bulk buttons for the admin")
	}
	r = b.get("/keys/bulk?action=deactivate&id=" + ids[0] + "&id=" + ids[2] + "&id=gone")
	wantStatus(t, r, http.StatusOK)
	lis := find(t, r.body, func(n *html.Node) bool {
		return n.Data == "li" && n.Parent != nil && attr(n.Parent, "id") == "bulk-keys"
	})
	if len(lis) != 2 || !strings.Contains(r.body, "Deactivate 2 keys") || !strings.Contains(r.body, "1 of the selected keys no longer exists") {
		t.Errorf("confirmation page:\n%s", r.body)
	}
	form := url.Values{"action": {"deactivate"}, "id": {ids[0], ids[2]}, "count": {"2"}}
	// No CSRF token: refused, nothing changed.
	r = b.post("/keys/bulk", form)
	wantStatus(t, r, http.StatusForbidden)
	active := func(id string) bool {
		k, err := e.svc.GetKey(context.Background(), e.caller(), id)
		if err != nil {
			t.Fatal(err)
		}
		return k.Spec.Active
	}
	if !active(ids[0]) {
		t.Fatal("a CSRF-less post deactivated a key")
	}
	// A count that is not the confirmed selection's.
	bad := url.Values{"action": {"deactivate"}, "id": {ids[0], ids[2]}, "count": {"3"}}
	wantStatus(t, b.form("/keys/bulk", bad), http.StatusUnprocessableEntity)
	r = b.form("/keys/bulk", form)
	wantRedirect(t, r, "/keys?done=deactivated&n=2")
	if active(ids[0]) || active(ids[2]) || !active(ids[1]) {
		t.Error("bulk deactivate changed the wrong keys")
	}
	if r := b.get("/keys?done=deactivated&n=2"); !strings.Contains(r.body, "Deactivated 2 keys.") {
		t.Error("no notice after the bulk deactivate")
	}

	// A session that may only read keys: no buttons, refused anyway.
	reader, _ := e.accountKey("reader", "account-api:query:keys account-api:query:key")
	rb := e.browser(e.srv)
	rb.signIn(reader)
	r = rb.get("/keys")
	if strings.Contains(r.body, "bulk-delete") || strings.Contains(r.body, "bulk-deactivate") || strings.Contains(r.body, `name="id"`) {
		t.Error("a read-only session sees the bulk buttons")
	}
	wantStatus(t, rb.get("/keys/bulk?action=delete&id="+ids[1]), http.StatusForbidden)
	r = rb.form("/keys/bulk", url.Values{"action": {"delete"}, "id": {ids[1]}, "count": {"1"}})
	wantStatus(t, r, http.StatusForbidden)
	if !active(ids[1]) {
		t.Fatal("the refused delete touched the key")
	}

	// Delete: confirmed, then gone.
	r = b.get("/keys/bulk?action=delete&id=" + ids[1] + "&id=" + ids[3])
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(r.body, "bulk-1") || !strings.Contains(r.body, "bulk-3") || !strings.Contains(r.body, "cannot be undone") {
		t.Errorf("delete confirmation:\n%s", r.body)
	}
	r = b.form("/keys/bulk", url.Values{"action": {"delete"}, "id": {ids[1], ids[3]}, "count": {"2"}})
	wantRedirect(t, r, "/keys?done=deleted&n=2")
	keys, _, err := e.svc.ListKeys(context.Background(), e.caller(), account.KeyFilter{IDs: ids}, account.PageInput{})
	if err != nil || len(keys) != 2 {
		t.Errorf("after the delete %d of the 4 keys are left, want 2 (%v)", len(keys), err)
	}
	wantStatus(t, b.get("/keys/bulk?action=delete"), http.StatusUnprocessableEntity)
}

// "Use my own secret" imports the typed secret: a weak one is refused
// beside the field and never shown back; a good one makes the key,
// shown nowhere.
func TestKeyImportOwnSecret(t *testing.T) {
	e := newEnv(t)
	e.owners()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	if r := b.get("/keys/new"); len(find(t, r.body, byID("own-secret"))) != 1 || attr(find(t, r.body, byID("own-secret"))[0], "type") != "password" {
		t.Fatal("no password field for an own secret")
	}
	f := keyForm()
	f.Set("own_secret", "on")
	f.Set("secret", "weakweakweak-weak")
	r := b.form("/keys", f)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if strings.Contains(r.body, "weakweakweak") {
		t.Error("the refused secret is shown back")
	}
	errs := find(t, r.body, func(n *html.Node) bool {
		return attr(n, "class") == "field-error" && n.Parent != nil && attr(n.Parent, "id") == "own-secret-set"
	})
	if len(errs) != 1 || !strings.Contains(errs[0].FirstChild.Data, "private_key") {
		t.Errorf("no error beside the secret field:\n%s", r.body)
	}
	if in := find(t, r.body, byID("own_secret")); len(in) != 1 || attr(in[0], "checked") == "" && !hasAttr(in[0], "checked") {
		t.Error("the own-secret box is not kept ticked")
	}
	f.Set("secret", "")
	wantStatus(t, b.form("/keys", f), http.StatusUnprocessableEntity)

	secret := "Contentserv-Generic-Token-8c1f5e2a9b7d"
	f.Set("secret", secret)
	r = b.form("/keys", f)
	if r.StatusCode != http.StatusSeeOther || !strings.HasSuffix(r.Header.Get("Location"), "?imported=1") || strings.Contains(r.Header.Get("Location"), secret) {
		t.Fatalf("import: %d %s\n%s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
	page := b.get(r.Header.Get("Location"))
	wantStatus(t, page, http.StatusOK)
	if strings.Contains(page.body, secret) || !strings.Contains(page.body, "your own secret") {
		t.Error("the key page after an import shows the secret or no notice")
	}
	keys, _, err := e.svc.ListKeys(context.Background(), e.caller(), account.KeyFilter{Name: "globex-billing"}, account.PageInput{})
	if err != nil || len(keys) != 1 || keys[0].Spec.Hash != apikey.NewHasher(nil).HashString(secret) || keys[0].Origin != store.OriginCustom {
		t.Fatalf("imported key: %v %v", keys, err)
	}
	// The same secret again: in use, beside the field.
	f.Set("name", "another")
	r = b.form("/keys", f)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, "this secret cannot be used") || strings.Contains(r.body, secret) {
		t.Error("a secret in use: no error, or the secret shown back")
	}
}

// TestKeysBulkDeleteCountsEachKey: a bulk delete counts each key against
// the session key's mutation rate, as DeleteKey calls would: past the
// burst (twice the default 20 a second, the clock standing still) the
// rest are refused with 429 and stay, rather than a post of 1,000 ids
// deleting them all for one call's price.
func TestKeysBulkDeleteCountsEachKey(t *testing.T) {
	e := newEnv(t)
	e.owners()
	ids := e.serviceKeys(60, func(i int) string { return fmt.Sprintf("many-%02d", i) })
	b := e.browser(e.srv)
	b.signIn(e.admin)
	r := b.form("/keys/bulk", url.Values{"action": {"delete"}, "id": ids, "count": {"60"}})
	wantStatus(t, r, http.StatusTooManyRequests)
	if !strings.Contains(r.body, "of 60 keys; the rest were not") || !strings.Contains(r.body, "rate_limited") {
		t.Errorf("the refusal does not say how far it got and why:\n%s", r.body)
	}
	left, _, err := e.svc.ListKeys(context.Background(), e.caller(), account.KeyFilter{IDs: ids}, account.PageInput{Size: 100})
	if err != nil || len(left) < 60-2*int(account.DefaultRateLimits.MutationsPerSecond) || len(left) == 0 {
		t.Errorf("%d of 60 keys left (%v): want the ones past the burst kept", len(left), err)
	}
}
