package console_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

// fieldErrorIn is the text of the field errors inside the element with
// id, "" for none.
func fieldErrorIn(t *testing.T, body, id string) string {
	t.Helper()
	var out []string
	for _, set := range find(t, body, byID(id)) {
		for d := range set.Descendants() {
			if d.Type == html.ElementNode && attr(d, "class") == "field-error" {
				out = append(out, text(d))
			}
		}
	}
	return strings.Join(out, "; ")
}

// selected is the value of a select's selected option, "" for none.
func selected(t *testing.T, body, id string) string {
	t.Helper()
	for _, s := range find(t, body, byID(id)) {
		for d := range s.Descendants() {
			if d.Data == "option" && hasAttr(d, "selected") {
				return attr(d, "value")
			}
		}
	}
	return ""
}

// denyToggle is the picker's deny toggle of a pattern, nil when none.
func denyToggle(t *testing.T, body, pattern string) *html.Node {
	boxes := find(t, body, func(n *html.Node) bool { return attr(n, "name") == "deny" && attr(n, "value") == pattern })
	if len(boxes) != 1 {
		return nil
	}
	return boxes[0]
}

func (e *env) keyNamed(name string) (id string, spec authz.KeySpec) {
	e.t.Helper()
	keys, _, err := e.svc.ListKeys(e.t.Context(), e.caller(), account.KeyFilter{Name: name}, account.PageInput{})
	if err != nil || len(keys) != 1 {
		e.t.Fatalf("key %s: %v, %v", name, keys, err)
	}
	return keys[0].Spec.ID, keys[0].Spec
}

