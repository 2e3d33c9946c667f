package cache

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

// bigHeaders gives a key 20 response headers of 1 KiB: about 50 KB of
// record, so that a few of them fill a small byte bound.
func bigHeaders(s *authz.KeySpec) {
	for i := range authz.MaxResponseHeaders {
		s.ResponseHeaders = append(s.ResponseHeaders, authz.HeaderSpec{
			Name: fmt.Sprintf("x-big-%02d", i), Value: strings.Repeat("v", authz.MaxHeaderValueLen)})
	}
}

// TestWarmRespectsMaxBytes: the warm load caches records while their cost
// stays within MaxBytes (MaxKeys being far away) and, as not every key
// fits, keeps those within half of it (the rest is room for the keys
// asked for); it keeps every digest in the set and reports the cost and
// the bound; keys beyond are still found, through the store.
func TestWarmRespectsMaxBytes(t *testing.T) {
	var keys []*authz.Key
	for i := range 20 {
		keys = append(keys, newKey(t, fmt.Sprintf("k%02d", i), fmt.Sprintf("s%d", i), bigHeaders))
	}
	cost := entryOverhead + keys[0].Size()
	maxBytes := 5*cost + cost/2 // room for five
	src := newFakeSource(keys...)
	c := warmCache(t, src, Options{MaxKeys: 1000, MaxBytes: maxBytes})
	st := c.Stats()
	if c.Len() != 20 {
		t.Fatalf("set holds %d digests, want all 20", c.Len())
	}
	if st.MaxBytes != maxBytes || st.CostBytes != 2*cost {
		t.Errorf("Stats: cost %d of %d bytes, want %d (two records, half the room for five) of %d", st.CostBytes, st.MaxBytes, 2*cost, maxBytes)
	}
	for i, k := range keys {
		mustFind(t, c, fmt.Sprintf("s%d", i), k)
	}
	if got := src.lookups.Load(); got < 18 {
		t.Errorf("%d store lookups, want at least 18 (only 2 records warmed)", got)
	}
	if c.Wait(); c.Stats().CostBytes > maxBytes {
		t.Errorf("cost %d past the bound %d after the misses", c.Stats().CostBytes, maxBytes)
	}
}

// TestCostKeepsBothBounds: small records cost at least MaxBytes/MaxKeys,
// so that MaxKeys holds under the one byte bound ristretto keeps.
func TestCostKeepsBothBounds(t *testing.T) {
	small := newKey(t, "k", "s")
	c := newCache(t, newFakeSource(), Options{MaxKeys: 10, MaxBytes: 1 << 20})
	if got, want := c.costOf(small), int64(1<<20/10+1); got != want {
		t.Errorf("costOf(small key) = %d, want MaxBytes/MaxKeys rounded up, %d", got, want)
	}
	c = newCache(t, newFakeSource(), Options{MaxKeys: 1 << 20, MaxBytes: 1 << 20})
	if got := c.costOf(small); got != entryOverhead+small.Size() {
		t.Errorf("costOf(small key) = %d, want its size %d", got, entryOverhead+small.Size())
	}
	if _, err := New(newFakeSource(), Options{MaxBytes: -1}); err == nil {
		t.Error("negative MaxBytes accepted")
	}
}

// TestMissesReplaceWarmGuesses: with more keys than fit, the warm load
// caches the first ones it reads up to half the bounds; a working set
// that fits (every third key, a third of the keys in a cache of 14/30 of
// them) must be cached after one pass over it: the keys asked for take
// the free room, then replace warm-loaded records that no lookup found;
// the warm-loaded ones that lookups found stay. Before, with the cache
// filled by the warm load and ristretto's admission alone, 28% of the
// working set still missed on the second pass and 11% on the third; with
// the misses replacing warm-loaded records in the order they were loaded,
// a third of what they replaced were keys of the working set not yet asked
// for (15% of round robin's requests missed after its first pass).
func TestMissesReplaceWarmGuesses(t *testing.T) {
	const total, every = 30_000, 3
	secrets := make([]string, total)
	src := newFakeSource()
	for i := range total {
		secrets[i] = fmt.Sprintf("secret-%d", i)
		src.index(newKey(t, fmt.Sprintf("k%05d", i), secrets[i]))
	}
	perKey := (&Cache{minCost: 1}).costOf(src.keys["k00000"])
	c := warmCache(t, src, Options{MaxKeys: 1_000_000, MaxBytes: perKey * total * 14 / 30})
	if c.cold == nil {
		t.Fatal("the warm load did not fill the cache: the test needs more keys than fit")
	}
	ctx := context.Background()
	pass := func() (lookups uint64) {
		before := c.Stats().StoreLookups
		for i := 0; i < total; i += every {
			if _, err := c.LookupKey(ctx, digestOf(secrets[i])); err != nil {
				t.Fatal(err)
			}
		}
		c.Wait()
		return c.Stats().StoreLookups - before
	}
	first := pass()
	if first == 0 || first == total/every {
		t.Fatalf("first pass: %d store lookups of %d: the warm load should have cached part of the working set", first, total/every)
	}
	for n := 2; n <= 3; n++ {
		if got := pass(); got != 0 {
			t.Errorf("pass %d: %d store lookups of %d keys that fit the cache, want 0", n, got, total/every)
		}
	}
	if st := c.Stats(); st.CostBytes > st.MaxBytes {
		t.Errorf("cache holds %d bytes, over its bound %d", st.CostBytes, st.MaxBytes)
	}
}
