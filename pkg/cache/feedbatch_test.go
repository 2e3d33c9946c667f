package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
)

// appKeys returns n active keys of app appID, secrets "<appID>-s<i>".
func appKeys(t *testing.T, appID string, n int) []*authz.Key {
	t.Helper()
	ks := make([]*authz.Key, n)
	for i := range ks {
		ks[i] = newKey(t, fmt.Sprintf("%s-k%d", appID, i), fmt.Sprintf("%s-s%d", appID, i),
			func(s *authz.KeySpec) { s.AppID, s.AppName = appID, "v0" })
	}
	return ks
}

// start runs the change feed without waiting for it to catch up (run
// does), for changes written before it starts: they are then all in its
// first page, whatever the scheduling.
func start(t *testing.T, c *Cache) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	eventually(t, "feed connected", func() bool { return c.Stats().FeedConnected })
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// renameApp renames an app in the fake source (one feed entry) and returns
// its seq.
func renameApp(t *testing.T, src *fakeSource, appID, name string) int64 {
	t.Helper()
	return src.editApp(appID, false, func(k *authz.Key) *authz.Key {
		return edited(t, k, func(s *authz.KeySpec) { s.AppName = name })
	})
}

// TestParentChangesCoalesce: a flood of renames of one app is one feed
// entry each, and a page of them is applied with one read of the app's
// keys, leaving the last name.
func TestParentChangesCoalesce(t *testing.T) {
	keys := appKeys(t, "big", 50)
	src := newFakeSource(keys...)
	c := warmCache(t, src, Options{PollInterval: -1})
	var seq int64
	for i := range 100 {
		seq = renameApp(t, src, "big", fmt.Sprintf("v%d", i+1))
	}
	start(t, c)
	waitApplied(t, c, seq)
	if _, byParent := src.calls(); byParent != 1 {
		t.Errorf("%d reads of the app's keys for 100 renames in one page, want 1", byParent)
	}
	for i := range keys {
		k, err := lookup(c, fmt.Sprintf("big-s%d", i))
		if err != nil || k.Spec.AppName != "v100" {
			t.Fatalf("key %d after the renames: %+v, %v", i, k, err)
		}
	}
	if st := c.Stats(); st.ChangesApplied != 100 || st.Misses != 0 || st.KeysInSet != len(keys) {
		t.Errorf("stats %+v, want 100 changes applied, no misses, %d digests", st, len(keys))
	}
}

// TestRevocationsFirst: in a page of app renames followed by a key's
// deactivation, the key is read (and applied) before the app's keys.
func TestRevocationsFirst(t *testing.T) {
	victim := newKey(t, "victim", "sv")
	src := newFakeSource(append(appKeys(t, "big", 10), victim)...)
	c := warmCache(t, src, Options{PollInterval: -1})
	for i := range 100 {
		renameApp(t, src, "big", fmt.Sprintf("v%d", i+1))
	}
	seq := src.put(edited(t, victim, func(s *authz.KeySpec) { s.Active = false }))
	start(t, c)
	waitApplied(t, c, seq)
	if got, want := src.callOrder(), []string{"keys", "parent big"}; !slices.Equal(got, want) {
		t.Errorf("batched reads %v, want %v: the deactivation first", got, want)
	}
	if k, err := lookup(c, "sv"); err != nil || k.Spec.Active {
		t.Fatalf("deactivated key: %+v, %v", k, err)
	}
}

