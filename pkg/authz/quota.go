package authz

import (
	"errors"
	"fmt"
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
// §12). The fleet shares counts through the usage table: a cell holds what
// the other replicas (and this one's writes) had counted at the last sync
// (Others), plus what this replica admitted since the period began (Own)
// minus what of that the store already held then. Admission is one
// atomic add per quota, and exact for this replica; the fleet may admit
// more than a quota by what the other replicas admitted since the last
// sync (docs/usage.md, "Quotas").
//
// The zero value is not usable: use NewQuotas.
type Quotas struct {
	mu    sync.RWMutex
	cells map[QuotaSubject]*QuotaCell
}

// NewQuotas returns an empty table.
func NewQuotas() *Quotas { return &Quotas{cells: map[QuotaSubject]*QuotaCell{}} }

// QuotaCell is one subject's state in its current period.
type QuotaCell struct {
	table   *Quotas
	subject QuotaSubject
	// dead is set when Sync dropped the cell: memos that still point here
	// look the subject up again.
	dead atomic.Bool
	// end is the Unix second the period ends (and the next begins); the
	// first admission at or past it starts the new period's counts.
	end atomic.Int64
	// others: admitted by the fleet this period, as the store counted them
	// at the last sync, minus this replica's admissions the store held
	// then (flushed).
	others atomic.Int64
	// own: admitted by this replica this period.
	own atomic.Int64
	// Sync's own state (Quotas.Mark, Flushed, Sync: one goroutine).
	mark, flushed int64
	markEnd       int64
}

// Subject is what the cell counts.
func (c *QuotaCell) Subject() QuotaSubject { return c.subject }

// cell returns the cell of s, made for the period holding now if new.
func (q *Quotas) cell(s QuotaSubject, now int64) *QuotaCell {
	q.mu.RLock()
	c := q.cells[s]
	q.mu.RUnlock()
	if c != nil {
		return c
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if c = q.cells[s]; c == nil {
		c = &QuotaCell{table: q, subject: s}
		_, end := s.Period.Bounds(time.Unix(now, 0))
		c.end.Store(end.Unix())
		q.cells[s] = c
	}
	return c
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
			q.mu.RLock()
			c := q.cells[bq.Subject]
			q.mu.RUnlock()
			if c != nil && at.Unix() < c.end.Load() {
				out[i].Used = c.used()
			}
		}
	}
	return out
}

// The sync side: the usage aggregator calls Mark just before it drains the
// usage counter, Flushed once what it drained is written, and Sync with
// the store's counts after that. One goroutine calls the three.

// Mark records each cell's own count, what the coming flush writes (an
// admission is counted here just before the usage counter counts it).
func (q *Quotas) Mark() {
	q.mu.RLock()
	defer q.mu.RUnlock()
	for _, c := range q.cells {
		c.mark, c.markEnd = c.own.Load(), c.end.Load()
	}
}

// Flushed says the flush after the last Mark was written: the store now
// holds each cell's own count as of the Mark.
func (q *Quotas) Flushed() {
	q.mu.RLock()
	defer q.mu.RUnlock()
	for _, c := range q.cells {
		if c.markEnd == c.end.Load() {
			c.flushed = c.mark
		} else {
			// The period rolled over since the Mark: what was flushed
			// belongs to the period that ended.
			c.flushed = 0
		}
	}
}

// QuotaUse is the store's count of a subject's allowed requests in the
// period that began at Start.
type QuotaUse struct {
	Subject QuotaSubject
	Start   time.Time
	Used    int64
}

// Sync takes the store's counts (every subject with a quota, for the
// periods holding now): each cell's others becomes the store's count minus
// what the store holds of this replica's own. Cells of subjects the store
// no longer lists, idle in their period, are dropped.
func (q *Quotas) Sync(uses []QuotaUse, now time.Time) {
	seen := make(map[QuotaSubject]bool, len(uses))
	for _, u := range uses {
		seen[u.Subject] = true
		c := q.cell(u.Subject, now.Unix())
		c.roll(now.Unix())
		_, end := u.Subject.Period.Bounds(u.Start)
		if end.Unix() != c.end.Load() {
			continue // counts of another period than the cell's
		}
		c.others.Store(max(0, u.Used-c.flushed))
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for s, c := range q.cells {
		if !seen[s] && c.own.Load() == c.flushed {
			delete(q.cells, s)
			c.dead.Store(true)
		}
	}
}

// Len is the number of subjects the table holds.
func (q *Quotas) Len() int {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return len(q.cells)
}
