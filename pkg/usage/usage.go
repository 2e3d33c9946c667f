// Package usage writes what the data plane counted (authz.UsageCounter)
// to the store in hourly buckets (SPEC §12): every interval and at
// shutdown, in one batch. While the store cannot be written the deltas stay
// aggregated in memory (one row per distinct combination, not per
// request); past MaxPending rows, further combinations are kept per
// account, outcome and hour, and reported. Nothing is dropped.
package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/chunked"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/yield"
)

// Defaults of Options.
const (
	DefaultInterval   = 10 * time.Second
	DefaultMaxPending = 1_000_000
	DefaultRetention  = 90 * 24 * time.Hour
	// flushTimeout bounds the last flush at shutdown.
	flushTimeout = 10 * time.Second
	// maintainEvery is how often partitions are created ahead and old
	// ones dropped.
	maintainEvery = time.Hour
	// quotaRetentionMonths: quota totals of periods that began this many
	// months before the current month's start are deleted.
	quotaRetentionMonths = 2
)

// Partitioner is an optional Writer extension: stores with partitions
// create those of the coming months ahead of time.
type Partitioner interface {
	EnsureUsagePartitions(ctx context.Context, now time.Time, ahead int) error
}

// RollupReconciler is a writer that keeps a rollup of the counts beside
// them and can repair it from them (PostgreSQL's daily rollup: counts
// written by replicas of an earlier version are not in it). maintain
// runs it; it reports how many of its parts it rebuilt.
type RollupReconciler interface {
	ReconcileUsageRollup(ctx context.Context, now time.Time) (int, error)
}

// Options configure an Aggregator.
type Options struct {
	// Interval between flushes (DefaultInterval if <= 0).
	Interval time.Duration
	// MaxPending bounds the rows held between successful writes
	// (DefaultMaxPending if <= 0).
	MaxPending int
	// Retention: buckets older are dropped (whole partitions); <= 0 keeps
	// everything.
	Retention time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
	// Quotas, when set, are the data plane's quota counts (SPEC §12): each
	// flush tells them what it wrote, and after it they take the fleet's
	// counts from the store (when it is a store.QuotaCounts).
	Quotas *authz.Quotas
	// Replica is this replica's id as a writer of quota totals (a
	// store.QuotaLedger): its periodic sync reads what writers other than
	// it changed. Unique in the fleet (serve uses --replica-id); a random
	// one if empty.
	Replica string
}

// Stats are an aggregator's counters, for metrics.
type Stats struct {
	Pending     int    // rows waiting to be written
	Written     uint64 // rows written
	Counted     uint64 // decisions written
	Overflowed  uint64 // decisions kept per account because a bound was reached
	WriteErrors uint64 // failed writes (each retried)
	QuotaSyncs  uint64 // quota counts read from the store
	QuotaErrors uint64 // failed reads of the quota counts (retried at the next flush)
	// QuotaRows: subjects' totals the syncs read (the startup read's,
	// then other replicas' changes and subjects whose total was unknown);
	// QuotaFlushTotals: totals flushes answered (another replica counted
	// the subject too, or the flush began its total).
	QuotaRows        uint64
	QuotaFlushTotals uint64
}

// Aggregator drains a counter and writes its deltas.
type Aggregator struct {
	counter *authz.UsageCounter
	w       store.UsageCounts
	opts    Options
	log     *slog.Logger

	mu      sync.Mutex // one flush at a time; guards pending, pendingQuotas and the quota sync's state
	pending map[pendingRow]int64
	// pendingQuotas are the allowed counts of the pending rows per quota
	// cell and period (start, Unix seconds), written with them.
	pendingQuotas map[quotaPeriod]int64
	// rowsHint and quotasHint are the last successful flush's sizes of
	// pending and pendingQuotas, which the next flush makes them with.
	rowsHint, quotasHint int
	// synced: the first full read of the quota counts was taken; mark is
	// the watermark of the last read (store.QuotaLedger).
	synced bool
	mark   uint64
	starts periodStarts

	pendingLen                              atomic.Int64
	written, counted, overflowed, writeErrs atomic.Uint64
	quotaSyncs, quotaSyncErrs               atomic.Uint64
	quotaRows, quotaFlushTotals             atomic.Uint64
}

