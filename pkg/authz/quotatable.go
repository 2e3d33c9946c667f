// The quota table: each subject's cell, admission (row 10) and the sync
// side that learns the fleet's totals. Quotas and their subjects are in
// quota.go.

package authz

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/slotnum"
)

// Quotas holds each quota subject's count in the current period (SPEC
// §12). The fleet shares counts through the store: a cell holds what the
// other replicas had counted when this one last learned the subject's
// total (Others), plus what this replica admitted since the period began
// (Own). Admission is one atomic add per quota, and exact for this
// replica; the fleet may admit more than a quota by what the other
// replicas admitted since this one last learned the total (docs/usage.md,
// "Quotas").
//
// The cells' counts live in chunks of slots that hold no pointer, indexed
// by number, and a record remembers its cells by number too (Key's
// quotaCells): a round robin over 100,000 keys with quotas keeps a cell
// for each, and the collector would otherwise find an object and five
// pointers a key on every cycle (the cell, its table, its subject's two
// strings, the index's entry and the record's memo). What still holds
// pointers is each slot's subject, beside the slots.
//
// The zero value is not usable: use NewQuotas.
type Quotas struct {
	mu sync.RWMutex
	// cells index the subjects' slots by a hash of the subject under the
	// table's own random seed (subjectHash), so that the index holds no
	// strings. A slot holds its subject, which every lookup compares; a
	// subject whose hash another subject's slot has already is indexed in
	// collided (with 64 bits, about never), so lookups stay exact.
	cells    map[uint64]uint32
	collided map[QuotaSubject]uint32
	seed     maphash.Seed
	// chunks are the slots, quotaChunkLen a chunk; replaced (never
	// changed) when a chunk is added, under mu, so that the hot path reads
	// a slot of a memo without the lock.
	chunks atomic.Pointer[[]quotaChunk]
	// nums are the slots' numbers, those dropped before the last
	// DropEnded given back to be handed out again, and freeing those
	// dropped by the last one: a slot is reused only after a whole
	// interval between two DropEnded calls (the usage aggregator's
	// maintenance: hourly, or at the next flush after a failure), so
	// that an admission that found the slot before it was dropped has
	// long finished counting in it.
	nums    slotnum.Numbers
	freeing []uint32
	// tag names the table in records' memos (0: too many tables were
	// made to name this one; its records look their cells up each time).
	tag uint16
	// unknown are the cells (QuotaCell.ref) made or rolled into a new
	// period since their total was last learned (Unknown): a subject
	// first admitted here, or a period begun, whose total the store may
	// hold more of.
	tracking  atomic.Bool
	unknownMu sync.Mutex
	unknown   []uint64
}

// quotaChunkLen is how many slots a chunk holds: 56 KiB of counts and
// 48 KiB of subjects.
const quotaChunkLen = 1024

// quotaChunk is quotaChunkLen slots and their subjects, apart: the slots
// hold no pointer, so the collector does not scan them.
type quotaChunk struct {
	slots    *[quotaChunkLen]quotaSlot
	subjects *[quotaChunkLen]QuotaSubject
}

// quotaTags numbers the tables for the records' memos.
var quotaTags atomic.Uint64

// TrackUnknown starts listing the cells whose total is unknown, for
// Unknown: a table that learns totals only in full (or never) keeps no
// such list.
func (q *Quotas) TrackUnknown() { q.tracking.Store(true) }

// NewQuotas returns an empty table.
func NewQuotas() *Quotas {
	q := &Quotas{cells: map[uint64]uint32{}, collided: map[QuotaSubject]uint32{}, seed: maphash.MakeSeed()}
	if t := quotaTags.Add(1); t <= 0xFFFF {
		q.tag = uint16(t)
	}
	q.chunks.Store(new([]quotaChunk))
	return q
}

