package cache

import (
	"math/bits"
	"sync/atomic"
)

// digestSet is the set of every known digest (SPEC §6), kept as the 64-bit
// prefix of each digest in an open-addressing table built for one writer
// and any number of lock-free readers:
//
//   - a reader loads the table pointer and probes with atomic loads: no
//     lock, no shared counter, nothing written, so a million requests a
//     second on many cores never contend on it;
//   - the writer (the change feed, under Cache.wmu) stores into slots with
//     atomic stores. A value is never moved once stored — removal leaves a
//     tombstone — so a reader probing concurrently never misses a prefix
//     that was present for the whole of its probe;
//   - when live entries plus tombstones pass maxFill, the writer builds a
//     new table from the live entries and publishes it with one atomic
//     pointer store; readers still on the old table see a state that was
//     current an instant ago.
//
// It is a multiset: two keys whose digests share a prefix are stored twice,
// so removing one leaves the other. A prefix shared by an unknown digest
// (probability n/2^64) only costs one store lookup that answers not found.
// Prefixes 0 and 1 are the empty and tombstone markers, so they are stored
// as 2 and 3 (a false positive for those, never a false negative).
//
// Memory: 8 bytes per slot at a load between 2/3 (just built) and 4/5
// (rebuild), i.e. 10–12 bytes per digest.
type digestSet struct {
	t    atomic.Pointer[prefixTable]
	live atomic.Int64 // digests in the set; written by the writer only
}

const (
	slotEmpty = 0
	slotTomb  = 1
)

// slotKey maps a prefix to the value stored for it, keeping clear of the
// two markers.
func slotKey(p uint64) uint64 {
	if p <= slotTomb {
		p += 2
	}
	return p
}

// prefixTable is one generation of the set. slots is shared with readers;
// used and limit are the writer's alone.
type prefixTable struct {
	slots []atomic.Uint64
	used  int // live entries + tombstones
	limit int // rebuild once used reaches it (4/5 of the slots)
}

// newPrefixTable returns an empty table that holds n entries at a load of
// about 2/3.
func newPrefixTable(n int) *prefixTable {
	size := n + n/2 + 1
	if size < 16 {
		size = 16
	}
	return &prefixTable{slots: make([]atomic.Uint64, size), limit: size * 4 / 5}
}

// home is the first slot probed for k. Prefixes are uniformly random, so a
// multiply-shift spreads them over a table of any size.
func (t *prefixTable) home(k uint64) int {
	hi, _ := bits.Mul64(k, uint64(len(t.slots)))
	return int(hi)
}

// contains probes from k's home slot to the first empty slot. There always
// is one: used stays below limit < len(slots).
func (t *prefixTable) contains(k uint64) bool {
	slots := t.slots
	i := t.home(k)
	for {
		switch slots[i].Load() {
		case k:
			return true
		case slotEmpty:
			return false
		}
		if i++; i == len(slots) {
			i = 0
		}
	}
}

// insert stores k in the first tombstone or empty slot of its probe run.
// The caller makes sure used < limit.
func (t *prefixTable) insert(k uint64) {
	slots := t.slots
	i := t.home(k)
	tomb := -1
	for {
		switch v := slots[i].Load(); v {
		case slotEmpty:
			if tomb >= 0 {
				slots[tomb].Store(k)
				return
			}
			slots[i].Store(k)
			t.used++
			return
		case slotTomb:
			if tomb < 0 {
				tomb = i
			}
		}
		if i++; i == len(slots) {
			i = 0
		}
	}
}

// remove replaces one occurrence of k with a tombstone.
func (t *prefixTable) remove(k uint64) bool {
	slots := t.slots
	i := t.home(k)
	for {
		switch slots[i].Load() {
		case k:
			slots[i].Store(slotTomb)
			return true
		case slotEmpty:
			return false
		}
		if i++; i == len(slots) {
			i = 0
		}
	}
}

func newDigestSet() *digestSet {
	s := &digestSet{}
	s.t.Store(newPrefixTable(0))
	return s
}

// contains reports whether a digest with prefix p may be known. Safe for
// any number of concurrent readers; it does not allocate.
func (s *digestSet) contains(p uint64) bool {
	return s.t.Load().contains(slotKey(p))
}

// len is the number of digests in the set.
func (s *digestSet) len() int { return int(s.live.Load()) }

// replace publishes a set built from ps (writer only).
func (s *digestSet) replace(ps []uint64) {
	t := newPrefixTable(len(ps))
	for _, p := range ps {
		t.insert(slotKey(p))
	}
	s.t.Store(t)
	s.live.Store(int64(len(ps)))
}

// add inserts one digest prefix (writer only).
func (s *digestSet) add(p uint64) {
	t := s.t.Load()
	if t.used >= t.limit {
		t = s.rebuild(int(s.live.Load()) + 1)
	}
	t.insert(slotKey(p))
	s.live.Add(1)
}

// remove drops one occurrence of a digest prefix (writer only); a prefix
// that is not there is ignored.
func (s *digestSet) remove(p uint64) {
	if s.t.Load().remove(slotKey(p)) {
		s.live.Add(-1)
	}
}

// rebuild copies the live entries into a table sized for n and publishes it.
func (s *digestSet) rebuild(n int) *prefixTable {
	old := s.t.Load()
	t := newPrefixTable(n)
	for i := range old.slots {
		if v := old.slots[i].Load(); v > slotTomb {
			t.insert(v)
		}
	}
	s.t.Store(t)
	return t
}