// pendingRow is a usage row as the counter's cell names it: hashing a
// key record's pointer, not the 7 strings and hour of its store.UsageRow.
// A row kept per account has no key and names the account. Two records
// of one key (replaced between two drains) are two pendingRows of one
// usage row: the store sums them. While the store cannot be written, the
// pending rows keep the records they name alive (at most MaxPending).
type pendingRow struct {
	cell    authz.UsageCell
	account string // a row kept per account: cell.Key is nil
}

func (p *pendingRow) row() store.UsageRow {
	if p.cell.Key == nil {
		return store.UsageRow{AccountID: p.account, Outcome: outcome(p.cell.Outcome), Hour: hour(p.cell.Hour)}
	}
	s := p.cell.Key.Spec
	return store.UsageRow{AccountID: s.AccountID, TenantID: s.TenantID, AppID: s.AppID, KeyID: s.ID,
		Service: p.cell.Service, Operation: p.cell.Operation, Outcome: outcome(p.cell.Outcome), Hour: hour(p.cell.Hour)}
}

// quotaPeriod is a quota cell and the start of a period of it.
type quotaPeriod struct {
	cell  authz.QuotaCell
	start int64
}

// periodStarts remembers the period starts of the last hour asked: a
// flush's rows are mostly of one or two hours.
type periodStarts struct {
	hour       int64
	day, month int64
}

func (p *periodStarts) of(period authz.QuotaPeriod, hour int64) int64 {
	if p.hour != hour || p.day == 0 {
		t := time.Unix(hour*3600, 0)
		d, _ := authz.QuotaPeriodDay.Bounds(t)
		m, _ := authz.QuotaPeriodMonth.Bounds(t)
		p.hour, p.day, p.month = hour, d.Unix(), m.Unix()
	}
	if period == authz.QuotaPeriodDay {
		return p.day
	}
	return p.month
}

// New returns an aggregator of counter writing to w.
func New(counter *authz.UsageCounter, w store.UsageCounts, opts Options) *Aggregator {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Replica == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.Replica = "usage-" + hex.EncodeToString(b[:])
	}
	if _, isLedger := w.(store.QuotaLedger); isLedger && opts.Quotas != nil {
		opts.Quotas.TrackUnknown()
	}
	return &Aggregator{counter: counter, w: w, opts: opts, log: log, pending: map[pendingRow]int64{},
		pendingQuotas: map[quotaPeriod]int64{}}
}

// Stats returns the aggregator's counters.
func (a *Aggregator) Stats() Stats {
	return Stats{Pending: int(a.pendingLen.Load()), Written: a.written.Load(), Counted: a.counted.Load(),
		Overflowed: a.overflowed.Load(), WriteErrors: a.writeErrs.Load(),
		QuotaSyncs: a.quotaSyncs.Load(), QuotaErrors: a.quotaSyncErrs.Load(),
		QuotaRows: a.quotaRows.Load(), QuotaFlushTotals: a.quotaFlushTotals.Load()}
}

