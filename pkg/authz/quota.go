package authz

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// QuotaPeriod is the calendar period (UTC) a quota counts over (SPEC §12):
// a key's quota is daily or monthly, a tenant's monthly.
type QuotaPeriod uint8

// Quota periods. QuotaPeriodNone is the zero value: no quota.
const (
	QuotaPeriodNone QuotaPeriod = iota
	QuotaPeriodDay
	QuotaPeriodMonth
)

var quotaPeriodNames = [...]string{"", "day", "month"}

// String is the period's name ("day", "month"), "" for none.
func (p QuotaPeriod) String() string {
	if int(p) < len(quotaPeriodNames) {
		return quotaPeriodNames[p]
	}
	return "period(" + strconv.Itoa(int(p)) + ")"
}

// ParseQuotaPeriod reads day or month (any case; d, m, daily and monthly
// too).
func ParseQuotaPeriod(s string) (QuotaPeriod, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "day", "d", "daily":
		return QuotaPeriodDay, nil
	case "month", "m", "monthly":
		return QuotaPeriodMonth, nil
	}
	return QuotaPeriodNone, fmt.Errorf("period %q: want day or month", s)
}

// Bounds returns the period that holds t: its first instant and the first
// instant of the next one, in UTC.
func (p QuotaPeriod) Bounds(t time.Time) (start, end time.Time) {
	y, m, d := t.UTC().Date()
	switch p {
	case QuotaPeriodDay:
		start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	case QuotaPeriodMonth:
		start = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
	return time.Time{}, time.Time{}
}

// MaxQuotaRequests bounds a quota: far past any real one, and small enough
// that counts never come near overflow.
const MaxQuotaRequests = 1_000_000_000_000_000

// Quota is a number of allowed requests per calendar period (SPEC §12).
// The zero value is no quota.
type Quota struct {
	Requests int64
	Period   QuotaPeriod
}

// IsZero reports whether q is no quota.
func (q Quota) IsZero() bool { return q == Quota{} }

// String is "N/period" ("1000/day"), "" for no quota; ParseQuota reads it.
func (q Quota) String() string {
	if q.IsZero() {
		return ""
	}
	return strconv.FormatInt(q.Requests, 10) + "/" + q.Period.String()
}

// Check validates a quota: none, or a positive count of at most
// MaxQuotaRequests per day or month.
func (q Quota) Check() error {
	if q.IsZero() {
		return nil
	}
	if q.Period != QuotaPeriodDay && q.Period != QuotaPeriodMonth {
		return errors.New("period required: day or month")
	}
	if q.Requests <= 0 {
		return errors.New("requests must be positive (leave the quota out for none)")
	}
	if q.Requests > MaxQuotaRequests {
		return fmt.Errorf("requests %d is over the maximum %d", q.Requests, int64(MaxQuotaRequests))
	}
	return nil
}

// ParseQuota reads "N/period": 1000/day, 50000/month (1000/d, 1000/m). The
// result is checked; "" is an error.
func ParseQuota(s string) (Quota, error) {
	n, p, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Quota{}, fmt.Errorf("quota %q: want N/day or N/month, e.g. 1000/day", s)
	}
	count, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
	if err != nil || count <= 0 {
		return Quota{}, fmt.Errorf("quota %q: %q is not a positive whole number of requests", s, n)
	}
	period, err := ParseQuotaPeriod(p)
	if err != nil {
		return Quota{}, fmt.Errorf("quota %q: %w", s, err)
	}
	q := Quota{Requests: count, Period: period}
	if err := q.Check(); err != nil {
		return Quota{}, fmt.Errorf("quota %q: %w", s, err)
	}
	return q, nil
}

// Monthly is a tenant's quota of n requests a month; 0 is none.
func Monthly(n int64) Quota {
	if n == 0 {
		return Quota{}
	}
	return Quota{Requests: n, Period: QuotaPeriodMonth}
}

// BoundQuota is a quota that binds a key, and the subject it counts.
type BoundQuota struct {
	Subject QuotaSubject
	Quota   Quota
}

