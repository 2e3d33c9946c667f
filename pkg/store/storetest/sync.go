package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// testSync is the contract of store.Replicas and of the change numbers
// writes report under store.WithChangeNumbers.
func testSync(t *testing.T, open func(t *testing.T) store.Accounts) {
	replicas := func(f *fixture) store.Replicas {
		f.t.Helper()
		r, ok := f.s.(store.Replicas)
		if !ok {
			f.t.Fatalf("%T does not implement store.Replicas", f.s)
		}
		return r
	}
	t.Run("change numbers", func(t *testing.T) {
		f := setup(t, open)
		rs := replicas(f)
		ctx, cn := store.WithChangeNumbers(f.ctx)
		if _, err := f.s.CreateKey(ctx, Actor, serviceKey("k1")); err != nil {
			t.Fatal(err)
		}
		created, ok := cn.Get()
		if !ok || created <= 0 {
			t.Fatalf("CreateKey change number = %d, %v; want > 0", created, ok)
		}
		if got, err := rs.KeyChangeNumber(f.ctx, "acct", "k1"); err != nil || got != created {
			t.Fatalf("KeyChangeNumber after create = %d, %v; want %d", got, err, created)
		}
		ctx, cn = store.WithChangeNumbers(f.ctx)
		desc := "changed"
		if _, err := f.s.UpdateKey(ctx, Actor, "acct", "k1", store.KeyUpdate{Description: &desc}); err != nil {
			t.Fatal(err)
		}
		updated, _ := cn.Get()
		if updated <= created {
			t.Fatalf("UpdateKey change number = %d; want > %d", updated, created)
		}
		if got, err := rs.KeyChangeNumber(f.ctx, "acct", "k1"); err != nil || got != updated {
			t.Fatalf("KeyChangeNumber after update = %d, %v; want %d", got, err, updated)
		}
		// A change of another key moves the head, not k1's number.
		ctx, cn = store.WithChangeNumbers(f.ctx)
		f.createKey(serviceKey("k2"))
		if err := f.s.DeleteKey(ctx, Actor, "acct", "k2"); err != nil {
			t.Fatal(err)
		}
		deleted, _ := cn.Get()
		if got, _ := rs.KeyChangeNumber(f.ctx, "acct", "k1"); got != updated {
			t.Fatalf("KeyChangeNumber(k1) after another key's change = %d; want %d", got, updated)
		}
		st, err := rs.SyncState(f.ctx)
		if err != nil || st.Head != deleted || deleted <= updated {
			t.Fatalf("SyncState head = %d, %v; want the delete's change number %d (> %d)", st.Head, err, deleted, updated)
		}
		// Without a collector nothing is reported and nothing breaks.
		if _, err := f.s.UpdateKey(f.ctx, Actor, "acct", "k1", store.KeyUpdate{Description: &desc}); err != nil {
			t.Fatal(err)
		}
		if _, err := rs.KeyChangeNumber(f.ctx, "acct", "ghost"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("KeyChangeNumber(ghost) = %v; want ErrNotFound", err)
		}
		if _, err := rs.KeyChangeNumber(f.ctx, "other", "k1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("KeyChangeNumber(other/k1) = %v; want ErrNotFound: ids are per account", err)
		}
	})
	t.Run("heartbeats", func(t *testing.T) {
		f := setup(t, open)
		rs := replicas(f)
		st, err := rs.SyncState(f.ctx)
		if err != nil || len(st.Replicas) != 0 {
			t.Fatalf("SyncState of a new store = %+v, %v; want no replicas", st, err)
		}
		f.createKey(serviceKey("k1"))
		head := func() int64 {
			st, err := rs.SyncState(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			return st.Head
		}
		started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		beat := func(r store.Replica) {
			t.Helper()
			if err := rs.Heartbeat(f.ctx, r); err != nil {
				t.Fatalf("Heartbeat(%s): %v", r.ID, err)
			}
		}
		beat(store.Replica{ID: "b", Version: "v1", StartedAt: started, Applied: 0})
		beat(store.Replica{ID: "a", Version: "v2", StartedAt: started, Applied: head()})
		st, err = rs.SyncState(f.ctx)
		if err != nil || len(st.Replicas) != 2 {
			t.Fatalf("SyncState = %+v, %v; want 2 replicas", st, err)
		}
		a, b := st.Replicas[0], st.Replicas[1]
		if a.ID != "a" || b.ID != "b" {
			t.Fatalf("replicas = %s, %s; want id order a, b", a.ID, b.ID)
		}
		if a.Version != "v2" || !a.StartedAt.Equal(started) || a.Applied != st.Head || a.Stopped {
			t.Fatalf("replica a = %+v; want v2, started %v, applied %d, not stopped", a, started, st.Head)
		}
		if !a.PendingSince.IsZero() {
			t.Fatalf("replica a PendingSince = %v; want zero: it applied the head", a.PendingSince)
		}
		if b.PendingSince.IsZero() || b.PendingSince.After(st.Now) {
			t.Fatalf("replica b PendingSince = %v (now %v); want set: it is behind", b.PendingSince, st.Now)
		}
		if a.HeartbeatAt.IsZero() || a.HeartbeatAt.After(st.Now) {
			t.Fatalf("replica a HeartbeatAt = %v, now %v", a.HeartbeatAt, st.Now)
		}
		// The same applied seq keeps AppliedAt; a later one moves it; a
		// last heartbeat marks it stopped.
		beat(store.Replica{ID: "a", Version: "v2", StartedAt: started, Applied: a.Applied})
		st, _ = rs.SyncState(f.ctx)
		if got := st.Replicas[0]; !got.AppliedAt.Equal(a.AppliedAt) || !got.HeartbeatAt.After(a.HeartbeatAt) {
			t.Fatalf("after a heartbeat with the same applied seq: %+v; want applied_at %v kept, heartbeat later than %v", got, a.AppliedAt, a.HeartbeatAt)
		}
		beat(store.Replica{ID: "b", Version: "v1", StartedAt: started, Applied: st.Head, Stopped: true})
		st, _ = rs.SyncState(f.ctx)
		if got := st.Replicas[1]; got.Applied != st.Head || !got.AppliedAt.After(b.AppliedAt) || !got.Stopped || !got.PendingSince.IsZero() {
			t.Fatalf("replica b after its last heartbeat = %+v; want applied %d, applied_at later than %v, stopped", got, st.Head, b.AppliedAt)
		}
	})
}