// Run flushes every interval, keeps partitions and retention every hour
// (retried at the next flush when that fails), and flushes once more when
// ctx is done (within flushTimeout), then returns.
func (a *Aggregator) Run(ctx context.Context) {
	t := time.NewTicker(a.opts.Interval)
	defer t.Stop()
	var lastMaintained time.Time
	if a.maintain(ctx) {
		lastMaintained = a.opts.Now()
	}
	for {
		select {
		case <-t.C:
			_ = a.Flush(ctx)
			_ = a.SyncQuotas(ctx)
			if now := a.opts.Now(); now.Sub(lastMaintained) >= maintainEvery && a.maintain(ctx) {
				lastMaintained = now
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			if err := a.Flush(fctx); err != nil {
				a.log.Error("usage counts not written at shutdown: they are lost", "rows", a.pendingLen.Load(), "error", err)
			}
			cancel()
			return
		}
	}
}

// maintain creates the next partitions, drops those past retention and
// reconciles a rollup with the counts, and reports whether all succeeded.
func (a *Aggregator) maintain(ctx context.Context) bool {
	now := a.opts.Now()
	ok := true
	if p, isP := a.w.(Partitioner); isP {
		if err := p.EnsureUsagePartitions(ctx, now, 2); err != nil {
			ok = false
			if ctx.Err() == nil {
				a.log.Warn("creating usage partitions failed; retrying at the next flush", "error", err)
			}
		}
	}
	if a.opts.Retention > 0 {
		n, err := a.w.DropUsageBefore(ctx, now.Add(-a.opts.Retention))
		switch {
		case err != nil:
			ok = false
			if ctx.Err() == nil {
				a.log.Warn("dropping old usage counts failed; retrying at the next flush", "error", err)
			}
		case n > 0:
			a.log.Info("old usage counts dropped", "partitions", n, "retention", a.opts.Retention)
		}
	}
	if r, isR := a.w.(RollupReconciler); isR {
		n, err := r.ReconcileUsageRollup(ctx, now)
		switch {
		case err != nil:
			ok = false
			if ctx.Err() == nil {
				a.log.Warn("checking the daily usage rollup against the hourly counts failed; retrying at the next flush", "error", err)
			}
		case n > 0:
			a.log.Info("daily usage rollup rebuilt from the hourly counts where they differed (counts written by an earlier version)", "account_days", n)
		}
	}
	if q := a.opts.Quotas; q != nil {
		// Cells of ended periods that nothing admitted since: a later
		// admission makes a new one, whose total it then learns.
		a.mu.Lock()
		q.DropEnded(now)
		a.mu.Unlock()
	}
	if l, isL := a.w.(store.QuotaLedger); isL && a.opts.Quotas != nil {
		month, _ := authz.QuotaPeriodMonth.Bounds(now)
		if _, err := l.DropQuotaTotalsBefore(ctx, month.AddDate(0, -quotaRetentionMonths, 0)); err != nil {
			ok = false
			if ctx.Err() == nil {
				a.log.Warn("dropping old quota totals failed; retrying at the next flush", "error", err)
			}
		}
	}
	return ok
}

// Flush drains the counter into the pending rows and writes them. On
// error the rows stay pending, merged with later counts, and the error is
// returned.
func (a *Aggregator) Flush(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.opts.Quotas
	now := a.opts.Now()
	if len(a.pending) == 0 && a.rowsHint > 0 {
		// Made here, sized as the last flush's up to maxMapHint, rather
		// than kept empty between flushes: an empty map of 100,000 rows
		// is 20 MB the collector scans on every cycle, while this one
		// lives for the flush alone. Beyond maxMapHint it grows with the
		// drain, which yields, rather than being allocated in one piece:
		// made for 100,000 rows while the collector marked, the map's 10 MB
		// cost the flush a mark assist of 12 ms, and its run 18 ms, with
		// every request waiting (docs/performance.md, "Run of 2026-12-07,
		// night"). Growing costs a few milliseconds of rehashing a flush.
		a.pending = make(map[pendingRow]int64, min(a.rowsHint, maxMapHint))
		a.pendingQuotas = make(map[quotaPeriod]int64, min(a.quotasHint, maxMapHint))
	}
	over := map[string]uint64{} // overflowed decisions by account, for the log
	a.counter.Drain(func(c authz.UsageCell, n uint64) {
		r := pendingRow{cell: c}
		// Looked up first only at the bound: below it, one map access a row.
		if len(a.pending) >= a.opts.MaxPending && !hasRow(a.pending, r) {
			r = pendingRow{cell: authz.UsageCell{Outcome: c.Outcome, Hour: c.Hour}, account: c.Key.Spec.AccountID}
			over[r.account] += n
		} else if q != nil && c.Outcome == authz.OK && c.Key.HasQuota() {
			// The quotas count what the key's rows hold (a row kept per
			// account counts toward none): the same in the totals.
			cells, nc := q.KeyCells(c.Key, now)
			for _, cell := range cells[:nc] {
				a.pendingQuotas[quotaPeriod{cell, a.starts.of(cell.Period(), c.Hour)}] += int64(n)
			}
		}
		a.pending[r] += int64(n)
	}, func(c authz.UsageOverflowCell, n uint64) {
		a.pending[pendingRow{cell: authz.UsageCell{Outcome: c.Outcome, Hour: c.Hour}, account: c.AccountID}] += int64(n)
		over[c.AccountID] += n
	})
	for acc, n := range over {
		a.overflowed.Add(n)
		a.log.Warn("usage bound reached: counts kept per account, without key, service or operation",
			"account", acc, "decisions", n, "max_pending", a.opts.MaxPending)
	}
	a.pendingLen.Store(int64(len(a.pending)))
	if len(a.pending) == 0 {
		return nil
	}
	if err := a.write(ctx, now); err != nil {
		if ctx.Err() != nil {
			// Cut short by shutdown: the rows stay pending and the
			// shutdown flush (a context of its own) writes them.
			return err
		}
		a.writeErrs.Add(1)
		a.log.Warn("writing usage counts failed; kept in memory and retried at the next flush",
			"rows", len(a.pending), "error", err)
		return err
	}
	var total int64
	for _, n := range a.pending {
		total += n
	}
	a.written.Add(uint64(len(a.pending)))
	a.counted.Add(uint64(total))
	// Empty maps until the next flush, which makes them as large as this
	// one's (the next one is likely alike); an outage's growth is given
	// back.
	a.rowsHint, a.quotasHint = len(a.pending), len(a.pendingQuotas)
	if a.rowsHint > a.opts.MaxPending/4 {
		a.rowsHint, a.quotasHint = 0, 0 // an outage's backlog, not a steady flush
	}
	a.pending = map[pendingRow]int64{}
	a.pendingQuotas = map[quotaPeriod]int64{}
	a.pendingLen.Store(0)
	return nil
}

// write writes the pending rows; with quotas, it then tells each cell
// what the store now holds of its admissions, and the totals the store
// answered (a ledger's: those another replica counted too, and those the
// flush began).
func (a *Aggregator) write(ctx context.Context, now time.Time) error {
	l, isLedger := a.w.(store.QuotaLedger)
	if a.opts.Quotas == nil || !isLedger {
		rows := make(map[store.UsageRow]int64, len(a.pending))
		i := 0
		for p, n := range a.pending {
			rows[p.row()] += n
			yield.Every(i, 1024)
			i++
		}
		if err := a.w.AddUsage(ctx, rows); err != nil {
			return err
		}
		a.flushed(now)
		return nil
	}
	// In chunks, not arrays of the flush's length: the collector makes
	// whoever allocates while it marks pay for the allocation's share of
	// the marking at once, and the flush runs beside the requests
	// (package chunked).
	rows := new(chunked.List[store.UsageDelta])
	i := 0
	for p, n := range a.pending {
		rows.Append(store.UsageDelta{Row: p.row(), Count: n})
		yield.Every(i, 1024)
		i++
	}
	keys := new(chunked.List[quotaPeriod])
	deltas := new(chunked.List[store.QuotaDelta])
	for k, n := range a.pendingQuotas {
		yield.Every(i, 1024)
		i++
		start := time.Unix(k.start, 0).UTC()
		keys.Append(k)
		deltas.Append(store.QuotaDelta{Subject: k.cell.Subject(), Start: start, Delta: n, Expected: k.cell.Expect(start, n)})
	}
	totals, err := l.AddUsageQuotas(ctx, rows, deltas, a.opts.Replica)
	if err != nil {
		return err
	}
	a.flushed(now)
	for _, t := range totals {
		keys.At(t.Index).cell.SetTotal(deltas.At(t.Index).Start, t.Used, now)
		yield.Every(i, 1024)
		i++
	}
	a.quotaFlushTotals.Add(uint64(len(totals)))
	return nil
}

// flushed tells each cell what the last write added of its admissions.
func (a *Aggregator) flushed(now time.Time) {
	i := 0
	for k, n := range a.pendingQuotas {
		k.cell.Flushed(time.Unix(k.start, 0), n, now)
		yield.Every(i, 1024)
		i++
	}
}

// maxMapHint bounds the size a flush's maps are made with: 4,096 rows are
// about 400 KB, paid for at once.
const maxMapHint = 4096

func hasRow(m map[pendingRow]int64, r pendingRow) bool {
	_, ok := m[r]
	return ok
}

// SyncQuotas reads what the fleet admitted against the quotas from the
// store into the quota counts (SPEC §12). Serve calls it once before it is
// ready (a restarted replica must not start every quota from zero): that
// first read takes every subject's count. Run calls it after every flush:
// from a store.QuotaLedger it then reads only the totals other replicas
// changed since the last read, and those of subjects whose total this
// replica does not know (first admitted here since, or in a new period);
// from another store, every subject's count again. Without quotas, or a
// store that keeps no counts, it does nothing.
func (a *Aggregator) SyncQuotas(ctx context.Context) error {
	qc, ok := a.w.(store.QuotaCounts)
	q := a.opts.Quotas
	if q == nil || !ok {
		return nil
	}
	a.mu.Lock() // not during a flush
	defer a.mu.Unlock()
	now := a.opts.Now()
	l, isLedger := a.w.(store.QuotaLedger)
	var err error
	switch {
	case !isLedger:
		var uses []authz.QuotaUse
		if uses, err = qc.QuotaUsage(ctx, now); err == nil {
			q.Sync(uses, now)
			a.quotaRows.Add(uint64(len(uses)))
		}
	case !a.synced:
		var uses []authz.QuotaUse
		if uses, a.mark, err = l.QuotaSnapshot(ctx, now); err == nil {
			// A subject none admitted yet needs no cell: one made by its
			// first admission starts from 0, as the store did.
			used := uses[:0]
			for _, u := range uses {
				if u.Used > 0 {
					used = append(used, u)
				}
			}
			q.Sync(used, now)
			a.synced = true
			a.quotaRows.Add(uint64(len(uses)))
		}
	default:
		err = a.syncChanges(ctx, l, now)
	}
	if err != nil {
		if ctx.Err() == nil {
			a.quotaSyncErrs.Add(1)
			a.log.Warn("reading quota counts failed; quotas count this replica's admissions only until the next flush", "error", err)
		}
		return err
	}
	a.quotaSyncs.Add(1)
	return nil
}

// syncChanges reads the totals other replicas changed since the last read,
// and those this replica does not know.
func (a *Aggregator) syncChanges(ctx context.Context, l store.QuotaLedger, now time.Time) error {
	q := a.opts.Quotas
	uses, mark, err := l.QuotaChanges(ctx, a.mark, a.opts.Replica, now)
	if err != nil {
		return err
	}
	q.Sync(uses, now)
	a.mark = mark
	a.quotaRows.Add(uint64(len(uses)))
	unknown := q.Unknown(now)
	if len(unknown) == 0 {
		return nil
	}
	uses = make([]authz.QuotaUse, len(unknown))
	for i, c := range unknown {
		uses[i] = authz.QuotaUse{Subject: c.Subject(), Start: c.Start()}
	}
	if err := l.QuotaTotals(ctx, uses); err != nil {
		return err
	}
	for i, c := range unknown {
		c.SetTotal(uses[i].Start, uses[i].Used, now)
	}
	a.quotaRows.Add(uint64(len(uses)))
	return nil
}

func outcome(r authz.Reason) string {
	if r == authz.OK {
		return store.UsageOutcomeAllowed
	}
	return r.String()
}

func hour(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }
