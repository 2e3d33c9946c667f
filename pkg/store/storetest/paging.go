package storetest

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// item is what the paging tests see of a listed record.
type item struct {
	id  string
	at  time.Time // created_at, or the audit event's time
	seq int64     // audit events: the event id
}

// lister is one paged list of account acct.
type lister struct {
	name string
	// add writes a new item (its i-th) and returns its id as listed.
	add  func(f *fixture, i int) string
	list func(f *fixture, p store.Page) ([]item, string, error)
	// del deletes an item; nil for the audit log, which only grows.
	del func(f *fixture, id string) error
	// newestFirst: the audit log lists its newest event first, the
	// others list their records oldest first.
	newestFirst bool
}

var listers = []lister{
	{
		name: "apps",
		add: func(f *fixture, i int) string {
			a, err := f.s.CreateApp(f.ctx, Actor, store.App{AccountID: "acct", Name: fmt.Sprintf("App %d", i), Active: true})
			if err != nil {
				f.t.Fatal(err)
			}
			return a.ID
		},
		list: func(f *fixture, p store.Page) ([]item, string, error) {
			as, next, err := f.s.ListApps(f.ctx, "acct", p)
			return appItems(as), next, err
		},
		del: func(f *fixture, id string) error { return f.s.DeleteApp(f.ctx, Actor, "acct", id, false) },
	},
	{
		name: "tenants",
		add: func(f *fixture, i int) string {
			a, err := f.s.CreateTenant(f.ctx, Actor, store.Tenant{AccountID: "acct", Name: fmt.Sprintf("Tenant %d", i), Active: true})
			if err != nil {
				f.t.Fatal(err)
			}
			return a.ID
		},
		list: func(f *fixture, p store.Page) ([]item, string, error) {
			ts, next, err := f.s.ListTenants(f.ctx, "acct", p)
			var as []store.App
			for _, t := range ts {
				as = append(as, store.App(t))
			}
			return appItems(as), next, err
		},
		del: func(f *fixture, id string) error { return f.s.DeleteTenant(f.ctx, Actor, "acct", id, false) },
	},
	{
		name: "keys",
		add: func(f *fixture, i int) string {
			k := serviceKey(fmt.Sprintf("key-%d", i))
			k.Spec.ID = "" // generated: creation order is not id order
			return f.createKey(k).Spec.ID
		},
		list: func(f *fixture, p store.Page) ([]item, string, error) {
			ks, next, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{}, p)
			var out []item
			for _, k := range ks {
				out = append(out, item{id: k.Spec.ID, at: k.CreatedAt})
			}
			return out, next, err
		},
		del: func(f *fixture, id string) error { return f.s.DeleteKey(f.ctx, Actor, "acct", id) },
	},
	{
		name: "audit events",
		add: func(f *fixture, i int) string {
			if _, err := f.s.CreateApp(f.ctx, Actor, store.App{AccountID: "acct", Name: fmt.Sprintf("App %d", i)}); err != nil {
				f.t.Fatal(err)
			}
			return strconv.FormatInt(f.events("acct")[0].ID, 10)
		},
		list: func(f *fixture, p store.Page) ([]item, string, error) {
			evs, next, err := f.s.ListAuditEvents(f.ctx, "acct", store.AuditFilter{}, p)
			var out []item
			for _, e := range evs {
				out = append(out, item{id: strconv.FormatInt(e.ID, 10), at: e.At, seq: e.ID})
			}
			return out, next, err
		},
		newestFirst: true,
	},
}

func appItems(as []store.App) []item {
	var out []item
	for _, a := range as {
		out = append(out, item{id: a.ID, at: a.CreatedAt})
	}
	return out
}

func ids(items []item) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.id)
	}
	return out
}

func testPaging(t *testing.T, open func(t *testing.T) store.Accounts) {
	for _, l := range listers {
		t.Run(l.name, func(t *testing.T) { testLister(t, open, l) })
	}
	t.Run("filtered keys", func(t *testing.T) {
		f := setup(t, open)
		var want []string
		for i := range 9 {
			k := serviceKey(fmt.Sprintf("key-%d", i))
			if i%2 == 0 {
				k = appKey(k.Spec.Name)
				want = append(want, k.Spec.ID)
			}
			f.createKey(k)
		}
		for _, size := range []int{1, 2, 4, 5} {
			got, err := listAll(func(p store.Page) ([]store.Key, string, error) {
				return f.s.ListKeys(f.ctx, "acct", store.KeyFilter{Type: authz.KeyTypeApp}, p)
			}, size)
			if err != nil {
				t.Fatal(err)
			}
			var gotIDs []string
			for _, k := range got {
				gotIDs = append(gotIDs, k.Spec.ID)
			}
			if diff := cmp.Diff(want, gotIDs); diff != "" {
				t.Errorf("pages of %d (-want +got):\n%s", size, diff)
			}
		}
	})
}