// The create and settings forms set a key's own rate limit and quota
// ("none" clears them), the key page shows them, and their errors, the
// console's and the service's, come back beside the fields.
func TestKeyLimitsForm(t *testing.T) {
	e := newEnv(t)
	e.owners()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	if body := b.get("/keys/new").body; selected(t, body, "rate_limit_unit") != "none" || selected(t, body, "quota_period") != "none" {
		t.Error("the new key form does not start with no rate limit and no quota")
	}

	for _, tc := range []struct {
		name        string
		set         map[string]string
		field, want string
	}{
		{"console: a number without a unit", map[string]string{"rate_limit_requests": "100", "rate_limit_unit": "none"}, "rate_limit", "rate_limit: \"100\" requests per what?"},
		{"console: not a number", map[string]string{"quota_requests": "many", "quota_period": "day"}, "quota", "quota: \"many\" is not a positive whole number"},
		{"service: over the maximum rate", map[string]string{"rate_limit_requests": "2000000000", "rate_limit_unit": "second"}, "rate_limit",
			"rate_limit: requests_per_unit 2000000000 is over the maximum 1000000000"},
		{"service: over the maximum quota", map[string]string{"quota_requests": "2000000000000000", "quota_period": "month"}, "quota",
			"quota: requests 2000000000000000 is over the maximum 1000000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := keyForm()
			for k, v := range tc.set {
				f.Set(k, v)
			}
			r := b.form("/keys", f)
			wantStatus(t, r, http.StatusUnprocessableEntity)
			if got := fieldErrorIn(t, r.body, "limits"); !strings.Contains(got, tc.want) {
				t.Errorf("errors beside the limits %q, want %q", got, tc.want)
			}
			for k, v := range tc.set {
				if in := find(t, r.body, byID(k)); len(in) == 1 && in[0].Data == "input" && attr(in[0], "value") != v {
					t.Errorf("%s came back as %q, want %q as typed", k, attr(in[0], "value"), v)
				}
			}
		})
	}
	if keys, _, _ := e.svc.ListKeys(t.Context(), e.caller(), account.KeyFilter{}, account.PageInput{}); len(keys) != 1 { // the admin's
		t.Fatalf("refused forms made keys: %d", len(keys)-1)
	}

	f := keyForm()
	f.Set("rate_limit_requests", "5")
	f.Set("rate_limit_unit", "second")
	f.Set("quota_requests", "1,000")
	f.Set("quota_period", "day")
	wantStatus(t, b.form("/keys", f), http.StatusOK)
	id, k := e.keyNamed("globex-billing")
	if k.RateLimit != (authz.RateLimit{RequestsPerUnit: 5, Unit: authz.RateUnitSecond}) || k.Quota != (authz.Quota{Requests: 1000, Period: authz.QuotaPeriodDay}) {
		t.Fatalf("stored rate limit %v, quota %v", k.RateLimit, k.Quota)
	}
	page := b.get("/keys/" + id).body
	for id, want := range map[string]string{"rate_limit_requests": "5", "quota_requests": "1000"} {
		if in := find(t, page, byID(id)); len(in) != 1 || attr(in[0], "value") != want {
			t.Errorf("the settings form's %s is not %q", id, want)
		}
	}
	if selected(t, page, "rate_limit_unit") != "second" || selected(t, page, "quota_period") != "day" {
		t.Error("the settings form does not select the key's unit and period")
	}

	// Changed, then a post without the fields keeps them, then none
	// clears them.
	edit := url.Values{"name": {"globex-billing"}, "scope": {"billing-api"}, "active": {"on"},
		"rate_limit_requests": {"100"}, "rate_limit_unit": {"minute"}, "quota_requests": {"50000"}, "quota_period": {"month"}}
	wantRedirect(t, b.form("/keys/"+id, edit), "/keys/"+id+"?saved=1")
	if _, k = e.keyNamed("globex-billing"); k.RateLimit.String() != "100/minute" || k.Quota.String() != "50000/month" {
		t.Errorf("after the edit: rate limit %v, quota %v", k.RateLimit, k.Quota)
	}
	wantRedirect(t, b.form("/keys/"+id, url.Values{"name": {"globex-billing"}, "scope": {"billing-api"}, "active": {"on"}}), "/keys/"+id+"?saved=1")
	if _, k = e.keyNamed("globex-billing"); k.RateLimit.String() != "100/minute" || k.Quota.String() != "50000/month" {
		t.Errorf("a post without the fields changed them: rate limit %v, quota %v", k.RateLimit, k.Quota)
	}
	bad := url.Values{"name": {"globex-billing"}, "scope": {"billing-api"}, "active": {"on"},
		"rate_limit_requests": {"0"}, "rate_limit_unit": {"hour"}, "quota_requests": {""}, "quota_period": {"day"}}
	r := b.form("/keys/"+id, bad)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if got := fieldErrorIn(t, r.body, "limits"); !strings.Contains(got, "rate_limit: \"0\" is not a positive whole number") ||
		!strings.Contains(got, "quota: type how many requests per day") {
		t.Errorf("settings form errors beside the limits: %q", got)
	}
	edit.Set("rate_limit_unit", "none")
	edit.Set("rate_limit_requests", "")
	edit.Set("quota_period", "none")
	edit.Set("quota_requests", "")
	wantRedirect(t, b.form("/keys/"+id, edit), "/keys/"+id+"?saved=1")
	if _, k = e.keyNamed("globex-billing"); !k.RateLimit.IsZero() || !k.Quota.IsZero() {
		t.Errorf("none did not clear: rate limit %v, quota %v", k.RateLimit, k.Quota)
	}
}

