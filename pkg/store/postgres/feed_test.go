// The change feed (store.Source.ChangesSince): what each write records,
// in commit order, parent changes as one row that reaches their keys,
// and pruning. The listener is tested in listen_test.go, the other reads
// in source_test.go.

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
)

func (e *env) changes(after int64) []store.Change {
	e.t.Helper()
	cs, err := e.store.ChangesSince(e.ctx, after, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

func (e *env) lastSeq() int64 {
	e.t.Helper()
	var seq int64
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(max(seq), 0) FROM key_changes`).Scan(&seq); err != nil {
		e.t.Fatal(err)
	}
	return seq
}

func TestChangeFeedRecordsKeyWrites(t *testing.T) {
	e := newEnv(t)
	k := e.mustCreateKey(serviceKey("k"))
	id := k.Spec.ID
	cs := e.changes(0)
	if len(cs) != 1 || cs[0].ID != id || len(cs[0].OldDigest) != 0 {
		t.Fatalf("after create: %+v", cs)
	}
	seq := cs[0].Seq

	if _, err := e.store.RotateKey(e.ctx, e.actor, "acct", id, hashOf("new"), e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cs = e.changes(seq)
	if len(cs) != 1 || cs[0].ID != id || !slices.Equal(cs[0].OldDigest, []apikey.Digest{digestOf("secret-k")}) {
		t.Fatalf("after rotate: %+v", cs)
	}
	seq = cs[0].Seq
	if err := e.store.DeleteKey(e.ctx, e.actor, "acct", id); err != nil {
		t.Fatal(err)
	}
	cs = e.changes(seq)
	if len(cs) != 1 || cs[0].ID != id || !slices.Equal(cs[0].OldDigest, []apikey.Digest{digestOf("new"), digestOf("secret-k")}) {
		t.Fatalf("after delete: %+v", cs)
	}

	// Last-used times never reach the feed.
	k2 := e.mustCreateKey(serviceKey("k2"))
	seq = e.lastSeq()
	if err := e.store.TouchKeys(e.ctx, acctRefs(map[string]time.Time{k2.Spec.ID: time.Now()})); err != nil {
		t.Fatal(err)
	}
	// Nor does a write that changes nothing.
	if err := e.exec(`UPDATE keys SET active = active`); err != nil {
		t.Fatal(err)
	}
	if cs := e.changes(seq); len(cs) != 0 {
		t.Fatalf("touch and no-op update made changes: %+v", cs)
	}
	// Manual SQL feeds it like the store does.
	if err := e.exec(`UPDATE keys SET scope = 'other-api' WHERE id = $1`, k2.Spec.ID); err != nil {
		t.Fatal(err)
	}
	if cs := e.changes(seq); len(cs) != 1 || cs[0].ID != k2.Spec.ID {
		t.Fatalf("manual update: %+v", cs)
	}
	// Limits are honoured, in order.
	for _, n := range []string{"x1", "x2", "x3"} {
		e.mustCreateKey(serviceKey(n))
	}
	cs, err := e.store.ChangesSince(e.ctx, 0, 2)
	if err != nil || len(cs) != 2 || cs[0].Seq >= cs[1].Seq {
		t.Fatalf("limit 2: %+v, %v", cs, err)
	}
}

func TestAppDeactivationReachesItsKeys(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.CreateApp(e.ctx, e.actor, store.App{AccountID: "acct", ID: "app2", Name: "App Two", Active: true}); err != nil {
		t.Fatal(err)
	}
	a := e.mustCreateKey(serviceKey("a"))
	b := e.mustCreateKey(store.Key{Spec: authz.KeySpec{AccountID: "acct", Name: "b", Type: authz.KeyTypeApp, AppID: "app1", Hash: hashOf("secret-b"), Active: true}})
	other := serviceKey("other")
	other.Spec.AppID = "app2"
	e.mustCreateKey(other)
	seq := e.lastSeq()

	if _, err := e.store.UpdateApp(e.ctx, e.actor, "acct", "app1", store.AppUpdate{Description: new("no feed")}); err != nil {
		t.Fatal(err)
	}
	if cs := e.changes(seq); len(cs) != 0 {
		t.Fatalf("a description change fed %+v", cs)
	}
	if _, err := e.store.UpdateApp(e.ctx, e.actor, "acct", "app1", store.AppUpdate{Active: new(false)}); err != nil {
		t.Fatal(err)
	}
	// One change names the app, whatever its number of keys (SPEC §10),
	// and marks it as one that may revoke.
	cs := e.changes(seq)
	if len(cs) != 1 || cs[0].Kind != store.ChangeApp || cs[0].AccountID != "acct" || cs[0].ID != "app1" ||
		!cs[0].Revokes || len(cs[0].OldDigest) != 0 {
		t.Fatalf("changes after deactivating app1: %+v", cs)
	}
	keys, err := e.store.LookupKeysOfParent(e.ctx, "acct", store.ChangeApp, "app1")
	if err != nil || len(keys) != 2 || keys[0].Spec.Active || keys[1].Spec.Active {
		t.Fatalf("LookupKeysOfParent(app1): %+v, %v", keys, err)
	}
	if ids := []string{keys[0].Spec.ID, keys[1].Spec.ID}; !slices.Contains(ids, a.Spec.ID) || !slices.Contains(ids, b.Spec.ID) {
		t.Fatalf("LookupKeysOfParent(app1): %v, want %s and %s", ids, a.Spec.ID, b.Spec.ID)
	}
	k, err := e.store.LookupKey(e.ctx, digestOf("secret-a"))
	if err != nil || k.Spec.Active || k.Spec.AppName != "App One" || k.Status(time.Now()) != authz.InactiveKey {
		t.Fatalf("LookupKey after deactivation: %+v, %v", k, err)
	}
	// The Account API still shows the key's own flag.
	if ak, _ := e.store.GetKey(e.ctx, "acct", a.Spec.ID); !ak.Spec.Active {
		t.Fatal("GetKey reports the app's flag as the key's")
	}
	if k, _ := e.store.LookupKey(e.ctx, digestOf("secret-other")); !k.Spec.Active {
		t.Fatal("a key of another app went inactive")
	}

	// Tenants: renaming changes the compiled record (${tenant.name}).
	seq = e.lastSeq()
	if _, err := e.store.UpdateTenant(e.ctx, e.actor, "acct", "ten1", store.AppUpdate{Name: new("Renamed")}); err != nil {
		t.Fatal(err)
	}
	cs = e.changes(seq)
	if len(cs) != 1 || cs[0].Kind != store.ChangeTenant || cs[0].ID != "ten1" || cs[0].Revokes {
		t.Fatalf("changes after renaming ten1: %+v", cs)
	}
	k, err = e.store.LookupKeyByID(e.ctx, "acct", a.Spec.ID)
	if err != nil || k.Spec.TenantName != "Renamed" {
		t.Fatalf("LookupKeyByID: %+v, %v", k, err)
	}

	// Deleting an app: its keys' deletions reach the feed by cascade.
	seq = e.lastSeq()
	if err := e.store.DeleteApp(e.ctx, e.actor, "acct", "app1", true); err != nil {
		t.Fatal(err)
	}
	cs = e.changes(seq)
	if len(cs) != 2 {
		t.Fatalf("changes after deleting app1: %+v", cs)
	}
	if _, err := e.store.LookupKey(e.ctx, digestOf("secret-a")); !errors.Is(err, authz.ErrKeyNotFound) {
		t.Fatalf("key of a deleted app: %v", err)
	}
}

// TestFeedCommitOrder shows why a watermark is safe: a writer that drew a
// sequence number holds the feed lock until it commits, so a second writer
// cannot commit a higher seq first.
func TestFeedCommitOrder(t *testing.T) {
	e := newEnv(t)
	txA, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback(context.Background())
	if _, err := txA.Exec(e.ctx, `INSERT INTO keys (account_id, id, name, type, hash) VALUES ('acct', 'ka', 'ka', 'account', $1)`, hashOf("a")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.pool.Exec(e.ctx, `INSERT INTO keys (account_id, id, name, type, hash) VALUES ('acct', 'kb', 'kb', 'account', $1)`, hashOf("b"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("writer B committed while A holds an uncommitted seq (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	// Meanwhile a reader sees neither.
	if cs := e.changes(0); len(cs) != 0 {
		t.Fatalf("reader sees %+v", cs)
	}
	if err := txA.Commit(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cs := e.changes(0)
	if len(cs) != 2 || cs[0].ID != "ka" || cs[1].ID != "kb" {
		t.Fatalf("changes %+v, want ka then kb", cs)
	}
}

func TestChangesPruned(t *testing.T) {
	e := newEnv(t)
	e.mustCreateKey(serviceKey("old"))
	old := e.lastSeq()
	// Age the feed and jump to just below a multiple of 1000, where the
	// next writer prunes.
	if err := e.exec(`UPDATE key_changes SET at = now() - interval '2 days'`); err != nil {
		t.Fatal(err)
	}
	if err := e.exec(`SELECT setval(pg_get_serial_sequence('key_changes', 'seq'), 999)`); err != nil {
		t.Fatal(err)
	}
	e.mustCreateKey(serviceKey("new"))
	if n := e.count(`SELECT count(*) FROM key_changes WHERE seq <= $1`, old); n != 0 {
		t.Fatalf("%d old changes kept", n)
	}
	if _, err := e.store.ChangesSince(e.ctx, old-1, 100); !errors.Is(err, postgres.ErrChangesPruned) {
		t.Fatalf("ChangesSince before the pruned range: %v", err)
	}
	cs, err := e.store.ChangesSince(e.ctx, old, 100)
	if err != nil || len(cs) != 1 || cs[0].Seq != 1000 {
		t.Fatalf("ChangesSince after the pruned range: %+v, %v", cs, err)
	}
	// LoadAll's seq is always past the pruned range.
	seq, err := e.store.LoadAll(e.ctx, func(*authz.Key) error { return nil })
	if err != nil || seq != 1000 {
		t.Fatalf("LoadAll seq %d, %v", seq, err)
	}
}

// insertAppKeys adds n app keys to acct/appID in one statement (the
// Account API would take a while): ids and names "<appID>-<i>".
func (e *env) insertAppKeys(appID string, n int) {
	e.t.Helper()
	if err := e.exec(`INSERT INTO keys (account_id, id, name, type, app_id, hash)
		SELECT 'acct', $1 || '-' || i, $1 || '-' || i, 'app', $1,
			'sha256:' || encode(sha256(convert_to($1 || '-secret-' || i, 'UTF8')), 'hex')
		FROM generate_series(1, $2) AS i`, appID, n); err != nil {
		e.t.Fatal(err)
	}
}

// TestParentChangeIsOneRow: renaming or (de)activating an app or tenant is
// one feed row whatever its number of keys (SPEC §10), marked revoking
// only for a deactivation; an app without keys writes none.
func TestParentChangeIsOneRow(t *testing.T) {
	e := newEnv(t)
	for _, n := range []int{1, 2000} {
		app := fmt.Sprintf("app-%d", n)
		if _, err := e.store.CreateApp(e.ctx, e.actor, store.App{AccountID: "acct", ID: app, Name: app, Active: true}); err != nil {
			t.Fatal(err)
		}
		e.insertAppKeys(app, n)
	}
	if _, err := e.store.CreateApp(e.ctx, e.actor, store.App{AccountID: "acct", ID: "empty", Name: "empty", Active: true}); err != nil {
		t.Fatal(err)
	}
	e.mustCreateKey(serviceKey("svc")) // of app1 and ten1
	for _, tc := range []struct {
		name    string
		kind    store.ChangeKind
		id      string
		update  store.AppUpdate
		rows    int
		revokes bool
	}{
		{"rename, 1 key", store.ChangeApp, "app-1", store.AppUpdate{Name: new("renamed-1")}, 1, false},
		{"rename, 2000 keys", store.ChangeApp, "app-2000", store.AppUpdate{Name: new("renamed-2000")}, 1, false},
		{"deactivate, 2000 keys", store.ChangeApp, "app-2000", store.AppUpdate{Active: new(false)}, 1, true},
		{"activate, 2000 keys", store.ChangeApp, "app-2000", store.AppUpdate{Active: new(true)}, 1, false},
		{"description only", store.ChangeApp, "app-2000", store.AppUpdate{Description: new("no feed")}, 0, false},
		{"rename, no keys", store.ChangeApp, "empty", store.AppUpdate{Name: new("still empty")}, 0, false},
		{"tenant deactivated", store.ChangeTenant, "ten1", store.AppUpdate{Active: new(false)}, 1, true},
		{"tenant renamed", store.ChangeTenant, "ten1", store.AppUpdate{Name: new("Renamed")}, 1, false},
	} {
		seq := e.lastSeq()
		var err error
		if tc.kind == store.ChangeApp {
			_, err = e.store.UpdateApp(e.ctx, e.actor, "acct", tc.id, tc.update)
		} else {
			_, err = e.store.UpdateTenant(e.ctx, e.actor, "acct", tc.id, tc.update)
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		cs := e.changes(seq)
		if len(cs) != tc.rows {
			t.Fatalf("%s: %d feed rows %+v, want %d", tc.name, len(cs), cs, tc.rows)
		}
		if tc.rows == 1 && (cs[0].Kind != tc.kind || cs[0].AccountID != "acct" || cs[0].ID != tc.id || cs[0].Revokes != tc.revokes) {
			t.Errorf("%s: feed row %+v, want %s %s of acct, revokes %v", tc.name, cs[0], tc.kind, tc.id, tc.revokes)
		}
	}
	keys, err := e.store.LookupKeysOfParent(e.ctx, "acct", store.ChangeApp, "app-2000")
	if err != nil || len(keys) != 2000 || keys[0].Spec.AppName != "renamed-2000" || !keys[0].Spec.Active {
		t.Fatalf("LookupKeysOfParent(app-2000): %d keys, %v", len(keys), err)
	}
	keys, err = e.store.LookupKeysOfParent(e.ctx, "acct", store.ChangeTenant, "ten1")
	if err != nil || len(keys) != 1 || keys[0].Spec.TenantName != "Renamed" || keys[0].Spec.Active {
		t.Fatalf("LookupKeysOfParent(ten1): %+v, %v", keys, err)
	}
}

// TestKeyRowsRevokes: a new key is not a revocation; an update or a
// delete may be, and is applied ahead of the bulk.
func TestKeyRowsRevokes(t *testing.T) {
	e := newEnv(t)
	seq := e.lastSeq()
	k := e.mustCreateKey(serviceKey("k"))
	if _, err := e.store.UpdateKey(e.ctx, e.actor, "acct", k.Spec.ID, store.KeyUpdate{Active: new(false)}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteKey(e.ctx, e.actor, "acct", k.Spec.ID); err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, c := range e.changes(seq) {
		if c.Kind != store.ChangeKey || c.AccountID != "acct" || c.ID != k.Spec.ID {
			t.Errorf("feed row %+v, want key %s of acct", c, k.Spec.ID)
		}
		got = append(got, c.Revokes)
	}
	if want := []bool{false, true, true}; !slices.Equal(got, want) {
		t.Errorf("revokes of create, update, delete: %v, want %v", got, want)
	}
}
