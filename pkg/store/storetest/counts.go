package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// wantCount fails unless CountKeys of account "acct" with fl is want.
func (f *fixture) wantCount(t *testing.T, fl store.KeyFilter, want int) {
	t.Helper()
	n, err := f.s.CountKeys(f.ctx, "acct", fl)
	if err != nil {
		t.Fatalf("CountKeys: %v", err)
	}
	if n != want {
		t.Errorf("CountKeys = %d, want %d", n, want)
	}
}

// testKeyHygiene: the filters the console's overview counts and links
// (no IP filters, a scope of everything, a lower bound on expiry), each
// listed and counted alike.
func testKeyHygiene(t *testing.T, open func(t *testing.T) store.Accounts) {
	f := setup(t, open)
	f.createRole(store.Role{ID: "r1", Name: "Role one", Scope: "email-api:query:*"})
	f.createRole(store.Role{AccountID: "other", ID: "r1", Name: "Role one", Scope: "email-api:query:*"})
	key := func(k store.Key, change func(k *store.Key)) {
		change(&k)
		f.createKey(k)
	}
	ips := []string{"10.0.0.0/8"}
	key(serviceKey("h1"), func(k *store.Key) { k.Spec.Scope, k.Spec.ExpiresAt = "", t2030 })
	key(serviceKey("h2"), func(k *store.Key) { k.Spec.Scope, k.RoleIDs, k.Spec.IPFilters = "", []string{"r1"}, ips })
	key(serviceKey("h3"), func(k *store.Key) { k.Spec.ExpiresAt = t2031 })
	key(appKey("h4"), func(k *store.Key) { k.Spec.Scope, k.Spec.IPFilters, k.Spec.ExpiresAt = "", ips, t2100 })
	key(accountKey("h5"), func(k *store.Key) {})
	key(serviceKey("h6"), func(k *store.Key) {
		k.Spec.AccountID, k.Spec.Hash, k.Spec.Scope, k.Spec.ExpiresAt = "other", Hash("other-h6"), "", t2031
		k.RoleIDs = []string{"r1"} // another account's role of the same id
	})
	f.touch(map[string]time.Time{"h1": t2030, "h3": t2000})

	cases := []struct {
		name string
		f    store.KeyFilter
		want []string
	}{
		{"no IP filters", store.KeyFilter{NoIPFilters: true}, []string{"h1", "h3", "h5"}},
		{"scope of everything", store.KeyFilter{ScopeEverything: true}, []string{"h1", "h4"}},
		{"both", store.KeyFilter{NoIPFilters: true, ScopeEverything: true}, []string{"h1"}},
		{"scope of everything, app keys", store.KeyFilter{ScopeEverything: true, Type: authz.KeyTypeApp}, []string{"h4"}},
		{"expires after, strictly", store.KeyFilter{ExpiresAfter: t2030}, []string{"h3", "h4"}},
		{"expires after, earlier", store.KeyFilter{ExpiresAfter: t2030.Add(-time.Microsecond)}, []string{"h1", "h3", "h4"}},
		{"expires after, none later", store.KeyFilter{ExpiresAfter: t2100}, nil},
		{"expiring within a window", store.KeyFilter{ExpiresAfter: t2030, ExpiringBefore: t2100}, []string{"h3"}},
		{"an empty window", store.KeyFilter{ExpiresAfter: t2031, ExpiringBefore: t2031}, nil},
		{"expires after and no IP filters", store.KeyFilter{ExpiresAfter: t2000, NoIPFilters: true}, []string{"h1", "h3"}},
		{"unused since, no IP filters", store.KeyFilter{UnusedSince: t2030, NoIPFilters: true}, []string{"h3", "h5"}},
		{"name contains, scope of everything", store.KeyFilter{NameContains: "H", ScopeEverything: true}, []string{"h1", "h4"}},
		{"ids, no IP filters", store.KeyFilter{IDs: []string{"h2", "h3", "h6"}, NoIPFilters: true}, []string{"h3"}},
		{"role and scope of everything", store.KeyFilter{RoleID: "r1", ScopeEverything: true}, nil},
		{"role", store.KeyFilter{RoleID: "r1"}, []string{"h2"}},
		{"role and type", store.KeyFilter{RoleID: "r1", Type: authz.KeyTypeService}, []string{"h2"}},
		{"unknown role", store.KeyFilter{RoleID: "nope"}, nil},
	}
	check := func(t *testing.T, fl store.KeyFilter, want []string) {
		t.Helper()
		keys, next, err := f.s.ListKeys(f.ctx, "acct", fl, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.Spec.ID)
		}
		if diff := cmp.Diff(want, ids); diff != "" || next != "" {
			t.Errorf("ListKeys: next %q, ids (-want +got):\n%s", next, diff)
		}
		f.wantCount(t, fl, len(want))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.f.IsZero() {
				t.Error("IsZero of a filter that filters")
			}
			check(t, tc.f, tc.want)
		})
	}
	t.Run("a key's roles removed: a scope of everything", func(t *testing.T) {
		if _, err := f.s.UpdateKey(f.ctx, Actor, "acct", "h2", store.KeyUpdate{RoleIDs: &[]string{}}); err != nil {
			t.Fatal(err)
		}
		check(t, store.KeyFilter{ScopeEverything: true}, []string{"h1", "h2", "h4"})
		if _, err := f.s.UpdateKey(f.ctx, Actor, "acct", "h2", store.KeyUpdate{IPFilters: &[]string{}}); err != nil {
			t.Fatal(err)
		}
		check(t, store.KeyFilter{NoIPFilters: true}, []string{"h1", "h2", "h3", "h5"})
	})
}

