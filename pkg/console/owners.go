package console

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// ownerKind is apps or tenants: the same pages over the service's app or
// tenant methods (tenants converted to the shared record shape).
type ownerKind struct {
	Name, Plural, Path      string
	ListOp, CreateOp, GetOp string
	UpdateOp, DeleteOp      string
	list                    func(*account.Service, context.Context, account.Caller, account.PageInput) ([]store.App, string, error)
	create                  func(*account.Service, context.Context, account.Caller, account.OwnerInput) (store.App, error)
	get                     func(*account.Service, context.Context, account.Caller, string) (store.App, error)
	update                  func(*account.Service, context.Context, account.Caller, string, account.OwnerUpdate) (store.App, error)
	remove                  func(*account.Service, context.Context, account.Caller, account.DeleteInput) (store.App, error)
	filter                  func(id string) account.KeyFilter
}

var appKind = ownerKind{
	Name: "app", Plural: "apps", Path: "/apps",
	ListOp: "apps", CreateOp: "createApp", GetOp: "app", UpdateOp: "updateApp", DeleteOp: "deleteApp",
	list:   (*account.Service).ListApps,
	create: (*account.Service).CreateApp,
	get:    (*account.Service).GetApp,
	update: (*account.Service).UpdateApp,
	remove: (*account.Service).DeleteApp,
	filter: func(id string) account.KeyFilter { return account.KeyFilter{AppID: id} },
}

var tenantKind = ownerKind{
	Name: "tenant", Plural: "tenants", Path: "/tenants",
	ListOp: "tenants", CreateOp: "createTenant", GetOp: "tenant", UpdateOp: "updateTenant", DeleteOp: "deleteTenant",
	list: func(s *account.Service, ctx context.Context, c account.Caller, p account.PageInput) ([]store.App, string, error) {
		ts, next, err := s.ListTenants(ctx, c, p)
		out := make([]store.App, len(ts))
		for i, t := range ts {
			out[i] = store.App(t)
		}
		return out, next, err
	},
	create: func(s *account.Service, ctx context.Context, c account.Caller, in account.OwnerInput) (store.App, error) {
		t, err := s.CreateTenant(ctx, c, in)
		return store.App(t), err
	},
	get: func(s *account.Service, ctx context.Context, c account.Caller, id string) (store.App, error) {
		t, err := s.GetTenant(ctx, c, id)
		return store.App(t), err
	},
	update: func(s *account.Service, ctx context.Context, c account.Caller, id string, u account.OwnerUpdate) (store.App, error) {
		t, err := s.UpdateTenant(ctx, c, id, u)
		return store.App(t), err
	},
	remove: func(s *account.Service, ctx context.Context, c account.Caller, in account.DeleteInput) (store.App, error) {
		t, err := s.DeleteTenant(ctx, c, in)
		return store.App(t), err
	},
	filter: func(id string) account.KeyFilter { return account.KeyFilter{TenantID: id} },
}

// ownerPages are the pages of one kind.
type ownerPages struct {
	h    *Handler
	kind ownerKind
}

func (h *Handler) owners(kind ownerKind) ownerPages { return ownerPages{h, kind} }

// ownersView is a list page.
type ownersView struct {
	Kind      ownerKind
	Items     []store.App
	NextQuery template.URL
	CanCreate bool
	// Search is the text searched for; More says that more than
	// maxOwnerMatches apps or tenants matched (the first are shown).
	Search string
	More   bool
}

// Searching apps and tenants: the account service lists them in pages
// (an account holds at most --max-apps-per-account, 10,000 by default),
// so a search reads pages of ownerSearchPage until it has
// maxOwnerMatches matches or has read ownerSearchPages pages, each counted
// as a list call against the key's read rate.
const (
	maxOwnerMatches  = 100
	ownerSearchPage  = 1000
	ownerSearchPages = 20
)

func (o ownerPages) list(w http.ResponseWriter, r *http.Request, p *page) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q != "" {
		o.search(w, r, p, q)
		return
	}
	items, next, err := o.kind.list(o.h.svc, r.Context(), p.session.caller, account.PageInput{Size: 100, Token: r.URL.Query().Get("after")})
	if err != nil {
		o.h.serviceError(w, r, p, err)
		return
	}
	v := &ownersView{Kind: o.kind, Items: items, CanCreate: p.Can(o.kind.CreateOp)}
	if next != "" {
		v.NextQuery = template.URL(url.Values{"after": {next}}.Encode())
	}
	p.Title, p.Nav, p.Data = strings.ToUpper(o.kind.Plural[:1])+o.kind.Plural[1:], o.kind.Plural, v
	o.h.render(w, r, http.StatusOK, "owners", p)
}

