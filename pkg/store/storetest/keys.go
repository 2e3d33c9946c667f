package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Fixed times for key fields, far from any test clock's "now".
var (
	t2030 = time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)
	t2031 = time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	t2100 = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	t2000 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// fullKey is a service key with every optional field set.
func fullKey(name string) store.Key {
	k := serviceKey(name)
	k.Spec.Description = "the one with everything"
	k.Spec.Group = "prod"
	k.Spec.Scope = "email-api:query:* email-api:mutation:send"
	k.Spec.NotBefore, k.Spec.ExpiresAt = t2030, t2031
	k.Spec.IPFilters = []string{"10.0.0.0/8", "2001:db8::/32"}
	k.Spec.ResponseHeaders = []authz.HeaderSpec{{Name: "x-team", Value: "billing"}, {Name: "x-tier", Value: "gold", Disabled: true}}
	return k
}

// wantKey is what reading k back after writing it at time at must give.
func wantKey(k store.Key, at time.Time) store.Key {
	if k.Spec.AppID == "app1" {
		k.Spec.AppName = "App One"
	}
	if k.Spec.TenantID == "ten1" {
		k.Spec.TenantName = "Tenant One"
	}
	if k.Origin == "" {
		k.Origin = store.OriginGenerated
	}
	if len(k.Spec.IPFilters) == 0 {
		k.Spec.IPFilters = nil
	}
	if len(k.Spec.ResponseHeaders) == 0 {
		k.Spec.ResponseHeaders = nil
	}
	k.CreatedAt, k.UpdatedAt = at, at
	return k
}

