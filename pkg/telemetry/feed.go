package telemetry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// LagRecorder receives the propagation lag of each change (metrics.Metrics
// implements it).
type LagRecorder interface {
	ObservePropagationLag(time.Duration)
}

// maxPendingLag bounds the changes waiting to be seen applied (a catch-up
// that keeps failing); past it the oldest are forgotten, unmeasured.
const maxPendingLag = 10_000

// ObserveChangeFeed wraps a cache's store.Source to measure how long each
// change takes to reach this replica's cache: keygate_propagation_lag_seconds.
//
// The lag runs from the NOTIFY that announced the change (when the
// listener passed it on) to the moment the cache had applied it: the cache
// calls ChangesSince(after) only once every change up to after is applied,
// so a change is applied when a later ChangesSince asks for what follows
// it. A change found without a notification (by the periodic poll, or
// after a reconnection) is not measured. This leaves out the time from the
// writer's commit to the NOTIFY's delivery; store.Change has no commit
// time yet (see the package's report for the change that adds it).
//
// now is the clock; nil means time.Now.
func ObserveChangeFeed(src store.Source, lag LagRecorder, now func() time.Time) store.Source {
	if now == nil {
		now = time.Now
	}
	return &feedSource{Source: src, lag: lag, now: now}
}

type feedSource struct {
	store.Source
	lag LagRecorder
	now func() time.Time

	// notified is when the oldest notification not yet followed by a
	// ChangesSince arrived (Unix ns), 0 when none.
	notified atomic.Int64

	mu sync.Mutex
	// pending are changes returned but not yet seen applied.
	pending []pendingChange
	// stamp is the notification time of the catch-up in progress: the
	// pages after the first carry the first page's notification.
	stamp int64
}

type pendingChange struct {
	seq      int64
	notified int64
}

func (f *feedSource) Listen(ctx context.Context, notify func(), onState func(connected bool)) error {
	return f.Source.Listen(ctx, func() {
		f.notified.CompareAndSwap(0, f.now().UnixNano())
		notify()
	}, onState)
}

func (f *feedSource) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now().UnixNano()
	// Everything up to after is applied by now.
	keep := f.pending[:0]
	for _, p := range f.pending {
		if p.seq <= after {
			f.lag.ObservePropagationLag(time.Duration(now - p.notified))
		} else {
			keep = append(keep, p)
		}
	}
	f.pending = keep
	if n := f.notified.Swap(0); n != 0 {
		f.stamp = n
	}

	changes, err := f.Source.ChangesSince(ctx, after, limit)
	if err != nil || len(changes) == 0 {
		// A catch-up ends with an empty page (or fails and starts over
		// from a notification or the poll).
		f.stamp = 0
		return changes, err
	}
	if f.stamp == 0 {
		// A notification that came in while the query ran may be for
		// what it returned (committed just before the query's snapshot).
		// It stays set for the next call too.
		f.stamp = f.notified.Load()
	}
	last := after
	if len(f.pending) > 0 {
		last = max(last, f.pending[len(f.pending)-1].seq)
	}
	for i := range changes {
		seq := changes[i].Seq
		if seq <= last {
			continue
		}
		// The commit time, when the store knows it, measures the whole
		// path (commit → notify → catch-up → applied); otherwise the
		// notification's arrival does.
		from := f.stamp
		if at := changes[i].At; !at.IsZero() {
			from = at.UnixNano()
		}
		if from != 0 {
			f.pending = append(f.pending, pendingChange{seq: seq, notified: from})
		}
		last = seq
	}
	if over := len(f.pending) - maxPendingLag; over > 0 {
		f.pending = append(f.pending[:0], f.pending[over:]...)
	}
	return changes, nil
}
