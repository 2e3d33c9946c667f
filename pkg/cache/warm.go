// Warming: the cache's first load of every key, digest and denial from
// one consistent snapshot of the source, and the reload the
// feed falls back to (resync).

package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/keygate/keygate/pkg/authz"
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
	c.clearLocked()
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
		warmed      []uint64
		// half is where in warmed the records past half the bounds
		// start (-1: not reached), over those records: dropped again if
		// the load ends full (see below).
		half = -1
		over []*authz.Key
	)
	c.cold = nil
	c.unloadable.reset()
	seq, err := c.src.LoadAll(ctx, func(k *authz.Key) error {
		keys++
		prefixes = append(prefixes, prefixOf(k.Digest))
		if k.HasPrevious {
			prefixes = append(prefixes, prefixOf(k.PreviousDigest()))
		}
		n, cost := digestCount(k), c.costOf(k)
		full = full || !c.fits(cached, cachedBytes, n, cost, 1)
		if full {
			c.unloadable.note(k, c.log) // reported even when not cached
			return nil
		}
		if half < 0 && !c.fits(cached, cachedBytes, n, cost, warmShare) {
			half = len(warmed)
		}
		if half >= 0 {
			over = append(over, k)
		}
		warmed = append(warmed, prefixOf(k.Digest))
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
		c.clearLocked()
		return fmt.Errorf("cache: load all keys: %w", err)
	}
	// Denials after the keys' snapshot, whose seq becomes the watermark:
	// any denial change this read misses is on the feed after it.
	denials, err := c.loadDenials(ctx)
	if err != nil {
		c.clearLocked()
		return err
	}
	c.denials.Replace(denials)
	if full {
		// Not every key fits. The records cached are guesses (the first
		// ones read), and a cache filled with guesses makes each key a
		// lookup asks for evict one, which may be the next key asked
		// for: round robin over a working set that fits kept missing for
		// pass after pass. So only the share below half the bounds is
		// kept, and the room above it takes the keys asked for without
		// evicting anything; those kept give way first (c.cold).
		for _, k := range over {
			c.delRecordLocked(k)
			n := digestCount(k)
			cached -= n
			cachedBytes -= n * c.costOf(k)
		}
		c.cold = slices.Clone(warmed[:half])
	}
	over = nil
	c.rc.Wait()
	c.set.replace(prefixes)
	c.watermark.Store(seq)
	c.gen.Add(1)
	warmed = nil
	// A bulk load leaves about as much garbage as it keeps (rows, parse
	// buffers); return it now rather than carrying a doubled heap until
	// the next GC cycle, so resident memory reflects the keys.
	digests := len(prefixes)
	prefixes = nil
	debug.FreeOSMemory()
	c.log.Info("key cache warm", "keys", keys, "digests", digests,
		"records_cached", cached, "records_bytes", cachedBytes, "denials", len(denials), "seq", seq, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
