package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// newCache builds a cache over src, closed at the end of the test.
func newCache(t testing.TB, src *fakeSource, opts Options) *Cache {
	t.Helper()
	if opts.MaxKeys == 0 {
		opts.MaxKeys = 1 << 12
	}
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = time.Millisecond
	}
	c, err := New(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// warmCache is newCache + Warm.
func warmCache(t testing.TB, src *fakeSource, opts Options) *Cache {
	t.Helper()
	c := newCache(t, src, opts)
	if err := c.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// run starts the change feed and waits until it is connected and caught
// up; the returned function stops it and waits for Run to return.
func run(t testing.TB, c *Cache, src *fakeSource) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	eventually(t, "feed connected", func() bool { return c.Stats().FeedConnected })
	src.mu.Lock()
	seq := src.seq
	src.mu.Unlock()
	waitApplied(t, c, seq)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(deadline):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually waits until cond holds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitApplied waits until the feed has applied every change up to seq,
// and ristretto has stored what it set.
func waitApplied(t testing.TB, c *Cache, seq int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("watermark %d", seq), func() bool { return c.Stats().Watermark >= seq })
	c.Wait()
}

// evict drops a digest's record from ristretto only (it stays in the set).
func evict(c *Cache, d apikey.Digest) {
	c.wmu.Lock()
	c.rc.Del(prefixOf(d))
	c.wmu.Unlock()
	c.Wait()
}

func lookup(c *Cache, secret string) (*authz.Key, error) {
	return c.LookupKey(context.Background(), digestOf(secret))
}

// mustFind looks a secret up and checks which key (and version) answers.
func mustFind(t *testing.T, c *Cache, secret string, want *authz.Key) {
	t.Helper()
	k, err := lookup(c, secret)
	if err != nil {
		t.Fatalf("lookup %q: %v, want key %s", secret, err, want.Spec.ID)
	}
	if k != want {
		t.Fatalf("lookup %q: got record %p (%s active=%v), want %p (%s active=%v)",
			secret, k, k.Spec.ID, k.Spec.Active, want, want.Spec.ID, want.Spec.Active)
	}
}

func mustNotFind(t *testing.T, c *Cache, secret string) {
	t.Helper()
	if k, err := lookup(c, secret); !errors.Is(err, authz.ErrKeyNotFound) {
		t.Fatalf("lookup %q: %v, %v; want ErrKeyNotFound", secret, k, err)
	}
}

func TestHit(t *testing.T) {
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	src := newFakeSource(k1, k2)
	c := warmCache(t, src, Options{})
	mustFind(t, c, "s1", k1)
	mustFind(t, c, "s2", k2)
	if n := src.lookups.Load(); n != 0 {
		t.Errorf("%d store lookups for cached keys, want 0", n)
	}
	if st := c.Stats(); st.Hits != 2 || st.Misses != 0 || st.KeysInSet != 2 {
		t.Errorf("stats %+v, want 2 hits, 0 misses, 2 keys", st)
	}
	if c.Len() != 2 {
		t.Errorf("Len %d, want 2", c.Len())
	}
}

func TestNotInSetNeverReachesTheStore(t *testing.T) {
	src := newFakeSource(newKey(t, "k1", "s1"))
	c := warmCache(t, src, Options{})
	for i := range 1000 {
		mustNotFind(t, c, fmt.Sprintf("sprayed-%d", i))
	}
	if n := src.lookups.Load(); n != 0 {
		t.Fatalf("%d store lookups for unknown digests, want 0", n)
	}
	if st := c.Stats(); st.NotInSet != 1000 || st.Misses != 0 {
		t.Errorf("stats %+v, want 1000 not-in-set, 0 misses", st)
	}
}

func TestPrefixCollisionCostsOneLookup(t *testing.T) {
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{})
	// Same first 8 bytes as k1's digest, different digest.
	d := k1.Digest
	d[31] ^= 1
	if _, err := c.LookupKey(context.Background(), d); !errors.Is(err, authz.ErrKeyNotFound) {
		t.Fatalf("colliding digest: %v, want ErrKeyNotFound", err)
	}
	if n := src.lookups.Load(); n != 1 {
		t.Errorf("%d store lookups, want 1", n)
	}
}

