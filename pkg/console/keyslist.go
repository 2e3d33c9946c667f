// The keys list: its filters, its sortable columns, its cursor pages
// and each row's sparkline of the last days' allowed requests.

package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// keysPageSize is the keys list's page: cursor pagination through the
// service's ListKeys, so a page costs the same with 100,000 keys.
const keysPageSize = 50

// keysView is the keys list with its filters.
type keysView struct {
	Keys                        []keyRow
	Types                       []string
	Type, App, Tenant, Active   string
	Name, Group, Role           string
	Roles                       []roleOption
	ExpiringBefore, UnusedSince string
	// ExpiresAfter: keys expiring after it (with ExpiringBefore, a
	// window); IPFilters "none": keys without any; Scope "everything":
	// keys with an empty own scope and no roles.
	ExpiresAfter, IPFilters, Scope string
	Apps, Tenants                  []ownerOption
	Filtered                       bool
	CanListApps, CanListTenants    bool
	CanCreate                      bool
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

func (h *Handler) keysList(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	v := &keysView{Type: q.Get("type"), App: q.Get("app"), Tenant: q.Get("tenant"), Active: q.Get("active"),
		Name: strings.TrimSpace(q.Get("name")), Group: strings.TrimSpace(q.Get("group")), Role: q.Get("role"),
		ExpiringBefore: q.Get("expiring_before"), UnusedSince: q.Get("unused_since"), ExpiresAfter: q.Get("expires_after"),
		IPFilters: q.Get("ip_filters"), Scope: q.Get("scope"),
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
	switch v.IPFilters {
	case "":
	case "none":
		f.NoIPFilters = true
	default:
		p.Errors["ip_filters"] = "ip_filters: want none (keys without IP filters), or leave it out"
	}
	switch v.Scope {
	case "":
	case "everything":
		f.ScopeEverything = true
	default:
		p.Errors["scope"] = "scope: want everything (keys with an empty scope and no roles), or leave it out"
	}
	f.AppID, f.TenantID, f.Name, f.Group, f.RoleID = v.App, v.Tenant, v.Name, v.Group, v.Role
	for _, d := range []struct {
		field, text string
		dst         *time.Time
	}{{"expiring_before", v.ExpiringBefore, &f.ExpiringBefore}, {"expires_after", v.ExpiresAfter, &f.ExpiresAfter},
		{"unused_since", v.UnusedSince, &f.UnusedSince}} {
		if d.text == "" {
			continue
		}
		t, ok := parseWhen(d.text)
		if !ok {
			p.Errors[d.field] = d.field + ": " + d.text + " is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM:SS, UTC)"
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
var keyFilterParams = []string{"type", "app", "tenant", "active", "name", "group", "role", "expires_after", "expiring_before",
	"unused_since", "ip_filters", "scope", "q", "sort"}

// DateInput is the type of the form's field for a time filter's value
// (parseWhen's: a date, or a date and time in UTC, as the overview's
// links give the bounds its figures were counted with): a date field for
// a date or none, else a text field, which keeps what a date field would
// show empty and drop.
func (v *keysView) DateInput(value string) string {
	if _, err := time.Parse(time.DateOnly, value); value == "" || err == nil {
		return "date"
	}
	return "text"
}

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
