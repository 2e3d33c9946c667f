// Package usage writes what the data plane counted (authz.UsageCounter)
// to the store in hourly buckets (SPEC §12): every interval and at
// shutdown, in one batch. While the store cannot be written the deltas stay
// aggregated in memory (one row per distinct combination, not per
// request); past MaxPending rows, further combinations are kept per
// account, outcome and hour, and reported. Nothing is dropped.
package usage

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
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
)

// Partitioner is an optional Writer extension: stores with partitions
// create those of the coming months ahead of time.
type Partitioner interface {
	EnsureUsagePartitions(ctx context.Context, now time.Time, ahead int) error
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
}

// Aggregator drains a counter and writes its deltas.
type Aggregator struct {
	counter *authz.UsageCounter
	w       store.UsageCounts
	opts    Options
	log     *slog.Logger

	mu      sync.Mutex // one flush at a time; guards pending
	pending map[store.UsageRow]int64

	pendingLen                              atomic.Int64
	written, counted, overflowed, writeErrs atomic.Uint64
	quotaSyncs, quotaSyncErrs               atomic.Uint64
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
	return &Aggregator{counter: counter, w: w, opts: opts, log: log, pending: map[store.UsageRow]int64{}}
}

// Stats returns the aggregator's counters.
func (a *Aggregator) Stats() Stats {
	return Stats{Pending: int(a.pendingLen.Load()), Written: a.written.Load(), Counted: a.counted.Load(),
		Overflowed: a.overflowed.Load(), WriteErrors: a.writeErrs.Load(),
		QuotaSyncs: a.quotaSyncs.Load(), QuotaErrors: a.quotaSyncErrs.Load()}
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

// maintain creates the next partitions and drops those past retention,
// and reports whether both succeeded.
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
	return ok
}

// Flush drains the counter into the pending rows and writes them. On
// error the rows stay pending, merged with later counts, and the error is
// returned.
func (a *Aggregator) Flush(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if q := a.opts.Quotas; q != nil {
		// Before the drain: an admission is counted in its quota just
		// before the usage counter counts it, so what the drain writes
		// holds at least what the mark says (a few in flight may be
		// counted twice until the next flush, never missed).
		q.Mark()
	}
	over := map[string]uint64{} // overflowed decisions by account, for the log
	a.counter.Drain(func(c authz.UsageCell, n uint64) {
		s := c.Key.Spec
		r := store.UsageRow{AccountID: s.AccountID, TenantID: s.TenantID, AppID: s.AppID, KeyID: s.ID,
			Service: c.Service, Operation: c.Operation, Outcome: outcome(c.Outcome), Hour: hour(c.Hour)}
		if _, ok := a.pending[r]; !ok && len(a.pending) >= a.opts.MaxPending {
			r = store.UsageRow{AccountID: s.AccountID, Outcome: r.Outcome, Hour: r.Hour}
			over[s.AccountID] += n
		}
		a.pending[r] += int64(n)
	}, func(c authz.UsageOverflowCell, n uint64) {
		a.pending[store.UsageRow{AccountID: c.AccountID, Outcome: outcome(c.Outcome), Hour: hour(c.Hour)}] += int64(n)
		over[c.AccountID] += n
	})
	for acc, n := range over {
		a.overflowed.Add(n)
		a.log.Warn("usage bound reached: counts kept per account, without key, service or operation",
			"account", acc, "decisions", n, "max_pending", a.opts.MaxPending)
	}
	a.pendingLen.Store(int64(len(a.pending)))
	if len(a.pending) == 0 {
		if a.opts.Quotas != nil {
			a.opts.Quotas.Flushed()
		}
		return nil
	}
	if err := a.w.AddUsage(ctx, a.pending); err != nil {
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
	a.pending = map[store.UsageRow]int64{} // a new map: an outage's growth is given back
	a.pendingLen.Store(0)
	if a.opts.Quotas != nil {
		a.opts.Quotas.Flushed()
	}
	return nil
}

// SyncQuotas reads what the fleet admitted against every quota from the
// store into the quota counts (SPEC §12). Serve calls it once before it is
// ready (a restarted replica must not start every quota from zero), then
// Run after every flush. Without quotas, or a store that keeps no counts,
// it does nothing.
func (a *Aggregator) SyncQuotas(ctx context.Context) error {
	qc, ok := a.w.(store.QuotaCounts)
	if a.opts.Quotas == nil || !ok {
		return nil
	}
	a.mu.Lock() // not between a flush's Mark and Flushed
	defer a.mu.Unlock()
	now := a.opts.Now()
	uses, err := qc.QuotaUsage(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			a.quotaSyncErrs.Add(1)
			a.log.Warn("reading quota counts failed; quotas count this replica's admissions only until the next flush", "error", err)
		}
		return err
	}
	a.opts.Quotas.Sync(uses, now)
	a.quotaSyncs.Add(1)
	return nil
}

func outcome(r authz.Reason) string {
	if r == authz.OK {
		return store.UsageOutcomeAllowed
	}
	return r.String()
}

func hour(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }
