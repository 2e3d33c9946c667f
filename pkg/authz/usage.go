package authz

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/keygate/keygate/pkg/yield"
)

// UsageCounter counts the decisions about known keys (SPEC §12: rows 4
// on) by key, service, operation, outcome and hour, in memory. A key's
// two latest combinations are counted in the key's record itself (one
// compare-and-swap: countInRecord); others take one shard's read lock, one
// map lookup and one atomic add. No I/O, and no allocation once a
// combination has been seen. Drain hands the counts to the aggregator
// that writes them (pkg/usage).
//
// The zero value is not usable: use NewUsageCounter.
type UsageCounter struct {
	shards  [usageShards]usageShard
	perShrd int // cells a shard holds before counting per account
	// id tells whose counts a key's record holds (Key.usageOwner), without
	// a pointer for the collector to follow in every record.
	id uint64

	// ops interns (service, operation) pairs into small indexes, so that
	// cells are hashed without their strings; index 0 is ("", "").
	ops struct {
		mu    sync.RWMutex
		index map[[2]string]*usageOp
		names []*usageOp
		// byAccount counts the pairs each account's decisions interned:
		// operation names can come from the client (a GraphQL field, a
		// gRPC method of a declared service), so one account's callers
		// must not use up the table every account counts through.
		byAccount map[string]int
	}
	maxOps, maxOpsPerAccount int
}

const usageShards = 64

// MaxUsageOperations bounds the distinct (service, operation) pairs a
// counter names; past it, a new pair is counted as ("", "") (a GraphQL
// body may name any number of fields).
const MaxUsageOperations = 1 << 16

// MaxUsageOperationsPerAccount bounds the pairs one account's decisions
// may add to a counter's table; past it, that account's new pairs are
// counted as ("", "") while other accounts keep naming theirs.
const MaxUsageOperationsPerAccount = 1 << 12

type usageShard struct {
	mu sync.RWMutex
	// cells are the counts of one shard; a cell idle for a whole drain is
	// removed, so memory follows the combinations in use.
	cells map[cellKey]*usageCount
	// overflow are counts of combinations that did not fit (the shard was
	// full), kept per account, outcome and hour (guarded by mu).
	overflow map[UsageOverflowCell]uint64
	// listed are the keys of this shard with counts in their records
	// (Key.usage) since the last drain (guarded by mu): a key is added
	// when its first count after a drain sets Key.usageListed. spare is
	// the previous drain's list, emptied, for the next (Drain only).
	listed, spare []*Key
	_             [16]byte // keeps neighbouring shards' locks apart
}

// usageCell is a cell as the hot path hashes it: pointers and integers.
type usageCell struct {
	key     *Key
	op      uint32
	outcome Reason
	hour    int64
}

// usageCount is one cell's count in a shard's map. Adds take the shard's
// read lock, and Drain its write lock.
type usageCount struct {
	cell usageCell
	n    atomic.Uint64
}

// cellKey is a usageCell as a shard's map key: the key record by its
// address, so that the map's entries hold no pointer the collector
// follows on every cycle (a round robin over 100,000 keys keeps a cell
// for each). The address stands for one record while the entry exists:
// the entry's usageCount holds the record, and Go's collector never
// moves an object, so the address is not reused before Drain deletes the
// entry.
type cellKey struct {
	key     uintptr
	op      uint32
	outcome Reason
	hour    int64
}

func (c *usageCell) mapKey() cellKey {
	return cellKey{key: uintptr(unsafe.Pointer(c.key)), op: c.op, outcome: c.outcome, hour: c.hour}
}

// counterIDs numbers the UsageCounters of the process (UsageCounter.id).
var counterIDs atomic.Uint64

// A usage slot (Key.usage) is one word: the combination it counts (its
// tag: hour, operation index, outcome) above a count. One word, so that
// an add can never land on a combination the slot no longer counts: the
// hot path's compare-and-swap fails if Drain emptied or another request
// re-tagged the slot since it read it. A slot whose count is 0 counts
// nothing and may be re-tagged; a combination the slot cannot hold (the
// slot counts another, the count is at its limit, an hour or index out
// of range) is counted in the shard's map.
const (
	slotCountBits   = 23 // 8,388,607 decisions of one key and combination between drains
	slotOutcomeBits = 5
	slotOpBits      = 16 // MaxUsageOperations
	slotHourBits    = 64 - slotCountBits - slotOutcomeBits - slotOpBits
	slotCountMask   = 1<<slotCountBits - 1
)

// Every reason and interned operation index fits its field.
var _ = [1]struct{}{}[numReasons>>slotOutcomeBits]
var _ = [1]struct{}{}[(MaxUsageOperations-1)>>slotOpBits]

