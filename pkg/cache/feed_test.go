package cache

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
)

func TestChangeUpdate(t *testing.T) {
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{PollInterval: -1})
	run(t, c, src)

	// An edit that keeps the secret: same digest, new record.
	k1b := edited(t, k1, func(s *authz.KeySpec) { s.Scope = "billing:query:*" })
	seq := src.put(k1b)
	src.notify()
	waitApplied(t, c, seq)
	mustFind(t, c, "s1", k1b)

	// A new secret without grace: the new digest is valid, the old one is
	// refused by the set alone.
	k1c := rotated(t, k1b, "s1-new", time.Time{})
	seq = src.put(k1c)
	src.notify()
	waitApplied(t, c, seq)
	mustFind(t, c, "s1-new", k1c)
	mustNotFind(t, c, "s1")
	if n := src.lookups.Load(); n != 0 {
		t.Errorf("%d store lookups, want 0", n)
	}
	if c.Len() != 1 {
		t.Errorf("set holds %d digests, want 1", c.Len())
	}
	if st := c.Stats(); st.ChangesApplied != 2 || st.Watermark != seq {
		t.Errorf("stats %+v, want 2 changes applied up to %d", st, seq)
	}
}

func TestChangeDelete(t *testing.T) {
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	src := newFakeSource(k1, k2)
	c := warmCache(t, src, Options{PollInterval: -1})
	run(t, c, src)
	seq := src.remove("k1")
	src.notify()
	waitApplied(t, c, seq)
	mustNotFind(t, c, "s1")
	mustFind(t, c, "s2", k2)
	if n := src.lookups.Load(); n != 0 {
		t.Errorf("%d store lookups, want 0", n)
	}
	if c.Len() != 1 {
		t.Errorf("set holds %d digests, want 1", c.Len())
	}
}

func TestChangeRotationWithGrace(t *testing.T) {
	clock := newFakeClock()
	k1 := newKey(t, "k1", "old")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{Now: clock.Now, PollInterval: -1})
	run(t, c, src)
	grace := clock.Now().Add(time.Hour)
	k1b := rotated(t, k1, "new", grace)
	seq := src.put(k1b)
	src.notify()
	waitApplied(t, c, seq)
	// The cache indexes both digests; the record decides the grace.
	mustFind(t, c, "old", k1b)
	mustFind(t, c, "new", k1b)
	if !k1b.Matches(digestOf("old"), grace.Add(-time.Second)) || k1b.Matches(digestOf("old"), grace) {
		t.Error("the record does not end the grace at PreviousValidUntil")
	}
	if c.Len() != 2 {
		t.Errorf("set holds %d digests, want 2", c.Len())
	}
	// The grace is cut short by another rotation: the first secret goes.
	k1c := rotated(t, k1b, "newer", time.Time{})
	seq = src.put(k1c)
	src.notify()
	waitApplied(t, c, seq)
	mustNotFind(t, c, "old")
	mustNotFind(t, c, "new")
	mustFind(t, c, "newer", k1c)
	if c.Len() != 1 {
		t.Errorf("set holds %d digests, want 1", c.Len())
	}
}

func TestChangeAppDeactivation(t *testing.T) {
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{PollInterval: -1})
	run(t, c, src)
	// The store sends one change per key of the app; the record comes back
	// inactive and the engine refuses it as inactive_key.
	k1b := edited(t, k1, func(s *authz.KeySpec) { s.Active = false })
	seq := src.put(k1b)
	src.notify()
	waitApplied(t, c, seq)
	mustFind(t, c, "s1", k1b)
	if r := k1b.Status(time.Now()); r != authz.InactiveKey {
		t.Errorf("status %v, want inactive_key", r)
	}
}

func TestChangeCreatesKeyOverANegativeEntry(t *testing.T) {
	clock := newFakeClock()
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{Now: clock.Now, PollInterval: -1})
	run(t, c, src)
	mustNotFind(t, c, "s2") // not in the set yet

	// A stale set entry with a negative entry cached for it…
	src.forget("k1")
	evict(c, k1.Digest)
	mustNotFind(t, c, "s1")
	c.Wait()
	// …is cleared by the change that brings the digest back, at once.
	k1b := newKey(t, "k1", "s1", func(s *authz.KeySpec) { s.Description = "back" })
	seq := src.put(k1b)
	k2 := newKey(t, "k2", "s2")
	seq = max(seq, src.put(k2))
	src.notify()
	waitApplied(t, c, seq)
	mustFind(t, c, "s1", k1b)
	mustFind(t, c, "s2", k2)
}