func testCounts(t *testing.T, open func(t *testing.T) store.Accounts) {
	f := setup(t, open)
	for _, id := range []string{"app2", "app3"} {
		if _, err := f.s.CreateApp(f.ctx, Actor, store.App{AccountID: "acct", ID: id, Name: id, Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.s.CreateTenant(f.ctx, Actor, store.Tenant{AccountID: "acct", ID: "ten2", Name: "ten2", Active: true}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"k1", "k2", "k3"} {
		f.createKey(serviceKey(name))
	}
	other := serviceKey("k4")
	other.Spec.AccountID, other.Spec.Hash = "other", Hash("other-k4")
	f.createKey(other)
	for _, tc := range []struct {
		name    string
		account string
		count   func(string) (int, error)
		want    int
	}{
		{"apps", "acct", func(a string) (int, error) { return f.s.CountApps(f.ctx, a) }, 3},
		{"tenants", "acct", func(a string) (int, error) { return f.s.CountTenants(f.ctx, a) }, 2},
		{"keys", "acct", func(a string) (int, error) { return f.s.CountKeys(f.ctx, a, store.KeyFilter{}) }, 3},
		{"another account's apps", "other", func(a string) (int, error) { return f.s.CountApps(f.ctx, a) }, 1},
		{"another account's keys", "other", func(a string) (int, error) { return f.s.CountKeys(f.ctx, a, store.KeyFilter{}) }, 1},
		{"unknown account's apps", "nope", func(a string) (int, error) { return f.s.CountApps(f.ctx, a) }, 0},
		{"unknown account's tenants", "nope", func(a string) (int, error) { return f.s.CountTenants(f.ctx, a) }, 0},
		{"unknown account's keys", "nope", func(a string) (int, error) { return f.s.CountKeys(f.ctx, a, store.KeyFilter{}) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.count(tc.account)
			if err != nil || n != tc.want {
				t.Errorf("count = %d, %v; want %d", n, err, tc.want)
			}
		})
	}
	t.Run("the order is ignored", func(t *testing.T) {
		f.wantCount(t, store.KeyFilter{Order: store.KeyOrder{By: store.SortName, Desc: true}}, 3)
	})
	t.Run("a deleted key is not counted", func(t *testing.T) {
		if err := f.s.DeleteKey(f.ctx, Actor, "acct", "k2"); err != nil {
			t.Fatal(err)
		}
		f.wantCount(t, store.KeyFilter{}, 2)
	})
	t.Run("an unknown type", func(t *testing.T) {
		_, err := f.s.CountKeys(f.ctx, "acct", store.KeyFilter{Type: authz.KeyType(42)})
		wantErr(t, err, store.ErrInvalid, "type")
	})
}