// subjectHash is s's key in the table's index (cells).
func (q *Quotas) subjectHash(s QuotaSubject) uint64 {
	var h maphash.Hash
	h.SetSeed(q.seed)
	h.WriteString(s.AccountID)
	h.WriteByte(0)
	h.WriteString(s.ID)
	flags := byte(s.Period) << 1
	if s.Tenant {
		flags |= 1
	}
	h.WriteByte(flags)
	return h.Sum64()
}

// slot returns slot i, which the table has handed out.
func (q *Quotas) slot(i uint32) *quotaSlot {
	return &(*q.chunks.Load())[i/quotaChunkLen].slots[i%quotaChunkLen]
}

// subject returns slot i's subject; q.mu must be held.
func (q *Quotas) subject(i uint32) *QuotaSubject {
	return &(*q.chunks.Load())[i/quotaChunkLen].subjects[i%quotaChunkLen]
}

// handle is the cell of slot i as it is now.
func (q *Quotas) handle(i uint32) QuotaCell {
	s := q.slot(i)
	return QuotaCell{q: q, s: s, i: i, gen: s.gen.Load()}
}

// find returns s's cell, ok false if it has none; q.mu must be held.
func (q *Quotas) find(s QuotaSubject, h uint64) (QuotaCell, bool) {
	if i, ok := q.cells[h]; ok && *q.subject(i) == s {
		return q.handle(i), true
	}
	if i, ok := q.collided[s]; ok {
		return q.handle(i), true
	}
	return QuotaCell{}, false
}

// index adds slot i, which find did not find, under its subject's hash h;
// q.mu must be held for writing.
func (q *Quotas) index(i uint32, h uint64) {
	if _, taken := q.cells[h]; !taken {
		q.cells[h] = i
		return
	}
	q.collided[*q.subject(i)] = i
}

// take hands out a slot for s, its period ending at end; q.mu must be held
// for writing.
func (q *Quotas) take(s QuotaSubject, end int64) uint32 {
	i, fresh := q.nums.Take()
	if fresh {
		if chunks := *q.chunks.Load(); int(i/quotaChunkLen) == len(chunks) {
			grown := append(chunks[:len(chunks):len(chunks)],
				quotaChunk{slots: new([quotaChunkLen]quotaSlot), subjects: new([quotaChunkLen]QuotaSubject)})
			q.chunks.Store(&grown)
		}
	}
	*q.subject(i) = s
	c := q.slot(i)
	// A slot handed out again starts from nothing; its generation was
	// moved on when it was dropped, so memos and handles of the old
	// subject no longer find it.
	c.end.Store(end)
	c.others.Store(0)
	c.own.Store(0)
	c.period = s.Period
	c.flushed, c.flushedEnd, c.knownEnd = 0, 0, 0
	return i
}

// quotaSlot is one subject's state in its current period. It holds no
// pointer (Quotas).
type quotaSlot struct {
	// gen moves on when the slot is dropped (DropEnded): handles and memos
	// of an earlier generation are dead, and look the subject up again.
	gen    atomic.Uint32
	period QuotaPeriod
	// end is the Unix second the period ends (and the next begins); the
	// first admission at or past it starts the new period's counts.
	end atomic.Int64
	// others: admitted by the fleet this period as the store held it when
	// this replica last learned the total, minus this replica's
	// admissions the store held then (flushed).
	others atomic.Int64
	// own: admitted by this replica this period.
	own atomic.Int64
	// The sync side's state (Flushed, SetTotal, Expect, Unknown: one
	// goroutine). flushed is what of own the store holds, in the period
	// ending at flushedEnd (written counts, exactly); knownEnd is the end
	// of the period whose total others reflects (0: none learned yet).
	flushed              int64
	flushedEnd, knownEnd int64
}

// QuotaCell is one subject's cell in a table: a handle on its slot, as a
// lookup found it. It compares equal to another handle of the same cell.
type QuotaCell struct {
	q   *Quotas
	s   *quotaSlot
	i   uint32
	gen uint32
}

// dead reports whether the cell was dropped since the handle was made.
func (c QuotaCell) dead() bool { return c.s.gen.Load() != c.gen }

// ref is the cell's number in its table's unknown list.
func (c QuotaCell) ref() uint64 { return uint64(c.gen)<<32 | uint64(c.i) }

