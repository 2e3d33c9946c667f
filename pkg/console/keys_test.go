package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// owners makes app "billing" and tenant "globex" through the service.
func (e *env) owners() {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.svc.CreateApp(ctx, e.caller(), account.OwnerInput{ID: "billing", Name: "Billing"}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.CreateTenant(ctx, e.caller(), account.OwnerInput{ID: "globex", Name: "Globex"}); err != nil {
		e.t.Fatal(err)
	}
}

// secretOf reads the one-time panel's secret.
func secretOf(t *testing.T, body string) string {
	t.Helper()
	in := find(t, body, byID("secret"))
	if len(in) != 1 {
		t.Fatalf("no secret panel:\n%s", body)
	}
	return attr(in[0], "value")
}

func keyForm() url.Values {
	return url.Values{
		"type": {"service"}, "app_id": {"billing"}, "tenant_id": {"globex"},
		"name": {"globex-billing"}, "description": {"Globex's billing integration"},
		"scope": {"billing-api:query:*"}, "perm": {"billing-api:mutation:createInvoice"},
		"ip_address": {"192.168.178.0", "10.0.0.0/8", ""}, "ip_netmask": {"255.255.255.0", "", ""},
		"expires_at":  {time.Now().UTC().Add(48 * time.Hour).Format("2006-01-02T15:04")},
		"header_name": {"x-tenant", "x-debug", ""}, "header_value": {"${tenant.id}", "1", ""}, "header_off": {"1"},
		"active": {"on"},
	}
}

func TestKeyCreateShowsTheSecretOnce(t *testing.T) {
	e := newEnv(t)
	e.owners()
	b := e.browser(e.srv)
	b.signIn(e.admin)

	r := b.form("/keys", keyForm())
	wantStatus(t, r, http.StatusOK)
	if got := r.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("secret page Cache-Control %q, want no-store", got)
	}
	secret := secretOf(t, r.body)
	if err := apikey.Validate(secret); err != nil {
		t.Fatalf("panel secret: %v", err)
	}
	if len(find(t, r.body, byID("copy-secret"))) != 1 {
		t.Error("no copy button")
	}
	keys, _, err := e.svc.ListKeys(t.Context(), e.caller(), account.KeyFilter{Name: "globex-billing"}, account.PageInput{})
	if err != nil || len(keys) != 1 {
		t.Fatalf("created key: %v, %v", keys, err)
	}
	k := keys[0].Spec
	if k.Hash != apikey.NewHasher(nil).HashString(secret) {
		t.Error("the panel's secret is not the key's")
	}
	if k.Type != authz.KeyTypeService || k.AppID != "billing" || k.TenantID != "globex" ||
		k.Scope != "billing-api:query:* billing-api:mutation:createInvoice" ||
		strings.Join(k.IPFilters, ",") != "192.168.178.0/255.255.255.0,10.0.0.0/8" ||
		len(k.ResponseHeaders) != 2 || k.ResponseHeaders[0].Disabled || !k.ResponseHeaders[1].Disabled ||
		k.ExpiresAt.IsZero() || !k.Active {
		t.Errorf("stored key %+v", k)
	}
	// Never again: not on the key page, the list or the overview.
	for _, path := range []string{"/keys/" + k.ID, "/keys", "/"} {
		if body := b.get(path).body; strings.Contains(body, secret) {
			t.Errorf("GET %s shows the secret", path)
		}
	}
	if r := b.get("/keys/" + k.ID); r.Header.Get("Cache-Control") == "no-store" || strings.Contains(r.body, `id="secret"`) {
		t.Error("the key page looks like the secret page")
	}
}

