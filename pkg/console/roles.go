package console

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Roles (SPEC §11): named scopes keys hold, with an optional rate limit.
// The pages are the apps' shape: a list, a create form, a role's page
// with its settings and the keys holding it, and a delete confirmation
// that says how many keys hold it (force takes it from them).

// rolesView is the roles list.
type rolesView struct {
	Roles     []store.Role
	NextQuery template.URL
	CanCreate bool
}

func (h *Handler) rolesList(w http.ResponseWriter, r *http.Request, p *page) {
	rs, next, err := h.svc.ListServiceAccessRoles(r.Context(), p.session.caller, account.PageInput{Size: 100, Token: r.URL.Query().Get("after")})
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	v := &rolesView{Roles: rs, CanCreate: p.Can("createServiceAccessRole")}
	if next != "" {
		v.NextQuery = template.URL(url.Values{"after": {next}}.Encode())
	}
	p.Title, p.Nav, p.Data = "Roles", "roles", v
	h.render(w, r, http.StatusOK, "roles", p)
}

// roleForm is the create and edit form as entered. RateLimit is "N/unit"
// ("" for none).
type roleForm struct {
	ID, Name, Description, Scope, RateLimit string
}

func readRoleForm(r *http.Request) roleForm {
	pf := r.PostForm
	return roleForm{ID: strings.TrimSpace(pf.Get("id")), Name: strings.TrimSpace(pf.Get("name")),
		Description: pf.Get("description"), Scope: scopeField(pf), RateLimit: strings.TrimSpace(pf.Get("rate_limit"))}
}

func roleFormOf(ro store.Role) roleForm {
	return roleForm{ID: ro.ID, Name: ro.Name, Description: ro.Description, Scope: ro.Scope, RateLimit: ro.RateLimit.String()}
}

// rateLimit reads the rate limit field: "" is none. One that does not
// read is an error beside the field, and nothing is sent to the service.
func (f roleForm) rateLimit(p *page) authz.RateLimit {
	if f.RateLimit == "" {
		return authz.RateLimit{}
	}
	rl, err := authz.ParseRateLimit(f.RateLimit)
	if err != nil {
		if p.Errors == nil {
			p.Errors = map[string]string{}
		}
		p.Errors["rate_limit"] = "rate_limit: " + err.Error() + " (leave it empty for none)"
	}
	return rl
}

// roleFormView is the create form, and the settings part of a role's
// page.
type roleFormView struct {
	Form   roleForm
	Picker *picker
}

func (h *Handler) roleNew(w http.ResponseWriter, r *http.Request, p *page, status int, f roleForm) {
	p.Title, p.Nav, p.Data = "New role", "roles", &roleFormView{Form: f, Picker: h.picker(r.Context(), p, f.Scope)}
	h.render(w, r, status, "role_new", p)
}

func (h *Handler) roleNewForm(w http.ResponseWriter, r *http.Request, p *page) {
	h.roleNew(w, r, p, http.StatusOK, roleForm{})
}

func (h *Handler) roleCreate(w http.ResponseWriter, r *http.Request, p *page) {
	f := readRoleForm(r)
	rl := f.rateLimit(p)
	if len(p.Errors) == 0 {
		ro, err := h.svc.CreateServiceAccessRole(r.Context(), p.session.caller, account.RoleInput{
			ID: f.ID, Name: f.Name, Description: f.Description, Scope: f.Scope, RateLimit: rl})
		if err == nil {
			http.Redirect(w, r, "/roles/"+url.PathEscape(ro.ID), http.StatusSeeOther)
			return
		}
		if h.answered(w, r, p, err) {
			return
		}
	}
	h.roleNew(w, r, p, http.StatusUnprocessableEntity, f)
}

// roleView is a role's page: its settings (a form when the session may
// change it) and a page of the keys holding it.
type roleView struct {
	Role      store.Role
	Form      roleForm
	Picker    *picker
	Keys      []keyRow
	ShowKeys  bool
	NextQuery template.URL
	NotFirst  bool
}