func TestEvictedKeyLoadsOnceForConcurrentMisses(t *testing.T) {
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{})
	evict(c, k1.Digest)

	entered, release := src.hold()
	defer release()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			k, err := lookup(c, "s1")
			if err == nil && k != k1 {
				err = fmt.Errorf("got %v, want k1", k)
			}
			errs <- err
		})
	}
	<-entered
	// Misses are counted once a caller has joined the shared load.
	eventually(t, "every caller joined", func() bool { return c.Stats().Misses == n })
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := src.lookups.Load(); got != 1 {
		t.Fatalf("%d store lookups for %d concurrent misses, want 1", got, n)
	}
	// The loaded record is cached: the next lookup is a hit.
	src.unhold()
	c.Wait()
	mustFind(t, c, "s1", k1)
	if got := src.lookups.Load(); got != 1 {
		t.Errorf("%d store lookups after the load, want 1", got)
	}
}

func TestRotatedKeyLoadIsCachedUnderBothDigests(t *testing.T) {
	clock := newFakeClock()
	k1 := rotated(t, newKey(t, "k1", "old"), "new", clock.Now().Add(time.Hour))
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{Now: clock.Now})
	evict(c, k1.Digest)
	evict(c, k1.PreviousDigest())
	mustFind(t, c, "old", k1) // loads, and caches under both digests
	c.Wait()
	mustFind(t, c, "new", k1)
	if got := src.lookups.Load(); got != 1 {
		t.Errorf("%d store lookups, want 1", got)
	}
}

func TestNegativeEntryAndExpiry(t *testing.T) {
	clock := newFakeClock()
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	src := newFakeSource(k1, k2)
	c := warmCache(t, src, Options{Now: clock.Now, NegativeTTL: 5 * time.Second})
	// k2 vanishes from the store without a change: its set entry is stale.
	src.forget("k2")
	evict(c, k2.Digest)

	mustNotFind(t, c, "s2")
	c.Wait()
	for range 10 {
		mustNotFind(t, c, "s2")
	}
	if got := src.lookups.Load(); got != 1 {
		t.Fatalf("%d store lookups within the negative TTL, want 1", got)
	}
	if st := c.Stats(); st.NegativeHits != 10 {
		t.Errorf("%d negative hits, want 10", st.NegativeHits)
	}
	clock.Advance(4 * time.Second)
	mustNotFind(t, c, "s2")
	if got := src.lookups.Load(); got != 1 {
		t.Fatalf("%d store lookups before expiry, want 1", got)
	}
	clock.Advance(time.Second)
	mustNotFind(t, c, "s2")
	if got := src.lookups.Load(); got != 2 {
		t.Fatalf("%d store lookups after expiry, want 2", got)
	}
}

func TestNegativeEntriesDisabled(t *testing.T) {
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{NegativeTTL: -1})
	src.forget("k1")
	evict(c, k1.Digest)
	for range 3 {
		mustNotFind(t, c, "s1")
		c.Wait()
	}
	if got := src.lookups.Load(); got != 3 {
		t.Fatalf("%d store lookups, want 3", got)
	}
}

func TestStoreErrorIsNotCached(t *testing.T) {
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{})
	evict(c, k1.Digest)
	src.setLookupErr(errDown)
	for i := range 3 {
		k, err := lookup(c, "s1")
		if !errors.Is(err, errDown) || k != nil {
			t.Fatalf("lookup %d while the store is down: %v, %v; want the store's error", i, k, err)
		}
		c.Wait()
	}
	if got := src.lookups.Load(); got != 3 {
		t.Fatalf("%d store lookups, want 3 (errors are never cached)", got)
	}
	src.setLookupErr(nil)
	mustFind(t, c, "s1", k1)
	if st := c.Stats(); st.StoreErrors != 3 || st.StoreLookups != 4 {
		t.Errorf("stats %+v, want 3 store errors of 4 lookups", st)
	}
}

func TestCallerStopsWaitingWhenItsContextEnds(t *testing.T) {
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	c := warmCache(t, src, Options{})
	evict(c, k1.Digest)
	entered, release := src.hold()
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.LookupKey(ctx, k1.Digest)
		done <- err
	}()
	<-entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("lookup: %v, want context.Canceled", err)
	}
	// The shared load goes on detached and still caches its answer.
	release()
	eventually(t, "load cached", func() bool {
		c.Wait()
		return c.Stats().StoreLookups == 1 && func() bool {
			e, ok := c.rc.Get(prefixOf(k1.Digest))
			return ok && e == k1
		}()
	})
}