// Service errors come back beside the field they name, with what was
// typed kept.
func TestKeyFormErrorsBesideTheField(t *testing.T) {
	e := newEnv(t)
	e.owners()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	for _, tc := range []struct {
		name, field, value, errField, want string
	}{
		{"bad IP filter", "ip_address", "300.1.1.1", "ip_filters", "ip_filters"},
		{"bad scope", "scope", "billing-api::x", "scope", "scope"},
		{"expiry in the past", "expires_at", "2001-01-01T00:00", "expires_at", "not in the future"},
		{"expiry not a date", "expires_at", "tomorrow", "expires_at", "not a date"},
		{"unknown app", "app_id", "nope", "app_id", "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := keyForm()
			f.Set(tc.field, tc.value)
			f.Del("perm")
			r := b.form("/keys", f)
			wantStatus(t, r, http.StatusUnprocessableEntity)
			errs := find(t, r.body, func(n *html.Node) bool { return attr(n, "class") == "field-error" })
			found := false
			for _, n := range errs {
				if strings.Contains(text(n), tc.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no field error with %q:\n%s", tc.want, r.body)
			}
			if !strings.Contains(r.body, "globex-billing") {
				t.Error("the form lost what was typed")
			}
		})
	}
}

func text(n *html.Node) string {
	var sb strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			sb.WriteString(d.Data)
		}
	}
	return sb.String()
}

func TestKeyEditRegenerateDeactivate(t *testing.T) {
	e := newEnv(t)
	e.owners()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	first := secretOf(t, b.form("/keys", keyForm()).body)
	keys, _, _ := e.svc.ListKeys(t.Context(), e.caller(), account.KeyFilter{Name: "globex-billing"}, account.PageInput{})
	id := keys[0].Spec.ID

	// The settings form: scope narrowed, a filter and the headers dropped.
	page := b.get("/keys/" + id)
	if box := checkbox(t, page.body, "billing-api:mutation:createInvoice"); box == nil || !hasAttr(box, "checked") {
		t.Error("the picker does not tick the key's createInvoice")
	}
	f := url.Values{"name": {"globex-billing"}, "description": {"narrowed"}, "scope": {"billing-api:query:getInvoice"},
		"ip_address": {"10.0.0.0/8"}, "ip_netmask": {""}, "active": {"on"}}
	wantRedirect(t, b.form("/keys/"+id, f), "/keys/"+id+"?saved=1")
	k, _ := e.svc.GetKey(t.Context(), e.caller(), id)
	if k.Spec.Scope != "billing-api:query:getInvoice" || len(k.Spec.IPFilters) != 1 || len(k.Spec.ResponseHeaders) != 0 || !k.Spec.ExpiresAt.IsZero() {
		t.Errorf("after the edit: %+v", k.Spec)
	}

	r := b.form("/keys/"+id+"/regenerate", url.Values{"grace": {"1h"}})
	wantStatus(t, r, http.StatusOK)
	second := secretOf(t, r.body)
	if second == first || r.Header.Get("Cache-Control") != "no-store" || !strings.Contains(r.body, "previous secret stays valid until") {
		t.Errorf("regenerate page:\n%s", r.body)
	}
	k, _ = e.svc.GetKey(t.Context(), e.caller(), id)
	h := apikey.NewHasher(nil)
	if k.Spec.Hash != h.HashString(second) || k.Spec.PreviousHash != h.HashString(first) ||
		(k.Spec.PreviousValidUntil.Sub(e.clock.Now())-time.Hour).Abs() > time.Millisecond { // stored in µs
		t.Errorf("after regenerate with 1h grace: %+v", k.Spec)
	}

	wantRedirect(t, b.form("/keys/"+id+"/active", url.Values{"active": {"false"}}), "/keys/"+id+"?saved=1")
	if k, _ = e.svc.GetKey(t.Context(), e.caller(), id); k.Spec.Active {
		t.Error("deactivate left the key active")
	}
	page = b.get("/keys/" + id)
	if len(find(t, page.body, byID("activate"))) != 1 || !strings.Contains(page.body, "badge-inactive") {
		t.Error("the key page of an inactive key offers no activation")
	}

	wantRedirect(t, b.form("/keys/"+id+"/delete", url.Values{}), "/keys")
	wantStatus(t, b.get("/keys/"+id), http.StatusNotFound)
}

// A key limited to reading sees no button that changes anything, and a
// change it posts anyway is refused by the server.
func TestReadOnlyKey(t *testing.T) {
	e := newEnv(t)
	e.owners()
	_, k, _, err := e.svc.GenerateKey(t.Context(), e.caller(), account.KeyInput{Type: authz.KeyTypeService, AppID: "billing", TenantID: "globex", Name: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	reader, _ := e.accountKey("reader", "account-api:query:*")
	b := e.browser(e.srv)
	b.signIn(reader)
	wantNoChanges(t, b, []string{"/", "/keys", "/keys/" + k.Spec.ID, "/apps", "/apps/billing", "/tenants", "/tenants/globex"},
		"new-key", "new-app", "new-tenant", "delete", "deactivate", "regenerate")
	for _, path := range []string{"/keys/new", "/apps/new", "/apps/billing/delete"} {
		wantStatus(t, b.get(path), http.StatusForbidden)
	}
	wantRefused(t, b, []post{
		{"/apps", url.Values{"name": {"evil"}}},
		{"/apps/billing", url.Values{"name": {"evil"}}},
		{"/apps/billing/delete", url.Values{"confirm": {"Billing"}}},
		{"/keys", keyForm()},
		{"/keys/" + k.Spec.ID + "/active", url.Values{"active": {"false"}}},
		{"/keys/" + k.Spec.ID + "/regenerate", url.Values{"grace": {"0s"}}},
		{"/keys/" + k.Spec.ID, url.Values{"name": {"evil"}, "scope": {""}}},
		{"/keys/" + k.Spec.ID + "/delete", url.Values{}},
	})
	got, _ := e.svc.GetKey(t.Context(), e.caller(), k.Spec.ID)
	if !got.Spec.Active || got.Spec.Name != "svc" || got.Spec.Hash != k.Spec.Hash {
		t.Errorf("the reader changed the key: %+v", got.Spec)
	}
	if a, _ := e.svc.GetApp(t.Context(), e.caller(), "billing"); a.Name != "Billing" {
		t.Errorf("the reader changed the app: %+v", a)
	}
}

// The list pages with the service's cursor and filters.
func TestKeysListPagesAndFilters(t *testing.T) {
	e := newEnv(t)
	e.owners()
	ctx := t.Context()
	for i := range 60 {
		typ, tenant := authz.KeyTypeService, "globex"
		if i%3 == 0 {
			typ, tenant = authz.KeyTypeApp, ""
		}
		off := i%10 == 0
		active := !off
		if _, _, _, err := e.svc.GenerateKey(ctx, e.caller(), account.KeyInput{Type: typ, AppID: "billing", TenantID: tenant,
			Name: fmt.Sprintf("k%02d", i), Active: &active}); err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser(e.srv)
	b.signIn(e.admin)
	rows := func(body string) int {
		return len(find(t, body, func(n *html.Node) bool { return n.Data == "td" && attr(n, "data-label") == "Name" }))
	}
	r := b.get("/keys")
	if n := rows(r.body); n != 50 {
		t.Fatalf("first page: %d rows, want 50", n)
	}
	next := find(t, r.body, func(n *html.Node) bool { return n.Data == "a" && attr(n, "rel") == "next" })
	if len(next) != 1 {
		t.Fatal("no next page link")
	}
	r = b.get(attr(next[0], "href"))
	if n := rows(r.body); n != 11 { // 60 + the admin key
		t.Fatalf("second page: %d rows, want 11", n)
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"type=app", 20},
		{"type=account", 1},
		{"tenant=globex", 40},
		{"active=false", 6},
		{"type=service&active=false", 4},
		{"name=k07", 1},
		{"app=billing&type=app&active=true", 18},
		{"unused_since=2100-01-01", 50}, // a page of the 61
		{"expiring_before=2100-01-01", 0},
		{"group=none", 0},
		// The hygiene filters the overview links to (its keys have no IP
		// filters and no scope; the admin key has a scope).
		{"ip_filters=none&type=account", 1},
		{"scope=everything&type=account", 0},
		{"scope=everything&tenant=globex", 40},
		{"scope=everything&ip_filters=none&type=app&active=false", 2},
		{"expires_after=2000-01-01", 0},
		{"expires_after=2000-01-01T00:00:00&expiring_before=2100-01-01T00:00:00", 0},
	} {
		if n := rows(b.get("/keys?" + tc.query).body); n != tc.want {
			t.Errorf("/keys?%s: %d rows, want %d", tc.query, n, tc.want)
		}
	}
	wantStatus(t, b.get("/keys?type=bogus"), http.StatusUnprocessableEntity)
	wantStatus(t, b.get("/keys?expiring_before=soon"), http.StatusUnprocessableEntity)
	for _, q := range []string{"expires_after=soon", "ip_filters=some", "scope=all"} {
		r := b.get("/keys?" + q)
		wantStatus(t, r, http.StatusUnprocessableEntity)
		field, _, _ := strings.Cut(q, "=")
		if len(find(t, r.body, func(n *html.Node) bool {
			return attr(n, "class") == "field-error" && strings.HasPrefix(text(n), field+":")
		})) == 0 {
			t.Errorf("/keys?%s: no error beside %s", q, field)
		}
	}
	// A time (the overview's links) is kept in the form: a date field
	// would drop it.
	r = b.get("/keys?expires_after=2030-01-02T03:04:05&ip_filters=none&scope=everything")
	for name, want := range map[string]string{"expires_after": "2030-01-02T03:04:05", "expiring_before": ""} {
		in := find(t, r.body, func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == name })
		if len(in) != 1 || attr(in[0], "value") != want || (want != "" && attr(in[0], "type") != "text") || (want == "" && attr(in[0], "type") != "date") {
			t.Errorf("the %s field does not keep %q", name, want)
		}
	}
	for name, want := range map[string]string{"ip_filters": "none", "scope": "everything"} {
		if len(find(t, r.body, func(n *html.Node) bool {
			return n.Data == "option" && attr(n, "value") == want && n.Parent != nil && attr(n.Parent, "name") == name && hasAttr(n, "selected")
		})) != 1 {
			t.Errorf("the %s filter does not show %q selected", name, want)
		}
	}
}

// The scope field is checked as typed (htmx posts it).
func TestScopeCheck(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	token := b.csrf()
	for _, tc := range []struct{ scope, want string }{
		{"billing-api:query:*", "Valid scope."},
		{"", "empty scope allows every operation"},
		{"billing-api:query:get*x", "scope:"},
	} {
		r := b.post("/keys/scope-check", url.Values{"scope": {tc.scope}}, "X-CSRF-Token", token, "HX-Request", "true")
		wantStatus(t, r, http.StatusOK)
		if !strings.Contains(r.body, tc.want) || !strings.Contains(r.body, `id="scope-msg"`) {
			t.Errorf("scope %q: %s", tc.scope, r.body)
		}
	}
}

// checkbox is the picker's box of a pattern, nil when none.
func checkbox(t *testing.T, body, pattern string) *html.Node {
	boxes := find(t, body, func(n *html.Node) bool { return attr(n, "name") == "perm" && attr(n, "value") == pattern })
	if len(boxes) != 1 {
		return nil
	}
	return boxes[0]
}

func hasAttr(n *html.Node, name string) bool {
	for _, a := range n.Attr {
		if a.Key == name {
			return true
		}
	}
	return false
}

// The picker is the route catalogue: service, kinds and operations, each
// a box whose value is its scope pattern.
func TestPermissionPicker(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	body := b.get("/keys/new").body
	for _, p := range []string{"billing-api", "billing-api:query", "billing-api:query:getInvoice", "billing-api:query:listInvoices",
		"billing-api:mutation:createInvoice", "account-api", "account-api:query:keys"} {
		if box := checkbox(t, body, p); box == nil || hasAttr(box, "checked") {
			t.Errorf("new key form: no unticked box %s", p)
		}
	}
	// Without the services operation there is no picker; the field stays.
	reader, _ := e.accountKey("keys-only", "account-api:query:keys account-api:query:key account-api:mutation:generateServiceAccessKey")
	b2 := e.browser(e.srv)
	b2.signIn(reader)
	body = b2.get("/keys/new").body
	if len(find(t, body, byID("picker"))) != 0 || len(find(t, body, byID("scope"))) != 1 {
		t.Error("a key without services: want the scope field and no picker")
	}
}

// The key page's panels: the endpoints its scope reaches, its usage, its
// sync status and its audit events with what changed.
func TestKeyPagePanels(t *testing.T) {
	e := newEnv(t)
	e.owners()
	_, k, _, err := e.svc.GenerateKey(t.Context(), e.caller(), account.KeyInput{Type: authz.KeyTypeService, AppID: "billing", TenantID: "globex",
		Name: "reader", Scope: "billing-api:query:*"})
	if err != nil {
		t.Fatal(err)
	}
	desc := "now described"
	if _, _, err := e.svc.UpdateKey(t.Context(), e.caller(), k.Spec.ID, account.KeyUpdate{Description: &desc}); err != nil {
		t.Fatal(err)
	}
	b := e.browser(e.srv)
	b.signIn(e.admin)
	for tab, wants := range map[string][]string{
		"endpoints": {"<code>query:listInvoices</code>", "<code>query:getInvoice</code>"},
		"usage":     {"No requests counted."},
		"sync":      {`id="sync-status"`},
		"audit":     {"key.update", `<code>description</code>: <ins><span class="sr">now </span>&#34;now described&#34;</ins>`, "key.create"},
	} {
		body := b.get("/keys/" + k.Spec.ID + "?tab=" + tab).body
		for _, want := range wants {
			if !strings.Contains(body, want) {
				t.Errorf("key page, tab %s, lacks %q", tab, want)
			}
		}
		if strings.Contains(body, "mutation:createInvoice</code>") {
			t.Errorf("tab %s: the endpoints list an operation outside the scope", tab)
		}
	}
}

// The dialogs set a key's group and roles; regenerate takes a chosen
// grace.
func TestKeyGroupRolesAndChosenGrace(t *testing.T) {
	e := newEnv(t)
	e.owners()
	if _, err := e.svc.CreateServiceAccessRole(t.Context(), e.caller(), account.RoleInput{ID: "r-read", Name: "invoice-reader", Scope: "billing-api:query:*"}); err != nil {
		t.Fatal(err)
	}
	b := e.browser(e.srv)
	b.signIn(e.admin)
	f := keyForm()
	f.Set("group", "erp")
	f.Set("role", "r-read")
	wantStatus(t, b.form("/keys", f), http.StatusOK)
	keys, _, _ := e.svc.ListKeys(t.Context(), e.caller(), account.KeyFilter{Group: "erp"}, account.PageInput{})
	if len(keys) != 1 || strings.Join(keys[0].RoleIDs, ",") != "r-read" {
		t.Fatalf("keys of group erp: %+v", keys)
	}
	id := keys[0].Spec.ID
	names := find(t, b.get("/keys?role=r-read").body, func(n *html.Node) bool { return n.Data == "td" && attr(n, "data-label") == "Name" })
	if len(names) != 1 || text(names[0]) != "globex-billing" {
		t.Error("the role filter does not select the key holding the role alone")
	}
	page := b.get("/keys/" + id)
	if n := find(t, page.body, func(n *html.Node) bool { return attr(n, "name") == "role" && attr(n, "value") == "r-read" }); len(n) != 1 || !hasAttr(n[0], "checked") {
		t.Error("the key page does not tick the key's role")
	}
	// Unticked: the key holds no role any more.
	wantRedirect(t, b.form("/keys/"+id, url.Values{"name": {"globex-billing"}, "group": {"erp"}, "roles_shown": {"1"}, "active": {"on"}}), "/keys/"+id+"?saved=1")
	if k, _ := e.svc.GetKey(t.Context(), e.caller(), id); len(k.RoleIDs) != 0 || k.Spec.Group != "erp" {
		t.Errorf("after unticking the role: roles %v, group %q", k.RoleIDs, k.Spec.Group)
	}
	r := b.form("/keys/"+id+"/regenerate", url.Values{"grace": {"0s"}, "grace_custom": {"90m"}})
	wantStatus(t, r, http.StatusOK)
	if k, _ := e.svc.GetKey(t.Context(), e.caller(), id); (k.Spec.PreviousValidUntil.Sub(e.clock.Now()) - 90*time.Minute).Abs() > time.Millisecond {
		t.Errorf("grace 90m: previous valid until %v (now %v)", k.Spec.PreviousValidUntil, e.clock.Now())
	}
	wantStatus(t, b.form("/keys/"+id+"/regenerate", url.Values{"grace_custom": {"soon"}}), http.StatusUnprocessableEntity)
}
