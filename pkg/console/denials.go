package console

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/store"
)

// Service access denials (SPEC §11) across the account: a list filtered
// by tenant and app, and a denial's page to change its scope or reason or
// lift it. A denial is created on its tenant's page (denialCreate).

// denialsPageSize is the denials list's page.
const denialsPageSize = 100

// denialsView is the denials list with its filters.
type denialsView struct {
	Denials               []store.Denial
	Tenant, App           string
	Tenants, Apps         []ownerOption
	Names                 map[string]string // app and tenant names by "app:"/"tenant:" id
	NextQuery, FirstQuery template.URL
	NotFirst, Filtered    bool
	CanCreate             bool
}

// denialFilterParams are the denials list's filter parameters.
var denialFilterParams = []string{"tenant", "app"}

func (h *Handler) denialsList(w http.ResponseWriter, r *http.Request, p *page) {
	ctx := r.Context()
	q := r.URL.Query()
	v := &denialsView{Tenant: q.Get("tenant"), App: q.Get("app"), Names: map[string]string{}}
	v.Filtered = v.Tenant != "" || v.App != ""
	v.Tenants, v.Apps = h.options(ctx, p, tenantKind), h.options(ctx, p, appKind)
	for _, o := range v.Tenants {
		v.Names["tenant:"+o.ID] = o.Name
	}
	for _, o := range v.Apps {
		v.Names["app:"+o.ID] = o.Name
	}
	v.CanCreate = p.Can("createServiceAccessDenial") && v.Tenants != nil
	p.Title, p.Nav, p.Data = "Service access denials", "denials", v
	ds, next, err := h.svc.ListServiceAccessDenials(ctx, p.session.caller, account.DenialFilter{TenantID: v.Tenant, AppID: v.App},
		account.PageInput{Size: denialsPageSize, Token: q.Get("after")})
	if err != nil {
		if p.formError(err) {
			h.render(w, r, http.StatusUnprocessableEntity, "denials", p)
			return
		}
		h.serviceError(w, r, p, err)
		return
	}
	v.Denials = ds
	v.FirstQuery, v.NextQuery = pageQueries(q, denialFilterParams, next)
	v.NotFirst = q.Get("after") != ""
	h.render(w, r, http.StatusOK, "denials", p)
}

// denialNew sends the list's "add a denial" to the tenant's page, whose
// form creates it.
func (h *Handler) denialNew(w http.ResponseWriter, r *http.Request, p *page) {
	t := r.URL.Query().Get("tenant")
	if t == "" {
		h.fail(w, r, http.StatusUnprocessableEntity, "tenant: pick the tenant to deny an operation")
		return
	}
	http.Redirect(w, r, "/tenants/"+url.PathEscape(t)+"#denial-app", http.StatusSeeOther)
}

// denialView is a denial's page.
type denialView struct {
	Denial              store.Denial
	Form                denialForm
	TenantName, AppName string
}

func (h *Handler) renderDenial(w http.ResponseWriter, r *http.Request, p *page, status int, d store.Denial, f denialForm) {
	v := &denialView{Denial: d, Form: f, TenantName: d.TenantID, AppName: d.AppID}
	ctx := r.Context()
	if p.Can("tenant") {
		if t, err := h.svc.GetTenant(ctx, p.session.caller, d.TenantID); err == nil {
			v.TenantName = t.Name
		}
	}
	if p.Can("app") {
		if a, err := h.svc.GetApp(ctx, p.session.caller, d.AppID); err == nil {
			v.AppName = a.Name
		}
	}
	p.Title, p.Nav, p.Data = "Denial of "+v.TenantName+" on "+v.AppName, "denials", v
	h.render(w, r, status, "denial", p)
}

func (h *Handler) denialPage(w http.ResponseWriter, r *http.Request, p *page) {
	d, err := h.svc.GetServiceAccessDenial(r.Context(), p.session.caller, r.PathValue("id"))
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	if r.URL.Query().Get("saved") != "" {
		p.Notice = "Saved."
	}
	h.renderDenial(w, r, p, http.StatusOK, d, denialForm{AppID: d.AppID, Scope: d.Scope, Reason: d.Reason})
}

// denialUpdate changes a denial's scope and reason.
func (h *Handler) denialUpdate(w http.ResponseWriter, r *http.Request, p *page) {
	id := r.PathValue("id")
	f := denialForm{Scope: strings.TrimSpace(r.PostFormValue("scope")), Reason: r.PostFormValue("reason")}
	_, err := h.svc.UpdateServiceAccessDenial(r.Context(), p.session.caller, id, account.DenialUpdate{Scope: &f.Scope, Reason: &f.Reason})
	if err == nil {
		http.Redirect(w, r, "/denials/"+url.PathEscape(id)+"?saved=1", http.StatusSeeOther)
		return
	}
	if h.answered(w, r, p, err) {
		return
	}
	d, gerr := h.svc.GetServiceAccessDenial(r.Context(), p.session.caller, id)
	if gerr != nil {
		h.serviceError(w, r, p, gerr)
		return
	}
	f.AppID = d.AppID
	h.renderDenial(w, r, p, http.StatusUnprocessableEntity, d, f)
}

// denialDelete lifts a denial: the tenant's keys reach what their scopes
// allow again.
func (h *Handler) denialDelete(w http.ResponseWriter, r *http.Request, p *page) {
	if err := h.svc.DeleteServiceAccessDenial(r.Context(), p.session.caller, r.PathValue("id")); err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/denials", http.StatusSeeOther)
}
