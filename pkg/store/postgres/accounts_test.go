package postgres_test

import (
	"fmt"
	"testing"

	"github.com/keygate/keygate/pkg/store"
)

func TestAccounts(t *testing.T) {
	e := newEnv(t)
	a, err := e.store.CreateAccount(e.ctx, e.actor, store.Account{Name: "Generated"})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.ID) != 36 || a.CreatedAt.IsZero() {
		t.Fatalf("created %+v, want a UUID and a creation time", a)
	}
	got, err := e.store.GetAccount(e.ctx, a.ID)
	if err != nil || got != a {
		t.Fatalf("GetAccount = %+v, %v; want %+v", got, err, a)
	}
	_, err = e.store.CreateAccount(e.ctx, e.actor, store.Account{ID: "acct", Name: "Again"})
	wantErr(t, err, store.ErrAlreadyExists, `account "acct" already exists`)
	_, err = e.store.CreateAccount(e.ctx, e.actor, store.Account{ID: "x"})
	wantErr(t, err, store.ErrInvalid, "name")
	_, err = e.store.GetAccount(e.ctx, "nope")
	wantErr(t, err, store.ErrNotFound, `account "nope" not found`)
}

// parentAPI is the app or the tenant half of store.Accounts, to test both
// with one table.
type parentAPI struct {
	name   string
	create func(e *env, a store.App) (store.App, error)
	get    func(e *env, id string) (store.App, error)
	list   func(e *env, p store.Page) ([]store.App, string, error)
	update func(e *env, id string, u store.AppUpdate) (store.App, error)
	del    func(e *env, id string) error
}

var parentAPIs = []parentAPI{
	{
		name:   "app",
		create: func(e *env, a store.App) (store.App, error) { return e.store.CreateApp(e.ctx, e.actor, a) },
		get:    func(e *env, id string) (store.App, error) { return e.store.GetApp(e.ctx, "acct", id) },
		list:   func(e *env, p store.Page) ([]store.App, string, error) { return e.store.ListApps(e.ctx, "acct", p) },
		update: func(e *env, id string, u store.AppUpdate) (store.App, error) {
			return e.store.UpdateApp(e.ctx, e.actor, "acct", id, u)
		},
		del: func(e *env, id string) error { return e.store.DeleteApp(e.ctx, e.actor, "acct", id, false) },
	},
	{
		name: "tenant",
		create: func(e *env, a store.App) (store.App, error) {
			t, err := e.store.CreateTenant(e.ctx, e.actor, store.Tenant(a))
			return store.App(t), err
		},
		get: func(e *env, id string) (store.App, error) {
			t, err := e.store.GetTenant(e.ctx, "acct", id)
			return store.App(t), err
		},
		list: func(e *env, p store.Page) ([]store.App, string, error) {
			ts, next, err := e.store.ListTenants(e.ctx, "acct", p)
			as := make([]store.App, len(ts))
			for i, t := range ts {
				as[i] = store.App(t)
			}
			return as, next, err
		},
		update: func(e *env, id string, u store.AppUpdate) (store.App, error) {
			t, err := e.store.UpdateTenant(e.ctx, e.actor, "acct", id, u)
			return store.App(t), err
		},
		del: func(e *env, id string) error { return e.store.DeleteTenant(e.ctx, e.actor, "acct", id, false) },
	},
}

func TestAppsAndTenants(t *testing.T) {
	for _, api := range parentAPIs {
		t.Run(api.name, func(t *testing.T) {
			e := newEnv(t)
			created, err := api.create(e, store.App{AccountID: "acct", Name: "Billing", Description: "bills", Active: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(created.ID) != 36 || !created.Active || created.Description != "bills" || created.CreatedAt.IsZero() {
				t.Fatalf("created %+v", created)
			}
			if got, err := api.get(e, created.ID); err != nil || got != created {
				t.Fatalf("get = %+v, %v; want %+v", got, err, created)
			}

			// Errors.
			_, err = api.create(e, store.App{AccountID: "acct", Name: "Billing"})
			wantErr(t, err, store.ErrAlreadyExists, `name "Billing" already exists in this account`)
			_, err = api.create(e, store.App{AccountID: "acct", ID: created.ID, Name: "Other"})
			wantErr(t, err, store.ErrAlreadyExists, api.name+" id", created.ID)
			_, err = api.create(e, store.App{AccountID: "nope", Name: "X"})
			wantErr(t, err, store.ErrNotFound, `account "nope" not found`)
			_, err = api.get(e, "nope")
			wantErr(t, err, store.ErrNotFound, api.name+` "nope" not found`)
			_, err = api.update(e, "nope", store.AppUpdate{Description: new("x")})
			wantErr(t, err, store.ErrNotFound, `"nope"`)
			wantErr(t, api.del(e, "nope"), store.ErrNotFound, `"nope"`)

			// Only the fields set change.
			upd, err := api.update(e, created.ID, store.AppUpdate{Description: new("new words")})
			if err != nil {
				t.Fatal(err)
			}
			if upd.Name != "Billing" || !upd.Active || upd.Description != "new words" || !upd.UpdatedAt.After(created.UpdatedAt) || !upd.CreatedAt.Equal(created.CreatedAt) {
				t.Fatalf("after a description update: %+v", upd)
			}
			upd, err = api.update(e, created.ID, store.AppUpdate{Active: new(false), Name: new("Billing 2")})
			if err != nil {
				t.Fatal(err)
			}
			if upd.Name != "Billing 2" || upd.Active || upd.Description != "new words" {
				t.Fatalf("after a name+active update: %+v", upd)
			}
			same, err := api.update(e, created.ID, store.AppUpdate{})
			if err != nil || same != upd {
				t.Fatalf("empty update = %+v, %v; want unchanged %+v", same, err, upd)
			}
			other, err := api.create(e, store.App{AccountID: "acct", Name: "Other", Active: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = api.update(e, other.ID, store.AppUpdate{Name: new("Billing 2")})
			wantErr(t, err, store.ErrAlreadyExists, `name "Billing 2" already exists in this account`)
			_, err = api.update(e, other.ID, store.AppUpdate{Name: new("")})
			wantErr(t, err, store.ErrInvalid, "name")

			// Delete, then it is gone.
			if err := api.del(e, other.ID); err != nil {
				t.Fatal(err)
			}
			_, err = api.get(e, other.ID)
			wantErr(t, err, store.ErrNotFound)

			// Audit trail.
			var actions []string
			for _, ev := range e.auditEvents() {
				if ev.ObjectType == api.name {
					actions = append(actions, ev.Action)
					if ev.Actor != e.actor {
						t.Errorf("%s: actor %+v", ev.Action, ev.Actor)
					}
				}
			}
			want := []string{api.name + ".create", api.name + ".create", api.name + ".update", api.name + ".update", api.name + ".create", api.name + ".delete"}
			if fmt.Sprint(actions) != fmt.Sprint(want) {
				t.Fatalf("audit actions %v, want %v", actions, want)
			}
		})
	}
}

func TestListAppsPages(t *testing.T) {
	for _, api := range parentAPIs {
		t.Run(api.name, func(t *testing.T) {
			e := newEnv(t)
			// app1/ten1 exist already; add 6 more.
			for i := range 6 {
				if _, err := api.create(e, store.App{AccountID: "acct", ID: fmt.Sprintf("p%d", i), Name: fmt.Sprintf("P%d", i), Active: true}); err != nil {
					t.Fatal(err)
				}
			}
			var ids []string
			tok, pages := "", 0
			for {
				page, next, err := api.list(e, store.Page{Size: 3, Token: tok})
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, a := range page {
					ids = append(ids, a.ID)
				}
				if next == "" {
					break
				}
				tok = next
			}
			first := map[string]string{"app": "app1", "tenant": "ten1"}[api.name]
			want := fmt.Sprint([]string{first, "p0", "p1", "p2", "p3", "p4", "p5"})
			if fmt.Sprint(ids) != want || pages != 3 {
				t.Fatalf("pages of 3: %v in %d pages, want %s in 3", ids, pages, want)
			}
			all, next, err := api.list(e, store.Page{})
			if err != nil || len(all) != 7 || next != "" {
				t.Fatalf("default page: %d items, next %q, %v", len(all), next, err)
			}
			_, _, err = api.list(e, store.Page{Token: "garbage!"})
			wantErr(t, err, store.ErrInvalid, "page_token")
		})
	}
}
