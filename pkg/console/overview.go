package console

import (
	"context"
	"net/http"
	"time"

	"github.com/keygate/keygate/pkg/account"
)

// overviewCap bounds what the overview counts, in one page of each list:
// past it, the figure is "at least" (N+). The account service has no count
// operation, and a page of 1,000 keys costs hundreds of milliseconds with
// 100,000 keys; one of 100 a few (BenchmarkPagesWith100kKeys).
const overviewCap = 100

// count is a figure of the overview; Known false when the session may
// not read it.
type count struct {
	N           int
	More, Known bool
}

type overviewView struct {
	Apps, Tenants, Keys, Inactive, Expiring, NoIPFilters count
	// Everything: keys with an empty own scope and no roles (every
	// operation of the services that accept their type). Hygiene, with
	// NoIPFilters and the link to the keys unused since UnusedSince (90
	// days ago), which is not counted here: that list joins the last-used
	// times of every key (half a second with 100,000 keys).
	Everything   count
	UnusedSince  string
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

// countPages counts a list page by page up to overviewCap.
func countPages(list func(token string) (int, string, error)) (count, error) {
	c := count{Known: true}
	token := ""
	for {
		n, next, err := list(token)
		if err != nil {
			return c, err
		}
		c.N += n
		if next == "" {
			return c, nil
		}
		if c.N >= overviewCap {
			c.More = true
			return c, nil
		}
		token = next
	}
}

// overview shows counts and the keys expiring within 30 days, from the
// lists the session may read.
func (h *Handler) overview(w http.ResponseWriter, r *http.Request, p *page) {
	ctx := r.Context()
	c := p.session.caller
	v := &overviewView{}
	var err error
	for _, kind := range []struct {
		k   ownerKind
		dst *count
	}{{appKind, &v.Apps}, {tenantKind, &v.Tenants}} {
		if !p.Can(kind.k.ListOp) || err != nil {
			continue
		}
		*kind.dst, err = countPages(func(token string) (int, string, error) {
			items, next, err := kind.k.list(h.svc, ctx, c, account.PageInput{Size: overviewCap, Token: token})
			return len(items), next, err
		})
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

func (h *Handler) keyCounts(ctx context.Context, c account.Caller, v *overviewView) error {
	now := h.svc.Now()
	soon := now.Add(30 * 24 * time.Hour)
	var err error
	v.Keys, err = countPages(func(token string) (int, string, error) {
		keys, next, err := h.svc.ListKeys(ctx, c, account.KeyFilter{}, account.PageInput{Size: overviewCap, Token: token})
		for _, k := range keys {
			if len(k.Spec.IPFilters) == 0 {
				v.NoIPFilters.N++
			}
			if k.Spec.Scope == "" && len(k.RoleIDs) == 0 {
				v.Everything.N++
			}
		}
		return len(keys), next, err
	})
	if err != nil {
		return err
	}
	v.NoIPFilters.Known, v.NoIPFilters.More = true, v.Keys.More
	v.Everything.Known, v.Everything.More = true, v.Keys.More
	v.UnusedSince = now.AddDate(0, 0, -90).UTC().Format("2006-01-02") // a date, as the keys list filters by
	inactive := false
	v.Inactive, err = countPages(func(token string) (int, string, error) {
		keys, next, err := h.svc.ListKeys(ctx, c, account.KeyFilter{Active: &inactive}, account.PageInput{Size: overviewCap, Token: token})
		return len(keys), next, err
	})
	if err != nil {
		return err
	}
	keys, next, err := h.svc.ListKeys(ctx, c, account.KeyFilter{ExpiringBefore: soon}, account.PageInput{Size: 20})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Spec.ExpiresAt.After(now) {
			v.ExpiringSoon = append(v.ExpiringSoon, newKeyRow(k, now))
		}
	}
	v.Expiring = count{N: len(v.ExpiringSoon), More: next != "", Known: true}
	return nil
}
