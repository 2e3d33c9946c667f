package authz

import (
	"sync"
	"sync/atomic"
	"time"
)

// UsageCounter counts the decisions about known keys (SPEC §12: rows 4
// on) by key, service, operation, outcome and hour, in memory. The hot
// path takes one shard's read lock, one map lookup and one atomic add:
// no I/O, and no allocation once a combination has been seen. Drain hands
// the counts to the aggregator that writes them (pkg/usage).
//
// The zero value is not usable: use NewUsageCounter.
type UsageCounter struct {
	shards  [usageShards]usageShard
	perShrd int // cells a shard holds before counting per account
}

const usageShards = 64

type usageShard struct {
	mu sync.RWMutex
	// cells are the counts of one shard; a cell idle for a whole drain is
	// removed, so memory follows the combinations in use.
	cells map[UsageCell]*atomic.Uint64
	// overflow are counts of combinations that did not fit (the shard was
	// full), kept per account, outcome and hour (guarded by mu).
	overflow map[UsageOverflowCell]uint64
	_        [40]byte // keep shards' locks on separate cache lines
}

// UsageCell is one counted combination. Service and Operation are the
// routed target's ("" when the request did not route, e.g. unknown_route);
// Outcome is OK for an allow, else the deny reason; Hour is Unix hours.
type UsageCell struct {
	Key       *Key
	Service   string
	Operation string
	Outcome   Reason
	Hour      int64
}

// UsageOverflowCell is where counts go once a shard is full: per account,
// so that a flood of combinations from one account is still counted,
// coarsely, and reported.
type UsageOverflowCell struct {
	AccountID string
	Outcome   Reason
	Hour      int64
}

// DefaultUsageCells bounds the cells a UsageCounter holds between drains.
const DefaultUsageCells = 1 << 20

// NewUsageCounter returns a counter holding at most maxCells combinations
// between two drains (DefaultUsageCells if maxCells <= 0); past it, counts
// are kept per account (UsageOverflowCell).
func NewUsageCounter(maxCells int) *UsageCounter {
	if maxCells <= 0 {
		maxCells = DefaultUsageCells
	}
	u := &UsageCounter{perShrd: max(1, maxCells/usageShards)}
	for i := range u.shards {
		u.shards[i].cells = make(map[UsageCell]*atomic.Uint64)
		u.shards[i].overflow = make(map[UsageOverflowCell]uint64)
	}
	return u
}

// Count records one decision about k. It never blocks on I/O; it
// allocates only the first time a combination is seen since the last
// drain that found it idle.
func (u *UsageCounter) Count(k *Key, t *Target, outcome Reason, at time.Time) {
	if u == nil || k == nil {
		return
	}
	c := UsageCell{Key: k, Service: t.Service, Operation: t.Operation, Outcome: outcome, Hour: at.Unix() / 3600}
	s := &u.shards[k.Digest[0]%usageShards]
	s.mu.RLock()
	if n := s.cells[c]; n != nil {
		// Added under the read lock: Drain, under the write lock, never
		// removes a cell between its lookup and this add.
		n.Add(1)
		s.mu.RUnlock()
		return
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.cells[c]; n != nil {
		n.Add(1)
		return
	}
	if len(s.cells) >= u.perShrd {
		s.overflow[UsageOverflowCell{AccountID: k.Spec.AccountID, Outcome: outcome, Hour: c.Hour}]++
		return
	}
	n := new(atomic.Uint64)
	n.Add(1)
	s.cells[c] = n
}

// Drain calls cell for every combination counted since the last drain,
// with its count, then overflow for the counts kept per account, and
// resets them. Cells that counted nothing since the last drain are
// removed. It must not be called concurrently with itself.
func (u *UsageCounter) Drain(cell func(UsageCell, uint64), overflow func(UsageOverflowCell, uint64)) {
	for i := range u.shards {
		s := &u.shards[i]
		s.mu.Lock()
		for c, n := range s.cells {
			if v := n.Swap(0); v > 0 {
				cell(c, v)
			} else {
				delete(s.cells, c)
			}
		}
		for c, v := range s.overflow {
			overflow(c, v)
		}
		clear(s.overflow)
		s.mu.Unlock()
	}
}
