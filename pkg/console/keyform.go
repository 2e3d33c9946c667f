// The key form: reading and checking the fields of a new or changed key
// (scope, IP filters, headers, times, roles, rate limit and quota), the
// new-key page, and the
// create step that shows the secret once.

package console

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// keyForm is the create and settings form of a key, as entered: kept
// as text so that a refused form comes back as the user typed it.
type keyForm struct {
	Type, AppID, TenantID    string
	Name, Description, Scope string
	Group                    string
	Active                   bool
	ExpiresAt, NotBefore     string
	IPs                      []ipRow
	Headers                  []headerRow
	// RoleIDs are the roles the key holds; Roles the account's, to pick
	// from (nil when the session may not list them: then the key's roles
	// are kept as they are).
	RoleIDs []string
	Roles   []roleOption
	// The key's own rate limit and quota (keylimits.go).
	limitsForm
	// OwnSecret: the create form's "use my own secret" (importKey); the
	// secret itself is never kept in the form, so never shown again.
	OwnSecret bool
}

// roleOption is a role in the form's list.
type roleOption struct {
	ID, Name, Scope string
	Held            bool
}

type ipRow struct{ Address, Netmask string }

type headerRow struct {
	Name, Value string
	Off         bool
}

// blankRows are the empty rows a form offers for new IP filters and
// headers (no script needed to add one).
const blankRows = 2

func (f *keyForm) padRows() {
	for range blankRows {
		f.IPs = append(f.IPs, ipRow{})
		f.Headers = append(f.Headers, headerRow{})
	}
}

// formOf is a stored key as its settings form.
func formOf(k store.Key) keyForm {
	f := keyForm{
		Type: k.Spec.Type.String(), AppID: k.Spec.AppID, TenantID: k.Spec.TenantID,
		Name: k.Spec.Name, Description: k.Spec.Description, Scope: k.Spec.Scope, Active: k.Spec.Active,
		Group: k.Spec.Group, RoleIDs: k.RoleIDs,
		ExpiresAt:  localTime(k.Spec.ExpiresAt),
		NotBefore:  localTime(k.Spec.NotBefore),
		limitsForm: limitsOf(k.Spec.RateLimit, k.Spec.Quota),
	}
	for _, s := range k.Spec.IPFilters {
		addr, mask, _ := strings.Cut(s, "/")
		f.IPs = append(f.IPs, ipRow{addr, mask})
	}
	for _, h := range k.Spec.ResponseHeaders {
		f.Headers = append(f.Headers, headerRow{h.Name, h.Value, h.Disabled})
	}
	return f
}

// readKeyForm reads the form. The scope is the text field's patterns
// with the permission picker's ticked ones added (the script keeps the
// two in step; without it, ticking a box adds its pattern).
func readKeyForm(r *http.Request) keyForm {
	pf := r.PostForm
	f := keyForm{
		Type: pf.Get("type"), AppID: pf.Get("app_id"), TenantID: pf.Get("tenant_id"),
		Name: strings.TrimSpace(pf.Get("name")), Description: pf.Get("description"),
		Group: strings.TrimSpace(pf.Get("group")), RoleIDs: pf["role"],
		Active:    pf.Get("active") == "on",
		ExpiresAt: strings.TrimSpace(pf.Get("expires_at")), NotBefore: strings.TrimSpace(pf.Get("not_before")),
		OwnSecret:  pf.Get("own_secret") == "on",
		limitsForm: readLimits(pf),
	}
	f.Scope = scopeField(pf)
	addrs, masks := pf["ip_address"], pf["ip_netmask"]
	for i, a := range addrs {
		row := ipRow{Address: strings.TrimSpace(a)}
		if i < len(masks) {
			row.Netmask = strings.TrimSpace(masks[i])
		}
		if row.Address != "" || row.Netmask != "" {
			f.IPs = append(f.IPs, row)
		}
	}
	names, values := pf["header_name"], pf["header_value"]
	off := map[string]bool{}
	for _, i := range pf["header_off"] {
		off[i] = true
	}
	for i, n := range names {
		row := headerRow{Name: strings.TrimSpace(n), Off: off[strconv.Itoa(i)]}
		if i < len(values) {
			row.Value = values[i]
		}
		if row.Name != "" || row.Value != "" {
			f.Headers = append(f.Headers, row)
		}
	}
	return f
}

// ipFilters are the rows as the service takes them: "address/netmask",
// a CIDR or a bare address.
func (f *keyForm) ipFilters() []string {
	out := []string{}
	for _, row := range f.IPs {
		s := row.Address
		if row.Netmask != "" {
			s += "/" + row.Netmask
		}
		out = append(out, s)
	}
	return out
}

func (f *keyForm) headers() []authz.HeaderSpec {
	out := []authz.HeaderSpec{}
	for _, row := range f.Headers {
		out = append(out, authz.HeaderSpec{Name: row.Name, Value: row.Value, Disabled: row.Off})
	}
	return out
}

// times parses the date fields (datetime-local, UTC): nil for an empty
// field. Field errors are the console's, in the service's field names.
func (f *keyForm) times(errs map[string]string) (notBefore, expiresAt *time.Time) {
	parse := func(field, s string) *time.Time {
		if s == "" {
			return nil
		}
		for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
			if t, err := time.Parse(layout, s); err == nil {
				t = t.UTC()
				return &t
			}
		}
		errs[field] = field + ": " + s + " is not a date and time (YYYY-MM-DDTHH:MM, UTC)"
		return nil
	}
	return parse("not_before", f.NotBefore), parse("expires_at", f.ExpiresAt)
}

