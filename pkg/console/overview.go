package console

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/store"
)

// count is a figure of the overview; Known false when the session may
// not read it.
type count struct {
	N     int
	Known bool
}

// overviewExpiring is how many of the keys expiring soonest the overview
// lists.
const overviewExpiring = 20

type overviewView struct {
	Apps, Tenants, Keys, Inactive, Expiring count
	// Hygiene, each figure a link to the keys it counts: NoIPFilters,
	// Everything (an empty own scope and no roles: every operation of
	// the services that accept their type) and Unused (never used, or
	// not since UnusedSince, 90 days ago).
	NoIPFilters, Everything, Unused count
	// ExpiringQuery and UnusedQuery are the keys list's filters of the
	// expiring and the unused keys, with the times they were counted at.
	ExpiringQuery, UnusedQuery template.URL
	// ExpiringSoon are the first keys to expire within 30 days, soonest
	// first (not those already expired).
	ExpiringSoon []keyRow
	// Usage is the last 7 days by outcome; Replicas their sync state.
	Usage        []usageRow
	UsageErr     string
	ShowUsage    bool
	Replicas     []account.ReplicaStatus
	Head         int64
	ReplicasErr  string
	ShowReplicas bool
}

// overview shows counts and the keys expiring within 30 days, from what
// the session may list: each figure one count of the account service,
// authorised as the list it counts.
func (h *Handler) overview(w http.ResponseWriter, r *http.Request, p *page) {
	ctx := r.Context()
	c := p.session.caller
	v := &overviewView{}
	var err error
	if p.Can(appKind.ListOp) {
		v.Apps.N, err = h.svc.CountApps(ctx, c)
		v.Apps.Known = err == nil
	}
	if p.Can(tenantKind.ListOp) && err == nil {
		v.Tenants.N, err = h.svc.CountTenants(ctx, c)
		v.Tenants.Known = err == nil
	}
	if p.Can("keys") && err == nil {
		err = h.keyCounts(ctx, c, v)
	}
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	if p.Can("usage") {
		v.ShowUsage = true
		v.Usage, v.UsageErr = h.weekByOutcome(ctx, c, nil)
	}
	if p.Can("replicas") {
		v.ShowReplicas = true
		if v.Replicas, v.Head, err = h.svc.ListReplicas(ctx, c); err != nil {
			_, v.ReplicasErr = statusOf(err)
		}
	}
	p.Title, p.Nav, p.Data = "Overview", "overview", v
	h.render(w, r, http.StatusOK, "overview", p)
}

// whenParam is a time as the keys list's filters read it (parseWhen):
// to the second, UTC.
const whenParam = "2006-01-02T15:04:05"

// keyCounts counts the keys of each figure and lists the first to
// expire. The times are to the second, as the links give them, so that a
// link lists what its figure counted.
func (h *Handler) keyCounts(ctx context.Context, c account.Caller, v *overviewView) error {
	now := h.svc.Now().UTC().Truncate(time.Second)
	soon := now.Add(30 * 24 * time.Hour)
	unusedSince := now.AddDate(0, 0, -90)
	expiring := account.KeyFilter{ExpiresAfter: now, ExpiringBefore: soon}
	for _, fc := range []struct {
		dst *count
		f   account.KeyFilter
	}{
		{&v.Keys, account.KeyFilter{}},
		{&v.Inactive, account.KeyFilter{Active: new(false)}},
		{&v.Expiring, expiring},
		{&v.NoIPFilters, account.KeyFilter{NoIPFilters: true}},
		{&v.Everything, account.KeyFilter{ScopeEverything: true}},
		{&v.Unused, account.KeyFilter{UnusedSince: unusedSince}},
	} {
		n, err := h.svc.CountKeys(ctx, c, fc.f)
		if err != nil {
			return err
		}
		*fc.dst = count{N: n, Known: true}
	}
	v.ExpiringQuery = template.URL(url.Values{"expires_after": {now.Format(whenParam)},
		"expiring_before": {soon.Format(whenParam)}, "sort": {store.SortExpires.String()}}.Encode())
	v.UnusedQuery = template.URL(url.Values{"unused_since": {unusedSince.Format(whenParam)}}.Encode())
	if v.Expiring.N == 0 {
		return nil
	}
	expiring.Order = store.KeyOrder{By: store.SortExpires}
	keys, _, err := h.svc.ListKeys(ctx, c, expiring, account.PageInput{Size: overviewExpiring})
	if err != nil {
		return err
	}
	for _, k := range keys {
		v.ExpiringSoon = append(v.ExpiringSoon, newKeyRow(k, now))
	}
	return nil
}
