// Following the change feed: Run's listen and catch-up loop, its
// backoff, and the feed's lag and backlog as metrics report them. A
// page's changes are applied in feedapply.go.

package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// Run follows the change feed until ctx is done, then returns nil. It
// listens with Source.Listen and, in one goroutine of its own, catches up
// with Source.ChangesSince on every notification (a burst of them makes
// one catch-up), on every (re)connection, at start, every PollInterval and,
// while the listener is down, every DownPollInterval, applying the changes
// a page at a time, revocations first (see catchUp). A failed catch-up is
// retried with backoff from the first change not applied: none is ever
// skipped. If Listen returns early it
// is called again after a backoff. Run must follow a successful Warm and
// only one Run may be active at a time.
func (c *Cache) Run(ctx context.Context) error {
	switch c.state.Load() {
	case stateCold:
		return ErrNotWarm
	case stateClosed:
		return ErrClosed
	}
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("cache: Run is already running")
	}
	defer c.running.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kick := make(chan struct{}, 1)
	notify := func() {
		select {
		case kick <- struct{}{}:
		default: // a catch-up is already due; it will see this change too
		}
	}
	onState := func(up bool) {
		c.setFeedState(up, ctx.Err() != nil)
		if up {
			notify()
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.follow(ctx, kick) })
	notify() // changes between the warm snapshot and the first Listen

	delay := c.opts.RetryBackoff
	for {
		started := time.Now()
		err := c.src.Listen(ctx, notify, onState)
		if ctx.Err() != nil {
			break
		}
		if time.Since(started) > maxRetryBackoff {
			delay = c.opts.RetryBackoff // it had been working: start over
		}
		c.setFeedState(false, false)
		c.log.Warn("change feed listener stopped; listening again", "error", err, "retry_in", delay)
		if !sleep(ctx, delay, nil) {
			break
		}
		delay = c.nextBackoff(delay)
	}
	cancel()
	wg.Wait()
	c.setFeedState(false, true)
	return nil
}

// setFeedState records what Listen reported. A disconnection is a warning
// unless keygate is stopping (stopping): a clean shutdown closes the
// listener on purpose and should not leave a WARN in the logs.
func (c *Cache) setFeedState(up, stopping bool) {
	if up {
		if !c.connected.Swap(true) {
			c.feedConnects.Add(1)
			c.downSince.Store(0)
			c.log.Info("change feed connected", "watermark", c.watermark.Load())
		}
		return
	}
	if c.connected.Swap(false) {
		c.downSince.Store(c.opts.Now().UnixNano())
		if stopping {
			c.log.Info("change feed closed")
			return
		}
		c.log.Warn("change feed disconnected; cached keys keep deciding")
	}
}

// follow is Run's catch-up goroutine.
func (c *Cache) follow(ctx context.Context, kick <-chan struct{}) {
	var poll, downPoll <-chan time.Time
	if c.opts.PollInterval > 0 {
		t := time.NewTicker(c.opts.PollInterval)
		defer t.Stop()
		poll = t.C
	}
	if c.opts.DownPollInterval > 0 {
		t := time.NewTicker(c.opts.DownPollInterval)
		defer t.Stop()
		downPoll = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-poll:
		case <-downPoll:
			if c.connected.Load() {
				continue // notifications will say when to catch up
			}
		}
		c.catchUpRetrying(ctx, kick)
	}
}

// catchUpRetrying catches up until it succeeds or ctx is done. A
// notification (or reconnection) during the backoff retries at once.
func (c *Cache) catchUpRetrying(ctx context.Context, kick <-chan struct{}) {
	delay := c.opts.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := c.catchUp(ctx, kick)
		if err == nil {
			if attempt > 1 {
				c.log.Info("change feed caught up", "watermark", c.watermark.Load(), "attempts", attempt)
			}
			c.failingSince.Store(0)
			return
		}
		if ctx.Err() != nil {
			return
		}
		c.catchUpErrors.Add(1)
		c.failingSince.CompareAndSwap(0, c.opts.Now().UnixNano())
		// Warn on the first failure and about once a minute after that.
		level := slog.LevelDebug
		if attempt == 1 || attempt%12 == 0 {
			level = slog.LevelWarn
		}
		c.log.Log(ctx, level, "change feed catch-up failed; retrying from the same change",
			"watermark", c.watermark.Load(), "attempt", attempt, "error", err, "retry_in", delay)
		if !sleep(ctx, delay, kick) {
			return
		}
		delay = c.nextBackoff(delay)
	}
}

func (c *Cache) nextBackoff(d time.Duration) time.Duration {
	d *= 2
	if limit := max(maxRetryBackoff, c.opts.RetryBackoff); d > limit {
		d = limit
	}
	return d
}

// sleep waits d, or until wake fires (if not nil); false when ctx is done.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// catchUp applies every change after the watermark, a page at a time.
// A page is applied in passes (see applyPage): what may revoke first, the
// bulk after. Changes may thus be applied out of seq order, but the
// watermark only moves to seq S once every change up to S is applied, so
// a failed pass is retried from the first change it did not apply, and
// none is ever skipped.
func (c *Cache) catchUp(ctx context.Context, kick <-chan struct{}) error {
	head, err := c.src.FeedHead(ctx)
	if err != nil {
		return fmt.Errorf("feed head: %w", err)
	}
	c.noteHead(head)
	for {
		w := c.watermark.Load()
		changes, err := c.src.ChangesSince(ctx, w, catchUpPage)
		if errors.Is(err, store.ErrFeedTruncated) {
			c.log.Warn("change feed pruned past this replica's watermark; loading every key again", "seq", w)
			if err := c.resync(ctx); err != nil {
				return err
			}
			clear(c.feed.applied)
			continue
		}
		if err != nil {
			return fmt.Errorf("changes since %d: %w", w, err)
		}
		if len(changes) == 0 {
			c.feed.oldestPending.Store(0)
			return nil
		}
		c.noteHead(changes[len(changes)-1].Seq)
		if err := c.preRevoke(ctx, changes); err != nil {
			return err
		}
		if err := c.applyPage(ctx, changes, kick); err != nil {
			return err
		}
		if c.watermark.Load() == w {
			return nil // nothing after the watermark; a source should not send it
		}
	}
}

// noteHead records that the feed holds changes up to seq.
func (c *Cache) noteHead(seq int64) {
	for {
		cur := c.feed.head.Load()
		if seq <= cur || c.feed.head.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// feedProgress is the catch-up's bookkeeping beyond the watermark.
type feedProgress struct {
	// applied holds the seqs above the watermark already applied (a pass
	// that succeeded before a later one failed); catchUp's goroutine only.
	applied map[int64]struct{}
	// ahead is the highest seq preRevoke has applied ahead of the
	// backlog; catchUp's goroutine only.
	ahead int64
	// head is the highest seq known committed; oldestPending the commit
	// time (Unix ns) of the oldest change known not applied, 0 when none.
	head, oldestPending atomic.Int64
}

// FeedLag is how long the oldest committed change this replica has not
// applied has waited (0 when caught up): keygate_feed_lag_seconds.
func (c *Cache) FeedLag() time.Duration {
	at := c.feed.oldestPending.Load()
	if at == 0 {
		return 0
	}
	return max(0, c.opts.Now().Sub(time.Unix(0, at)))
}

// FeedBacklog is how many changes are committed but not applied yet, by
// seq (a rolled-back writer's seq counts until a later change is
// applied): keygate_feed_backlog.
func (c *Cache) FeedBacklog() int64 {
	return max(0, c.feed.head.Load()-c.watermark.Load())
}