// search lists the apps or tenants whose name or id contains q, letters
// compared without case.
func (o ownerPages) search(w http.ResponseWriter, r *http.Request, p *page, q string) {
	v := &ownersView{Kind: o.kind, CanCreate: p.Can(o.kind.CreateOp), Search: q}
	want := strings.ToLower(q)
	token := ""
	listOp, _ := account.OperationNamed(o.kind.ListOp)
	for i := range ownerSearchPages {
		if i > 0 {
			// Each page is a list call: counted against the key's read
			// rate as the API's would be (the route counted the first).
			if err := o.h.svc.AuthorizeCall(p.session.caller, listOp); err != nil {
				o.h.serviceError(w, r, p, err)
				return
			}
		}
		items, next, err := o.kind.list(o.h.svc, r.Context(), p.session.caller, account.PageInput{Size: ownerSearchPage, Token: token})
		if err != nil {
			o.h.serviceError(w, r, p, err)
			return
		}
		for _, it := range items {
			if strings.Contains(strings.ToLower(it.Name), want) || strings.Contains(strings.ToLower(it.ID), want) {
				if len(v.Items) == maxOwnerMatches {
					v.More = true
					break
				}
				v.Items = append(v.Items, it)
			}
		}
		if next == "" || v.More {
			break
		}
		token = next
	}
	p.Title, p.Nav, p.Data = strings.ToUpper(o.kind.Plural[:1])+o.kind.Plural[1:], o.kind.Plural, v
	o.h.render(w, r, http.StatusOK, "owners", p)
}

// ownerForm is the create and edit form. Quota is a tenant's monthly
// request quota as typed ("" for none).
type ownerForm struct {
	ID, Name, Description string
	Active                bool
	Quota                 string
}

// quota reads a tenant's monthly quota field: "" is none (0). A value
// that is not a whole number is an error beside the field, and nothing is
// sent to the service.
func (f ownerForm) quota(p *page) int64 {
	s := strings.ReplaceAll(strings.TrimSpace(f.Quota), ",", "")
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		if p.Errors == nil {
			p.Errors = map[string]string{}
		}
		p.Errors["quota"] = "quota: " + strconv.Quote(f.Quota) + " is not a positive whole number of requests a month (leave it empty for none)"
		return 0
	}
	return n
}

// quotaText is a tenant's stored quota as the form shows it.
func quotaText(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

type ownerFormView struct {
	Kind ownerKind
	Form ownerForm
}

func (o ownerPages) newForm(w http.ResponseWriter, r *http.Request, p *page) {
	p.Title, p.Nav, p.Data = "New "+o.kind.Name, o.kind.Plural, &ownerFormView{Kind: o.kind, Form: ownerForm{Active: true}}
	o.h.render(w, r, http.StatusOK, "owner_new", p)
}

func (o ownerPages) create(w http.ResponseWriter, r *http.Request, p *page) {
	f := ownerForm{ID: strings.TrimSpace(r.PostFormValue("id")), Name: strings.TrimSpace(r.PostFormValue("name")),
		Description: r.PostFormValue("description"), Quota: r.PostFormValue("quota")}
	in := account.OwnerInput{ID: f.ID, Name: f.Name, Description: f.Description}
	if o.kind.Name == "tenant" {
		in.Quota = authz.Monthly(f.quota(p))
	}
	if len(p.Errors) > 0 {
		p.Title, p.Nav, p.Data = "New "+o.kind.Name, o.kind.Plural, &ownerFormView{Kind: o.kind, Form: f}
		o.h.render(w, r, http.StatusUnprocessableEntity, "owner_new", p)
		return
	}
	a, err := o.kind.create(o.h.svc, r.Context(), p.session.caller, in)
	if err == nil {
		http.Redirect(w, r, o.kind.Path+"/"+url.PathEscape(a.ID), http.StatusSeeOther)
		return
	}
	if o.h.answered(w, r, p, err) {
		return
	}
	p.Title, p.Nav, p.Data = "New "+o.kind.Name, o.kind.Plural, &ownerFormView{Kind: o.kind, Form: f}
	o.h.render(w, r, http.StatusUnprocessableEntity, "owner_new", p)
}

// ownerView is an app's or tenant's page: its settings, its keys and,
// for a tenant, its service access denials (SBS's tenant page).
type ownerView struct {
	Kind       ownerKind
	Item       store.App
	Form       ownerForm
	Keys       []keyRow
	MoreKeys   template.URL
	Denials    []store.Denial
	Apps       []ownerOption
	DenialForm denialForm
	CanDenials bool
	// Quota is a tenant's quota state (SBS's tenant page): nil without
	// one; QuotaErr the message when it could not be read.
	Quota    *account.QuotaStatus
	QuotaErr string
	// Usage is the app's or tenant's requests of the last 7 days by
	// outcome and day, shown when the session may run usage (ShowUsage);
	// UsageErr the message when it could not be read. Either error is
	// shown in its place and the rest of the page stands.
	ShowUsage bool
	Usage     *usageChart
	UsageErr  string
}

type denialForm struct{ AppID, Scope, Reason string }

// ownerKeys is the first page of an owner's keys on its page.
const ownerKeys = 50

func (o ownerPages) view(ctx context.Context, p *page, a store.App, f ownerForm, df denialForm) (*ownerView, error) {
	v := &ownerView{Kind: o.kind, Item: a, Form: f, DenialForm: df}
	if o.kind.Name == "tenant" {
		q, err := o.h.svc.TenantQuota(ctx, p.session.caller, store.Tenant(a))
		if err != nil {
			_, v.QuotaErr = statusOf(err)
		}
		v.Quota = q
	}
	if p.Can("usage") {
		field := store.UsageApp
		if o.kind.Name == "tenant" {
			field = store.UsageTenant
		}
		v.ShowUsage = true
		v.Usage, v.UsageErr = o.h.usageChart(ctx, p.session.caller, map[store.UsageField]string{field: a.ID}, weekRange)
	}
	if p.Can("keys") {
		keys, next, err := o.h.svc.ListKeys(ctx, p.session.caller, o.kind.filter(a.ID), account.PageInput{Size: ownerKeys})
		if err != nil {
			return nil, err
		}
		now := o.h.svc.Now()
		for _, k := range keys {
			v.Keys = append(v.Keys, newKeyRow(k, now))
		}
		if next != "" {
			v.MoreKeys = template.URL(url.Values{o.kind.Name: {a.ID}}.Encode())
		}
	}
	if o.kind.Name == "tenant" && p.Can("serviceAccessDenials") {
		v.CanDenials = true
		ds, _, err := o.h.svc.ListServiceAccessDenials(ctx, p.session.caller, account.DenialFilter{TenantID: a.ID}, account.PageInput{Size: 100})
		if err != nil {
			return nil, err
		}
		v.Denials = ds
		v.Apps = o.h.options(ctx, p, appKind)
	}
	return v, nil
}

func (o ownerPages) show(w http.ResponseWriter, r *http.Request, p *page) {
	a, err := o.kind.get(o.h.svc, r.Context(), p.session.caller, r.PathValue("id"))
	if err != nil {
		o.h.serviceError(w, r, p, err)
		return
	}
	if r.URL.Query().Get("saved") != "" {
		p.Notice = "Saved."
	}
	o.render(w, r, p, http.StatusOK, a, ownerForm{ID: a.ID, Name: a.Name, Description: a.Description, Active: a.Active, Quota: quotaText(a.Quota)}, denialForm{})
}

func (o ownerPages) render(w http.ResponseWriter, r *http.Request, p *page, status int, a store.App, f ownerForm, df denialForm) {
	v, err := o.view(r.Context(), p, a, f, df)
	if err != nil {
		o.h.serviceError(w, r, p, err)
		return
	}
	p.Title, p.Nav, p.Data = strings.ToUpper(o.kind.Name[:1])+o.kind.Name[1:]+" "+a.Name, o.kind.Plural, v
	o.h.render(w, r, status, "owner", p)
}

func (o ownerPages) update(w http.ResponseWriter, r *http.Request, p *page) {
	id := r.PathValue("id")
	f := ownerForm{ID: id, Name: strings.TrimSpace(r.PostFormValue("name")), Description: r.PostFormValue("description"),
		Active: r.PostFormValue("active") == "on", Quota: r.PostFormValue("quota")}
	u := account.OwnerUpdate{Name: &f.Name, Description: &f.Description, Active: &f.Active}
	if o.kind.Name == "tenant" {
		q := authz.Monthly(f.quota(p))
		u.Quota = &q
	}
	var err error
	if len(p.Errors) == 0 {
		_, err = o.kind.update(o.h.svc, r.Context(), p.session.caller, id, u)
	}
	if err == nil && len(p.Errors) == 0 {
		http.Redirect(w, r, o.kind.Path+"/"+url.PathEscape(id)+"?saved=1", http.StatusSeeOther)
		return
	}
	if err != nil && o.h.answered(w, r, p, err) {
		return
	}
	a, gerr := o.kind.get(o.h.svc, r.Context(), p.session.caller, id)
	if gerr != nil {
		o.h.serviceError(w, r, p, gerr)
		return
	}
	o.render(w, r, p, http.StatusUnprocessableEntity, a, f, denialForm{})
}

// deleteView is the delete confirmation: how many keys go with it
// (Known false when the session may not list keys), and the name to type.
type deleteView struct {
	Kind  ownerKind
	Item  store.App
	Keys  int
	Known bool
	Typed string
}

func (o ownerPages) deleteView(w http.ResponseWriter, r *http.Request, p *page, status int, typed string) {
	ctx := r.Context()
	a, err := o.kind.get(o.h.svc, ctx, p.session.caller, r.PathValue("id"))
	if err != nil {
		o.h.serviceError(w, r, p, err)
		return
	}
	v := &deleteView{Kind: o.kind, Item: a, Typed: typed}
	if p.Can("keys") {
		// One count, authorised as listing the keys.
		if v.Keys, err = o.h.svc.CountKeys(ctx, p.session.caller, o.kind.filter(a.ID)); err != nil {
			o.h.serviceError(w, r, p, err)
			return
		}
		v.Known = true
	}
	p.Title, p.Nav, p.Data = "Delete "+o.kind.Name+" "+a.Name, o.kind.Plural, v
	o.h.render(w, r, status, "owner_delete", p)
}

func (o ownerPages) deleteForm(w http.ResponseWriter, r *http.Request, p *page) {
	o.deleteView(w, r, p, http.StatusOK, "")
}

// delete deletes the app or tenant with its keys, once the name typed
// matches: the confirmation is the console's, the delete the service's.
func (o ownerPages) delete(w http.ResponseWriter, r *http.Request, p *page) {
	id := r.PathValue("id")
	typed := strings.TrimSpace(r.PostFormValue("confirm"))
	a, err := o.kind.get(o.h.svc, r.Context(), p.session.caller, id)
	if err != nil {
		o.h.serviceError(w, r, p, err)
		return
	}
	if typed != a.Name {
		p.Errors = map[string]string{"confirm": "Type the " + o.kind.Name + "'s name, " + a.Name + ", to delete it."}
		o.deleteView(w, r, p, http.StatusUnprocessableEntity, typed)
		return
	}
	if _, err := o.kind.remove(o.h.svc, r.Context(), p.session.caller, account.DeleteInput{ID: id, Cascade: true}); err != nil {
		o.h.serviceError(w, r, p, err)
		return
	}
	http.Redirect(w, r, o.kind.Path, http.StatusSeeOther)
}

// denialCreate adds a service access denial to a tenant's page.
func (h *Handler) denialCreate(w http.ResponseWriter, r *http.Request, p *page) {
	o := h.owners(tenantKind)
	id := r.PathValue("id")
	df := denialForm{AppID: r.PostFormValue("app_id"), Scope: strings.TrimSpace(r.PostFormValue("scope")), Reason: r.PostFormValue("reason")}
	_, err := h.svc.CreateServiceAccessDenial(r.Context(), p.session.caller, account.DenialInput{TenantID: id, AppID: df.AppID, Scope: df.Scope, Reason: df.Reason})
	if err == nil {
		http.Redirect(w, r, "/tenants/"+url.PathEscape(id)+"?saved=1", http.StatusSeeOther)
		return
	}
	if h.answered(w, r, p, err) {
		return
	}
	a, gerr := tenantKind.get(h.svc, r.Context(), p.session.caller, id)
	if gerr != nil {
		h.serviceError(w, r, p, gerr)
		return
	}
	o.render(w, r, p, http.StatusUnprocessableEntity, a, ownerForm{ID: a.ID, Name: a.Name, Description: a.Description, Active: a.Active}, df)
}