// BoundQuotas returns the quotas that bind a key of spec s, the first n of
// b: its tenant's monthly one (a key with a tenant that has one) first,
// then its own. The one rule every reader of quotas follows (row 10,
// explain, the Account API's quota state); an array, so that row 10
// allocates nothing.
func (s *KeySpec) BoundQuotas() (b [2]BoundQuota, n int) {
	return boundQuotas(s.AccountID, s.TenantID, s.TenantQuota, s.ID, s.Quota)
}

// BoundQuotas is KeySpec.BoundQuotas for a compiled record's KeyInfo.
func (s *KeyInfo) BoundQuotas() (b [2]BoundQuota, n int) {
	return boundQuotas(s.AccountID, s.TenantID, s.TenantQuota, s.ID, s.Quota)
}

func boundQuotas(accountID, tenantID string, tenantQuota int64, keyID string, quota Quota) (b [2]BoundQuota, n int) {
	if tenantID != "" && tenantQuota > 0 {
		b[n] = BoundQuota{QuotaSubject{AccountID: accountID, Tenant: true, ID: tenantID, Period: QuotaPeriodMonth}, Monthly(tenantQuota)}
		n++
	}
	if !quota.IsZero() {
		b[n] = BoundQuota{QuotaSubject{AccountID: accountID, ID: keyID, Period: quota.Period}, quota}
		n++
	}
	return b, n
}

// HasQuota reports whether a quota binds k (its own or its tenant's).
func (k *Key) HasQuota() bool { return k.hasQuota }

// QuotaSubject names what a quota counts: a tenant (monthly) or a key of
// an account, in one period. Tenant and key ids are unique only within an
// account: two accounts' "acme" are two subjects.
type QuotaSubject struct {
	AccountID string
	Tenant    bool // a tenant's quota; else a key's
	ID        string
	Period    QuotaPeriod
}

func (s QuotaSubject) String() string {
	kind := "key"
	if s.Tenant {
		kind = "tenant"
	}
	return kind + " " + s.ID + " (" + s.Period.String() + ")"
}

// Quotas holds each quota subject's count in the current period (SPEC
// §12). The fleet shares counts through the store: a cell holds what the
// other replicas had counted when this one last learned the subject's
// total (Others), plus what this replica admitted since the period began
// (Own). Admission is one atomic add per quota, and exact for this
// replica; the fleet may admit more than a quota by what the other
// replicas admitted since this one last learned the total (docs/usage.md,
// "Quotas").
//
// The zero value is not usable: use NewQuotas.
type Quotas struct {
	mu sync.RWMutex
	// cells index the subjects' cells by a hash of the subject under the
	// table's own random seed (subjectHash), so that the index holds no
	// strings: a round robin over 100,000 keys with quotas keeps a cell
	// for each, and the collector would follow the id in every entry on
	// every cycle. A cell holds its subject, which every lookup compares;
	// a subject whose hash another subject's cell has already is indexed
	// in collided (with 64 bits, about never), so lookups stay exact.
	cells    map[uint64]*QuotaCell
	collided map[QuotaSubject]*QuotaCell
	seed     maphash.Seed
	// unknown are the cells made or rolled into a new period since their
	// total was last learned (Unknown): a subject first admitted here, or
	// a period begun, whose total the store may hold more of.
	tracking  atomic.Bool
	unknownMu sync.Mutex
	unknown   []*QuotaCell
}

// TrackUnknown starts listing the cells whose total is unknown, for
// Unknown: a table that learns totals only in full (or never) keeps no
// such list.
func (q *Quotas) TrackUnknown() { q.tracking.Store(true) }

// NewQuotas returns an empty table.
func NewQuotas() *Quotas {
	return &Quotas{cells: map[uint64]*QuotaCell{}, collided: map[QuotaSubject]*QuotaCell{}, seed: maphash.MakeSeed()}
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

// find returns s's cell, nil if it has none; q.mu must be held.
func (q *Quotas) find(s QuotaSubject, h uint64) *QuotaCell {
	if c := q.cells[h]; c != nil && c.subject == s {
		return c
	}
	return q.collided[s]
}

// index adds c, which find did not find, under its subject's hash h;
// q.mu must be held for writing.
func (q *Quotas) index(c *QuotaCell, h uint64) {
	if q.cells[h] == nil {
		q.cells[h] = c
		return
	}
	q.collided[c.subject] = c
}

// QuotaCell is one subject's state in its current period.
type QuotaCell struct {
	table   *Quotas
	subject QuotaSubject
	// dead is set when the cell was dropped (DropEnded): memos that still
	// point here look the subject up again.
	dead atomic.Bool
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

// Subject is what the cell counts.
func (c *QuotaCell) Subject() QuotaSubject { return c.subject }

// cell returns the cell of s, made for the period holding now if new.
func (q *Quotas) cell(s QuotaSubject, now int64) *QuotaCell {
	return q.cellHashed(s, q.subjectHash(s), now)
}

// cellHashed is cell for a subject whose hash is h.
func (q *Quotas) cellHashed(s QuotaSubject, h uint64, now int64) *QuotaCell {
	q.mu.RLock()
	c := q.find(s, h)
	q.mu.RUnlock()
	if c != nil {
		return c
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if c = q.find(s, h); c == nil {
		c = &QuotaCell{table: q, subject: s}
		_, end := s.Period.Bounds(time.Unix(now, 0))
		c.end.Store(end.Unix())
		q.index(c, h)
		q.queueUnknown(c)
	}
	return c
}

// queueUnknown lists c among the cells whose total is to be learned.
func (q *Quotas) queueUnknown(c *QuotaCell) {
	if !q.tracking.Load() {
		return
	}
	q.unknownMu.Lock()
	q.unknown = append(q.unknown, c)
	q.unknownMu.Unlock()
}

// keyCell returns k's cell for slot (the index in k's BoundQuotas), from
// k's memo when it has one: records are replaced when their quotas
// change, so a memo never names another subject.
func (q *Quotas) keyCell(k *Key, slot int, s QuotaSubject, now int64) *QuotaCell {
	if c := k.quotaCells[slot].Load(); c != nil && c.table == q && !c.dead.Load() {
		return c
	}
	c := q.cell(s, now)
	k.quotaCells[slot].Store(c)
	return c
}

// roll starts the period holding now if the cell's has ended: counts of
// the ended period no longer bind.
func (c *QuotaCell) roll(now int64) {
	end := c.end.Load()
	if now < end {
		return
	}
	_, next := c.subject.Period.Bounds(time.Unix(now, 0))
	if c.end.CompareAndSwap(end, next.Unix()) {
		c.own.Store(0)
		c.others.Store(0)
		// Other replicas may have begun the period before this one: its
		// total is read at the next sync (once a period per cell).
		c.table.queueUnknown(c)
	}
}

// used is the cell's count as this replica knows it.
func (c *QuotaCell) used() int64 { return c.others.Load() + c.own.Load() }

// admit counts one request against limit, or refuses it (and counts
// nothing) when the limit is reached.
func (c *QuotaCell) admit(limit, now int64) bool {
	c.roll(now)
	if c.others.Load()+c.own.Add(1) > limit {
		c.own.Add(-1)
		return false
	}
	return true
}

// retryAfter is the whole seconds from now until the cell's period ends,
// at least 1.
func (c *QuotaCell) retryAfter(now int64) uint32 {
	return uint32(max(1, min(c.end.Load()-now, 1<<31)))
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
	var admitted [len(b)]*QuotaCell
	for i := range n {
		c := q.keyCell(k, i, b[i].Subject, now)
		if !c.admit(b[i].Quota.Requests, now) {
			for _, a := range admitted[:i] {
				a.own.Add(-1) // not admitted after all
			}
			return false, c.retryAfter(now)
		}
		admitted[i] = c
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
			c := q.find(bq.Subject, h)
			q.mu.RUnlock()
			if c != nil && at.Unix() < c.end.Load() {
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
func (q *Quotas) KeyCells(k *Key, now time.Time) (cells [2]*QuotaCell, n int) {
	if !k.HasQuota() {
		return cells, 0
	}
	b, n := k.Spec.BoundQuotas()
	for i := range n {
		cells[i] = q.keyCell(k, i, b[i].Subject, now.Unix())
	}
	return cells, n
}

// periodEnd is the end of the subject's period that began at start.
func (c *QuotaCell) periodEnd(start time.Time) int64 {
	_, end := c.subject.Period.Bounds(start)
	return end.Unix()
}

// ownFlushed is what the store holds of own in the period ending at end.
func (c *QuotaCell) ownFlushed(end int64) int64 {
	if c.flushedEnd != end {
		return 0
	}
	return c.flushed
}

// Expect returns the total the store should hold for the cell's subject in
// the period that began at start once delta more is written, as far as
// this replica knows: QuotaTotalUnknown when it does not know the total,
// QuotaTotalUnwanted for a period other than the cell's. A writer answers
// the totals that differ: there another replica counted too.
func (c *QuotaCell) Expect(start time.Time, delta int64) int64 {
	end := c.periodEnd(start)
	switch {
	case c.dead.Load() || end != c.end.Load():
		return QuotaTotalUnwanted
	case c.knownEnd != end:
		return QuotaTotalUnknown
	}
	return c.others.Load() + c.ownFlushed(end) + delta
}

// Flushed says the store now holds delta more of this replica's
// admissions in the period that began at start.
func (c *QuotaCell) Flushed(start time.Time, delta int64, now time.Time) {
	c.roll(now.Unix())
	end := c.periodEnd(start)
	if c.dead.Load() || end != c.end.Load() {
		return // the period ended: its counts no longer bind
	}
	c.flushed = c.ownFlushed(end) + delta
	c.flushedEnd = end
}

// SetTotal takes the store's total of the cell's subject in the period
// that began at start: others becomes the total minus what the store holds
// of this replica's own.
func (c *QuotaCell) SetTotal(start time.Time, used int64, now time.Time) {
	c.roll(now.Unix())
	end := c.periodEnd(start)
	if end != c.end.Load() {
		return // counts of another period than the cell's
	}
	v := max(0, used-c.ownFlushed(end))
	c.others.Store(v)
	if c.end.Load() != end {
		// Rolled meanwhile (an admission at the period's end): the new
		// period's others starts from 0, whichever store came last.
		c.others.CompareAndSwap(v, 0)
		return
	}
	c.knownEnd = end
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
func (q *Quotas) Unknown(now time.Time) []*QuotaCell {
	q.unknownMu.Lock()
	defer q.unknownMu.Unlock()
	var out []*QuotaCell
	seen := make(map[*QuotaCell]bool, len(q.unknown))
	keep := q.unknown[:0]
	for _, c := range q.unknown {
		end := c.end.Load()
		if seen[c] || c.dead.Load() || c.knownEnd == end || now.Unix() >= end {
			continue
		}
		seen[c] = true
		keep = append(keep, c)
		out = append(out, c)
	}
	clear(q.unknown[len(keep):])
	q.unknown = keep
	return out
}

// Start is the first instant of the cell's current period.
func (c *QuotaCell) Start() time.Time {
	start, _ := c.subject.Period.Bounds(time.Unix(c.end.Load()-1, 0))
	return start
}

// DropEnded drops the cells whose period ended before now and that
// nothing has admitted since: a later admission makes a new cell, whose
// total is then learned. It returns how many it dropped.
func (q *Quotas) DropEnded(now time.Time) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for h, c := range q.cells {
		if now.Unix() >= c.end.Load() {
			delete(q.cells, h)
			c.dead.Store(true)
			n++
		}
	}
	for s, c := range q.collided {
		if now.Unix() >= c.end.Load() {
			delete(q.collided, s)
			c.dead.Store(true)
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