func testLister(t *testing.T, open func(t *testing.T) store.Accounts, l lister) {
	// fill gives a store with 7 more items than the fixture's and every
	// item's id in the order of the list.
	fill := func(t *testing.T) (*fixture, []string) {
		f := setup(t, open)
		before, _, err := l.list(f, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		want := ids(before)
		for i := range 7 {
			id := l.add(f, i)
			if l.newestFirst {
				want = append([]string{id}, want...)
			} else {
				want = append(want, id)
			}
		}
		return f, want
	}
	t.Run("every item once, in order", func(t *testing.T) {
		f, want := fill(t)
		all, next, err := l.list(f, store.Page{})
		if err != nil || next != "" {
			t.Fatalf("one page: next %q, %v", next, err)
		}
		if diff := cmp.Diff(want, ids(all)); diff != "" {
			t.Fatalf("one page (-want +got):\n%s", diff)
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			switch {
			case l.newestFirst && (a.seq <= b.seq || a.at.Before(b.at)):
				t.Errorf("%+v listed before %+v: not newest first", a, b)
			case !l.newestFirst && (a.at.After(b.at) || a.at.Equal(b.at) && a.id >= b.id):
				t.Errorf("%+v listed before %+v: not in (created_at, id) order", a, b)
			}
		}
		n := len(want)
		for _, size := range []int{1, 2, 3, n - 1, n, n + 1, 0, -1} {
			var got []string
			tok, pages := "", 0
			for {
				page, next, err := l.list(f, store.Page{Size: size, Token: tok})
				if err != nil {
					t.Fatalf("size %d, page %d: %v", size, pages+1, err)
				}
				pages++
				if size > 0 && len(page) > size {
					t.Errorf("size %d: a page of %d", size, len(page))
				}
				if next != "" && len(page) == 0 {
					t.Errorf("size %d: an empty page with a next token", size)
				}
				got = append(got, ids(page)...)
				if next == "" || pages > n+1 {
					break
				}
				tok = next
			}
			wantPages := 1
			if size > 0 {
				wantPages = (n + size - 1) / size
			}
			if diff := cmp.Diff(want, got); diff != "" || pages != wantPages {
				t.Errorf("size %d: %d pages, want %d; ids (-want +got):\n%s", size, pages, wantPages, diff)
			}
		}
	})
	t.Run("a token gives the same page again", func(t *testing.T) {
		f, _ := fill(t)
		_, tok, err := l.list(f, store.Page{Size: 3})
		if err != nil || tok == "" {
			t.Fatalf("first page: next %q, %v", tok, err)
		}
		a, nextA, errA := l.list(f, store.Page{Size: 3, Token: tok})
		b, nextB, errB := l.list(f, store.Page{Size: 3, Token: tok})
		if errA != nil || errB != nil || nextA != nextB || !cmp.Equal(ids(a), ids(b)) {
			t.Fatalf("the same token twice: %v %q %v; %v %q %v", ids(a), nextA, errA, ids(b), nextB, errB)
		}
		// The size may change from page to page.
		c, _, err := l.list(f, store.Page{Size: 4, Token: tok})
		if err != nil || len(c) != 4 || c[0].id != a[0].id {
			t.Fatalf("a bigger second page: %v, %v", ids(c), err)
		}
	})
	t.Run("writes between pages", func(t *testing.T) {
		// Keyset tokens: deleting a listed item skips nothing, a new item
		// comes where its order puts it (last; never in the audit log's
		// later pages, which hold older events).
		f, want := fill(t)
		first, tok, err := l.list(f, store.Page{Size: 3})
		if err != nil || tok == "" {
			t.Fatalf("first page: next %q, %v", tok, err)
		}
		if l.del != nil {
			if err := l.del(f, first[0].id); err != nil {
				t.Fatal(err)
			}
		}
		added := l.add(f, 100)
		got := ids(first)
		rest, err := listAll(func(p store.Page) ([]item, string, error) {
			if p.Token == "" {
				p.Token = tok
			}
			return l.list(f, p)
		}, 3)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(rest)...)
		if !l.newestFirst {
			want = append(want, added)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ids (-want +got):\n%s", diff)
		}
	})
	t.Run("invalid tokens", func(t *testing.T) {
		f := setup(t, open)
		for _, tok := range []string{"garbage!", "e30" /* {} */, "%%%", "-1", "bm9wZQ"} {
			_, _, err := l.list(f, store.Page{Token: tok})
			if err == nil {
				t.Errorf("token %q: no error", tok)
				continue
			}
			wantErr(t, err, store.ErrInvalid, "page_token")
		}
	})
}
