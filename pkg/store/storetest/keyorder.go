package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// testListKeysOrder: ListKeys' name search, id selection and sorts, each
// sort in both directions and paged with tokens that continue only their
// own order.
func testListKeysOrder(t *testing.T, open func(t *testing.T) store.Accounts) {
	f := setup(t, open)
	key := func(id, name string, expires time.Time) {
		k := serviceKey(id)
		k.Spec.Name, k.Spec.ExpiresAt = name, expires
		f.createKey(k)
	}
	key("k1", "Beta", t2030)
	key("k2", "alpha", time.Time{})
	key("k3", "gamma_50%", t2100)
	key("k4", "ALPHA-two", t2031)
	key("k5", "delta", time.Time{})
	other := serviceKey("k6")
	other.Spec.AccountID, other.Spec.Hash, other.Spec.Name = "other", Hash("other"), "alpha-other"
	f.createKey(other)
	f.touch(map[string]time.Time{"k1": t2030.Add(-48 * time.Hour), "k3": t2030.Add(-time.Hour), "k5": t2000})

	list := func(t *testing.T, fl store.KeyFilter, p store.Page) ([]string, string) {
		t.Helper()
		keys, next, err := f.s.ListKeys(f.ctx, "acct", fl, p)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.Spec.ID)
		}
		return ids, next
	}
	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    store.KeyFilter
			want []string
		}{
			{"contains, any case", store.KeyFilter{NameContains: "ALPHA"}, []string{"k2", "k4"}},
			{"contains, inside", store.KeyFilter{NameContains: "a-t"}, []string{"k4"}},
			{"contains, a prefix", store.KeyFilter{NameContains: "bet"}, []string{"k1"}},
			{"contains, % is a letter", store.KeyFilter{NameContains: "%"}, []string{"k3"}},
			{"contains, _ is a letter", store.KeyFilter{NameContains: "_"}, []string{"k3"}},
			{"contains, backslash", store.KeyFilter{NameContains: `\`}, nil},
			{"contains, nothing", store.KeyFilter{NameContains: "zeta"}, nil},
			{"contains and a filter", store.KeyFilter{NameContains: "alpha", ExpiringBefore: t2100}, []string{"k4"}},
			{"ids", store.KeyFilter{IDs: []string{"k3", "k1", "k6", "nope"}}, []string{"k1", "k3"}},
			{"no ids", store.KeyFilter{IDs: []string{}}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ids, next := list(t, tc.f, store.Page{})
				if diff := cmp.Diff(tc.want, ids); diff != "" || next != "" {
					t.Errorf("next %q, ids (-want +got):\n%s", next, diff)
				}
			})
		}
	})
	for _, tc := range []struct {
		by   store.KeySort
		want []string // ascending
	}{
		{store.SortCreated, []string{"k1", "k2", "k3", "k4", "k5"}},
		{store.SortName, []string{"k2", "k4", "k1", "k5", "k3"}},
		{store.SortExpires, []string{"k1", "k4", "k3", "k2", "k5"}},  // never expiring last
		{store.SortLastUsed, []string{"k2", "k4", "k5", "k1", "k3"}}, // never used first
	} {
		for _, desc := range []bool{false, true} {
			o := store.KeyOrder{By: tc.by, Desc: desc}
			want := slices.Clone(tc.want)
			if desc {
				slices.Reverse(want)
			}
			t.Run("order "+o.String(), func(t *testing.T) {
				all, next := list(t, store.KeyFilter{Order: o}, store.Page{})
				if diff := cmp.Diff(want, all); diff != "" || next != "" {
					t.Errorf("next %q, ids (-want +got):\n%s", next, diff)
				}
				for size := 1; size <= 3; size++ {
					var got []string
					token := ""
					for range 10 {
						ids, next := list(t, store.KeyFilter{Order: o}, store.Page{Size: size, Token: token})
						got = append(got, ids...)
						if next == "" {
							break
						}
						token = next
					}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("pages of %d (-want +got):\n%s", size, diff)
					}
				}
				// A token continues its own order only.
				_, next = list(t, store.KeyFilter{Order: o}, store.Page{Size: 2})
				wrong := store.KeyOrder{By: tc.by, Desc: !desc}
				_, _, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{Order: wrong}, store.Page{Size: 2, Token: next})
				wantErr(t, err, store.ErrInvalid, "page_token", "sorted by "+o.String())
				// The order and a filter: page 2 of the service keys
				// that contain an "a".
				fl := store.KeyFilter{Order: o, NameContains: "a", Type: authz.KeyTypeService}
				first, next := list(t, fl, store.Page{Size: 2})
				rest, _ := list(t, fl, store.Page{Size: 10, Token: next})
				if diff := cmp.Diff(want, append(first, rest...)); diff != "" {
					t.Errorf("filtered pages (-want +got):\n%s", diff)
				}
			})
		}
	}
	_, _, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{Order: store.KeyOrder{By: "colour"}}, store.Page{})
	wantErr(t, err, store.ErrInvalid, "order_by")
}