func TestWarmAndReady(t *testing.T) {
	clock := newFakeClock()
	k1 := newKey(t, "k1", "s1")
	src := newFakeSource(k1)
	src.loadAllErr = errDown
	c := newCache(t, src, Options{Now: clock.Now})

	if ok, msg := c.Ready(); ok || msg == "" {
		t.Fatalf("Ready before Warm: %v %q, want false with a reason", ok, msg)
	}
	if _, err := lookup(c, "s1"); !errors.Is(err, ErrNotWarm) {
		t.Fatalf("lookup before Warm: %v, want ErrNotWarm", err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrNotWarm) {
		t.Fatalf("Run before Warm: %v, want ErrNotWarm", err)
	}
	if err := c.Warm(context.Background()); !errors.Is(err, errDown) {
		t.Fatalf("Warm with the store down: %v", err)
	}
	if ok, _ := c.Ready(); ok {
		t.Fatal("Ready after a failed Warm")
	}

	src.loadAllErr = nil
	if err := c.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, msg := c.Ready(); !ok || msg != "ok" {
		t.Fatalf("Ready after Warm: %v %q", ok, msg)
	}
	mustFind(t, c, "s1", k1)
	if err := c.Warm(context.Background()); err == nil {
		t.Error("second Warm: no error")
	}
	// Never connected to the feed for longer than the threshold: degraded,
	// still ready.
	clock.Advance(6 * time.Second)
	if ok, msg := c.Ready(); !ok || msg != "degraded: change feed disconnected for 6 s" {
		t.Fatalf("Ready with no feed: %v %q", ok, msg)
	}

	c.Close()
	if ok, _ := c.Ready(); ok {
		t.Error("Ready after Close")
	}
	if _, err := lookup(c, "s1"); !errors.Is(err, ErrClosed) {
		t.Errorf("lookup after Close: %v, want ErrClosed", err)
	}
}

func TestWarmRespectsMaxKeys(t *testing.T) {
	var keys []*authz.Key
	for i := range 20 {
		keys = append(keys, newKey(t, fmt.Sprintf("k%02d", i), fmt.Sprintf("s%d", i)))
	}
	src := newFakeSource(keys...)
	c := warmCache(t, src, Options{MaxKeys: 5})
	if c.Len() != 20 {
		t.Fatalf("set holds %d digests, want all 20", c.Len())
	}
	for i, k := range keys {
		mustFind(t, c, fmt.Sprintf("s%d", i), k)
	}
	if got := src.lookups.Load(); got < 15 {
		t.Errorf("%d store lookups, want at least 15 (only 5 records warmed)", got)
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Error("nil source accepted")
	}
	if _, err := New(newFakeSource(), Options{MaxKeys: -1}); err == nil {
		t.Error("negative MaxKeys accepted")
	}
}

// TestConcurrentLookupsWhileChangesApply runs under -race: many readers
// on a mix of hits, misses and unknown digests while the feed updates,
// rotates and deletes keys; at the end every lookup answers the final state.
func TestConcurrentLookupsWhileChangesApply(t *testing.T) {
	const nkeys = 64
	keys := make([]*authz.Key, nkeys)
	for i := range keys {
		keys[i] = newKey(t, fmt.Sprintf("k%02d", i), fmt.Sprintf("s%d-v0", i))
	}
	src := newFakeSource(keys...)
	c := warmCache(t, src, Options{MaxKeys: nkeys / 2, PollInterval: time.Millisecond})
	run(t, c, src)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				secret := fmt.Sprintf("s%d-v%d", (g+i)%nkeys, i%4)
				k, err := lookup(c, secret)
				if err != nil && !errors.Is(err, authz.ErrKeyNotFound) {
					t.Errorf("lookup: %v", err)
					return
				}
				if err == nil && !k.Matches(digestOf(secret), time.Now()) {
					t.Errorf("lookup %q returned a key it does not match", secret)
					return
				}
			}
		})
	}
	final := make([]*authz.Key, nkeys)
	copy(final, keys)
	var last int64
	for v := 1; v < 4; v++ {
		for i := range nkeys {
			switch {
			case i%7 == 0 && v == 3:
				last = src.remove(final[i].Spec.ID)
				final[i] = nil
			case i%2 == 0:
				final[i] = rotated(t, final[i], fmt.Sprintf("s%d-v%d", i, v), time.Time{})
				last = src.put(final[i])
			default:
				final[i] = edited(t, final[i], func(s *authz.KeySpec) { s.Group = fmt.Sprint(v) })
				last = src.put(final[i])
			}
			if i%8 == 0 {
				src.notify()
			}
		}
	}
	src.notify()
	waitApplied(t, c, last)
	close(stop)
	wg.Wait()

	for i, k := range final {
		for v := range 4 {
			secret := fmt.Sprintf("s%d-v%d", i, v)
			if k != nil && k.Digest == digestOf(secret) {
				got, err := lookup(c, secret)
				if err != nil || got.Spec.ID != k.Spec.ID || got.Spec.Group != k.Spec.Group {
					t.Errorf("%s: %v, %v; want the final record", secret, got, err)
				}
				continue
			}
			mustNotFind(t, c, secret)
		}
	}
}