// TestChangeRacingSlowLoad: a load that read the store before a change and
// answers after it was applied must not put the stale record back.
func TestChangeRacingSlowLoad(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(src *fakeSource, k *authz.Key) (*authz.Key, int64)
	}{
		{"revoked", func(src *fakeSource, k *authz.Key) (*authz.Key, int64) {
			k2 := edited(t, k, func(s *authz.KeySpec) { s.Active = false })
			return k2, src.put(k2)
		}},
		{"deleted", func(src *fakeSource, k *authz.Key) (*authz.Key, int64) {
			return nil, src.remove(k.Spec.ID)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k1 := newKey(t, "k1", "s1")
			src := newFakeSource(k1)
			c := warmCache(t, src, Options{PollInterval: -1})
			run(t, c, src)
			evict(c, k1.Digest)

			entered, release := src.hold()
			defer release()
			slow := make(chan *authz.Key, 1)
			go func() {
				k, _ := lookup(c, "s1")
				slow <- k
			}()
			<-entered // the slow load has read the old record
			src.unhold()

			after, seq := tc.change(src, k1)
			src.notify()
			waitApplied(t, c, seq)
			check := func(when string) {
				t.Helper()
				k, err := lookup(c, "s1")
				switch {
				case after == nil && !errors.Is(err, authz.ErrKeyNotFound):
					t.Fatalf("%s: %v, %v; want ErrKeyNotFound", when, k, err)
				case after != nil && (err != nil || k.Spec.Active):
					t.Fatalf("%s: %v, %v; want the inactive record", when, k, err)
				}
			}
			check("after the change, load still in flight")

			// A miss after the change does not join the old load.
			if after != nil {
				evict(c, after.Digest)
				check("miss after the change")
				if n := src.lookups.Load(); n != 2 {
					t.Fatalf("%d store lookups, want 2 (a fresh one)", n)
				}
			}

			release()
			// The slow caller gets what it read: it asked before the change.
			if k := <-slow; k != k1 {
				t.Fatalf("slow lookup: %v, want the record it read", k)
			}
			c.Wait()
			check("after the slow load returned")
			if st := c.Stats(); st.LoadsDiscarded != 1 {
				t.Errorf("%d loads discarded, want 1", st.LoadsDiscarded)
			}
		})
	}
}

func TestFeedDisconnectDegradedThenCatchUp(t *testing.T) {
	clock := newFakeClock()
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	src := newFakeSource(k1, k2)
	c := warmCache(t, src, Options{Now: clock.Now, PollInterval: -1, DegradedAfter: 5 * time.Second})
	run(t, c, src)
	if ok, msg := c.Ready(); !ok || msg != "ok" {
		t.Fatalf("Ready: %v %q", ok, msg)
	}

	src.setConnected(false)
	clock.Advance(3 * time.Second)
	if ok, msg := c.Ready(); !ok || msg != "ok" {
		t.Fatalf("Ready 3 s after a disconnect: %v %q, want ok", ok, msg)
	}
	clock.Advance(4 * time.Second)
	if ok, msg := c.Ready(); !ok || msg != "degraded: change feed disconnected for 7 s" {
		t.Fatalf("Ready 7 s after a disconnect: %v %q", ok, msg)
	}
	if c.Stats().FeedConnected {
		t.Error("stats say connected")
	}

	// Changes made meanwhile; their notifications are lost.
	seq := src.remove("k2")
	k3 := newKey(t, "k3", "s3")
	seq = max(seq, src.put(k3))
	mustFind(t, c, "s1", k1) // cached keys keep deciding

	src.setConnected(true) // Listen reconnected: catch up
	waitApplied(t, c, seq)
	mustNotFind(t, c, "s2")
	mustFind(t, c, "s3", k3)
	if ok, msg := c.Ready(); !ok || msg != "ok" {
		t.Fatalf("Ready after reconnect: %v %q", ok, msg)
	}
	if st := c.Stats(); st.FeedConnects != 2 || !st.FeedConnected {
		t.Errorf("stats %+v, want 2 connects, connected", st)
	}
}

func TestCatchUpErrorsAreRetriedWithoutSkipping(t *testing.T) {
	k1, k2, k3 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2"), newKey(t, "k3", "s3")
	src := newFakeSource(k1, k2, k3)
	c := warmCache(t, src, Options{PollInterval: -1})
	run(t, c, src)

	src.failChanges(2)
	src.failByID("k2", 2)
	var want []*authz.Key
	var seq int64
	for _, k := range []*authz.Key{k1, k2, k3} {
		k := edited(t, k, func(s *authz.KeySpec) { s.Description = "v2" })
		want = append(want, k)
		seq = src.put(k)
	}
	src.notify()
	waitApplied(t, c, seq)
	// One batched lookup per attempt; a failed batch is retried whole.
	if got, wantIDs := src.byIDLog(), slices.Repeat([]string{"k1", "k2", "k3"}, 3); !slices.Equal(got, wantIDs) {
		t.Errorf("keys looked up %v, want %v", got, wantIDs)
	}
	for i, k := range want {
		mustFind(t, c, []string{"s1", "s2", "s3"}[i], k)
	}
	if st := c.Stats(); st.CatchUpErrors != 4 || st.ChangesApplied != 3 {
		t.Errorf("stats %+v, want 4 catch-up errors, 3 changes applied", st)
	}
}