func (h *Handler) roleView(ctx context.Context, p *page, ro store.Role, f roleForm, after string) (*roleView, error) {
	v := &roleView{Role: ro, Form: f}
	if p.Can("updateServiceAccessRole") {
		v.Picker = h.picker(ctx, p, f.Scope)
	}
	if p.Can("keys") {
		v.ShowKeys = true
		keys, next, err := h.svc.ListKeys(ctx, p.session.caller, account.KeyFilter{RoleID: ro.ID}, account.PageInput{Size: keysPageSize, Token: after})
		if err != nil {
			return nil, err
		}
		now := h.svc.Now()
		for _, k := range keys {
			v.Keys = append(v.Keys, newKeyRow(k, now))
		}
		if next != "" {
			v.NextQuery = template.URL(url.Values{"after": {next}}.Encode())
		}
		v.NotFirst = after != ""
	}
	return v, nil
}

func (h *Handler) renderRole(w http.ResponseWriter, r *http.Request, p *page, status int, ro store.Role, f roleForm) {
	v, err := h.roleView(r.Context(), p, ro, f, r.URL.Query().Get("after"))
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	p.Title, p.Nav, p.Data = "Role "+ro.Name, "roles", v
	h.render(w, r, status, "role", p)
}

func (h *Handler) rolePage(w http.ResponseWriter, r *http.Request, p *page) {
	ro, err := h.svc.GetServiceAccessRole(r.Context(), p.session.caller, r.PathValue("id"))
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	if r.URL.Query().Get("saved") != "" {
		p.Notice = "Saved."
	}
	h.renderRole(w, r, p, http.StatusOK, ro, roleFormOf(ro))
}

// roleUpdate saves the form: every field it shows is set.
func (h *Handler) roleUpdate(w http.ResponseWriter, r *http.Request, p *page) {
	id := r.PathValue("id")
	f := readRoleForm(r)
	f.ID = id
	rl := f.rateLimit(p)
	if len(p.Errors) == 0 {
		_, err := h.svc.UpdateServiceAccessRole(r.Context(), p.session.caller, id, account.RoleUpdate{
			Name: &f.Name, Description: &f.Description, Scope: &f.Scope, RateLimit: &rl})
		if err == nil {
			http.Redirect(w, r, "/roles/"+url.PathEscape(id)+"?saved=1", http.StatusSeeOther)
			return
		}
		if h.answered(w, r, p, err) {
			return
		}
	}
	ro, err := h.svc.GetServiceAccessRole(r.Context(), p.session.caller, id)
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	h.renderRole(w, r, p, http.StatusUnprocessableEntity, ro, f)
}

// roleDeleteView is the delete confirmation: how many keys hold the
// role (Known false when the session may not list keys). A delete
// refused for want of force says the number too: the service's message.
type roleDeleteView struct {
	Role  store.Role
	Keys  int
	Known bool
	Force bool
}

func (h *Handler) roleDeleteView(w http.ResponseWriter, r *http.Request, p *page, status int, force bool) {
	ctx := r.Context()
	ro, err := h.svc.GetServiceAccessRole(ctx, p.session.caller, r.PathValue("id"))
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	v := &roleDeleteView{Role: ro, Force: force}
	if p.Can("keys") {
		v.Known = true
		if v.Keys, err = h.svc.CountKeys(ctx, p.session.caller, account.KeyFilter{RoleID: ro.ID}); err != nil {
			h.serviceError(w, r, p, err)
			return
		}
	}
	p.Title, p.Nav, p.Data = "Delete role "+ro.Name, "roles", v
	h.render(w, r, status, "role_delete", p)
}

func (h *Handler) roleDeleteForm(w http.ResponseWriter, r *http.Request, p *page) {
	h.roleDeleteView(w, r, p, http.StatusOK, false)
}

// roleDelete deletes the role; while keys hold it only with force ticked
// (the service refuses it otherwise, and says how many keys hold it).
func (h *Handler) roleDelete(w http.ResponseWriter, r *http.Request, p *page) {
	force := r.PostFormValue("force") == "on"
	err := h.svc.DeleteServiceAccessRole(r.Context(), p.session.caller, r.PathValue("id"), force)
	if err == nil {
		http.Redirect(w, r, "/roles", http.StatusSeeOther)
		return
	}
	if h.answered(w, r, p, err) {
		return
	}
	h.roleDeleteView(w, r, p, http.StatusUnprocessableEntity, force)
}
