package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

const benchKeys = 10_000

// benchCache is a warm cache of benchKeys keys, all cached.
func benchCache(b testing.TB, opts Options) (*Cache, []apikey.Digest) {
	b.Helper()
	keys := make([]*authz.Key, benchKeys)
	ds := make([]apikey.Digest, benchKeys)
	for i := range keys {
		secret := fmt.Sprintf("bench-secret-%d", i)
		keys[i] = newKey(b, fmt.Sprintf("k%d", i), secret)
		ds[i] = digestOf(secret)
	}
	opts.MaxKeys = 4 * benchKeys
	c := warmCache(b, newFakeSource(keys...), opts)
	c.Wait()
	for _, d := range ds { // every key cached before timing
		if _, err := c.LookupKey(context.Background(), d); err != nil {
			b.Fatal(err)
		}
	}
	c.Wait()
	return c, ds
}

// unknownDigests are digests no key has.
func unknownDigests(n int) []apikey.Digest {
	ds := make([]apikey.Digest, n)
	for i := range ds {
		var buf [8]byte
		binary.LittleEndian.PutUint64(buf[:], uint64(i))
		ds[i] = sha256.Sum256(append([]byte("unknown-"), buf[:]...))
	}
	return ds
}

// Allocation counts are deterministic, unlike timings, so the hot path's
// zero-allocation promise is asserted here rather than read off benchmarks.
func TestZeroAllocs(t *testing.T) {
	clock := newFakeClock()
	c, ds := benchCache(t, Options{Now: clock.Now})
	unknown := unknownDigests(64)
	k := newKey(t, "used", "s")
	c.KeyUsed(k, clock.Now()) // first use creates the per-key entry
	ctx := context.Background()

	// A negative entry: a key the store forgot without a change.
	neg := newKey(t, "neg", "neg-secret")
	src := newFakeSource(neg)
	cn := warmCache(t, src, Options{Now: clock.Now})
	src.forget("neg")
	evict(cn, neg.Digest)
	if _, err := cn.LookupKey(ctx, neg.Digest); err == nil {
		t.Fatal("forgotten key found")
	}
	cn.Wait()

	i := 0
	tests := []struct {
		name   string
		pooled bool // goes through ristretto's pooled read buffer
		f      func()
	}{
		// One lookup per run: ristretto hands its read buffer to its policy
		// (a 512-byte slice) once per 64 reads, which is < 1 alloc/op.
		{"hit", true, func() {
			i++
			if _, err := c.LookupKey(ctx, ds[i%len(ds)]); err != nil {
				panic(err)
			}
		}},
		{"not in set", false, func() {
			for _, d := range unknown {
				if _, err := c.LookupKey(ctx, d); err == nil {
					panic("found")
				}
			}
		}},
		{"negative entry", true, func() {
			if _, err := cn.LookupKey(ctx, neg.Digest); err == nil {
				panic("found")
			}
		}},
		{"KeyUsed, same minute", false, func() { c.KeyUsed(k, clock.Now()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.pooled && raceEnabled {
				t.Skip("sync.Pool drops items under the race detector")
			}
			if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
				t.Fatalf("%v allocs/op, want 0", n)
			}
		})
	}
	if st := cn.Stats(); st.StoreLookups != 1 {
		t.Errorf("%d store lookups for the negative entry, want 1", st.StoreLookups)
	}
}

func BenchmarkLookupHit(b *testing.B) {
	c, ds := benchCache(b, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.LookupKey(ctx, ds[i%len(ds)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkLookupHitParallel(b *testing.B) {
	c, ds := benchCache(b, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(time.Now().UnixNano()) & 0xffff
		for pb.Next() {
			if _, err := c.LookupKey(ctx, ds[i%len(ds)]); err != nil {
				panic(err)
			}
			i++
		}
	})
}

func BenchmarkLookupNotInSet(b *testing.B) {
	c, _ := benchCache(b, Options{})
	unknown := unknownDigests(1024)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.LookupKey(ctx, unknown[i&1023]); err == nil {
			b.Fatal("found")
		}
		i++
	}
}

func BenchmarkLookupNotInSetParallel(b *testing.B) {
	c, _ := benchCache(b, Options{})
	unknown := unknownDigests(1024)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(time.Now().UnixNano())
		for pb.Next() {
			if _, err := c.LookupKey(ctx, unknown[i&1023]); err == nil {
				panic("found")
			}
			i++
		}
	})
}

// BenchmarkSetContains1M probes a set of 1,000,000 digests (misses).
func BenchmarkSetContains1M(b *testing.B) {
	s := newDigestSet()
	ps := make([]uint64, 1_000_000)
	for i := range ps {
		ps[i] = prefixOf(sha256.Sum256(binary.LittleEndian.AppendUint64(nil, uint64(i))))
	}
	s.replace(ps)
	unknown := unknownDigests(4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if s.contains(prefixOf(unknown[i&4095])) {
			b.Fatal("found")
		}
		i++
	}
}

func BenchmarkKeyUsedParallel(b *testing.B) {
	c := newCache(b, newFakeSource(), Options{})
	keys := make([]*authz.Key, 64)
	for i := range keys {
		keys[i] = newKey(b, fmt.Sprintf("k%d", i), "s")
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.KeyUsed(keys[i&63], now)
			i++
		}
	})
}