func TestCatchUpFailingIsDegraded(t *testing.T) {
	clock := newFakeClock()
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{Now: clock.Now, PollInterval: -1})
	run(t, c, src)
	src.failChanges(1 << 30)
	k1b := edited(t, k1, func(s *authz.KeySpec) { s.Description = "v2" })
	seq := src.put(k1b)
	src.notify()
	eventually(t, "a failed catch-up", func() bool { return c.Stats().CatchUpErrors > 0 })
	clock.Advance(6 * time.Second)
	if ok, msg := c.Ready(); !ok || msg != "degraded: change feed catch-up failing for 6 s" {
		t.Fatalf("Ready: %v %q", ok, msg)
	}
	mustFind(t, c, "s1", k1)
	src.failChanges(0)
	src.notify() // wakes the backoff
	waitApplied(t, c, seq)
	mustFind(t, c, "s1", k1b)
	if ok, msg := c.Ready(); !ok || msg != "ok" {
		t.Fatalf("Ready after recovery: %v %q", ok, msg)
	}
}

func TestListenReturningEarlyIsRestarted(t *testing.T) {
	src := newFakeSource(newKey(t, "k1", "s1"))
	src.listenRet = make(chan error)
	c := warmCache(t, src, Options{PollInterval: -1})
	run(t, c, src)
	src.listenRet <- errors.New("fake: listener broke")
	eventually(t, "second connect", func() bool { return c.Stats().FeedConnects == 2 })
}

func TestRunOnlyOnceAndStopsWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	src := newFakeSource(newKey(t, "k1", "s1"))
	c, err := New(src, Options{MaxKeys: 64, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	eventually(t, "feed connected", func() bool { return c.Stats().FeedConnected })
	if err := c.Run(ctx); err == nil {
		t.Error("a second Run started")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("Run did not return after cancel")
	}
	c.Close()
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestChangedKeyIsNotDecidedFromItsOldRecord: the feed says a key changed
// but the key cannot be read again (store down). Its old record is dropped
// at once, so lookups ask the store — store_unavailable while it is down —
// rather than trusting a record that may have been revoked.
func TestChangedKeyIsNotDecidedFromItsOldRecord(t *testing.T) {
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{PollInterval: -1})
	run(t, c, src)
	mustFind(t, c, "s1", k1)

	src.failByID("k1", 1<<30)
	src.setLookupErr(errDown)
	k1b := edited(t, k1, func(s *authz.KeySpec) { s.Active = false })
	seq := src.put(k1b)
	src.notify()
	eventually(t, "a failed catch-up", func() bool { return c.Stats().CatchUpErrors > 0 })
	if k, err := lookup(c, "s1"); !errors.Is(err, errDown) {
		t.Fatalf("lookup while the change cannot be applied: %v, %v; want the store's error", k, err)
	}

	src.failByID("k1", 0)
	src.setLookupErr(nil)
	src.notify()
	waitApplied(t, c, seq)
	mustFind(t, c, "s1", k1b)
}

// TestFeedTruncatedReloadsEverything: when the feed no longer holds the
// changes after the watermark, the cache loads every key again, so a key
// deleted in the gap is refused and one created in it is found.
func TestFeedTruncatedReloadsEverything(t *testing.T) {
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	src := newFakeSource(k1, k2)
	c := warmCache(t, src, Options{PollInterval: -1})
	run(t, c, src)
	k3 := newKey(t, "k3", "s3")
	src.prune("k1", k3)
	src.notify()
	eventually(t, "the reload", func() bool {
		_, err := lookup(c, "s3")
		return err == nil
	})
	mustNotFind(t, c, "s1")
	mustFind(t, c, "s2", k2)
	mustFind(t, c, "s3", k3)
}

// TestUnreadyAfter: with the option set, a feed down for longer than it
// makes the cache unready; without it the cache stays ready (degraded).
func TestUnreadyAfter(t *testing.T) {
	clock := newFakeClock()
	src := newFakeSource(newKey(t, "k1", "s1"))
	c := warmCache(t, src, Options{Now: clock.Now, PollInterval: -1, DegradedAfter: time.Second, UnreadyAfter: time.Minute})
	clock.Advance(2 * time.Second)
	if ok, detail := c.Ready(); !ok || !strings.HasPrefix(detail, "degraded") {
		t.Fatalf("after 2 s: %v %q, want ready and degraded", ok, detail)
	}
	clock.Advance(time.Minute)
	if ok, detail := c.Ready(); ok || !strings.HasPrefix(detail, "unready") {
		t.Fatalf("after a minute: %v %q, want unready", ok, detail)
	}
}

// While the listener is down the store may still answer through the pool
// (only the LISTEN connection was lost): revocations are then caught up
// every DownPollInterval, not when the listener comes back. While it is
// up, nothing is polled (PollInterval disabled here): a change whose
// notification is lost waits for the next notification.
func TestDownPollCatchesUpWhileListenerIsDown(t *testing.T) {
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	src := newFakeSource(k1, k2)
	c := warmCache(t, src, Options{PollInterval: -1, DownPollInterval: 5 * time.Millisecond})
	run(t, c, src)

	// Connected: a change without its notification is not polled for.
	// The catch-ups of the connection itself (and of a down-poll that
	// began just before it) may still be under way when run returns:
	// counted from a quiet moment, not from then.
	calls := quietChangeCalls(t, src, 50*time.Millisecond)
	src.remove("k1")
	time.Sleep(50 * time.Millisecond)
	if n := src.changeCalls.Load(); n != calls {
		t.Fatalf("%d catch-ups while connected and not notified, want none", n-calls)
	}
	mustFind(t, c, "s1", k1)

	// Down: the same kind of change is applied without any notification.
	src.setConnected(false)
	seq := src.remove("k2")
	waitApplied(t, c, seq)
	mustNotFind(t, c, "s1")
	mustNotFind(t, c, "s2")
	if c.Stats().FeedConnected {
		t.Error("stats say connected")
	}
}

// quietChangeCalls waits (eventually) until src has seen no catch-up for
// quiet, and returns how many it has seen.
func quietChangeCalls(t *testing.T, src *fakeSource, quiet time.Duration) int64 {
	t.Helper()
	var n int64
	eventually(t, "no catch-up for "+quiet.String(), func() bool {
		n = src.changeCalls.Load()
		time.Sleep(quiet)
		return src.changeCalls.Load() == n
	})
	return n
}

// TestSecretReadAheadIsRevokedByALaterPass: a pass that applies a key's
// change reads the key as it is by then, which may already be after a
// later change (here c2, a rotation to s-v3). That later change is then
// applied in the next pass, behind another change of the key — and the
// secret the read-ahead cached must go when a change replaces it, even
// when that change is not the first of its pass. It stayed valid from
// memory: a rotated-out secret, or a deleted key's, kept answering until
// ristretto evicted it (TestConcurrentLookupsWhileChangesApply found it,
// 1 run in 100 under -race).
func TestSecretReadAheadIsRevokedByALaterPass(t *testing.T) {
	for _, last := range []string{"rotation", "deletion"} {
		t.Run(last, func(t *testing.T) {
			k := newKey(t, "k", "s-v1")
			src := newFakeSource(k)
			c := warmCache(t, src, Options{PollInterval: -1})
			run(t, c, src)

			entered, release := src.holdByID()
			r2 := rotated(t, k, "s-v2", time.Time{})
			src.put(r2) // c1, applied by the first pass
			src.notify()
			<-entered // the first pass listed c1 and waits to read the key
			r3 := rotated(t, r2, "s-v3", time.Time{})
			src.put(r3) // c2: committed before the read, so the first pass reads s-v3
			var seq int64
			r4 := rotated(t, r3, "s-v4", time.Time{})
			src.mu.Lock()
			src.byIDGate, src.afterByID = nil, func() {
				// c3, committed right after the first pass's read: the
				// next pass lists c2 and c3 together.
				if last == "rotation" {
					seq = src.put(r4)
				} else {
					seq = src.remove("k")
				}
			}
			src.mu.Unlock()
			release()
			eventually(t, "c3 committed", func() bool {
				src.mu.Lock()
				defer src.mu.Unlock()
				return src.afterByID == nil && seq != 0
			})
			src.notify()
			waitApplied(t, c, seq)

			for _, s := range []string{"s-v1", "s-v2", "s-v3"} {
				mustNotFind(t, c, s)
			}
			if last == "rotation" {
				mustFind(t, c, "s-v4", r4)
			} else {
				mustNotFind(t, c, "s-v4")
			}
		})
	}
}