// The picker's deny toggles set the scope's deny patterns without the
// script, and a deny in the scope (stored or typed) ticks its toggle.
func TestPickerDenyToggles(t *testing.T) {
	e := newEnv(t)
	e.owners()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	body := b.get("/keys/new").body
	for _, p := range []string{"billing-api", "billing-api:query", "billing-api:query:getInvoice", "billing-api:mutation:createInvoice"} {
		box := denyToggle(t, body, p)
		if box == nil || hasAttr(box, "checked") {
			t.Errorf("new key form: no unticked deny toggle %s", p)
			continue
		}
		// Labelled: the toggle's label names the pattern.
		if l := box.Parent; l.Data != "label" || !strings.Contains(text(l), "deny") || !strings.Contains(text(l), p) {
			t.Errorf("deny toggle %s: label %q", p, text(l))
		}
	}

	f := keyForm()
	f.Set("scope", "")
	f["perm"] = []string{"billing-api"}
	f["deny"] = []string{"billing-api:mutation:createInvoice"}
	wantStatus(t, b.form("/keys", f), http.StatusOK)
	id, k := e.keyNamed("globex-billing")
	if k.Scope != "billing-api !billing-api:mutation:createInvoice" {
		t.Fatalf("stored scope %q", k.Scope)
	}
	page := b.get("/keys/" + id).body
	if box := denyToggle(t, page, "billing-api:mutation:createInvoice"); box == nil || !hasAttr(box, "checked") {
		t.Error("the key page does not tick the deny toggle of the key's deny pattern")
	}
	if box := checkbox(t, page, "billing-api:mutation:createInvoice"); box == nil || hasAttr(box, "checked") {
		t.Error("the key page ticks the allow box of a denied operation")
	}

	// Typed in the field, and the form refused for another field: the
	// page comes back with the typed deny's toggle ticked.
	r := b.form("/keys/"+id, url.Values{"name": {"globex-billing"}, "scope": {"billing-api !billing-api:query:getInvoice"},
		"ip_address": {"300.1.1.1"}, "active": {"on"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if box := denyToggle(t, r.body, "billing-api:query:getInvoice"); box == nil || !hasAttr(box, "checked") {
		t.Error("a typed !billing-api:query:getInvoice does not tick its deny toggle")
	}
	if box := denyToggle(t, r.body, "billing-api:mutation:createInvoice"); box == nil || hasAttr(box, "checked") {
		t.Error("the refused form ticks the stored deny instead of the typed scope's")
	}
}

// A session that may read keys but not change them sees the key's rate
// limit and quota, and none of the new edit controls.
func TestKeyLimitsReadOnlySession(t *testing.T) {
	e := newEnv(t)
	e.owners()
	_, k, _, err := e.svc.GenerateKey(t.Context(), e.caller(), account.KeyInput{Type: authz.KeyTypeService, AppID: "billing", TenantID: "globex",
		Name: "limited", Scope: "billing-api !billing-api:mutation:createInvoice",
		RateLimit: authz.RateLimit{RequestsPerUnit: 5, Unit: authz.RateUnitSecond}, Quota: authz.Quota{Requests: 1000, Period: authz.QuotaPeriodDay}})
	if err != nil {
		t.Fatal(err)
	}
	reader, _ := e.accountKey("reader", "account-api:query:*")
	b := e.browser(e.srv)
	b.signIn(reader)
	body := b.get("/keys/" + k.Spec.ID).body
	for _, name := range []string{"rate_limit_requests", "rate_limit_unit", "quota_requests", "quota_period", "deny", "perm", "scope"} {
		if n := find(t, body, func(n *html.Node) bool { return attr(n, "name") == name }); len(n) != 0 {
			t.Errorf("read-only session sees the %s control", name)
		}
	}
	for id, want := range map[string]string{"key-rate-limit": "5 requests per second", "key-quota": "1000 requests per calendar day (UTC)",
		"scope-text": "billing-api !billing-api:mutation:createInvoice"} {
		if n := find(t, body, byID(id)); len(n) != 1 || text(n[0]) != want {
			t.Errorf("read-only key page #%s: want %q", id, want)
		}
	}
	wantStatus(t, b.form("/keys/"+k.Spec.ID, url.Values{"name": {"limited"}, "rate_limit_unit": {"none"}, "quota_period": {"none"}}), http.StatusForbidden)
	if got, _ := e.svc.GetKey(t.Context(), e.caller(), k.Spec.ID); got.Spec.RateLimit.IsZero() || got.Spec.Quota.IsZero() {
		t.Error("the read-only session's post cleared the limits")
	}
}

// A create-key post with as many distinct picker values as Go's form
// parser reads (10,000), as an account holder may post by hand, is
// refused with the scope's error, and stores nothing.
func TestKeyFormFloodOfPickerValues(t *testing.T) {
	e := newEnv(t)
	e.owners()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	before, err := e.svc.CountKeys(t.Context(), e.caller(), account.KeyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	f := keyForm()
	for i := 0; len(f["perm"])+len(f) < 10_000-20; i++ { // the other fields' values and the CSRF token
		f.Add("perm", "billing-api:query:op"+strconv.Itoa(i))
	}
	r := b.form("/keys", f)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	var errs []string
	for _, n := range find(t, r.body, func(n *html.Node) bool { return attr(n, "class") == "field-error" }) {
		errs = append(errs, text(n))
	}
	if got := strings.Join(errs, "; "); !strings.Contains(got, "scope") {
		t.Errorf("field errors %q, want the scope's", got)
	}
	if after, err := e.svc.CountKeys(t.Context(), e.caller(), account.KeyFilter{}); err != nil || after != before {
		t.Errorf("keys after the refused post: %d (%v), want %d", after, err, before)
	}
}
