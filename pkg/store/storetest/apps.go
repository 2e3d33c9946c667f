package storetest

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/store"
)

func testAccounts(t *testing.T, open func(t *testing.T) store.Accounts) {
	t.Run("create and get", func(t *testing.T) {
		f := setup(t, open)
		a, err := f.s.CreateAccount(f.ctx, Actor, store.Account{ID: "chosen", Name: "Chosen"})
		if err != nil {
			t.Fatal(err)
		}
		if a.ID != "chosen" || a.Name != "Chosen" {
			t.Fatalf("created %+v", a)
		}
		wantTime(t, "created_at", a.CreatedAt)
		got, err := f.s.GetAccount(f.ctx, "chosen")
		if err != nil || got != a {
			t.Fatalf("GetAccount = %+v, %v; want %+v", got, err, a)
		}
	})
	t.Run("generated ids", func(t *testing.T) {
		f := setup(t, open)
		a, err := f.s.CreateAccount(f.ctx, Actor, store.Account{Name: "One"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.s.CreateAccount(f.ctx, Actor, store.Account{Name: "One"}) // names of accounts may repeat
		if err != nil {
			t.Fatal(err)
		}
		wantUUID(t, "account", a.ID)
		if a.ID == b.ID {
			t.Fatalf("two accounts got id %q", a.ID)
		}
		if got, err := f.s.GetAccount(f.ctx, a.ID); err != nil || got != a {
			t.Fatalf("GetAccount = %+v, %v; want %+v", got, err, a)
		}
	})
	t.Run("errors", func(t *testing.T) {
		f := setup(t, open)
		_, err := f.s.CreateAccount(f.ctx, Actor, store.Account{ID: "acct", Name: "Again"})
		wantErr(t, err, store.ErrAlreadyExists, `account "acct" already exists`)
		_, err = f.s.GetAccount(f.ctx, "nope")
		wantErr(t, err, store.ErrNotFound, `account "nope" not found`)
		for _, tc := range []struct {
			name string
			a    store.Account
			want string
		}{
			{"no name", store.Account{ID: "x"}, "name"},
			{"name with surrounding spaces", store.Account{ID: "x", Name: " X "}, "name"},
			{"name with a control character", store.Account{ID: "x", Name: "a\nb"}, "name"},
			{"id with a space", store.Account{ID: "x y", Name: "X"}, "id"},
		} {
			_, err := f.s.CreateAccount(f.ctx, Actor, tc.a)
			if err == nil {
				t.Errorf("%s: created", tc.name)
				continue
			}
			wantErr(t, err, store.ErrInvalid, tc.want)
		}
		if _, err := f.s.GetAccount(f.ctx, "x"); err == nil {
			t.Error("a refused account was stored")
		}
	})
}

// parentAPI is the app or the tenant half of store.Accounts (same shape,
// same contract), to test both with one table.
type parentAPI struct {
	kind   string
	first  string // the fixture's: app1 or ten1
	create func(f *fixture, a store.App) (store.App, error)
	get    func(f *fixture, account, id string) (store.App, error)
	list   func(f *fixture, account string, p store.Page) ([]store.App, string, error)
	update func(f *fixture, account, id string, u store.AppUpdate) (store.App, error)
	del    func(f *fixture, account, id string, cascade bool) error
	// key is a key of acct owned by the parent with this id.
	key func(name, id string) store.Key
}

// withKeys creates the parent id in acct with a key of each id.
func (api parentAPI) withKeys(f *fixture, id string, keys ...string) {
	f.t.Helper()
	if _, err := api.create(f, store.App{AccountID: "acct", ID: id, Name: "Parent " + id, Active: true}); err != nil {
		f.t.Fatal(err)
	}
	for _, k := range keys {
		f.createKey(api.key(k, id))
	}
}

var parentAPIs = []parentAPI{
	{
		kind:   "app",
		first:  "app1",
		create: func(f *fixture, a store.App) (store.App, error) { return f.s.CreateApp(f.ctx, Actor, a) },
		get:    func(f *fixture, acct, id string) (store.App, error) { return f.s.GetApp(f.ctx, acct, id) },
		list: func(f *fixture, acct string, p store.Page) ([]store.App, string, error) {
			return f.s.ListApps(f.ctx, acct, p)
		},
		update: func(f *fixture, acct, id string, u store.AppUpdate) (store.App, error) {
			return f.s.UpdateApp(f.ctx, Actor, acct, id, u)
		},
		del: func(f *fixture, acct, id string, cascade bool) error {
			return f.s.DeleteApp(f.ctx, Actor, acct, id, cascade)
		},
		key: func(name, id string) store.Key {
			k := appKey(name)
			k.Spec.AppID = id
			return k
		},
	},
	{
		kind:  "tenant",
		first: "ten1",
		create: func(f *fixture, a store.App) (store.App, error) {
			t, err := f.s.CreateTenant(f.ctx, Actor, store.Tenant(a))
			return store.App(t), err
		},
		get: func(f *fixture, acct, id string) (store.App, error) {
			t, err := f.s.GetTenant(f.ctx, acct, id)
			return store.App(t), err
		},
		list: func(f *fixture, acct string, p store.Page) ([]store.App, string, error) {
			ts, next, err := f.s.ListTenants(f.ctx, acct, p)
			var as []store.App
			for _, t := range ts {
				as = append(as, store.App(t))
			}
			return as, next, err
		},
		update: func(f *fixture, acct, id string, u store.AppUpdate) (store.App, error) {
			t, err := f.s.UpdateTenant(f.ctx, Actor, acct, id, u)
			return store.App(t), err
		},
		del: func(f *fixture, acct, id string, cascade bool) error {
			return f.s.DeleteTenant(f.ctx, Actor, acct, id, cascade)
		},
		key: func(name, id string) store.Key {
			k := serviceKey(name)
			k.Spec.TenantID = id
			return k
		},
	},
}

func testParents(t *testing.T, open func(t *testing.T) store.Accounts) {
	for _, api := range parentAPIs {
		t.Run(api.kind, func(t *testing.T) { testParent(t, open, api) })
	}
}

func testParent(t *testing.T, open func(t *testing.T) store.Accounts, api parentAPI) {
	t.Run("create and get", func(t *testing.T) {
		f := setup(t, open)
		for _, in := range []store.App{
			{AccountID: "acct", ID: "chosen", Name: "Chosen", Description: "words", Active: true},
			{AccountID: "acct", ID: "off", Name: "Off"}, // Active false stays false
			{AccountID: "acct", Name: "Generated", Active: true},
		} {
			got, err := api.create(f, in)
			if err != nil {
				t.Fatalf("create %+v: %v", in, err)
			}
			if in.ID == "" {
				wantUUID(t, api.kind, got.ID)
			}
			want := in
			want.ID, want.CreatedAt, want.UpdatedAt = got.ID, got.CreatedAt, got.CreatedAt
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("created (-want +got):\n%s", diff)
			}
			wantTime(t, "created_at", got.CreatedAt)
			read, err := api.get(f, "acct", got.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, read); diff != "" {
				t.Errorf("get differs from create (-created +got):\n%s", diff)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		f := setup(t, open)
		errs := []struct {
			name   string
			do     func() error
			target error
			parts  []string
		}{
			{"duplicate id", func() error {
				_, err := api.create(f, store.App{AccountID: "acct", ID: api.first, Name: "Other"})
				return err
			}, store.ErrAlreadyExists, []string{api.kind + ` id "` + api.first + `" already exists`}},
			{"duplicate name", func() error {
				_, err := api.create(f, store.App{AccountID: "acct", ID: "x", Name: map[string]string{"app": "App One", "tenant": "Tenant One"}[api.kind]})
				return err
			}, store.ErrAlreadyExists, []string{`already exists in this account`}},
			{"unknown account", func() error {
				_, err := api.create(f, store.App{AccountID: "nope", ID: "x", Name: "X"})
				return err
			}, store.ErrNotFound, []string{`account "nope" not found`}},
			{"no name", func() error {
				_, err := api.create(f, store.App{AccountID: "acct", ID: "x"})
				return err
			}, store.ErrInvalid, []string{"name"}},
			{"id with a space", func() error {
				_, err := api.create(f, store.App{AccountID: "acct", ID: "x y", Name: "X"})
				return err
			}, store.ErrInvalid, []string{"id"}},
			{"get unknown", func() error {
				_, err := api.get(f, "acct", "nope")
				return err
			}, store.ErrNotFound, []string{api.kind + ` "nope" not found`}},
			{"get from an unknown account", func() error {
				_, err := api.get(f, "nope", "app1")
				return err
			}, store.ErrNotFound, []string{`not found`}},
			{"update unknown", func() error {
				_, err := api.update(f, "acct", "nope", store.AppUpdate{Description: new("x")})
				return err
			}, store.ErrNotFound, []string{api.kind + ` "nope" not found`}},
			{"empty update of unknown", func() error {
				_, err := api.update(f, "acct", "nope", store.AppUpdate{})
				return err
			}, store.ErrNotFound, []string{api.kind + ` "nope" not found`}},
			{"update to a taken name", func() error {
				if _, err := api.create(f, store.App{AccountID: "acct", ID: "second", Name: "Second"}); err != nil {
					return err
				}
				_, err := api.update(f, "acct", "second", store.AppUpdate{Name: new(map[string]string{"app": "App One", "tenant": "Tenant One"}[api.kind])})
				return err
			}, store.ErrAlreadyExists, []string{`already exists in this account`}},
			{"update to an invalid name", func() error {
				_, err := api.update(f, "acct", api.first, store.AppUpdate{Name: new("")})
				return err
			}, store.ErrInvalid, []string{"name"}},
			{"delete unknown", func() error { return api.del(f, "acct", "nope", false) }, store.ErrNotFound, []string{api.kind + ` "nope" not found`}},
		}
		for _, tc := range errs {
			t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.do(), tc.target, tc.parts...) })
		}
		// Nothing refused was written.
		got, err := api.get(f, "acct", api.first)
		if err != nil || got.Description != "" {
			t.Fatalf("after refused writes: %+v, %v", got, err)
		}
		if _, err := api.get(f, "acct", "x"); err == nil {
			t.Error("a refused create was stored")
		}
	})
	t.Run("accounts are isolated", func(t *testing.T) {
		f := setup(t, open)
		// Ids and names may repeat across accounts (the fixture made both).
		mine, err := api.create(f, store.App{AccountID: "acct", ID: "mine", Name: "Mine", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := api.get(f, "other", "mine"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get from another account: %v", err)
		}
		if _, err := api.update(f, "other", "mine", store.AppUpdate{Active: new(false)}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("update from another account: %v", err)
		}
		if err := api.del(f, "other", "mine", true); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete from another account: %v", err)
		}
		if got, err := api.get(f, "acct", "mine"); err != nil || got != mine {
			t.Errorf("after another account's writes: %+v, %v", got, err)
		}
		// Deleting acct's app1/ten1 leaves other's.
		if err := api.del(f, "acct", api.first, true); err != nil {
			t.Fatal(err)
		}
		if _, err := api.get(f, "other", api.first); err != nil {
			t.Errorf("another account's %s: %v", api.kind, err)
		}
		list, _, err := api.list(f, "other", store.Page{})
		if err != nil || len(list) != 1 || list[0].AccountID != "other" {
			t.Errorf("other's list: %+v, %v", list, err)
		}
	})
	t.Run("update", func(t *testing.T) {
		f := setup(t, open)
		cur, err := api.create(f, store.App{AccountID: "acct", ID: "p", Name: "P", Description: "words", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			u    store.AppUpdate
		}{
			{"name", store.AppUpdate{Name: new("P2")}},
			{"description", store.AppUpdate{Description: new("other words")}},
			{"clear description", store.AppUpdate{Description: new("")}},
			{"deactivate", store.AppUpdate{Active: new(false)}},
			{"all", store.AppUpdate{Name: new("P3"), Description: new("more"), Active: new(true)}},
			{"same values", store.AppUpdate{Name: new("P3")}},
		} {
			got, err := api.update(f, "acct", "p", tc.u)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			want := tc.u.Apply(cur)
			want.UpdatedAt = got.UpdatedAt
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.name, diff)
			}
			if !got.UpdatedAt.After(cur.UpdatedAt) {
				t.Errorf("%s: updated_at %v, not after %v", tc.name, got.UpdatedAt, cur.UpdatedAt)
			}
			if read, err := api.get(f, "acct", "p"); err != nil || read != got {
				t.Errorf("%s: get = %+v, %v; want %+v", tc.name, read, err, got)
			}
			cur = got
		}
		// An update that sets nothing changes nothing, updated_at included.
		got, err := api.update(f, "acct", "p", store.AppUpdate{})
		if err != nil || got != cur {
			t.Errorf("empty update = %+v, %v; want %+v", got, err, cur)
		}
	})
	t.Run("delete refused while it has keys", func(t *testing.T) {
		f := setup(t, open)
		api.withKeys(f, "kept", "k1", "k2")
		before := f.events("acct")
		err := api.del(f, "acct", "kept", false)
		var hk *store.HasKeysError
		if !errors.As(err, &hk) || !errors.Is(err, store.ErrHasKeys) {
			t.Fatalf("delete without cascade: %v, want a *HasKeysError", err)
		}
		if *hk != (store.HasKeysError{Object: api.kind, ID: "kept", Keys: 2}) {
			t.Errorf("refusal = %+v", *hk)
		}
		if _, err := api.get(f, "acct", "kept"); err != nil {
			t.Errorf("the %s after a refused delete: %v", api.kind, err)
		}
		for _, id := range []string{"k1", "k2"} {
			f.getKey(id)
		}
		if got := f.events("acct"); len(got) != len(before) {
			t.Errorf("a refused delete wrote %d audit events", len(got)-len(before))
		}
		// Without keys, no cascade is needed.
		for _, id := range []string{"k1", "k2"} {
			if err := f.s.DeleteKey(f.ctx, Actor, "acct", id); err != nil {
				t.Fatal(err)
			}
		}
		if err := api.del(f, "acct", "kept", false); err != nil {
			t.Errorf("delete without keys: %v", err)
		}
	})
	t.Run("delete with cascade takes its keys", func(t *testing.T) {
		f := setup(t, open)
		api.withKeys(f, "doomed", "gone-1", "gone-2")
		f.createKey(api.key("kept", api.first))
		f.createKey(accountKey("account-key"))
		if err := api.del(f, "acct", "doomed", true); err != nil {
			t.Fatal(err)
		}
		if _, err := api.get(f, "acct", "doomed"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get after delete: %v", err)
		}
		if err := api.del(f, "acct", "doomed", true); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
		for _, id := range []string{"gone-1", "gone-2"} {
			if _, err := f.s.GetKey(f.ctx, "acct", id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("key %s of the deleted %s: %v", id, api.kind, err)
			}
		}
		keys, _, err := f.s.ListKeys(f.ctx, "acct", store.KeyFilter{}, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.Spec.ID)
		}
		if diff := cmp.Diff([]string{"kept", "account-key"}, ids); diff != "" {
			t.Errorf("keys left (-want +got):\n%s", diff)
		}
		// The id and name are free again.
		if _, err := api.create(f, store.App{AccountID: "acct", ID: "doomed", Name: "Parent doomed"}); err != nil {
			t.Errorf("create again: %v", err)
		}
	})
	t.Run("renaming reaches its keys", func(t *testing.T) {
		f := setup(t, open)
		k := f.createKey(api.key("k", api.first))
		if _, err := api.update(f, "acct", api.first, store.AppUpdate{Name: new("Renamed"), Active: new(false)}); err != nil {
			t.Fatal(err)
		}
		got := f.getKey("k")
		name := map[string]string{"app": got.Spec.AppName, "tenant": got.Spec.TenantName}[api.kind]
		if name != "Renamed" {
			t.Errorf("the key's %s name is %q, want Renamed", api.kind, name)
		}
		// The key's own record is untouched: its active flag and updated_at.
		if !got.Spec.Active || !got.UpdatedAt.Equal(k.UpdatedAt) {
			t.Errorf("key after its %s changed: active %v, updated_at %v (was %v)", api.kind, got.Spec.Active, got.UpdatedAt, k.UpdatedAt)
		}
	})
}