// TestWatermarkWaitsForTheBulk: when the bulk pass fails, the revocations
// of the page stay applied, the watermark stops below the first change not
// applied, and the retry applies the rest without applying a key change
// twice (the digest set counts each key once).
func TestWatermarkWaitsForTheBulk(t *testing.T) {
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	src := newFakeSource(append(appKeys(t, "big", 3), k1, k2)...)
	c := warmCache(t, src, Options{PollInterval: -1, RetryBackoff: time.Hour})
	base := c.Stats().Watermark

	k1b := edited(t, k1, func(s *authz.KeySpec) { s.Description = "v2" })
	src.put(k1b)                   // base+1: applied first
	renameApp(t, src, "big", "v1") // base+2: the bulk, fails once
	seq := src.remove("k2")        // base+3: applied first
	src.failParents(failForever)
	start(t, c)
	eventually(t, "a failed catch-up", func() bool { return c.Stats().CatchUpErrors >= 1 })
	if w := c.Stats().Watermark; w != base+1 {
		t.Fatalf("watermark %d after the bulk failed, want %d (below the app's change)", w, base+1)
	}
	// What the replica's heartbeats report as applied (SPEC §13): not the
	// highest change applied (base+3), the highest with all before it.
	if a := c.Applied(); a != base+1 {
		t.Fatalf("Applied() = %d after the bulk failed, want %d", a, base+1)
	}
	mustNotFind(t, c, "s2") // the deletion did not wait for the bulk
	mustFind(t, c, "s1", k1b)

	src.failParents(0)
	src.notify() // retries at once, despite the backoff
	waitApplied(t, c, seq)
	if got := src.byIDLog(); !slices.Equal(got, []string{"k1", "k2"}) {
		t.Errorf("keys looked up %v, want k1 and k2 once each", got)
	}
	if k, err := lookup(c, "big-s0"); err != nil || k.Spec.AppName != "v1" {
		t.Fatalf("key of the renamed app: %+v, %v", k, err)
	}
	if st := c.Stats(); st.KeysInSet != 4 || st.ChangesApplied != 3 {
		t.Errorf("stats %+v, want 4 digests, 3 changes applied", st)
	}
	mustFind(t, c, "s1", k1b)
}

// TestParentDeactivationUnreadable: an app's deactivation whose keys
// cannot be read drops every record, so that no key of it is decided from
// a record that predates it; lookups go to the store meanwhile.
func TestParentDeactivationUnreadable(t *testing.T) {
	keys := appKeys(t, "big", 3)
	src := newFakeSource(keys...)
	c := warmCache(t, src, Options{PollInterval: -1, RetryBackoff: time.Hour})
	mustFind(t, c, "big-s0", keys[0])

	src.failParents(failForever)
	src.setLookupErr(errDown)
	seq := src.editApp("big", true, func(k *authz.Key) *authz.Key {
		return edited(t, k, func(s *authz.KeySpec) { s.Active = false })
	})
	start(t, c)
	eventually(t, "a failed catch-up", func() bool { return c.Stats().CatchUpErrors >= 1 })
	if _, err := lookup(c, "big-s0"); !errors.Is(err, errDown) {
		t.Fatalf("lookup of a key of the app while its deactivation cannot be applied: %v, want the store's error", err)
	}
	src.setLookupErr(nil)
	src.failParents(0)
	src.notify()
	waitApplied(t, c, seq)
	if k, err := lookup(c, "big-s0"); err != nil || k.Spec.Active {
		t.Fatalf("key of the deactivated app: %+v, %v", k, err)
	}
}

// TestFeedLagAndBacklog: the lag is the age of the oldest change not yet
// applied, the backlog the changes behind the head; past MaxFeedLag Ready
// says degraded, naming the lag; both are 0 once caught up.
func TestFeedLagAndBacklog(t *testing.T) {
	clock := newFakeClock()
	keys := appKeys(t, "big", 2)
	src := newFakeSource(keys...)
	c := warmCache(t, src, Options{Now: clock.Now, PollInterval: -1, RetryBackoff: time.Hour})
	if st := c.Stats(); st.FeedLag != 0 || st.FeedBacklog != 0 {
		t.Fatalf("warm: lag %v, backlog %d; want 0, 0", st.FeedLag, st.FeedBacklog)
	}

	src.setCommitTime(clock.Now().Add(-7 * time.Second))
	renameApp(t, src, "big", "v1")
	seq := renameApp(t, src, "big", "v2")
	src.failParents(failForever)
	start(t, c)
	eventually(t, "a failed catch-up", func() bool { return c.Stats().CatchUpErrors >= 1 })
	if st := c.Stats(); st.FeedLag != 7*time.Second || st.FeedBacklog != 2 {
		t.Errorf("behind: lag %v, backlog %d; want 7s, 2", st.FeedLag, st.FeedBacklog)
	}
	if ok, msg := c.Ready(); !ok || !strings.HasPrefix(msg, "degraded: change feed lag 7s") {
		t.Errorf("Ready while 7 s behind: %v %q; want degraded naming the lag", ok, msg)
	}

	src.failParents(0)
	src.notify()
	waitApplied(t, c, seq)
	if st := c.Stats(); st.FeedLag != 0 || st.FeedBacklog != 0 {
		t.Errorf("caught up again: lag %v, backlog %d; want 0, 0", st.FeedLag, st.FeedBacklog)
	}
	if ok, msg := c.Ready(); !ok || msg != "ok" {
		t.Errorf("Ready caught up: %v %q", ok, msg)
	}
}

