package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/store"
)

// quotas is the fixture's store as a store.Quotas.
func (f *fixture) quotas() store.Quotas {
	f.t.Helper()
	q, ok := f.s.(store.Quotas)
	if !ok {
		f.t.Fatalf("%T does not implement store.Quotas", f.s)
	}
	return q
}

func (f *fixture) usage(account string) store.Usage {
	f.t.Helper()
	l, err := f.quotas().AccountLimits(f.ctx, account)
	if err != nil {
		f.t.Fatalf("AccountLimits(%s): %v", account, err)
	}
	return l.Usage
}

func (f *fixture) wantUsage(account string, want store.Usage) {
	f.t.Helper()
	if got := f.usage(account); got != want {
		f.t.Errorf("usage of %s = %+v, want %+v", account, got, want)
	}
}

func (f *fixture) setLimits(account string, u store.LimitsUpdate) store.AccountLimits {
	f.t.Helper()
	l, err := f.quotas().SetAccountLimits(f.ctx, Actor, account, u)
	if err != nil {
		f.t.Fatalf("SetAccountLimits(%s, %v): %v", account, u, err)
	}
	return l
}

func limit(n int64) *int64 { return &n }

// wantQuotaError fails unless err is the refusal of one more kind in acct
// at max.
func wantQuotaError(t *testing.T, err error, kind string, count, max int64) {
	t.Helper()
	var qe *store.QuotaError
	if !errors.As(err, &qe) || !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("error %v, want a *store.QuotaError", err)
	}
	want := store.QuotaError{AccountID: "acct", Kind: kind, Count: count, Max: max}
	if *qe != want {
		t.Errorf("QuotaError %+v, want %+v", *qe, want)
	}
}

