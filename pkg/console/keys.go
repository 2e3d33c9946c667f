// A key's page: its row, its settings and the changes made from it
// (update, activate, regenerate, delete, the scope check). The list,
// the form and the bulk actions are in keyslist.go, keyform.go and
// keybulk.go.

package console

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// keyRow is one key as the list and the key page show it.
type keyRow struct {
	store.Key
	Status string
	// The keys list's: whether a quota that binds the key is used up,
	// and its allowed requests of the last 7 days as a sparkline (nil
	// when the session may not read usage).
	QuotaUsedUp bool
	Spark       template.HTML
}

func newKeyRow(k store.Key, now time.Time) keyRow {
	st := "active"
	switch {
	case !k.Spec.Active:
		st = "inactive"
	case !k.Spec.NotBefore.IsZero() && now.Before(k.Spec.NotBefore):
		st = "not yet valid"
	case !k.Spec.ExpiresAt.IsZero() && !now.Before(k.Spec.ExpiresAt):
		st = "expired"
	}
	return keyRow{Key: k, Status: st}
}

// ownerOption is an app or tenant in a select.
type ownerOption struct{ ID, Name string }

// generateOp is the operation that creates a key of type t ("" for none).
func generateOp(t authz.KeyType) string {
	op, _ := account.GenerateOperation(t)
	return op
}

func (p *page) canCreateKey() bool {
	for _, t := range []authz.KeyType{authz.KeyTypeService, authz.KeyTypeApp, authz.KeyTypeAccount} {
		if p.Can(generateOp(t)) {
			return true
		}
	}
	return false
}

// options lists the first page of the account's apps or tenants for a
// select (up to 1000); nil when the session may not list them.
func (h *Handler) options(ctx context.Context, p *page, kind ownerKind) []ownerOption {
	if !p.Can(kind.ListOp) {
		return nil
	}
	list, _, err := kind.list(h.svc, ctx, p.session.caller, account.PageInput{Size: 1000})
	if err != nil {
		h.log.Warn("console: listing for a select", "what", kind.Plural, "err", err)
		return nil
	}
	out := make([]ownerOption, len(list))
	for i, a := range list {
		out[i] = ownerOption{a.ID, a.Name}
	}
	return out
}

// keyView is the key page: its facts and actions, and its tabs
// (Settings, Endpoints, Usage, Audit, Sync), Tab the open one.
type keyView struct {
	Row    keyRow
	Form   keyForm
	Picker *picker
	Grace  []graceOption
	Tabs   []keyTab
	Tab    string
	Panels *keyPanels
	// Range is the Usage tab's window, one of Ranges.
	Range  usageRange
	Ranges []usageRange
	// Quotas are the states of the quotas that bind the key (its
	// tenant's, then its own); QuotaErr the message when they could not
	// be read.
	Quotas   []account.QuotaStatus
	QuotaErr string
}

type graceOption struct{ Value, Label string }

// graceOptions are the regenerate dialog's grace periods (SPEC §2:
// default none).
var graceOptions = []graceOption{{"0s", "none"}, {"15m", "15 minutes"}, {"1h", "1 hour"}, {"24h", "24 hours"}}

// keyView builds the key page with the tab named open (Settings for
// one the session may not read) and the usage range rng.
func (h *Handler) keyView(ctx context.Context, p *page, k store.Key, f keyForm, tab string, rng usageRange) *keyView {
	v := &keyView{Row: newKeyRow(k, h.svc.Now()), Grace: graceOptions, Range: rng, Ranges: usageRanges}
	v.Tabs, v.Tab = tabsFor(p, tab)
	var err error
	if v.Quotas, err = h.svc.KeyQuotas(ctx, p.session.caller, k); err != nil {
		_, v.QuotaErr = statusOf(err)
	}
	if v.Tab == "settings" {
		f.padRows()
		h.roles(ctx, p, &f)
		v.Picker = h.picker(ctx, p, f.Scope)
	}
	v.Form = f
	v.Panels = h.keyPanels(ctx, p, k, v.Tab, rng)
	return v
}

func (h *Handler) keyPage(w http.ResponseWriter, r *http.Request, p *page) {
	k, err := h.svc.GetKey(r.Context(), p.session.caller, r.PathValue("id"))
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	if r.URL.Query().Get("saved") != "" {
		p.Notice = "Saved."
	}
	if r.URL.Query().Get("imported") != "" {
		p.Notice = "Key created with your own secret (not shown: keygate keeps only its hash)."
	}
	q := r.URL.Query()
	p.Title, p.Nav, p.Data = "Key "+k.Spec.Name, "keys", h.keyView(r.Context(), p, k, formOf(k), q.Get("tab"), rangeNamed(q.Get("range")))
	h.render(w, r, http.StatusOK, "key", p)
}