// usageSlotTag is the tag of a combination in a slot, and whether the
// combination fits one.
func usageSlotTag(op uint32, outcome Reason, hour int64) (uint64, bool) {
	if hour < 0 || hour >= 1<<slotHourBits {
		return 0, false
	}
	return (uint64(hour)<<slotOpBits|uint64(op))<<slotOutcomeBits | uint64(outcome), true
}

// untag is the combination a slot's tag names.
func untag(tag uint64) (op uint32, outcome Reason, hour int64) {
	return uint32(tag >> slotOutcomeBits & (1<<slotOpBits - 1)), Reason(tag & (1<<slotOutcomeBits - 1)), int64(tag >> (slotOutcomeBits + slotOpBits))
}

// usageOp is a key's last counted operation (Key.usageOps).
type usageOp struct {
	service, operation string
	idx                uint32
	counter            *UsageCounter
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
	u := &UsageCounter{perShrd: max(1, maxCells/usageShards), maxOps: MaxUsageOperations, maxOpsPerAccount: MaxUsageOperationsPerAccount,
		id: counterIDs.Add(1)}
	for i := range u.shards {
		u.shards[i].cells = make(map[cellKey]*usageCount)
		u.shards[i].overflow = make(map[UsageOverflowCell]uint64)
	}
	none := &usageOp{counter: u}
	u.ops.index = map[[2]string]*usageOp{{"", ""}: none}
	u.ops.names = []*usageOp{none}
	u.ops.byAccount = map[string]int{}
	return u
}

// opIndex returns the interned index of t's service and operation, from
// k's memo when k was counted for the same pair lately. Interned pairs
// are allocated once; the memo points at them, so that refreshing it
// allocates nothing.
func (u *UsageCounter) opIndex(k *Key, t *Target) uint32 {
	for i := range k.usageOps {
		if m := k.usageOps[i].Load(); m != nil && m.counter == u && m.service == t.Service && m.operation == t.Operation {
			return m.idx
		}
	}
	pair := [2]string{t.Service, t.Operation}
	u.ops.mu.RLock()
	op := u.ops.index[pair]
	u.ops.mu.RUnlock()
	if op == nil {
		u.ops.mu.Lock()
		if op = u.ops.index[pair]; op == nil {
			if len(u.ops.names) < u.maxOps && u.ops.byAccount[k.Spec.AccountID] < u.maxOpsPerAccount {
				op = &usageOp{service: t.Service, operation: t.Operation, idx: uint32(len(u.ops.names)), counter: u}
				u.ops.index[pair] = op
				u.ops.names = append(u.ops.names, op)
				u.ops.byAccount[k.Spec.AccountID]++
			} else {
				op = u.ops.names[0] // counted as ("", "")
			}
		}
		u.ops.mu.Unlock()
	}
	if op.service == t.Service && op.operation == t.Operation {
		k.usageOps[op.idx%uint32(len(k.usageOps))].Store(op)
	}
	return op.idx
}

