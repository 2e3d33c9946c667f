package cache

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/keygate/keygate/pkg/authz"
)

func newTestRecords(t *testing.T, maxCost int64) *records {
	t.Helper()
	r, err := newRecords(ristretto.Config[uint64, uint32]{
		NumCounters: 10_000, MaxCost: maxCost, BufferItems: 64,
		KeyToHash:          func(p uint64) (uint64, uint64) { return p, 0 },
		IgnoreInternalCost: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// held counts the prefixes below n ristretto holds a slot for, checking
// that each slot holds a record set under that prefix since it was last
// deleted (not always the last one: ristretto keeps the first of two Sets
// it has not applied yet).
func held(t *testing.T, r *records, n int, want map[uint64]map[*authz.Key]bool) int {
	t.Helper()
	count := 0
	for p := range uint64(n) {
		s, ok := r.rc.Get(p)
		if !ok {
			continue
		}
		count++
		k := r.slot(s).Load()
		if k == nil {
			t.Fatalf("prefix %d: ristretto holds slot %d, which is empty", p, s)
		}
		if !want[p][k] {
			t.Fatalf("prefix %d: slot %d holds a record not set under it", p, s)
		}
	}
	return count
}

// Every slot ristretto lets go of — a record replaced, deleted, evicted by
// the bound, rejected, cleared — is given back: after any mix of them the
// slots in use are exactly the records ristretto holds, each in its own.
func TestRecordSlotsFollowRistretto(t *testing.T) {
	const prefixes = 2_000
	r := newTestRecords(t, 500) // room for 500 records of cost 1: evictions
	want := map[uint64]map[*authz.Key]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50_000 {
		p := rng.Uint64N(prefixes)
		switch op := rng.IntN(10); {
		case op < 7:
			k := &authz.Key{}
			if want[p] == nil {
				want[p] = map[*authz.Key]bool{}
			}
			if r.Set(p, k, 1) {
				want[p][k] = true
			}
		case op < 9:
			r.Del(p)
			delete(want, p)
		default:
			if i%50 == 0 {
				r.Clear()
				clear(want)
			}
		}
		if i%5_000 == 0 {
			r.Wait()
			if n, used := held(t, r, prefixes, want), r.inUse(); n != used {
				t.Fatalf("after %d operations: ristretto holds %d records, %d slots are in use", i, n, used)
			}
		}
	}
	r.Wait()
	n, used := held(t, r, prefixes, want), r.inUse()
	if n != used {
		t.Fatalf("ristretto holds %d records, %d slots are in use", n, used)
	}
	if n == 0 || n > 500 {
		t.Fatalf("ristretto holds %d records; want some, at most the bound's 500", n)
	}
}

// Readers racing with writers find either no record or one that was set
// under some prefix: never a torn or freed one (run with -race).
func TestRecordSlotsConcurrentReaders(t *testing.T) {
	r := newTestRecords(t, 200)
	keys := make([]*authz.Key, 64)
	for i := range keys {
		keys[i] = &authz.Key{}
	}
	known := map[*authz.Key]bool{}
	for _, k := range keys {
		known[k] = true
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := rng.Uint64N(300)
				if rng.IntN(4) == 0 {
					r.Del(p)
				} else {
					r.Set(p, keys[rng.IntN(len(keys))], 1)
				}
			}
		})
	}
	for i := range 200_000 {
		if k, ok := r.Get(uint64(i % 300)); ok && !known[k] {
			t.Fatalf("prefix %d: a record never set", i%300)
		}
	}
	close(stop)
	wg.Wait()
	r.Wait()
}

// A lookup whose slot number ristretto has let go of, the slot since given
// to another key's record, is a miss answered by the store: never the
// other key. (The race this stands for: a reader loads key A's number, A
// is evicted and B's record takes the slot, then the reader loads it.)
func TestReusedSlotIsAMiss(t *testing.T) {
	a, b := newKey(t, "key-a", "secret-a"), newKey(t, "key-b", "secret-b")
	src := newFakeSource(a, b)
	c := warmCache(t, src, Options{})
	s, ok := c.rc.rc.Get(prefixOf(a.Digest))
	if !ok || c.rc.at(s) != a {
		t.Fatal("key A is not cached in its slot")
	}
	c.rc.slot(s).Store(b) // A's number, B's record
	before := c.Stats().StoreLookups
	got, err := lookup(c, "secret-a")
	if err != nil || got == nil || got.Spec.ID != "key-a" {
		t.Fatalf("lookup of A's secret with B's record in A's slot: %v, %v; want key A", got, err)
	}
	if n := c.Stats().StoreLookups - before; n != 1 {
		t.Fatalf("%d store lookups, want 1 (the slot's record is not A's: a miss)", n)
	}
	mustFind(t, c, "secret-b", b)
}
