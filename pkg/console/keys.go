package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// keysPageSize is the keys list's page: cursor pagination through the
// service's ListKeys, so a page costs the same with 100,000 keys.
const keysPageSize = 50

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

// keysView is the keys list with its filters.
type keysView struct {
	Keys                        []keyRow
	Types                       []string
	Type, App, Tenant, Active   string
	Name, Group, Role           string
	Roles                       []roleOption
	ExpiringBefore, UnusedSince string
	Apps, Tenants               []ownerOption
	Filtered                    bool
	CanListApps, CanListTenants bool
	CanCreate                   bool
	// NextQuery is the next page's query (filters and cursor), FirstQuery
	// the first page's, shown past it (NotFirst).
	NextQuery, FirstQuery template.URL
	NotFirst              bool
	// Q is the name search; Sort the order as the URL gives it ("": the
	// newest first); Cols the sortable column headers.
	Q, Sort string
	Cols    map[string]sortCol
	// CanUsage: the rows have a sparkline; CanDeactivate, CanDelete: the
	// bulk buttons.
	CanUsage, CanDeactivate, CanDelete bool
}

// sortCol is a sortable column's header: the link that sorts by it (or
// reverses it) and its aria-sort ("" when the list is not sorted by it).
type sortCol struct {
	Href template.URL
	ARIA string
}

// keysDefaultOrder is the keys list's order without a sort parameter:
// the newest first.
var keysDefaultOrder = store.KeyOrder{Desc: true}

// sparkDays is how many days a row's sparkline covers.
const sparkDays = 7

// generateOps are the operations that create a key of each type.
var generateOps = map[authz.KeyType]string{
	authz.KeyTypeService: "generateServiceAccessKey",
	authz.KeyTypeApp:     "generateAppAccessKey",
	authz.KeyTypeAccount: "generateAccountAccessKey",
}