// TestRevocationOvertakesABulkRead: a key deactivated while an app's keys
// are being read is applied at once, not after the read; and the read,
// which predates the deactivation, does not bring the key's old record
// back.
func TestRevocationOvertakesABulkRead(t *testing.T) {
	keys := appKeys(t, "big", 5)
	victim := newKey(t, "victim", "sv")
	src := newFakeSource(append(keys, victim)...)
	c := warmCache(t, src, Options{PollInterval: -1})
	run(t, c, src)
	entered, release := src.holdParents()
	defer release()

	// big's read holds a copy of big-k0 from before its deactivation.
	seq := renameApp(t, src, "big", "v1")
	src.notify()
	<-entered
	src.put(edited(t, victim, func(s *authz.KeySpec) { s.Active = false }))
	inBig := src.put(edited(t, keys[0], func(s *authz.KeySpec) { s.Active = false; s.AppName = "v1" }))
	src.notify()
	eventually(t, "the deactivations applied during the read", func() bool {
		k, err := lookup(c, "sv")
		k0, err0 := lookup(c, "big-s0")
		return err == nil && !k.Spec.Active && err0 == nil && !k0.Spec.Active
	})
	if w := c.Stats().Watermark; w >= seq {
		t.Fatalf("watermark %d, want below the rename %d still being read", w, seq)
	}
	release()
	waitApplied(t, c, inBig)
	if k, err := lookup(c, "big-s0"); err != nil || k.Spec.Active {
		t.Fatalf("big-k0 after the read: %+v, %v; want it still inactive", k, err)
	}
	if k, err := lookup(c, "big-s1"); err != nil || k.Spec.AppName != "v1" {
		t.Fatalf("big-k1 after the read: %+v, %v; want renamed", k, err)
	}
}

// TestRevocationOvertakesABulkOfKeys: another account's bulk change of
// 2,500 keys' groups (non-revoking key changes, three pages) is
// ahead of a deactivation on the feed; while the first page's read of
// 1,000 keys is held, the deactivated key is already denied: the
// revocations after the watermark are applied ahead of the backlog
// (preRevoke), not after every page before them (SPEC §10, issue 15).
// The backlog is then applied in order as before.
func TestRevocationOvertakesABulkOfKeys(t *testing.T) {
	keys := appKeys(t, "big", 2500)
	victim := newKey(t, "victim", "sv")
	src := newFakeSource(append(keys, victim)...)
	c := warmCache(t, src, Options{PollInterval: -1})
	run(t, c, src)
	if k, err := lookup(c, "sv"); err != nil || !k.Spec.Active {
		t.Fatalf("victim before: %+v, %v", k, err)
	}
	entered, release := src.holdByID()
	defer release()

	for _, k := range keys {
		src.touch(edited(t, k, func(s *authz.KeySpec) { s.Group = "bulk" }))
	}
	revoked := src.put(edited(t, victim, func(s *authz.KeySpec) { s.Active = false }))
	src.notify()
	if n := <-entered; n != catchUpPage {
		t.Fatalf("first held read of %d keys, want a page of %d", n, catchUpPage)
	}
	eventually(t, "the deactivation applied ahead of the bulk", func() bool {
		k, err := lookup(c, "sv")
		return err == nil && !k.Spec.Active
	})
	if st := c.Stats(); st.Watermark >= revoked-int64(len(keys)) || st.RevokedAhead != 1 {
		t.Fatalf("watermark %d, revoked ahead %d; want the first page still held and 1 ahead", st.Watermark, st.RevokedAhead)
	}
	release()
	waitApplied(t, c, revoked)
	if k, err := lookup(c, "sv"); err != nil || k.Spec.Active {
		t.Fatalf("victim after the backlog: %+v, %v; want inactive", k, err)
	}
	if k, err := lookup(c, "big-s2499"); err != nil || k.Spec.Group != "bulk" || !k.Spec.Active {
		t.Fatalf("last bulk key: %+v, %v; want its new group", k, err)
	}
	if st := c.Stats(); st.KeysInSet != len(keys)+1 {
		t.Fatalf("%d digests in the set, want %d", st.KeysInSet, len(keys)+1)
	}
}
