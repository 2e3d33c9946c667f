package console

import (
	"context"
	"net/http"
	"time"

	"github.com/keygate/keygate/pkg/account"
)

// overviewCap bounds what the overview counts: past it, "at least".
const overviewCap = 10_000

// count is a figure of the overview; Known false when the session may
// not read it.
type count struct {
	N           int
	More, Known bool
}

type overviewView struct {
	Apps, Tenants, Keys, Inactive, Expiring, NoIPFilters count
	ExpiringSoon                                         []keyRow
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
			items, next, err := kind.k.list(h.svc, ctx, c, account.PageInput{Size: 1000, Token: token})
			return len(items), next, err
		})
	}
	if p.Can("listKeys") && err == nil {
		err = h.keyCounts(ctx, c, v)
	}
	if err != nil {
		h.serviceError(w, r, p, err)
		return
	}
	p.Title, p.Nav, p.Data = "Overview", "overview", v
	h.render(w, r, http.StatusOK, "overview", p)
}

func (h *Handler) keyCounts(ctx context.Context, c account.Caller, v *overviewView) error {
	now := h.svc.Now()
	soon := now.Add(30 * 24 * time.Hour)
	var err error
	v.Keys, err = countPages(func(token string) (int, string, error) {
		keys, next, err := h.svc.ListKeys(ctx, c, account.KeyFilter{}, account.PageInput{Size: 1000, Token: token})
		for _, k := range keys {
			if len(k.Spec.IPFilters) == 0 {
				v.NoIPFilters.N++
			}
		}
		return len(keys), next, err
	})
	if err != nil {
		return err
	}
	v.NoIPFilters.Known, v.NoIPFilters.More = true, v.Keys.More
	inactive := false
	v.Inactive, err = countPages(func(token string) (int, string, error) {
		keys, next, err := h.svc.ListKeys(ctx, c, account.KeyFilter{Active: &inactive}, account.PageInput{Size: 1000, Token: token})
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