func (p *page) canCreateKey() bool {
	for _, op := range generateOps {
		if p.Can(op) {
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

func (h *Handler) keysList(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	v := &keysView{Type: q.Get("type"), App: q.Get("app"), Tenant: q.Get("tenant"), Active: q.Get("active"),
		Name: strings.TrimSpace(q.Get("name")), Group: strings.TrimSpace(q.Get("group")), Role: q.Get("role"),
		ExpiringBefore: q.Get("expiring_before"), UnusedSince: q.Get("unused_since"),
		Q: strings.TrimSpace(q.Get("q")), Sort: q.Get("sort")}
	var f account.KeyFilter
	p.Errors = map[string]string{}
	f.NameContains = v.Q
	f.Order = keysDefaultOrder
	if v.Sort != "" {
		o, err := store.ParseKeyOrder(v.Sort)
		if err != nil {
			p.Errors["sort"] = err.Error()
		}
		f.Order = o
	}
	if v.Type != "" {
		t, err := authz.ParseKeyType(v.Type)
		if err != nil {
			p.Errors["type"] = err.Error()
		}
		f.Type = t
	}
	switch v.Active {
	case "":
	case "true", "false":
		b := v.Active == "true"
		f.Active = &b
	default:
		p.Errors["active"] = "active: want true or false"
	}
	f.AppID, f.TenantID, f.Name, f.Group, f.RoleID = v.App, v.Tenant, v.Name, v.Group, v.Role
	for _, d := range []struct {
		field, text string
		dst         *time.Time
	}{{"expiring_before", v.ExpiringBefore, &f.ExpiringBefore}, {"unused_since", v.UnusedSince, &f.UnusedSince}} {
		if d.text == "" {
			continue
		}
		t, err := time.Parse("2006-01-02", d.text)
		if err != nil {
			p.Errors[d.field] = d.field + ": " + d.text + " is not a date (YYYY-MM-DD)"
		}
		*d.dst = t
	}
	v.Filtered = !f.IsZero()
	v.Types = []string{"service", "app", "account"}
	v.Cols = sortCols(q, f.Order)
	v.CanUsage = p.Can("usage")
	v.CanDeactivate, v.CanDelete = p.Can("updateKey"), p.Can("deleteKey")
	switch n, _ := strconv.Atoi(q.Get("n")); q.Get("done") {
	case "deactivated":
		p.Notice = fmt.Sprintf("Deactivated %d key%s.", n, plural(n))
	case "deleted":
		p.Notice = fmt.Sprintf("Deleted %d key%s.", n, plural(n))
	}
	p.Title, p.Nav, p.Data = "Keys", "keys", v
	v.CanListApps, v.CanListTenants = p.Can("apps"), p.Can("tenants")
	v.CanCreate = p.canCreateKey()
	ctx := r.Context()
	v.Apps, v.Tenants = h.options(ctx, p, appKind), h.options(ctx, p, tenantKind)
	var rf keyForm
	if h.roles(ctx, p, &rf) {
		v.Roles = rf.Roles
	}
	if len(p.Errors) > 0 {
		h.render(w, r, http.StatusUnprocessableEntity, "keys", p)
		return
	}
	keys, next, err := h.svc.ListKeys(ctx, p.session.caller, f, account.PageInput{Size: keysPageSize, Token: q.Get("after")})
	if err != nil {
		if p.formError(err) {
			h.render(w, r, http.StatusUnprocessableEntity, "keys", p)
			return
		}
		h.serviceError(w, r, p, err)
		return
	}
	v.Keys, v.CanUsage = h.listRows(ctx, p, keys, v.CanUsage)
	nq := url.Values{}
	for _, name := range keyFilterParams {
		if x := q.Get(name); x != "" {
			nq.Set(name, x)
		}
	}
	// Encoded by url.Values: safe in an href as it is.
	v.FirstQuery = template.URL(nq.Encode())
	if next != "" {
		nq.Set("after", next)
		v.NextQuery = template.URL(nq.Encode())
	}
	v.NotFirst = q.Get("after") != ""
	h.render(w, r, http.StatusOK, "keys", p)
}

// keyFilterParams are the keys list's filter parameters, kept across its
// pages.
var keyFilterParams = []string{"type", "app", "tenant", "active", "name", "group", "role", "expiring_before", "unused_since", "q", "sort"}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// sortCols are the sortable headers of the keys list in order o: each
// links to the list sorted by its column (the filters kept, from the
// first page), or reversed when already sorted by it.
func sortCols(q url.Values, o store.KeyOrder) map[string]sortCol {
	cols := map[string]sortCol{}
	for _, by := range store.KeySorts {
		cur := store.KeyOrder{By: by}
		if cur.IsDefault() {
			cur.By = ""
		}
		c := sortCol{}
		// First the newest, or the most recently used; names and expiry
		// from the first.
		next := store.KeyOrder{By: cur.By, Desc: by == store.SortCreated || by == store.SortLastUsed}
		if cur.By == o.By {
			c.ARIA = "ascending"
			if o.Desc {
				c.ARIA = "descending"
			}
			next.Desc = !o.Desc
		}
		nq := url.Values{}
		for _, name := range keyFilterParams {
			if x := q.Get(name); x != "" && name != "sort" {
				nq.Set(name, x)
			}
		}
		if next != keysDefaultOrder {
			nq.Set("sort", next.String())
		}
		c.Href = template.URL("/keys?" + nq.Encode())
		cols[string(by)] = c
	}
	return cols
}

// listRows are a page of keys as the list shows them: the status with
// "quota used up" (the page's quota states read at once) and, when
// withUsage, each key's allowed requests of the last days as a sparkline
// (the page's usage read in one query), reporting whether it drew them.
// Either read failing leaves its part out of the page, logged (unless
// the store keeps no usage: a keys file).
func (h *Handler) listRows(ctx context.Context, p *page, keys []store.Key, withUsage bool) ([]keyRow, bool) {
	now := h.svc.Now()
	quotas, err := h.svc.KeysQuotas(ctx, p.session.caller, keys)
	if err != nil {
		h.log.Warn("console: reading the keys' quota states", "err", err)
	}
	var usage map[string][]int64
	if withUsage && len(keys) > 0 {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.Spec.ID
		}
		if usage, err = h.svc.KeysDailyUsage(ctx, p.session.caller, ids, sparkDays); err != nil {
			var ae *account.Error
			if !errors.As(err, &ae) || ae.Code != account.FailedPrecondition {
				h.log.Warn("console: reading the keys' usage", "err", err)
			}
			withUsage = false
		}
	}
	rows := make([]keyRow, len(keys))
	for i, k := range keys {
		rows[i] = newKeyRow(k, now)
		for _, st := range quotas[k.Spec.ID] {
			if st.Exceeded() {
				rows[i].QuotaUsedUp = true
			}
		}
		if withUsage {
			counts := usage[k.Spec.ID]
			if counts == nil {
				counts = make([]int64, sparkDays)
			}
			rows[i].Spark = sparkline(counts)
		}
	}
	return rows, withUsage
}

// sparkline draws counts (oldest first) as an inline SVG, labelled with
// the numbers for screen readers. Only numbers go into it.
func sparkline(counts []int64) template.HTML {
	const w, h = 70.0, 18.0
	var top int64 = 1
	var total int64
	for _, n := range counts {
		top = max(top, n)
		total += n
	}
	var pts, label strings.Builder
	step := w / float64(max(1, len(counts)-1))
	for i, n := range counts {
		y := h - 1 - (h-2)*float64(n)/float64(top)
		fmt.Fprintf(&pts, "%.1f,%.1f ", float64(i)*step, y)
		if i > 0 {
			label.WriteString(", ")
		}
		label.WriteString(strconv.FormatInt(n, 10))
	}
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="70" height="18" viewBox="0 0 70 18" role="img" aria-label="allowed requests per day, last %d days: %s (total %d)">`+
		`<title>%d allowed requests in %d days</title><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="%s"/></svg>`,
		len(counts), label.String(), total, total, len(counts), strings.TrimSpace(pts.String())))
}

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
		ExpiresAt: localTime(k.Spec.ExpiresAt),
		NotBefore: localTime(k.Spec.NotBefore),
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
		OwnSecret: pf.Get("own_secret") == "on",
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

// scopeField is a form's scope: the text field's patterns with the
// permission picker's ticked ones added.
func scopeField(pf url.Values) string {
	patterns := strings.Fields(pf.Get("scope"))
	for _, perm := range pf["perm"] {
		for _, p := range strings.Fields(perm) {
			if !slices.Contains(patterns, p) {
				patterns = append(patterns, p)
			}
		}
	}
	return strings.Join(patterns, " ")
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
	f.Roles = nil
	for _, r := range rs {
		f.Roles = append(f.Roles, roleOption{ID: r.ID, Name: r.Name, Scope: r.Scope, Held: slices.Contains(f.RoleIDs, r.ID)})
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
		if p.Can(generateOps[t]) {
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
	f := keyForm{Type: r.URL.Query().Get("type"), AppID: r.URL.Query().Get("app"), TenantID: r.URL.Query().Get("tenant"), Active: true}
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
	opName := generateOps[typ]
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
	in := account.KeyInput{
		Type: typ, Name: f.Name, Description: f.Description, Scope: f.Scope, Active: &f.Active, Group: f.Group, RoleIDs: f.RoleIDs,
		NotBefore: notBefore, ExpiresAt: expiresAt, IPFilters: f.ipFilters(), ResponseHeaders: f.headers(),
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

// bulkActions are the keys list's bulk actions: the operation each needs
// and its verb.
var bulkActions = map[string]struct{ op, verb string }{
	"deactivate": {"updateKey", "Deactivate"},
	"delete":     {"deleteKey", "Delete"},
}

// keyBulkView is the confirmation of a bulk action.
type keyBulkView struct {
	Action, Verb string
	Keys         []store.Key
	Missing      int
}

// bulkIDs are the selected key ids of a form or query, at most one
// list page's worth of the service's bulk bound.
func bulkIDs(vals []string) ([]string, string) {
	var ids []string
	for _, id := range vals {
		if id = strings.TrimSpace(id); id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	switch {
	case len(ids) == 0:
		return nil, "Select at least one key (tick its box in the list)."
	case len(ids) > account.MaxBulkIDs:
		return nil, fmt.Sprintf("At most %d keys at once.", account.MaxBulkIDs)
	}
	return ids, ""
}

// keyBulkConfirm is the page between the list's bulk buttons and the
// change: the selected keys by name, their number, and the button that
// posts the change.
func (h *Handler) keyBulkConfirm(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	a, ok := bulkActions[q.Get("action")]
	if !ok {
		h.fail(w, r, http.StatusUnprocessableEntity, "action: give deactivate or delete")
		return
	}
	if !p.Can(a.op) {
		h.fail(w, r, http.StatusForbidden, "scope_denied: the key's scope does not allow "+a.op)
		return
	}
	ids, msg := bulkIDs(q["id"])
	if msg != "" {
		h.fail(w, r, http.StatusUnprocessableEntity, msg)
		return
	}
	keys, _, err := h.svc.ListKeys(r.Context(), p.session.caller, account.KeyFilter{IDs: ids, Order: store.KeyOrder{By: store.SortName}},
		account.PageInput{Size: account.MaxBulkIDs})
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	p.Title, p.Nav = a.verb+" keys", "keys"
	p.Data = &keyBulkView{Action: q.Get("action"), Verb: a.verb, Keys: keys, Missing: len(ids) - len(keys)}
	h.render(w, r, http.StatusOK, "key_bulk", p)
}

// keyBulk makes the confirmed change: deactivation in one transaction
// that refuses unless exactly the confirmed keys are there (UpdateKeys'
// expected count), deletion key by key, stopping at the first refusal.
func (h *Handler) keyBulk(w http.ResponseWriter, r *http.Request, p *page) {
	action := r.PostFormValue("action")
	a, ok := bulkActions[action]
	if !ok {
		h.fail(w, r, http.StatusUnprocessableEntity, "action: give deactivate or delete")
		return
	}
	op, _ := account.OperationNamed(a.op)
	if err := h.svc.Authorize(p.session.caller, op); err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	ids, msg := bulkIDs(r.PostForm["id"])
	if msg != "" {
		h.fail(w, r, http.StatusUnprocessableEntity, msg)
		return
	}
	count, err := strconv.Atoi(r.PostFormValue("count"))
	if err != nil || count != len(ids) {
		h.fail(w, r, http.StatusUnprocessableEntity, "count: the confirmed number of keys is missing or wrong: go back to the list and select again")
		return
	}
	ctx := r.Context()
	switch action {
	case "deactivate":
		inactive := false
		res, err := h.svc.UpdateKeys(ctx, p.session.caller, account.BulkKeyUpdate{Filter: account.KeyFilter{IDs: ids},
			Update: account.KeyUpdate{Active: &inactive}, ExpectedCount: &count})
		if err != nil {
			h.serviceError(w, r, p, err)
			return
		}
		count = res.Count
	case "delete":
		keys, _, err := h.svc.ListKeys(ctx, p.session.caller, account.KeyFilter{IDs: ids}, account.PageInput{Size: account.MaxBulkIDs})
		if err != nil {
			h.serviceError(w, r, p, err)
			return
		}
		if len(keys) != count {
			h.fail(w, r, http.StatusConflict, fmt.Sprintf("%d of the %d confirmed keys are there now; nothing was deleted: go back to the list and select again", len(keys), count))
			return
		}
		for i, k := range keys {
			// Each deletion is a change the fleet applies, so each counts
			// against the key's mutation rate as a DeleteKey call would
			// (the route counted the first): a bulk post is not a way past
			// SPEC §10's limit.
			if i > 0 {
				if err := h.svc.AuthorizeCall(p.session.caller, op); err != nil {
					status, msg := statusOf(err)
					h.fail(w, r, status, fmt.Sprintf("Deleted %d of %d keys; the rest were not: %s", i, count, msg))
					return
				}
			}
			if _, err := h.svc.DeleteKey(ctx, p.session.caller, k.Spec.ID); err != nil {
				status, msg := statusOf(err)
				h.fail(w, r, status, fmt.Sprintf("Deleted %d of %d keys; key %s was refused: %s", i, count, k.Spec.Name, msg))
				return
			}
		}
	}
	http.Redirect(w, r, fmt.Sprintf("/keys?done=%sd&n=%d", action, count), http.StatusSeeOther)
}