// Count records one decision about k. It never blocks on I/O; it
// allocates only the first time a combination is seen since the last
// drain that found it idle. A combination k's record counts (Key.usage)
// takes one compare-and-swap, without lock or hash.
func (u *UsageCounter) Count(k *Key, t *Target, outcome Reason, at time.Time) {
	if u == nil || k == nil {
		return
	}
	c := usageCell{key: k, op: u.opIndex(k, t), outcome: outcome, hour: at.Unix() / 3600}
	s := &u.shards[k.Digest[0]%usageShards]
	if u.countInRecord(s, k, &c) {
		return
	}
	mk := c.mapKey()
	s.mu.RLock()
	if n := s.cells[mk]; n != nil {
		n.n.Add(1)
		s.mu.RUnlock()
		return
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.cells[mk]; n != nil {
		n.n.Add(1)
		return
	}
	if len(s.cells) >= u.perShrd {
		s.overflow[UsageOverflowCell{AccountID: k.Spec.AccountID, Outcome: outcome, Hour: c.hour}]++
		return
	}
	n := &usageCount{cell: c}
	n.n.Add(1)
	s.cells[mk] = n
}

// countInRecord counts c in one of k's slots (Key.usage) and reports
// whether it could: the slot the combination maps to counts it, or
// counts nothing and is re-tagged for it. The first count after a drain
// lists k in its shard for the next one.
func (u *UsageCounter) countInRecord(s *usageShard, k *Key, c *usageCell) bool {
	if o := k.usageOwner.Load(); o != u.id && (o != 0 || !k.usageOwner.CompareAndSwap(0, u.id)) {
		return false // another counter's (tests run several)
	}
	tag, ok := usageSlotTag(c.op, c.outcome, c.hour)
	if !ok {
		return false
	}
	slot := &k.usage[(c.op*uint32(numReasons)+uint32(c.outcome))%uint32(len(k.usage))]
	for {
		w := slot.Load()
		n := w & slotCountMask
		switch {
		case w>>slotCountBits == tag && n != 0 && n < slotCountMask:
			if slot.CompareAndSwap(w, w+1) {
				// Listed already: by the add that made the count 1,
				// and Drain unlists a key only before it takes the
				// counts of its slots.
				return true
			}
		case n == 0:
			if slot.CompareAndSwap(w, tag<<slotCountBits|1) {
				// The first count since the slot was emptied: listed
				// after the add, so that a Drain that does not take it
				// has unlisted the key before, and it is listed again.
				if !k.usageListed.Load() && k.usageListed.CompareAndSwap(false, true) {
					s.mu.Lock()
					s.listed = append(s.listed, k)
					s.mu.Unlock()
				}
				return true
			}
		default:
			return false
		}
	}
}

// Drain calls cell for every combination counted since the last drain,
// with its count, then overflow for the counts kept per account, and
// resets them. A combination can be handed over twice in one drain (from
// a key's record and from its shard's map: counts to be summed). Map
// cells that counted nothing since the last drain are removed. It must
// not be called concurrently with itself.
func (u *UsageCounter) Drain(cell func(UsageCell, uint64), overflow func(UsageOverflowCell, uint64)) {
	for i := range u.shards {
		s := &u.shards[i]
		s.mu.Lock()
		// Read after the shard's lock: every cell in it was made after
		// its operation was interned. Append-only: the prefix is stable.
		u.ops.mu.RLock()
		names := u.ops.names
		u.ops.mu.RUnlock()
		for k, n := range s.cells {
			// Adds take the read lock: none runs beside this.
			v := n.n.Swap(0)
			if v == 0 {
				delete(s.cells, k) // idle for a whole interval: removed
				continue
			}
			c := &n.cell
			op := names[c.op]
			cell(UsageCell{Key: c.key, Service: op.service, Operation: op.operation, Outcome: c.outcome, Hour: c.hour}, v)
		}
		for c, v := range s.overflow {
			overflow(c, v)
		}
		clear(s.overflow)
		listed := s.listed
		s.listed = s.spare
		s.mu.Unlock()
		for j, k := range listed {
			names = u.drainRecord(k, names, cell)
			yield.Every(j, drainYield)
		}
		clear(listed) // the records go with their counts
		s.mu.Lock()
		s.spare = listed[:0]
		s.mu.Unlock()
		// A drain runs beside the requests, often on one CPU: yielding
		// between shards, and every drainYield records within one
		// (outside the shard's lock), keeps them from waiting for the
		// whole drain.
		runtime.Gosched()
	}
}

// drainYield is how many listed records Drain hands over between
// two yields. In a server's round robin over 100,000 keys a shard's
// 1,600 records took 2 to 5 ms, the cell callback's map insert and quota
// lookup included, on cold caches and with the collector marking, and
// stretches of 256 still up to 9 ms while the callback's map grew
// (execution traces, docs/performance.md "Run of 2026-12-07, night"). A
// yield with nothing else to run costs about 100 ns.
const drainYield = 64

// drainRecord hands cell k's counts and empties its slots, unlisting k
// first: an add the drain does not take then lists k again. names are the
// interned operations as last read; they are read again (and returned)
// when a slot names a newer one.
func (u *UsageCounter) drainRecord(k *Key, names []*usageOp, cell func(UsageCell, uint64)) []*usageOp {
	k.usageListed.Store(false)
	for i := range k.usage {
		w := takeSlot(&k.usage[i])
		v := w & slotCountMask
		if v == 0 {
			continue
		}
		opIdx, outcome, hour := untag(w >> slotCountBits)
		if int(opIdx) >= len(names) {
			// Interned after names was read (and before the add that
			// tagged the slot).
			u.ops.mu.RLock()
			names = u.ops.names
			u.ops.mu.RUnlock()
		}
		op := names[opIdx]
		cell(UsageCell{Key: k, Service: op.service, Operation: op.operation, Outcome: outcome, Hour: hour}, v)
	}
	return names
}

// takeSlot empties slot's count, keeping its tag, and returns the word it
// held.
func takeSlot(slot *atomic.Uint64) uint64 {
	for {
		w := slot.Load()
		if w&slotCountMask == 0 || slot.CompareAndSwap(w, w&^slotCountMask) {
			return w
		}
	}
}
