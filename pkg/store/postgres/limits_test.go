package postgres_test

import (
	"testing"

	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
)

// TestCountsKeptByTriggers: the counts behind the quotas follow every
// writer, manual SQL included (multi-row inserts and deletes, cascades);
// a row cannot move to another account; deleting an account with
// everything in it leaves no error behind.
func TestCountsKeptByTriggers(t *testing.T) {
	e := newEnv(t)
	counts := func() (keys, apps, tenants int) {
		t.Helper()
		if err := e.pool.QueryRow(e.ctx, `SELECT keys, apps, tenants FROM account_limits WHERE account_id = 'acct'`).
			Scan(&keys, &apps, &tenants); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := func(what string, keys, apps, tenants int) {
		t.Helper()
		k, a, tn := counts()
		rows := [3]int{e.count(`SELECT count(*) FROM keys WHERE account_id = 'acct'`),
			e.count(`SELECT count(*) FROM apps WHERE account_id = 'acct'`),
			e.count(`SELECT count(*) FROM tenants WHERE account_id = 'acct'`)}
		if [3]int{k, a, tn} != [3]int{keys, apps, tenants} || rows != [3]int{keys, apps, tenants} {
			t.Fatalf("%s: counts %d/%d/%d, rows %v; want %d/%d/%d", what, k, a, tn, rows, keys, apps, tenants)
		}
	}
	want("start", 0, 1, 1)
	if err := e.exec(`INSERT INTO apps (account_id, id, name) VALUES ('acct', 'app2', 'Two'), ('acct', 'app3', 'Three')`); err != nil {
		t.Fatal(err)
	}
	for i, app := range []string{"app1", "app2", "app2", "app3"} {
		k := serviceKey("k" + string(rune('a'+i)))
		k.Spec.AppID = app
		e.mustCreateKey(k)
	}
	want("after inserts", 4, 3, 1)
	if err := e.exec(`DELETE FROM apps WHERE account_id = 'acct' AND id IN ('app2', 'app3')`); err != nil {
		t.Fatal(err)
	}
	want("after a two-app delete by SQL", 1, 1, 1)
	if err := e.exec(`DELETE FROM tenants WHERE account_id = 'acct'`); err != nil {
		t.Fatal(err)
	}
	want("after the tenant's cascade", 0, 1, 0)

	if _, err := e.store.CreateAccount(e.ctx, e.actor, store.Account{ID: "acct2", Name: "Two"}); err != nil {
		t.Fatal(err)
	}
	if err := e.exec(`UPDATE apps SET account_id = 'acct2' WHERE account_id = 'acct'`); err == nil {
		t.Fatal("an app moved to another account")
	}
	if err := e.exec(`DELETE FROM accounts WHERE id = 'acct'`); err != nil {
		t.Fatalf("deleting an account: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM account_limits WHERE account_id = 'acct'`); n != 0 {
		t.Fatalf("%d limits rows left for a deleted account", n)
	}
	l, err := e.store.AccountLimits(e.ctx, "acct2")
	if err != nil || l.Usage != (store.Usage{}) {
		t.Fatalf("AccountLimits(acct2) = %+v, %v", l, err)
	}
}

// TestServeDefaults: the store's Limits option is the default of every
// account without an override.
func TestServeDefaults(t *testing.T) {
	e := newEnv(t)
	st := postgres.New(e.ctx, e.pool, postgres.Options{Compile: reserved, Now: e.clock.Now, Limits: store.Limits{Apps: 1}})
	_, err := st.CreateApp(e.ctx, e.actor, store.App{AccountID: "acct", ID: "app2", Name: "Two", Active: true})
	wantErr(t, err, store.ErrQuotaExceeded, "max_apps = 1")
	l, err := st.AccountLimits(e.ctx, "acct")
	if err != nil || l.Effective.Apps != 1 || l.Effective.Keys != store.DefaultLimits.Keys {
		t.Fatalf("AccountLimits = %+v, %v", l, err)
	}
}
