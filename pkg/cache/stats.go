// What a cache reports of itself: Stats, and the striped counters behind them.

package cache

import (
	"sync/atomic"
	"time"
)

// Stats are the cache's counters since New, for metrics and tests.
type Stats struct {
	Hits         uint64 // records found in memory
	NegativeHits uint64 // answered not found by a negative entry
	NotInSet     uint64 // refused by the digest set, no store call
	Misses       uint64 // lookups that went to the miss path
	StoreLookups uint64 // Source.LookupKey calls (shared ones count once)
	StoreErrors  uint64 // of those, failed ones (never cached)
	// LoadsDiscarded counts store answers not cached because a change was
	// applied while they were in flight.
	LoadsDiscarded uint64
	KeysInSet      int // digests in the set
	// CostBytes is what the cached entries cost against MaxBytes (see
	// costOf), MaxBytes the bound.
	CostBytes, MaxBytes int64
	// KeysUnloadable counts the stored keys that cannot be loaded (denied
	// store_unavailable).
	KeysUnloadable int

	ChangesApplied uint64
	// RevokedAhead counts revocations applied ahead of a backlog of
	// other changes (each is applied again in order later).
	RevokedAhead  uint64
	Watermark     int64 // last change-feed sequence applied
	FeedConnected bool
	FeedConnects  uint64        // times Listen reported a (re)connection
	CatchUpErrors uint64        // failed catch-up attempts (each retried)
	FeedLag       time.Duration // see FeedLag
	FeedBacklog   int64         // see FeedBacklog

	UsagePending     int    // key ids waiting for the flusher
	UsageFlushed     uint64 // key ids written
	UsageDropped     uint64 // uses dropped because the queue was full
	UsageWriteErrors uint64
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits:             c.hits.load(),
		NegativeHits:     c.negHits.load(),
		NotInSet:         c.notInSet.load(),
		Misses:           c.misses.load(),
		StoreLookups:     c.storeLookups.Load(),
		StoreErrors:      c.storeErrors.Load(),
		LoadsDiscarded:   c.loadsDiscarded.Load(),
		KeysInSet:        c.set.len(),
		CostBytes:        c.rc.MaxCost() - c.rc.RemainingCost(),
		MaxBytes:         c.rc.MaxCost(),
		KeysUnloadable:   c.unloadable.len(),
		ChangesApplied:   c.changesApplied.Load(),
		RevokedAhead:     c.revokedAhead.Load(),
		Watermark:        c.watermark.Load(),
		FeedConnected:    c.connected.Load(),
		FeedConnects:     c.feedConnects.Load(),
		CatchUpErrors:    c.catchUpErrors.Load(),
		FeedLag:          c.FeedLag(),
		FeedBacklog:      c.FeedBacklog(),
		UsagePending:     c.usage.pendingLen(),
		UsageFlushed:     c.usage.flushed.Load(),
		UsageDropped:     c.usage.dropped.Load(),
		UsageWriteErrors: c.usage.writeErrors.Load(),
	}
}

// stripedCounter spreads increments over cache lines chosen by the
// (random) digest prefix, so parallel hits on different keys do not
// contend on one counter.
type stripedCounter [16]struct {
	n atomic.Uint64
	_ [56]byte
}

func (s *stripedCounter) add(p uint64) { s[p&15].n.Add(1) }

func (s *stripedCounter) load() uint64 {
	var n uint64
	for i := range s {
		n += s[i].n.Load()
	}
	return n
}