// roles fills the form's role list from the account's roles (the first
// 1000), ticking those it holds; it reports whether the session may list
// them.
func (h *Handler) roles(ctx context.Context, p *page, f *keyForm) bool {
	if !p.Can("serviceAccessRoles") {
		return false
	}
	rs, _, err := h.svc.ListServiceAccessRoles(ctx, p.session.caller, account.PageInput{Size: 1000})
	if err != nil {
		h.log.Warn("console: listing roles", "err", err)
		return false
	}
	held := make(map[string]bool, len(f.RoleIDs)) // the form's, as posted: up to 10,000
	for _, id := range f.RoleIDs {
		held[id] = true
	}
	f.Roles = nil
	for _, r := range rs {
		f.Roles = append(f.Roles, roleOption{ID: r.ID, Name: r.Name, Scope: r.Scope, Held: held[r.ID]})
	}
	return true
}

// keyNewView is the create dialog.
type keyNewView struct {
	Form          keyForm
	Types         []string
	Apps, Tenants []ownerOption
	Picker        *picker
	// CanImport: the form offers "use my own secret".
	CanImport bool
}

func (h *Handler) keyNewView(ctx context.Context, p *page, f keyForm) *keyNewView {
	v := &keyNewView{Form: f}
	for _, t := range []authz.KeyType{authz.KeyTypeService, authz.KeyTypeApp, authz.KeyTypeAccount} {
		if p.Can(generateOp(t)) {
			v.Types = append(v.Types, t.String())
		}
	}
	v.Apps, v.Tenants = h.options(ctx, p, appKind), h.options(ctx, p, tenantKind)
	v.Picker = h.picker(ctx, p, f.Scope)
	h.roles(ctx, p, &v.Form)
	v.CanImport = p.Can("importKey")
	return v
}

func (h *Handler) keyNewForm(w http.ResponseWriter, r *http.Request, p *page) {
	if err := h.svc.ReadOnly(); err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	if !p.canCreateKey() {
		h.fail(w, r, http.StatusForbidden, "scope_denied: the key's scope allows no generate…AccessKey operation")
		return
	}
	f := keyForm{Type: r.URL.Query().Get("type"), AppID: r.URL.Query().Get("app"), TenantID: r.URL.Query().Get("tenant"), Active: true,
		limitsForm: limitsOf(authz.RateLimit{}, authz.Quota{})}
	if f.Type == "" {
		f.Type = "service"
	}
	f.padRows()
	p.Title, p.Nav, p.Data = "New key", "keys", h.keyNewView(r.Context(), p, f)
	h.render(w, r, http.StatusOK, "key_new", p)
}

// secretView is the one page that shows a secret.
type secretView struct {
	Key    store.Key
	Secret string
	Action string
	Grace  string
}

func (h *Handler) showSecret(w http.ResponseWriter, r *http.Request, p *page, v secretView) {
	p.Title, p.Nav, p.Data, p.noStore = "Copy the secret", "keys", v, true
	h.render(w, r, http.StatusOK, "secret", p)
}

func (h *Handler) keyCreate(w http.ResponseWriter, r *http.Request, p *page) {
	f := readKeyForm(r)
	p.Errors = map[string]string{}
	typ, err := authz.ParseKeyType(f.Type)
	if err != nil {
		p.Errors["type"] = "type: " + err.Error()
	}
	opName := generateOp(typ)
	if f.OwnSecret {
		opName = "importKey"
	}
	op, _ := account.OperationNamed(opName)
	if err == nil || f.OwnSecret {
		if err := h.svc.Authorize(p.session.caller, op); err != nil {
			h.serviceError(w, r, p, err)
			return
		}
	}
	notBefore, expiresAt := f.times(p.Errors)
	rl, quota := f.limits(p.Errors)
	in := account.KeyInput{
		Type: typ, Name: f.Name, Description: f.Description, Scope: f.Scope, Active: &f.Active, Group: f.Group, RoleIDs: f.RoleIDs,
		NotBefore: notBefore, ExpiresAt: expiresAt, IPFilters: f.ipFilters(), ResponseHeaders: f.headers(),
		RateLimit: rl, Quota: quota,
	}
	if typ != authz.KeyTypeAccount {
		in.AppID = f.AppID
	}
	if typ == authz.KeyTypeService {
		in.TenantID = f.TenantID
	}
	// The secret to import is read here and goes nowhere but the service:
	// never back into the form, a URL or a log.
	own := r.PostFormValue("secret")
	if f.OwnSecret && own == "" {
		p.Errors["private_key"] = "private_key: required: type the secret to use, or untick \"Use my own secret\""
	}
	if len(p.Errors) == 0 && f.OwnSecret {
		k, _, err := h.svc.ImportKey(r.Context(), p.session.caller, in, own)
		if err == nil {
			http.Redirect(w, r, "/keys/"+url.PathEscape(k.Spec.ID)+"?imported=1", http.StatusSeeOther)
			return
		}
		if h.answered(w, r, p, err) {
			return
		}
	} else if len(p.Errors) == 0 {
		secret, k, _, err := h.svc.GenerateKey(r.Context(), p.session.caller, in)
		if err == nil {
			h.showSecret(w, r, p, secretView{Key: k, Secret: secret.Reveal(), Action: "created"})
			return
		}
		if h.answered(w, r, p, err) {
			return
		}
	} else {
		p.Error = "Some fields need fixing: see below."
	}
	f.padRows()
	p.Title, p.Nav, p.Data = "New key", "keys", h.keyNewView(r.Context(), p, f)
	h.render(w, r, http.StatusUnprocessableEntity, "key_new", p)
}
