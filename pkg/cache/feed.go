package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Warm loads every key from one consistent snapshot of the source: all
// their digests (current and previous) into the set, the records into
// ristretto up to MaxKeys, and the snapshot's sequence as the change-feed
// watermark. The cache serves once it returns nil. On error nothing is
// kept and Warm may be called again; once warm, calling it again is an
// error (the change feed keeps the cache current).
func (c *Cache) Warm(ctx context.Context) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	switch c.state.Load() {
	case stateWarm:
		return errors.New("cache: already warm")
	case stateClosed:
		return ErrClosed
	}
	if err := c.loadAllLocked(ctx); err != nil {
		return err
	}
	// The feed is not connected until Run's Listen says so.
	c.connected.Store(false)
	c.downSince.Store(c.opts.Now().UnixNano())
	c.state.Store(stateWarm)
	return nil
}

// resync loads every key again while serving, for a change feed that was
// pruned past the watermark (a replica cut off for longer than the feed
// keeps changes). Records are dropped first so that no key deleted in the
// gap survives; lookups meanwhile go to the store.
func (c *Cache) resync(ctx context.Context) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.rc.Clear()
	return c.loadAllLocked(ctx)
}

// loadAllLocked reads every key from one snapshot into the set and the
// records and sets the watermark. c.wmu is held.
func (c *Cache) loadAllLocked(ctx context.Context) error {
	start := time.Now()
	var (
		prefixes    []uint64
		keys        int
		cached      int64
		cachedBytes int64
		full        bool // a bound was reached: cache no more records
	)
	c.unloadable.reset()
	seq, err := c.src.LoadAll(ctx, func(k *authz.Key) error {
		keys++
		prefixes = append(prefixes, prefixOf(k.Digest))
		n := int64(1)
		if k.HasPrevious {
			prefixes = append(prefixes, prefixOf(k.PreviousDigest))
			n = 2
		}
		cost := c.costOf(k)
		full = full || !c.fits(cached, cachedBytes, n, cost)
		if full {
			c.unloadable.note(k, c.log) // reported even when not cached
			return nil
		}
		if !c.setRecordLocked(k) {
			// The Set buffer is full: let ristretto drain it so that
			// the warm load is not mostly dropped, then try once more.
			c.rc.Wait()
			c.setRecordLocked(k)
		}
		cached += n
		cachedBytes += n * cost
		return nil
	})
	if err != nil {
		// Nothing reads ristretto before the cache is warm; after a resync
		// lookups fall back to the store.
		c.rc.Clear()
		return fmt.Errorf("cache: load all keys: %w", err)
	}
	c.rc.Wait()
	c.set.replace(prefixes)
	c.watermark.Store(seq)
	c.gen.Add(1)
	// A bulk load leaves about as much garbage as it keeps (rows, parse
	// buffers); return it now rather than carrying a doubled heap until
	// the next GC cycle, so resident memory reflects the keys.
	digests := len(prefixes)
	prefixes = nil
	debug.FreeOSMemory()
	c.log.Info("key cache warm", "keys", keys, "digests", digests,
		"records_cached", cached, "records_bytes", cachedBytes, "seq", seq, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Run follows the change feed until ctx is done, then returns nil. It
// listens with Source.Listen and, in one goroutine of its own, catches up
// with Source.ChangesSince on every notification (a burst of them makes
// one catch-up), on every (re)connection, at start, every PollInterval and,
// while the listener is down, every DownPollInterval, applying each change
// in order. A failed catch-up is retried with backoff
// from the same change: none is ever skipped. If Listen returns early it
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
		c.setFeedState(up)
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
		c.setFeedState(false)
		c.log.Warn("change feed listener stopped; listening again", "error", err, "retry_in", delay)
		if !sleep(ctx, delay, nil) {
			break
		}
		delay = c.nextBackoff(delay)
	}
	cancel()
	wg.Wait()
	c.setFeedState(false)
	return nil
}

// setFeedState records what Listen reported.
func (c *Cache) setFeedState(up bool) {
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
		err := c.catchUp(ctx)
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

// catchUp applies every change after the watermark, page by page, and
// advances the watermark after each change applied.
func (c *Cache) catchUp(ctx context.Context) error {
	for {
		changes, err := c.src.ChangesSince(ctx, c.watermark.Load(), catchUpPage)
		if errors.Is(err, store.ErrFeedTruncated) {
			c.log.Warn("change feed pruned past this replica's watermark; loading every key again",
				"seq", c.watermark.Load())
			if err := c.resync(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("changes since %d: %w", c.watermark.Load(), err)
		}
		progressed := false
		for i := range changes {
			ch := &changes[i]
			if ch.Seq <= c.watermark.Load() {
				continue // already applied; a source should not send it
			}
			if err := c.apply(ctx, ch); err != nil {
				return fmt.Errorf("change %d (key %s): %w", ch.Seq, ch.KeyID, err)
			}
			c.watermark.Store(ch.Seq)
			c.changesApplied.Add(1)
			progressed = true
		}
		if !progressed {
			return nil
		}
	}
}

// apply makes one change visible. The key is read again first, so that a
// digest both before and after the change (an update that kept the secret)
// never leaves the set, not even for the length of a store round trip.
// Then, under wmu: the generation moves on (in-flight loads will not cache
// what they read), the key's new digests join the set before its old ones
// leave it, every slot of the old and new digests is dropped from
// ristretto — negative entries included — and drained with Wait so that no
// Set queued before the change can surface after it, and the new record is
// stored. A key that is gone (deleted) only loses its digests.
//
// If the key cannot be read, its old records are dropped all the same
// (their digests stay in the set): until the retry succeeds, a lookup asks
// the store, which answers or fails with store_unavailable — a changed key,
// perhaps revoked, is never decided from its old record.
func (c *Cache) apply(ctx context.Context, ch *store.Change) error {
	k, err := c.src.LookupKeyByID(ctx, ch.KeyID)
	switch {
	case errors.Is(err, authz.ErrKeyNotFound), errors.Is(err, store.ErrNotFound):
		k = nil
	case err != nil:
		c.invalidate(ch)
		return err
	}

	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.state.Load() != stateWarm {
		return ErrClosed
	}
	c.gen.Add(1)
	if k == nil {
		c.unloadable.forget(ch.KeyID) // deleted
	} else {
		c.set.add(prefixOf(k.Digest))
		if k.HasPrevious {
			c.set.add(prefixOf(k.PreviousDigest))
		}
	}
	for _, d := range ch.OldDigest {
		p := prefixOf(d)
		c.set.remove(p)
		c.rc.Del(p)
	}
	if k != nil {
		c.rc.Del(prefixOf(k.Digest))
		if k.HasPrevious {
			c.rc.Del(prefixOf(k.PreviousDigest))
		}
	}
	c.rc.Wait()
	if k != nil {
		c.setRecordLocked(k)
	}
	return nil
}

// invalidate drops the records of a change's old digests, keeping the
// digests in the set.
func (c *Cache) invalidate(ch *store.Change) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.state.Load() != stateWarm {
		return
	}
	c.gen.Add(1)
	for _, d := range ch.OldDigest {
		c.rc.Del(prefixOf(d))
	}
	c.rc.Wait()
}