// testQuotas is the contract of store.Quotas: counts kept exact across
// creates and (cascading) deletes, limits from the defaults
// (store.DefaultLimits: open's stores have no others) or the account's
// overrides, creates past them refused with nothing written, and no two
// concurrent creates past a limit.
func testQuotas(t *testing.T, open func(t *testing.T) store.Accounts) {
	t.Run("counts", func(t *testing.T) {
		f := setup(t, open)
		f.wantUsage("acct", store.Usage{Apps: 1, Tenants: 1})
		for _, n := range []string{"k1", "k2", "k3"} {
			f.createKey(serviceKey(n))
		}
		f.createKey(accountKey("k4"))
		f.wantUsage("acct", store.Usage{Keys: 4, Apps: 1, Tenants: 1})
		if err := f.s.DeleteKey(f.ctx, Actor, "acct", "k1"); err != nil {
			t.Fatal(err)
		}
		f.wantUsage("acct", store.Usage{Keys: 3, Apps: 1, Tenants: 1})
		// Deleting the app takes its keys (k2, k3) with it; the account
		// key stays.
		if err := f.s.DeleteApp(f.ctx, Actor, "acct", "app1", true); err != nil {
			t.Fatal(err)
		}
		f.wantUsage("acct", store.Usage{Keys: 1, Tenants: 1})
		if _, err := f.s.CreateApp(f.ctx, Actor, store.App{AccountID: "acct", ID: "app1", Name: "Again", Active: true}); err != nil {
			t.Fatal(err)
		}
		f.createKey(serviceKey("k5"))
		if err := f.s.DeleteTenant(f.ctx, Actor, "acct", "ten1", true); err != nil {
			t.Fatal(err)
		}
		f.wantUsage("acct", store.Usage{Keys: 1, Apps: 1})
		f.wantUsage("other", store.Usage{Apps: 1, Tenants: 1})
	})
	t.Run("defaults and overrides", func(t *testing.T) {
		f := setup(t, open)
		l, err := f.quotas().AccountLimits(f.ctx, "acct")
		if err != nil {
			t.Fatal(err)
		}
		if l.Effective != store.DefaultLimits || l.Overrides != (store.LimitOverrides{}) || l.AccountID != "acct" {
			t.Fatalf("AccountLimits = %+v, want the defaults and no overrides", l)
		}
		l = f.setLimits("acct", store.LimitsUpdate{store.QuotaKeys: limit(3), store.QuotaRoles: limit(0)})
		want := store.DefaultLimits
		want.Keys, want.Roles = 3, 0
		if l.Effective != want || *l.Overrides.Keys != 3 || *l.Overrides.Roles != 0 || l.Overrides.Apps != nil {
			t.Fatalf("after setting max_keys 3, max_roles 0: %+v", l)
		}
		l = f.setLimits("acct", store.LimitsUpdate{store.QuotaKeys: nil})
		want.Keys = store.DefaultLimits.Keys
		if l.Effective != want || l.Overrides.Keys != nil {
			t.Fatalf("after clearing max_keys: %+v", l)
		}
		evs := f.events("acct")
		if evs[0].Action != "account.limits" || evs[0].ObjectType != "account" || evs[0].ObjectID != "acct" || evs[0].Actor != Actor {
			t.Fatalf("newest audit event %+v, want account.limits of acct", evs[0])
		}
		wantLimitsJSON(t, evs[0].Before, `{"max_keys":3,"max_apps":null,"max_tenants":null,"max_roles":0,"max_denials":null}`)
		wantLimitsJSON(t, evs[0].After, `{"max_keys":null,"max_apps":null,"max_tenants":null,"max_roles":0,"max_denials":null}`)
		if got, _ := f.quotas().AccountLimits(f.ctx, "other"); got.Effective != store.DefaultLimits {
			t.Errorf("other account's limits changed: %+v", got)
		}
	})
	t.Run("errors", func(t *testing.T) {
		f := setup(t, open)
		_, err := f.quotas().SetAccountLimits(f.ctx, Actor, "acct", store.LimitsUpdate{store.QuotaApps: limit(-1)})
		wantErr(t, err, store.ErrInvalid, "max_apps")
		_, err = f.quotas().SetAccountLimits(f.ctx, Actor, "nope", store.LimitsUpdate{store.QuotaApps: limit(1)})
		wantErr(t, err, store.ErrNotFound, `account "nope" not found`)
		_, err = f.quotas().AccountLimits(f.ctx, "nope")
		wantErr(t, err, store.ErrNotFound, `account "nope" not found`)
	})
	t.Run("refused at the limit", func(t *testing.T) {
		f := setup(t, open)
		f.setLimits("acct", store.LimitsUpdate{store.QuotaKeys: limit(2), store.QuotaApps: limit(1), store.QuotaTenants: limit(1)})
		f.createKey(serviceKey("k1"))
		f.createKey(appKey("k2"))
		before := f.events("acct")
		_, err := f.s.CreateKey(f.ctx, Actor, serviceKey("k3"))
		wantQuotaError(t, err, store.QuotaKeys, 2, 2)
		wantErr(t, err, store.ErrQuotaExceeded, `account "acct" already has 2 keys`, "max_keys = 2")
		_, err = f.s.CreateApp(f.ctx, Actor, store.App{AccountID: "acct", ID: "app2", Name: "Two", Active: true})
		wantQuotaError(t, err, store.QuotaApps, 1, 1)
		_, err = f.s.CreateTenant(f.ctx, Actor, store.Tenant{AccountID: "acct", ID: "ten2", Name: "Two", Active: true})
		wantQuotaError(t, err, store.QuotaTenants, 1, 1)
		// Nothing half-written: no row, no count, no audit event.
		if _, err := f.s.GetKey(f.ctx, "acct", "k3"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetKey(k3) after the refusal: %v, want not found", err)
		}
		f.wantUsage("acct", store.Usage{Keys: 2, Apps: 1, Tenants: 1})
		if diff := cmp.Diff(before, f.events("acct")); diff != "" {
			t.Errorf("audit log changed by refused creates (-before +after):\n%s", diff)
		}
		// Another account is not held to acct's limits.
		if _, err := f.s.CreateApp(f.ctx, Actor, store.App{AccountID: "other", ID: "app2", Name: "Two", Active: true}); err != nil {
			t.Errorf("CreateApp in other: %v", err)
		}
		// A limit below the count refuses creates and removes nothing.
		f.setLimits("acct", store.LimitsUpdate{store.QuotaKeys: limit(1)})
		_, err = f.s.CreateKey(f.ctx, Actor, serviceKey("k3"))
		wantQuotaError(t, err, store.QuotaKeys, 2, 1)
		// Room again after a delete.
		if err := f.s.DeleteKey(f.ctx, Actor, "acct", "k1"); err != nil {
			t.Fatal(err)
		}
		f.setLimits("acct", store.LimitsUpdate{store.QuotaKeys: limit(2)})
		f.createKey(serviceKey("k3"))
	})
	t.Run("concurrent creates at limit-1", func(t *testing.T) {
		f := setup(t, open)
		const max = 5
		f.setLimits("acct", store.LimitsUpdate{store.QuotaKeys: limit(max)})
		for i := range max - 1 {
			f.createKey(serviceKey(fmt.Sprintf("k%d", i)))
		}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = f.s.CreateKey(f.ctx, Actor, serviceKey(fmt.Sprintf("race%d", i)))
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrQuotaExceeded):
				t.Errorf("concurrent CreateKey: %v, want success or a quota error", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d of 8 concurrent creates at limit-1 succeeded, want 1", ok)
		}
		f.wantUsage("acct", store.Usage{Keys: max, Apps: 1, Tenants: 1})
		keys, err := listAll(func(p store.Page) ([]store.Key, string, error) {
			return f.s.ListKeys(f.ctx, "acct", store.KeyFilter{}, p)
		}, 100)
		if err != nil || len(keys) != max {
			t.Errorf("ListKeys: %d keys, %v; want %d", len(keys), err, max)
		}
	})
}

// wantLimitsJSON compares an account.limits audit record with want.
func wantLimitsJSON(t *testing.T, raw json.RawMessage, want string) {
	t.Helper()
	var got, w any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("audit record %s: %v", raw, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("audit record (-want +got):\n%s", diff)
	}
}
