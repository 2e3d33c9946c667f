package cache

import (
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/slotnum"
)

// records are the cached key records by digest prefix: ristretto decides
// which stay (admission, eviction, the byte bound) and maps each prefix to
// a slot number; the slots hold the records, in blocks.
//
// Why numbers, not the records themselves as ristretto's values: the
// collector marks every record on every cycle, and reached through
// ristretto's maps — one entry at a time, in the maps' random order — a
// record cost it about 160 ns a cycle in bench/gcmodel, against under 70
// through slots in the order the records were allocated (most records
// are allocated by the warm load, one after another, and take the slots in
// that order). A round robin over many keys is paced by that marking
// (docs/performance.md).
//
// A slot is taken when a record is set and given back when ristretto lets
// go of the number (OnExit: replaced, deleted, evicted, rejected, cleared).
// A reader may still hold a number ristretto has let go of: the slot may
// then be empty (a miss) or hold another record, which the caller's digest
// compare rules out, as it rules out a prefix collision.
type records struct {
	rc *ristretto.Cache[uint64, uint32]

	// blocks is the slots' directory, replaced whole (never changed in
	// place) when it grows, so that readers load it without a lock.
	blocks atomic.Pointer[[]*slotBlock]

	mu   sync.Mutex      // guards nums
	nums slotnum.Numbers // from 1: slot 0 is never taken
}

const (
	slotBlockBits = 12
	slotBlockLen  = 1 << slotBlockBits // 4,096 slots, 32 KiB a block
)

type slotBlock [slotBlockLen]atomic.Pointer[authz.Key]

// newRecords returns records bounded as cfg says; cfg's OnExit is the
// records' own.
func newRecords(cfg ristretto.Config[uint64, uint32]) (*records, error) {
	// Block 0 from the start: slot 0, never taken, answers a miss.
	r := &records{nums: slotnum.From(1)}
	r.blocks.Store(&[]*slotBlock{new(slotBlock)})
	cfg.OnExit = r.release
	rc, err := ristretto.NewCache(&cfg)
	if err != nil {
		return nil, err
	}
	r.rc = rc
	return r, nil
}

// slot is slot s, or nil when no block holds it yet.
func (r *records) slot(s uint32) *atomic.Pointer[authz.Key] {
	blocks := *r.blocks.Load()
	if b := int(s >> slotBlockBits); b < len(blocks) {
		return &blocks[b][s&(slotBlockLen-1)]
	}
	return nil
}

// Get returns the record under prefix p, if ristretto holds one. (A miss
// is slot 0, which stays empty.)
func (r *records) Get(p uint64) (*authz.Key, bool) {
	s, _ := r.rc.Get(p)
	k := r.at(s)
	return k, k != nil
}

// at is what slot s holds: nil when empty or when no block holds it yet.
func (r *records) at(s uint32) *authz.Key {
	if sl := r.slot(s); sl != nil {
		return sl.Load()
	}
	return nil
}

// Set stores k under prefix p at cost; false when ristretto dropped the
// Set (its buffer full). Ristretto may still reject it later.
func (r *records) Set(p uint64, k *authz.Key, cost int64) bool {
	s := r.take(k)
	if !r.rc.Set(p, s, cost) {
		r.release(s) // neither stored nor queued: ristretto never saw s
		return false
	}
	return true
}

// take puts k in a free slot and returns its number.
func (r *records) take(k *authz.Key) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, fresh := r.nums.Take()
	if blocks := *r.blocks.Load(); fresh && int(s>>slotBlockBits) >= len(blocks) {
		grown := append(blocks[:len(blocks):len(blocks)], new(slotBlock))
		r.blocks.Store(&grown)
	}
	r.slot(s).Store(k)
	return s
}

// release empties slot s and gives it back (ristretto's OnExit; 0: none).
func (r *records) release(s uint32) {
	if s == 0 {
		return
	}
	r.slot(s).Store(nil)
	r.mu.Lock()
	r.nums.Give(s)
	r.mu.Unlock()
}

// inUse is how many slots hold a record (tests).
func (r *records) inUse() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nums.InUse()
}

// Del drops whatever is stored under prefix p.
func (r *records) Del(p uint64) { r.rc.Del(p) }

// Clear drops every record.
func (r *records) Clear() { r.rc.Clear() }

// Wait blocks until ristretto has applied every buffered Set.
func (r *records) Wait() { r.rc.Wait() }

// MaxCost and RemainingCost are ristretto's bound and what is left of it.
func (r *records) MaxCost() int64       { return r.rc.MaxCost() }
func (r *records) RemainingCost() int64 { return r.rc.RemainingCost() }

// Close stops ristretto's goroutines.
func (r *records) Close() { r.rc.Close() }
