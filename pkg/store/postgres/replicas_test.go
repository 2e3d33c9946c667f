package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// TestChangeNumbersConcurrent: writers racing each get their own
// transaction's seq (the feed lock serialises them from their first seq to
// their commit), and a failed write reports none.
func TestChangeNumbersConcurrent(t *testing.T) {
	e := newEnv(t)
	const n = 8
	got := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cn := store.WithChangeNumbers(e.ctx)
			if _, err := e.store.CreateKey(ctx, e.actor, idKey(fmt.Sprintf("k%d", i))); err != nil {
				t.Error(err)
				return
			}
			got[i], _ = cn.Get()
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i := range n {
		want, err := e.store.KeyChangeNumber(e.ctx, "acct", fmt.Sprintf("k%d", i))
		if err != nil || got[i] != want || seen[want] {
			t.Fatalf("k%d: change number %d, its feed seq %d (%v); want equal and unique", i, got[i], want, err)
		}
		seen[want] = true
	}
	ctx, cn := store.WithChangeNumbers(e.ctx)
	if _, err := e.store.CreateKey(ctx, e.actor, idKey("k0")); err == nil {
		t.Fatal("a duplicate key was created")
	}
	if seq, ok := cn.Get(); ok {
		t.Fatalf("a failed write reported change number %d", seq)
	}
}

// TestKeyChangeNumberPruned: a key whose feed rows were pruned answers the
// seq pruning reached, which every replica following the feed has passed.
func TestKeyChangeNumberPruned(t *testing.T) {
	e := newEnv(t)
	e.mustCreateKey(idKey("k1"))
	e.mustCreateKey(idKey("k2"))
	k2, err := e.store.KeyChangeNumber(e.ctx, "acct", "k2")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.exec(`DELETE FROM key_changes WHERE seq < $1`, k2); err != nil {
		t.Fatal(err)
	}
	if err := e.exec(`UPDATE key_changes_pruned SET through_seq = $1`, k2-1); err != nil {
		t.Fatal(err)
	}
	if got, err := e.store.KeyChangeNumber(e.ctx, "acct", "k1"); err != nil || got != k2-1 {
		t.Fatalf("KeyChangeNumber of a pruned key = %d, %v; want %d", got, err, k2-1)
	}
}

// TestHeartbeatDeletesOldReplicas: any heartbeat deletes the rows silent
// for longer than store.ReplicaRetention, never its own.
func TestHeartbeatDeletesOldReplicas(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"old", "recent"} {
		if err := e.store.Heartbeat(e.ctx, store.Replica{ID: id, StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.exec(`UPDATE replicas SET heartbeat_at = heartbeat_at - interval '25 hours' WHERE id = 'old'`); err != nil {
		t.Fatal(err)
	}
	if err := e.exec(`UPDATE replicas SET heartbeat_at = heartbeat_at - interval '23 hours' WHERE id = 'recent'`); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Heartbeat(e.ctx, store.Replica{ID: "me", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st, err := e.store.SyncState(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range st.Replicas {
		ids = append(ids, r.ID)
	}
	if fmt.Sprint(ids) != "[me recent]" {
		t.Fatalf("replicas after a heartbeat: %v; want [me recent]", ids)
	}
	for _, bad := range []string{"", "has space", string(make([]byte, 257))} {
		if err := e.store.Heartbeat(e.ctx, store.Replica{ID: bad, StartedAt: time.Now()}); err == nil {
			t.Fatalf("Heartbeat with id %q accepted", bad)
		}
	}
}

// idKey is serviceKey with its id set to its name.
func idKey(name string) store.Key {
	k := serviceKey(name)
	k.Spec.ID = name
	return k
}