// Subject is what the cell counts.
func (c QuotaCell) Subject() QuotaSubject {
	c.q.mu.RLock()
	defer c.q.mu.RUnlock()
	if c.dead() {
		return QuotaSubject{}
	}
	return *c.q.subject(c.i)
}

// Period is the period the cell counts in, read without the table's lock
// (Subject takes it): the usage aggregator asks for it once a row.
func (c QuotaCell) Period() QuotaPeriod { return c.s.period }

// cell returns the cell of s, made for the period holding now if new.
func (q *Quotas) cell(s QuotaSubject, now int64) QuotaCell {
	return q.cellHashed(s, q.subjectHash(s), now)
}

// cellHashed is cell for a subject whose hash is h.
func (q *Quotas) cellHashed(s QuotaSubject, h uint64, now int64) QuotaCell {
	q.mu.RLock()
	c, ok := q.find(s, h)
	q.mu.RUnlock()
	if ok {
		return c
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if c, ok = q.find(s, h); !ok {
		_, end := s.Period.Bounds(time.Unix(now, 0))
		i := q.take(s, end.Unix())
		q.index(i, h)
		c = q.handle(i)
		q.queueUnknown(c)
	}
	return c
}

// queueUnknown lists c among the cells whose total is to be learned.
func (q *Quotas) queueUnknown(c QuotaCell) {
	if !q.tracking.Load() {
		return
	}
	q.unknownMu.Lock()
	q.unknown = append(q.unknown, c.ref())
	q.unknownMu.Unlock()
}

// keyCell returns k's cell for slot (the index in k's BoundQuotas), from
// k's memo when it has one: records are replaced when their quotas
// change, so a memo never names another subject. A memo is the table's
// tag (16 bits), the low 16 bits of the slot's generation and the slot's
// number (32 bits); a generation comes round again only after 65,536
// drops of one slot, each at least a period's end apart.
func (q *Quotas) keyCell(k *Key, slot int, s QuotaSubject, now int64) QuotaCell {
	if m := k.quotaCells[slot].Load(); q.tag != 0 && uint16(m>>48) == q.tag {
		i := uint32(m)
		c := q.slot(i)
		if g := c.gen.Load(); uint16(g) == uint16(m>>32) {
			return QuotaCell{q: q, s: c, i: i, gen: g}
		}
	}
	c := q.cell(s, now)
	if q.tag != 0 {
		k.quotaCells[slot].Store(uint64(q.tag)<<48 | uint64(uint16(c.gen))<<32 | uint64(c.i))
	}
	return c
}

// roll starts the period holding now if the cell's has ended: counts of
// the ended period no longer bind.
func (c QuotaCell) roll(now int64) {
	end := c.s.end.Load()
	if now < end {
		return
	}
	_, next := c.s.period.Bounds(time.Unix(now, 0))
	if c.s.end.CompareAndSwap(end, next.Unix()) {
		c.s.own.Store(0)
		c.s.others.Store(0)
		// Other replicas may have begun the period before this one: its
		// total is read at the next sync (once a period per cell).
		c.q.queueUnknown(c)
	}
}

// used is the cell's count as this replica knows it.
func (c QuotaCell) used() int64 { return c.s.others.Load() + c.s.own.Load() }

// admit counts one request against limit, or refuses it (and counts
// nothing) when the limit is reached.
func (c QuotaCell) admit(limit, now int64) bool {
	c.roll(now)
	if c.s.others.Load()+c.s.own.Add(1) > limit {
		c.s.own.Add(-1)
		return false
	}
	return true
}

// retryAfter is the whole seconds from now until the cell's period ends,
// at least 1.
func (c QuotaCell) retryAfter(now int64) uint32 {
	return uint32(max(1, min(c.s.end.Load()-now, 1<<31)))
}

// Admit is row 10 (SPEC §12): it counts the request against k's tenant's
// and k's own quota, or refuses it when either is used up, with the
// seconds until that period resets. A key without a quota costs one
// branch.
func (q *Quotas) Admit(k *Key, at time.Time) (ok bool, retryAfter uint32) {
	if q == nil || !k.HasQuota() {
		return true, 0
	}
	now := at.Unix()
	b, n := k.Spec.BoundQuotas()
	var admitted [len(b)]*quotaSlot
	for i := range n {
		c := q.keyCell(k, i, b[i].Subject, now)
		if !c.admit(b[i].Quota.Requests, now) {
			for _, a := range admitted[:i] {
				a.own.Add(-1) // not admitted after all
			}
			return false, c.retryAfter(now)
		}
		admitted[i] = c.s
	}
	return true, 0
}

// QuotaState is a quota's count as this replica knows it (explain).
type QuotaState struct {
	Subject  QuotaSubject
	Limit    int64
	Used     int64
	ResetsAt time.Time
}

// State returns the state of the quotas that bind k, tenant's first,
// without counting anything.
func (q *Quotas) State(k *Key, at time.Time) []QuotaState {
	if !k.HasQuota() {
		return nil
	}
	b, n := k.Spec.BoundQuotas()
	out := make([]QuotaState, n)
	for i, bq := range b[:n] {
		_, end := bq.Subject.Period.Bounds(at)
		out[i] = QuotaState{Subject: bq.Subject, Limit: bq.Quota.Requests, ResetsAt: end}
		if q != nil {
			h := q.subjectHash(bq.Subject)
			q.mu.RLock()
			c, ok := q.find(bq.Subject, h)
			q.mu.RUnlock()
			if ok && at.Unix() < c.s.end.Load() {
				out[i].Used = c.used()
			}
		}
	}
	return out
}

// The sync side. The usage aggregator, one goroutine, tells each cell what
// a flush wrote of it (Flushed), and the totals it learns: from a flush
// whose total differs from what it expected (Expect), from the changes
// other replicas wrote since the last sync, and for the cells whose total
// is unknown (Unknown). Totals are absolute: learning one twice is
// harmless.

// QuotaUse is the store's count of a subject's allowed requests in the
// period that began at Start.
type QuotaUse struct {
	Subject QuotaSubject
	Start   time.Time
	Used    int64
}

// Expected totals that are not a count (Expect).
const (
	// QuotaTotalUnknown: this replica does not know the subject's total
	// in the period; the writer is to answer it whatever it is.
	QuotaTotalUnknown int64 = -1
	// QuotaTotalUnwanted: the period is not the cell's; its total binds
	// nothing here.
	QuotaTotalUnwanted int64 = -2
)

// KeyCells returns the cells of k's quotas, tenant's first, as Admit
// finds them (made for the period holding now if missing).
func (q *Quotas) KeyCells(k *Key, now time.Time) (cells [2]QuotaCell, n int) {
	if !k.HasQuota() {
		return cells, 0
	}
	b, n := k.Spec.BoundQuotas()
	for i := range n {
		cells[i] = q.keyCell(k, i, b[i].Subject, now.Unix())
	}
	return cells, n
}

// periodEnd is the end of the cell's period that began at start.
func (c QuotaCell) periodEnd(start time.Time) int64 {
	_, end := c.s.period.Bounds(start)
	return end.Unix()
}

// ownFlushed is what the store holds of own in the period ending at end.
func (c QuotaCell) ownFlushed(end int64) int64 {
	if c.s.flushedEnd != end {
		return 0
	}
	return c.s.flushed
}

// Expect returns the total the store should hold for the cell's subject in
// the period that began at start once delta more is written, as far as
// this replica knows: QuotaTotalUnknown when it does not know the total,
// QuotaTotalUnwanted for a period other than the cell's. A writer answers
// the totals that differ: there another replica counted too.
func (c QuotaCell) Expect(start time.Time, delta int64) int64 {
	end := c.periodEnd(start)
	switch {
	case c.dead() || end != c.s.end.Load():
		return QuotaTotalUnwanted
	case c.s.knownEnd != end:
		return QuotaTotalUnknown
	}
	return c.s.others.Load() + c.ownFlushed(end) + delta
}

// current rolls the cell to now and returns the end of its period that
// began at start, ok false when that period is not the cell's current one
// or the cell was dropped (its slot may count another subject by now).
func (c QuotaCell) current(start, now time.Time) (end int64, ok bool) {
	if c.dead() {
		return 0, false
	}
	c.roll(now.Unix())
	end = c.periodEnd(start)
	return end, end == c.s.end.Load()
}

// Flushed says the store now holds delta more of this replica's
// admissions in the period that began at start.
func (c QuotaCell) Flushed(start time.Time, delta int64, now time.Time) {
	end, ok := c.current(start, now)
	if !ok {
		return // the period ended: its counts no longer bind
	}
	c.s.flushed = c.ownFlushed(end) + delta
	c.s.flushedEnd = end
}

// SetTotal takes the store's total of the cell's subject in the period
// that began at start: others becomes the total minus what the store holds
// of this replica's own.
func (c QuotaCell) SetTotal(start time.Time, used int64, now time.Time) {
	end, ok := c.current(start, now)
	if !ok {
		return // counts of another period than the cell's
	}
	v := max(0, used-c.ownFlushed(end))
	c.s.others.Store(v)
	if c.s.end.Load() != end {
		// Rolled meanwhile (an admission at the period's end): the new
		// period's others starts from 0, whichever store came last.
		c.s.others.CompareAndSwap(v, 0)
		return
	}
	c.s.knownEnd = end
}

// Sync takes the store's totals: each subject's cell (made if missing)
// learns its total in the period holding now; totals of other periods are
// ignored.
func (q *Quotas) Sync(uses []QuotaUse, now time.Time) {
	for _, u := range uses {
		q.cell(u.Subject, now.Unix()).SetTotal(u.Start, u.Used, now)
	}
}

// Unknown returns the live cells whose total in the current period (the
// one holding now) this replica has not learned: made since (a subject
// first admitted here) or rolled into a new period. They stay listed
// until a total is learned (SetTotal, or a flush that answers it).
func (q *Quotas) Unknown(now time.Time) []QuotaCell {
	q.unknownMu.Lock()
	defer q.unknownMu.Unlock()
	var out []QuotaCell
	seen := make(map[uint64]bool, len(q.unknown))
	keep := q.unknown[:0]
	for _, ref := range q.unknown {
		c := q.handle(uint32(ref))
		if seen[ref] || c.gen != uint32(ref>>32) {
			continue // listed twice, or dropped since
		}
		if end := c.s.end.Load(); c.s.knownEnd == end || now.Unix() >= end {
			continue
		}
		seen[ref] = true
		keep = append(keep, ref)
		out = append(out, c)
	}
	q.unknown = keep
	return out
}

// Start is the first instant of the cell's current period.
func (c QuotaCell) Start() time.Time {
	start, _ := c.s.period.Bounds(time.Unix(c.s.end.Load()-1, 0))
	return start
}

// DropEnded drops the cells whose period ended before now and that
// nothing has admitted since: a later admission makes a new cell, whose
// total is then learned. It returns how many it dropped. Their slots are
// handed out again after the next call.
func (q *Quotas) DropEnded(now time.Time) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.nums.Give(q.freeing...)
	q.freeing = q.freeing[:0]
	drop := func(i uint32) bool {
		c := q.slot(i)
		if now.Unix() < c.end.Load() {
			return false
		}
		c.gen.Add(1)
		*q.subject(i) = QuotaSubject{} // its strings are the collector's again
		q.freeing = append(q.freeing, i)
		return true
	}
	n := 0
	for h, i := range q.cells {
		if drop(i) {
			delete(q.cells, h)
			n++
		}
	}
	for s, i := range q.collided {
		if drop(i) {
			delete(q.collided, s)
			n++
		}
	}
	return n
}

// Len is the number of subjects the table holds.
func (q *Quotas) Len() int {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return len(q.cells) + len(q.collided)
}