func testKeys(t *testing.T, open func(t *testing.T) store.Accounts) {
	t.Run("create and get", func(t *testing.T) {
		f := setup(t, open)
		custom := appKey("custom")
		custom.Origin = store.OriginCustom
		noOrigin := accountKey("no-origin")
		noOrigin.Origin = ""
		generated := serviceKey("generated")
		generated.Spec.ID = ""
		emptyLists := serviceKey("empty-lists")
		emptyLists.Spec.IPFilters, emptyLists.Spec.ResponseHeaders = []string{}, []authz.HeaderSpec{}
		inactive := serviceKey("inactive")
		inactive.Spec.Active = false
		for _, in := range []store.Key{fullKey("full"), appKey("app"), accountKey("account"), custom, noOrigin, generated, emptyLists, inactive} {
			t.Run(in.Spec.Name, func(t *testing.T) {
				got, err := f.s.CreateKey(f.ctx, Actor, in)
				if err != nil {
					t.Fatal(err)
				}
				if in.Spec.ID == "" {
					wantUUID(t, "key", got.Spec.ID)
					in.Spec.ID = got.Spec.ID
				}
				wantTime(t, "created_at", got.CreatedAt)
				if diff := cmp.Diff(wantKey(in, got.CreatedAt), got); diff != "" {
					t.Errorf("created (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(got, f.getKey(got.Spec.ID)); diff != "" {
					t.Errorf("get differs from create (-created +got):\n%s", diff)
				}
			})
		}
	})
	t.Run("times are kept to the microsecond", func(t *testing.T) {
		f := setup(t, open)
		k := serviceKey("k")
		k.Spec.ExpiresAt = t2030.Add(789 * time.Nanosecond)
		got := f.createKey(k)
		if !got.Spec.ExpiresAt.Equal(t2030) {
			t.Errorf("expires_at %v, want %v", got.Spec.ExpiresAt, t2030)
		}
	})
	t.Run("errors", func(t *testing.T) {
		f := setup(t, open)
		f.createKey(serviceKey("taken"))
		rotated := f.createKey(serviceKey("rotated"))
		if _, err := f.s.RotateKey(f.ctx, Actor, "acct", "rotated", Hash("rotated-2"), t2100); err != nil {
			t.Fatal(err)
		}
		with := func(name string, change func(k *store.Key)) store.Key {
			k := serviceKey(name)
			change(&k)
			return k
		}
		for _, tc := range []struct {
			name   string
			k      store.Key
			target error
			parts  []string
		}{
			{"duplicate id", with("x", func(k *store.Key) { k.Spec.ID = "taken" }), store.ErrAlreadyExists, []string{`key id "taken" already exists`}},
			{"duplicate name", with("x", func(k *store.Key) { k.Spec.Name = "taken" }), store.ErrAlreadyExists, []string{`name "taken" already exists in this account`}},
			{"another key's hash", with("x", func(k *store.Key) { k.Spec.Hash = Hash("secret-taken") }), store.ErrSecretInUse, []string{"hash is already in use"}},
			{"another key's previous hash", with("x", func(k *store.Key) { k.Spec.Hash = rotated.Spec.Hash }), store.ErrSecretInUse, []string{"already in use"}},
			{"unknown app", with("x", func(k *store.Key) { k.Spec.AppID = "nope" }), store.ErrNotFound, []string{`app "nope" not found`}},
			{"unknown tenant", with("x", func(k *store.Key) { k.Spec.TenantID = "nope" }), store.ErrNotFound, []string{`tenant "nope" not found`}},
			{"unknown account", with("x", func(k *store.Key) {
				*k = accountKey("x")
				k.Spec.AccountID = "nope"
			}), store.ErrNotFound, []string{`account "nope" not found`}},
			{"does not compile", with("x", func(k *store.Key) { k.Spec.Hash = "" }), store.ErrInvalid, []string{"invalid key", "hash"}},
			{"no app for a service key", with("x", func(k *store.Key) { k.Spec.AppID = "" }), store.ErrInvalid, []string{"invalid key"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.s.CreateKey(f.ctx, Actor, tc.k)
				wantErr(t, err, tc.target, tc.parts...)
				if _, err := f.s.GetKey(f.ctx, "acct", "x"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("a refused key was stored: %v", err)
				}
			})
		}
		_, err := f.s.GetKey(f.ctx, "acct", "nope")
		wantErr(t, err, store.ErrNotFound, `key "nope" not found`)
	})
	t.Run("accounts are isolated", func(t *testing.T) {
		f := setup(t, open)
		k := f.createKey(serviceKey("k"))
		// A key may not name another account's app or tenant... which
		// here exist with the same ids, so use ones only acct has.
		if _, err := f.s.CreateApp(f.ctx, Actor, store.App{AccountID: "acct", ID: "mine", Name: "Mine"}); err != nil {
			t.Fatal(err)
		}
		cross := serviceKey("cross")
		cross.Spec.AccountID, cross.Spec.AppID = "other", "mine"
		_, err := f.s.CreateKey(f.ctx, Actor, cross)
		wantErr(t, err, store.ErrNotFound, `app "mine" not found`)

		for name, err := range writesFrom(f, "other", "k") {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s from another account: %v", name, err)
			}
		}
		if diff := cmp.Diff(k, f.getKey("k")); diff != "" {
			t.Errorf("after another account's writes (-want +got):\n%s", diff)
		}
		keys, _, err := f.s.ListKeys(f.ctx, "other", store.KeyFilter{}, store.Page{})
		if err != nil || len(keys) != 0 {
			t.Errorf("other's keys: %+v, %v", keys, err)
		}
	})
	t.Run("ids are per account", func(t *testing.T) {
		// SPEC §9: an id taken in another account is free here, and asking
		// about it answers exactly as about an id nobody holds: no oracle.
		f := setup(t, open)
		mine := f.createKey(serviceKey("read"))
		theirs := serviceKey("read")
		theirs.Spec.AccountID, theirs.Spec.Hash = "other", Hash("another")
		if _, err := f.s.CreateKey(f.ctx, Actor, theirs); err != nil {
			t.Fatalf("id %q in a second account: %v", "read", err)
		}
		dup := serviceKey("read")
		dup.Spec.Name, dup.Spec.Hash = "read-2", Hash("a third")
		_, err := f.s.CreateKey(f.ctx, Actor, dup)
		wantErr(t, err, store.ErrAlreadyExists, `key id "read" already exists in this account`)
		if got, err := f.s.GetKey(f.ctx, "other", "read"); err != nil || got.Spec.Hash != theirs.Spec.Hash {
			t.Errorf("other's key %q: %+v, %v", "read", got.Spec, err)
		}
		if err := f.s.DeleteKey(f.ctx, Actor, "other", "read"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(mine, f.getKey("read")); diff != "" {
			t.Errorf("acct's key after other's was deleted (-want +got):\n%s", diff)
		}

		f.createKey(serviceKey("only-acct"))
		held := errorTexts(writesFrom(f, "other", "only-acct"))
		if err := f.s.DeleteKey(f.ctx, Actor, "acct", "only-acct"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(errorTexts(writesFrom(f, "other", "only-acct")), held); diff != "" {
			t.Errorf("answers about an id another account holds differ from an id nobody holds (-nobody +another):\n%s", diff)
		}
		for name, text := range held {
			if !strings.Contains(text, "not found") {
				t.Errorf("%s: %q, want not found", name, text)
			}
		}
	})
	t.Run("update", func(t *testing.T) { testUpdateKey(t, open) })
	t.Run("rotate", func(t *testing.T) { testRotateKey(t, open) })
	t.Run("delete", func(t *testing.T) {
		f := setup(t, open)
		f.createKey(serviceKey("k"))
		f.createKey(serviceKey("kept"))
		if err := f.s.DeleteKey(f.ctx, Actor, "acct", "k"); err != nil {
			t.Fatal(err)
		}
		_, err := f.s.GetKey(f.ctx, "acct", "k")
		wantErr(t, err, store.ErrNotFound, `key "k" not found`)
		wantErr(t, f.s.DeleteKey(f.ctx, Actor, "acct", "k"), store.ErrNotFound, `key "k" not found`)
		f.getKey("kept")
		// Its id, name and hash are free again.
		f.createKey(serviceKey("k"))
	})
	t.Run("last used", func(t *testing.T) {
		f := setup(t, open)
		k := f.createKey(serviceKey("k"))
		if !k.LastUsedAt.IsZero() {
			t.Fatalf("a new key was used at %v", k.LastUsedAt)
		}
		f.touch(map[string]time.Time{"k": t2030, "unknown": t2030})
		f.touch(map[string]time.Time{"k": t2030.Add(-time.Hour)}) // the later time stays
		got := f.getKey("k")
		if !got.LastUsedAt.Equal(t2030) {
			t.Errorf("last used %v, want %v", got.LastUsedAt, t2030)
		}
		// Usage is not a change of the record: no updated_at, no audit.
		if !got.UpdatedAt.Equal(k.UpdatedAt) {
			t.Errorf("updated_at %v, was %v", got.UpdatedAt, k.UpdatedAt)
		}
		if evs := f.events("acct"); evs[0].Action != "key.create" {
			t.Errorf("newest audit event %s, want key.create", evs[0].Action)
		}
		f.touch(map[string]time.Time{"k": t2031})
		if got := f.getKey("k"); !got.LastUsedAt.Equal(t2031) {
			t.Errorf("last used %v, want %v", got.LastUsedAt, t2031)
		}
	})
}

func testUpdateKey(t *testing.T, open func(t *testing.T) store.Accounts) {
	f := setup(t, open)
	cur := f.createKey(fullKey("k"))
	f.createKey(serviceKey("taken"))
	for _, tc := range []struct {
		name string
		u    store.KeyUpdate
	}{
		{"name", store.KeyUpdate{Name: new("k2")}},
		{"description", store.KeyUpdate{Description: new("new words")}},
		{"group", store.KeyUpdate{Group: new("dev")}},
		{"scope", store.KeyUpdate{Scope: new("sms-api")}},
		{"deactivate", store.KeyUpdate{Active: new(false)}},
		{"not before", store.KeyUpdate{NotBefore: new(t2030.Add(time.Hour))}},
		{"clear not before", store.KeyUpdate{NotBefore: new(time.Time{})}},
		{"clear expiry", store.KeyUpdate{ExpiresAt: new(time.Time{})}},
		{"expiry", store.KeyUpdate{ExpiresAt: new(t2100)}},
		{"ip filters", store.KeyUpdate{IPFilters: &[]string{"192.168.0.0/16"}}},
		{"clear ip filters", store.KeyUpdate{IPFilters: &[]string{}}},
		{"response headers", store.KeyUpdate{ResponseHeaders: &[]authz.HeaderSpec{{Name: "x-team", Value: "mail"}}}},
		{"clear response headers", store.KeyUpdate{ResponseHeaders: &[]authz.HeaderSpec{}}},
		{"several", store.KeyUpdate{Name: new("k3"), Active: new(true), Group: new("")}},
	} {
		got, err := f.s.UpdateKey(f.ctx, Actor, "acct", "k", tc.u)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := cur
		want.Spec = tc.u.Apply(cur.Spec)
		want = wantKey(want, cur.CreatedAt)
		want.UpdatedAt = got.UpdatedAt
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
		if !got.UpdatedAt.After(cur.UpdatedAt) {
			t.Errorf("%s: updated_at %v, not after %v", tc.name, got.UpdatedAt, cur.UpdatedAt)
		}
		if diff := cmp.Diff(got, f.getKey("k")); diff != "" {
			t.Errorf("%s: get differs from update (-updated +got):\n%s", tc.name, diff)
		}
		cur = got
	}
	// Nothing set: nothing changes, updated_at included.
	got, err := f.s.UpdateKey(f.ctx, Actor, "acct", "k", store.KeyUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cur, got); diff != "" {
		t.Errorf("empty update (-want +got):\n%s", diff)
	}
	// Refusals change nothing.
	for _, tc := range []struct {
		name   string
		id     string
		u      store.KeyUpdate
		target error
		parts  []string
	}{
		{"taken name", "k", store.KeyUpdate{Name: new("taken")}, store.ErrAlreadyExists, []string{`name "taken" already exists in this account`}},
		{"not before after expiry", "k", store.KeyUpdate{NotBefore: new(t2100.Add(time.Hour))}, store.ErrInvalid, []string{"not_before"}},
		{"bad scope", "k", store.KeyUpdate{Scope: new("a b:c:d:e")}, store.ErrInvalid, []string{"scope"}},
		{"reserved header", "k", store.KeyUpdate{ResponseHeaders: &[]authz.HeaderSpec{{Name: "x-api-key", Value: "v"}}}, store.ErrInvalid, []string{"x-api-key"}},
		{"unknown", "nope", store.KeyUpdate{Active: new(true)}, store.ErrNotFound, []string{`key "nope" not found`}},
		{"unknown, nothing set", "nope", store.KeyUpdate{}, store.ErrNotFound, []string{`key "nope" not found`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.s.UpdateKey(f.ctx, Actor, "acct", tc.id, tc.u)
			wantErr(t, err, tc.target, tc.parts...)
		})
	}
	if diff := cmp.Diff(cur, f.getKey("k")); diff != "" {
		t.Errorf("after refused updates (-want +got):\n%s", diff)
	}
}

func testRotateKey(t *testing.T, open func(t *testing.T) store.Accounts) {
	f := setup(t, open)
	cur := f.createKey(serviceKey("k"))
	f.createKey(serviceKey("taken"))
	for _, tc := range []struct {
		name      string
		secret    string
		grace     time.Time
		wantPrev  bool // the old hash stays, until grace
		wantTaken bool
	}{
		{"with grace", "s1", t2100, true, false},
		{"again with grace: the previous one goes", "s2", t2100.Add(time.Hour), true, false},
		{"no grace", "s3", time.Time{}, false, false},
		{"grace in the past", "s4", t2000, false, false},
		{"with grace once more", "s5", t2100, true, false},
	} {
		got, err := f.s.RotateKey(f.ctx, Actor, "acct", "k", Hash(tc.secret), tc.grace)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := cur
		want.Spec.Hash, want.Spec.PreviousHash, want.Spec.PreviousValidUntil = Hash(tc.secret), "", time.Time{}
		if tc.wantPrev {
			want.Spec.PreviousHash, want.Spec.PreviousValidUntil = cur.Spec.Hash, tc.grace
		}
		want.UpdatedAt = got.UpdatedAt
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
		if !got.UpdatedAt.After(cur.UpdatedAt) {
			t.Errorf("%s: updated_at %v, not after %v", tc.name, got.UpdatedAt, cur.UpdatedAt)
		}
		if diff := cmp.Diff(got, f.getKey("k")); diff != "" {
			t.Errorf("%s: get differs from rotate (-rotated +got):\n%s", tc.name, diff)
		}
		cur = got
	}
	for _, tc := range []struct {
		name   string
		id     string
		hash   string
		target error
		parts  []string
	}{
		{"the current hash", "k", cur.Spec.Hash, store.ErrInvalid, []string{"hash"}},
		{"another key's hash", "k", Hash("secret-taken"), store.ErrSecretInUse, []string{"hash is already in use"}},
		{"not a hash", "k", "secret", store.ErrInvalid, []string{"hash"}},
		{"unknown", "nope", Hash("s9"), store.ErrNotFound, []string{`key "nope" not found`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.s.RotateKey(f.ctx, Actor, "acct", tc.id, tc.hash, t2100)
			wantErr(t, err, tc.target, tc.parts...)
		})
	}
	if diff := cmp.Diff(cur, f.getKey("k")); diff != "" {
		t.Errorf("after refused rotations (-want +got):\n%s", diff)
	}
}

func testListKeys(t *testing.T, open func(t *testing.T) store.Accounts) {
	f := setup(t, open)
	if _, err := f.s.CreateApp(f.ctx, Actor, store.App{AccountID: "acct", ID: "app2", Name: "App Two", Active: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CreateTenant(f.ctx, Actor, store.Tenant{AccountID: "acct", ID: "ten2", Name: "Tenant Two", Active: true}); err != nil {
		t.Fatal(err)
	}
	key := func(k store.Key, change func(sp *authz.KeySpec)) {
		change(&k.Spec)
		f.createKey(k)
	}
	// Created in this order, which is the order of the lists.
	key(serviceKey("k1"), func(sp *authz.KeySpec) { sp.Group, sp.ExpiresAt = "prod", t2030 })
	key(serviceKey("k2"), func(sp *authz.KeySpec) { sp.TenantID, sp.Group, sp.Active = "ten2", "prod", false })
	key(serviceKey("k3"), func(sp *authz.KeySpec) { sp.AppID, sp.Group, sp.ExpiresAt = "app2", "dev", t2100 })
	key(appKey("k4"), func(sp *authz.KeySpec) { sp.AppID = "app2" })
	key(accountKey("k5"), func(sp *authz.KeySpec) { sp.Active = false })
	key(serviceKey("k6"), func(sp *authz.KeySpec) { sp.AccountID, sp.Hash = "other", Hash("other") })
	f.touch(map[string]time.Time{"k1": t2030.Add(-48 * time.Hour), "k3": t2030.Add(-time.Hour), "k6": t2000})

	for _, tc := range []struct {
		name string
		f    store.KeyFilter
		want []string
	}{
		{"none", store.KeyFilter{}, []string{"k1", "k2", "k3", "k4", "k5"}},
		{"app", store.KeyFilter{AppID: "app1"}, []string{"k1", "k2"}},
		{"app with an app key", store.KeyFilter{AppID: "app2"}, []string{"k3", "k4"}},
		{"tenant", store.KeyFilter{TenantID: "ten1"}, []string{"k1", "k3"}},
		{"group", store.KeyFilter{Group: "prod"}, []string{"k1", "k2"}},
		{"type service", store.KeyFilter{Type: authz.KeyTypeService}, []string{"k1", "k2", "k3"}},
		{"type app", store.KeyFilter{Type: authz.KeyTypeApp}, []string{"k4"}},
		{"type account", store.KeyFilter{Type: authz.KeyTypeAccount}, []string{"k5"}},
		{"active", store.KeyFilter{Active: new(true)}, []string{"k1", "k3", "k4"}},
		{"inactive", store.KeyFilter{Active: new(false)}, []string{"k2", "k5"}},
		{"expiring before", store.KeyFilter{ExpiringBefore: t2031}, []string{"k1"}},
		{"expiring before, strictly", store.KeyFilter{ExpiringBefore: t2030}, nil},
		{"expiring before, later", store.KeyFilter{ExpiringBefore: t2100.Add(time.Second)}, []string{"k1", "k3"}},
		{"unused since", store.KeyFilter{UnusedSince: t2030.Add(-24 * time.Hour)}, []string{"k1", "k2", "k4", "k5"}},
		{"unused since, strictly", store.KeyFilter{UnusedSince: t2030.Add(-48 * time.Hour)}, []string{"k2", "k4", "k5"}},
		{"combined", store.KeyFilter{AppID: "app1", Active: new(true)}, []string{"k1"}},
		{"combined, none", store.KeyFilter{TenantID: "ten2", Group: "dev"}, nil},
		{"unknown app", store.KeyFilter{AppID: "nope"}, nil},
		{"another account's app", store.KeyFilter{AppID: "app2", Type: authz.KeyTypeService, Group: "prod"}, nil},
		{"name", store.KeyFilter{Name: "k3"}, []string{"k3"}},
		{"name and a filter it fails", store.KeyFilter{Name: "k3", Group: "prod"}, nil},
		{"another account's name", store.KeyFilter{Name: "k6"}, nil},
		{"unknown name", store.KeyFilter{Name: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, next, err := f.s.ListKeys(f.ctx, "acct", tc.f, store.Page{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, k := range keys {
				ids = append(ids, k.Spec.ID)
			}
			if diff := cmp.Diff(tc.want, ids); diff != "" || next != "" {
				t.Errorf("next %q, ids (-want +got):\n%s", next, diff)
			}
			// Counted as listed.
			f.wantCount(t, tc.f, len(tc.want))
			// Listed keys are read like GetKey reads them.
			for _, k := range keys {
				if diff := cmp.Diff(f.getKey(k.Spec.ID), k); diff != "" {
					t.Errorf("%s listed unlike get (-get +list):\n%s", k.Spec.ID, diff)
				}
			}
		})
	}
	_, _, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{Type: authz.KeyType(42)}, store.Page{})
	wantErr(t, err, store.ErrInvalid, "type")
	keys, next, err := f.s.ListKeys(f.ctx, "nope", store.KeyFilter{}, store.Page{})
	if err != nil || len(keys) != 0 || next != "" {
		t.Errorf("unknown account: %d keys, next %q, %v", len(keys), next, err)
	}
}

// writesFrom reads, updates, rotates and deletes key id of account, and
// returns each call's error.
func writesFrom(f *fixture, account, id string) map[string]error {
	return map[string]error{
		"get": func() error { _, err := f.s.GetKey(f.ctx, account, id); return err }(),
		"update": func() error {
			_, err := f.s.UpdateKey(f.ctx, Actor, account, id, store.KeyUpdate{Active: new(false)})
			return err
		}(),
		"rotate": func() error {
			_, err := f.s.RotateKey(f.ctx, Actor, account, id, Hash("new"), time.Time{})
			return err
		}(),
		"delete": f.s.DeleteKey(f.ctx, Actor, account, id),
	}
}

// errorTexts is each error's text ("" for nil).
func errorTexts(errs map[string]error) map[string]string {
	out := make(map[string]string, len(errs))
	for name, err := range errs {
		if err != nil {
			out[name] = err.Error()
		} else {
			out[name] = ""
		}
	}
	return out
}

func testUpdateKeys(t *testing.T, open func(t *testing.T) store.Accounts) {
	f := setup(t, open)
	if _, err := f.s.CreateTenant(f.ctx, Actor, store.Tenant{AccountID: "acct", ID: "ten2", Name: "Tenant Two", Active: true}); err != nil {
		t.Fatal(err)
	}
	key := func(k store.Key, change func(sp *authz.KeySpec)) store.Key {
		change(&k.Spec)
		return f.createKey(k)
	}
	k1 := key(serviceKey("k1"), func(sp *authz.KeySpec) {})
	k2 := key(serviceKey("k2"), func(sp *authz.KeySpec) { sp.TenantID = "ten2" })
	k3 := key(serviceKey("k3"), func(sp *authz.KeySpec) { sp.Group = "dev" })
	other := key(serviceKey("k4"), func(sp *authz.KeySpec) { sp.AccountID, sp.Hash = "other", Hash("other-k4") })
	ids := func(keys []store.Key) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k.Spec.ID)
		}
		return out
	}

	t.Run("check sees the matches and its error changes nothing", func(t *testing.T) {
		var seen []string
		stop := errors.New("stop")
		_, err := f.s.UpdateKeys(f.ctx, Actor, "acct", store.KeyFilter{TenantID: "ten1"}, store.KeyUpdate{Active: new(false)},
			func(m []store.Key) error { seen = ids(m); return stop })
		if !errors.Is(err, stop) {
			t.Fatalf("err %v, want the check's", err)
		}
		if diff := cmp.Diff([]string{"k1", "k3"}, seen); diff != "" {
			t.Errorf("matched (-want +got):\n%s", diff)
		}
		for _, k := range []store.Key{k1, k3} {
			if diff := cmp.Diff(k, f.getKey(k.Spec.ID)); diff != "" {
				t.Errorf("%s changed by a refused update:\n%s", k.Spec.ID, diff)
			}
		}
	})

	before := len(f.events("acct"))
	got, err := f.s.UpdateKeys(f.ctx, Actor, "acct", store.KeyFilter{TenantID: "ten1"}, store.KeyUpdate{Active: new(false), Scope: new("sms-api")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"k1", "k3"}, ids(got)); diff != "" {
		t.Errorf("updated (-want +got):\n%s", diff)
	}
	for _, k := range got {
		if k.Spec.Active || k.Spec.Scope != "sms-api" || !k.UpdatedAt.After(k.CreatedAt) {
			t.Errorf("%s: active %v, scope %q, updated %v", k.Spec.ID, k.Spec.Active, k.Spec.Scope, k.UpdatedAt)
		}
		if diff := cmp.Diff(k, f.getKey(k.Spec.ID)); diff != "" {
			t.Errorf("%s: get differs from update:\n%s", k.Spec.ID, diff)
		}
	}
	if diff := cmp.Diff(k2, f.getKey("k2")); diff != "" {
		t.Errorf("k2 (another tenant) changed:\n%s", diff)
	}
	if k, err := f.s.GetKey(f.ctx, "other", "k4"); err != nil || !k.Spec.Active || k.Spec.Scope != other.Spec.Scope {
		t.Errorf("another account's key: %+v, %v", k.Spec, err)
	}
	evs := f.events("acct")
	var audited []string
	for _, ev := range evs[:len(evs)-before] {
		if ev.Action != "key.update" || ev.ObjectType != "key" || ev.Before == nil || ev.After == nil {
			t.Errorf("audit event %s %s %s: before %s after %s", ev.Action, ev.ObjectType, ev.ObjectID, ev.Before, ev.After)
		}
		audited = append(audited, ev.ObjectID)
	}
	if len(audited) != 2 || !strings.Contains(strings.Join(audited, " "), "k1") || !strings.Contains(strings.Join(audited, " "), "k3") {
		t.Errorf("audited %v, want k1 and k3 once each", audited)
	}

	// A key that would not compile refuses the whole change.
	_, err = f.s.UpdateKeys(f.ctx, Actor, "acct", store.KeyFilter{}, store.KeyUpdate{Scope: new("a b:c:d:e")}, nil)
	wantErr(t, err, store.ErrInvalid, "scope")
	if k := f.getKey("k2"); k.Spec.Scope != k2.Spec.Scope {
		t.Errorf("k2 scope %q after a refused change", k.Spec.Scope)
	}
	// Nothing matches: nothing changes.
	got, err = f.s.UpdateKeys(f.ctx, Actor, "acct", store.KeyFilter{Name: "nope"}, store.KeyUpdate{Active: new(false)}, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("no match: %v, %v", ids(got), err)
	}
	_ = k3
}
