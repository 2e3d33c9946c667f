package postgres_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// TestUpdateKeysFeed: a bulk change writes one change-feed row per key,
// as UpdateKey does, so that every replica drops and reloads each key.
func TestUpdateKeysFeed(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.mustCreateKey(serviceKey(fmt.Sprintf("k%d", i)))
	}
	before := e.count(`SELECT coalesce(max(seq), 0) FROM key_changes`)
	keys, err := e.store.UpdateKeys(e.ctx, e.actor, "acct", store.KeyFilter{TenantID: "ten1"}, store.KeyUpdate{Active: new(false)}, nil)
	if err != nil || len(keys) != 3 {
		t.Fatalf("UpdateKeys: %d keys, %v", len(keys), err)
	}
	if n := e.count(`SELECT count(DISTINCT object_id) FROM key_changes WHERE seq > $1 AND kind = 'key' AND account_id = 'acct'`, before); n != 3 {
		t.Fatalf("%d keys in the feed after the bulk change, want 3", n)
	}
}

// TestUpdateKeysLockOrder: bulk changes run beside creates, deletes,
// single updates and rotations of the same account, every one succeeding:
// no deadlock (PostgreSQL would abort a writer with 40P01) and no
// serialisation error, with the bulk change taking the account's limits
// row, then its key rows in creation order, then the feed lock.
func TestUpdateKeysLockOrder(t *testing.T) {
	e := newEnv(t)
	for i := range 10 {
		e.mustCreateKey(serviceKey(fmt.Sprintf("base%d", i)))
	}
	ids := func() []string {
		keys, _, err := e.store.ListKeys(e.ctx, "acct", store.KeyFilter{}, store.Page{Size: 1000})
		if err != nil {
			t.Error(err)
		}
		var out []string
		for _, k := range keys {
			out = append(out, k.Spec.ID)
		}
		return out
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	worker := func(f func(i int) error) {
		wg.Go(func() {
			for i := range 25 {
				if err := f(i); err != nil && !errors.Is(err, store.ErrNotFound) {
					errs <- err
				}
			}
		})
	}
	worker(func(i int) error {
		_, err := e.store.UpdateKeys(e.ctx, e.actor, "acct", store.KeyFilter{Type: authz.KeyTypeService}, store.KeyUpdate{Active: new(i%2 == 0)}, nil)
		return err
	})
	worker(func(i int) error {
		_, err := e.store.UpdateKeys(e.ctx, e.actor, "acct", store.KeyFilter{TenantID: "ten1"}, store.KeyUpdate{Group: new(fmt.Sprint(i))}, nil)
		return err
	})
	worker(func(i int) error {
		_, err := e.store.CreateKey(e.ctx, e.actor, serviceKey(fmt.Sprintf("new%d", i)))
		return err
	})
	worker(func(i int) error {
		all := ids()
		return e.store.DeleteKey(e.ctx, e.actor, "acct", all[len(all)-1])
	})
	worker(func(i int) error {
		all := ids()
		_, err := e.store.UpdateKey(e.ctx, e.actor, "acct", all[i%len(all)], store.KeyUpdate{Description: new(fmt.Sprint(i))})
		return err
	})
	worker(func(i int) error {
		all := ids()
		_, err := e.store.RotateKey(e.ctx, e.actor, "acct", all[i%len(all)], hashOf(fmt.Sprintf("rotated-%d", i)), e.clock.Now())
		return err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestKeyUpdateRevokes: a key update that changes only what no decision
// reads (name, description, group) is not a revocation, so that a bulk
// change of descriptions never sits ahead of another account's
// deactivation on a replica (SPEC §10, issue 15); any other change is.
// Single and bulk updates write the same rows.
func TestKeyUpdateRevokes(t *testing.T) {
	t2031 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		u       store.KeyUpdate
		revokes bool
	}{
		{"description", store.KeyUpdate{Description: new("new text")}, false},
		{"group", store.KeyUpdate{Group: new("staging")}, false},
		{"name", store.KeyUpdate{Name: new("renamed")}, false},
		{"description and group", store.KeyUpdate{Description: new("d"), Group: new("g")}, false},
		{"deactivate", store.KeyUpdate{Active: new(false)}, true},
		{"scope", store.KeyUpdate{Scope: new("sms-api")}, true},
		{"expiry", store.KeyUpdate{ExpiresAt: &t2031}, true},
		{"description and scope", store.KeyUpdate{Description: new("d"), Scope: new("sms-api")}, true},
		{"ip filters", store.KeyUpdate{IPFilters: &[]string{"10.0.0.0/8"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			for _, bulk := range []bool{false, true} {
				k := e.mustCreateKey(serviceKey(fmt.Sprintf("k-%v", bulk)))
				seq := e.lastSeq()
				var err error
				if bulk {
					u := tc.u
					if u.Name != nil {
						u.Name = new("renamed in bulk") // names are unique in an account
					}
					_, err = e.store.UpdateKeys(e.ctx, e.actor, "acct", store.KeyFilter{IDs: []string{k.Spec.ID}}, u, nil)
				} else {
					_, err = e.store.UpdateKey(e.ctx, e.actor, "acct", k.Spec.ID, tc.u)
				}
				if err != nil {
					t.Fatal(err)
				}
				cs := e.changes(seq)
				if len(cs) != 1 || cs[0].ID != k.Spec.ID || cs[0].Revokes != tc.revokes {
					t.Errorf("bulk %v: feed rows %+v, want one of key %s with revokes %v", bulk, cs, k.Spec.ID, tc.revokes)
				}
			}
		})
	}
}

// TestRevocationsSince: what a replica reads ahead of a backlog is only
// the revoking key and denial rows, in seq order, past a bulk change of
// descriptions.
func TestRevocationsSince(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, e.mustCreateKey(serviceKey(fmt.Sprintf("k%d", i))).Spec.ID)
	}
	seq := e.lastSeq()
	if _, err := e.store.UpdateKeys(e.ctx, e.actor, "acct", store.KeyFilter{TenantID: "ten1"}, store.KeyUpdate{Description: new("bulk")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.UpdateKey(e.ctx, e.actor, "acct", ids[1], store.KeyUpdate{Active: new(false)}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteKey(e.ctx, e.actor, "acct", ids[2]); err != nil {
		t.Fatal(err)
	}
	got, err := e.store.RevocationsSince(e.ctx, seq, 10)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []string
	for _, c := range got {
		gotIDs = append(gotIDs, c.ID)
		if !c.Revokes || c.Kind != store.ChangeKey || c.Seq <= seq+3 || len(c.OldDigest) != 1 {
			t.Errorf("revocation %+v: want a revoking key row after the bulk's 3, with its old digest", c)
		}
	}
	if want := []string{ids[1], ids[2]}; !slices.Equal(gotIDs, want) {
		t.Errorf("revocations since %d: %v, want %v", seq, gotIDs, want)
	}
	if got, err := e.store.RevocationsSince(e.ctx, seq, 1); err != nil || len(got) != 1 || got[0].ID != ids[1] {
		t.Errorf("limit 1: %+v, %v", got, err)
	}
}

// TestRoleChangeWithCosmeticEditRevokes: a key update that takes a role
// away while it re-describes the key narrows what the key may call, so the
// key has a revoking row on the feed, although only a cosmetic column of
// its own row changed (the roles live in key_roles, whose rows say so).
func TestRoleChangeWithCosmeticEditRevokes(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.CreateRole(e.ctx, e.actor, store.Role{AccountID: "acct", ID: "r", Name: "R", Scope: "email-api:query:*"}); err != nil {
		t.Fatal(err)
	}
	k := e.mustCreateKey(serviceKey("k-role"))
	for _, tc := range []struct {
		name string
		u    store.KeyUpdate
	}{
		{"role taken away with a new description", store.KeyUpdate{Description: new("d"), RoleIDs: &[]string{}}},
		{"role taken away with a new group", store.KeyUpdate{Group: new("g"), RoleIDs: &[]string{}}},
	} {
		if _, err := e.store.UpdateKey(e.ctx, e.actor, "acct", k.Spec.ID, store.KeyUpdate{RoleIDs: &[]string{"r"}}); err != nil {
			t.Fatal(err)
		}
		seq := e.lastSeq()
		if _, err := e.store.UpdateKey(e.ctx, e.actor, "acct", k.Spec.ID, tc.u); err != nil {
			t.Fatal(err)
		}
		revoked := false
		for _, c := range e.changes(seq) {
			revoked = revoked || (c.ID == k.Spec.ID && c.Revokes)
		}
		if !revoked {
			t.Errorf("%s: feed rows %+v, want a revoking row of %s", tc.name, e.changes(seq), k.Spec.ID)
		}
	}
}