// keyUpdate saves the settings form: every field it shows is set.
func (h *Handler) keyUpdate(w http.ResponseWriter, r *http.Request, p *page) {
	id := r.PathValue("id")
	f := readKeyForm(r)
	p.Errors = map[string]string{}
	notBefore, expiresAt := f.times(p.Errors)
	zero := time.Time{}
	if notBefore == nil {
		notBefore = &zero // cleared
	}
	if expiresAt == nil {
		expiresAt = &zero
	}
	ips, hs := f.ipFilters(), f.headers()
	u := account.KeyUpdate{Name: &f.Name, Description: &f.Description, Scope: &f.Scope, Active: &f.Active,
		Group: &f.Group, NotBefore: notBefore, ExpiresAt: expiresAt, IPFilters: &ips, ResponseHeaders: &hs}
	// The rate limit and quota the form posts are set ("none" clears
	// them); a post without their fields leaves them as they are.
	rl, quota := f.limits(p.Errors)
	if _, ok := r.PostForm["rate_limit_unit"]; ok {
		u.RateLimit = &rl
	}
	if _, ok := r.PostForm["quota_period"]; ok {
		u.Quota = &quota
	}
	if r.PostFormValue("roles_shown") != "" {
		// The form listed the account's roles: what is ticked is what the
		// key holds. Otherwise its roles stay as they are.
		roles := f.RoleIDs
		if roles == nil {
			roles = []string{}
		}
		u.RoleIDs = &roles
	}
	if len(p.Errors) == 0 {
		_, _, err := h.svc.UpdateKey(r.Context(), p.session.caller, id, u)
		if err == nil {
			http.Redirect(w, r, "/keys/"+url.PathEscape(id)+"?saved=1", http.StatusSeeOther)
			return
		}
		if h.answered(w, r, p, err) {
			return
		}
	} else {
		p.Error = "Some fields need fixing: see below."
	}
	k, err := h.svc.GetKey(r.Context(), p.session.caller, id)
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	f.Type, f.AppID, f.TenantID = k.Spec.Type.String(), k.Spec.AppID, k.Spec.TenantID
	p.Title, p.Nav, p.Data = "Key "+k.Spec.Name, "keys", h.keyView(r.Context(), p, k, f, "settings", usageRanges[0])
	h.render(w, r, http.StatusUnprocessableEntity, "key", p)
}

// keyActive activates or deactivates a key.
func (h *Handler) keyActive(w http.ResponseWriter, r *http.Request, p *page) {
	id := r.PathValue("id")
	active := r.PostFormValue("active") == "true"
	if _, _, err := h.svc.UpdateKey(r.Context(), p.session.caller, id, account.KeyUpdate{Active: &active}); err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/keys/"+url.PathEscape(id)+"?saved=1", http.StatusSeeOther)
}

// keyRegenerate gives the key a new secret, the old one valid for the
// chosen grace period, and shows the new one once.
func (h *Handler) keyRegenerate(w http.ResponseWriter, r *http.Request, p *page) {
	id := r.PathValue("id")
	g := r.PostFormValue("grace")
	if custom := strings.TrimSpace(r.PostFormValue("grace_custom")); custom != "" {
		g = custom // a chosen time wins over the list
	}
	grace, err := time.ParseDuration(g)
	if err != nil {
		h.fail(w, r, http.StatusUnprocessableEntity, "grace_period: "+g+" is not a duration (0s, 15m, 1h, 24h, 90m, 72h)")
		return
	}
	secret, k, err := h.svc.RegenerateKey(r.Context(), p.session.caller, id, grace)
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	v := secretView{Key: k, Secret: secret.Reveal(), Action: "regenerated"}
	if !k.Spec.PreviousValidUntil.IsZero() {
		v.Grace = when(k.Spec.PreviousValidUntil)
	}
	h.showSecret(w, r, p, v)
}

func (h *Handler) keyDelete(w http.ResponseWriter, r *http.Request, p *page) {
	if _, err := h.svc.DeleteKey(r.Context(), p.session.caller, r.PathValue("id")); err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/keys", http.StatusSeeOther)
}

// scopeCheck answers the scope field's live validation (htmx): the
// grammar's verdict on the text as typed, as a fragment.
func (h *Handler) scopeCheck(w http.ResponseWriter, r *http.Request, p *page) {
	f := readKeyForm(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	msg, class := "An empty scope allows every operation of the services that accept the key's type.", "hint"
	if f.Scope != "" {
		if _, err := scope.Parse(f.Scope); err != nil {
			msg, class = "scope: "+err.Error(), "field-error"
			w.WriteHeader(http.StatusOK) // htmx swaps 2xx only
		} else {
			msg = "Valid scope."
		}
	}
	_ = h.pages.fragment(w, "scope-msg", struct{ Msg, Class string }{msg, class})
}
