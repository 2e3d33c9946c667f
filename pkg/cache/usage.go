package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/yield"
)

// usageState batches last-used times. The engine calls KeyUsed on every
// allow, so the common case — a key already recorded this minute — is one
// atomic load on the key's record (authz.Key.MarkUsed): no lock, no
// lookup, no allocation.
//
// A use the record has not seen this minute goes to a list, not a map: a
// map keyed by the key's account and id (three pointers a slot, and the
// slots kept between flushes) was, in a round robin over 100,000 keys,
// that many entries more for the collector to scan on every cycle. An
// entry holds the record, which the cache holds anyway, and the record
// holds its entry's place (authz.Key.PendingUse), so that a key used again
// in a later minute updates its entry. The flush makes the map the store
// takes, for the flush alone.
type usageState struct {
	mu      sync.Mutex
	pending []keyUse // guarded by mu
	// failed is a batch whose write failed, written again with the next
	// (newer uses of a key win); nil when the last write succeeded.
	failed map[store.KeyRef]time.Time // guarded by mu
	// batchHint is the last batch's size, to size the next list.
	batchHint int // guarded by mu

	flushed, dropped, writeErrors atomic.Uint64
}

// keyUse is a use of a key at a time (Unix nanoseconds).
type keyUse struct {
	k  *authz.Key
	at int64
}

// pendingLen is how many uses wait for a write: the list's (a key whose
// record was replaced meanwhile counts twice) and a failed batch's.
func (u *usageState) pendingLen() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pending) + len(u.failed)
}

// KeyUsed records that k allowed a request at at, at most once per key per
// minute; RunUsageFlusher writes the batch. It never blocks on the store.
func (c *Cache) KeyUsed(k *authz.Key, at time.Time) {
	if k == nil {
		return
	}
	if !k.MarkUsed(at.Unix() / 60) {
		return // recorded this minute already
	}
	u := &c.usage
	u.mu.Lock()
	u.addLocked(k, at.UnixNano(), c.opts.MaxPendingUsage)
	u.mu.Unlock()
}

// addLocked lists a use of k at at (Unix nanoseconds): in k's entry when
// the list has one for it, keeping the later time, else in a new one;
// past limit entries it is dropped and counted. u.mu must be held.
func (u *usageState) addLocked(k *authz.Key, at int64, limit int) {
	if i := int(k.PendingUse()) - 1; i >= 0 && i < len(u.pending) && u.pending[i].k == k {
		u.pending[i].at = max(u.pending[i].at, at)
		return
	}
	switch {
	case len(u.pending)+len(u.failed) >= limit:
		u.dropped.Add(1)
		return
	case u.pending == nil:
		u.pending = make([]keyUse, 0, min(limit, u.batchHint+u.batchHint/4+64))
	}
	u.pending = append(u.pending, keyUse{k, at})
	k.SetPendingUse(uint32(len(u.pending)))
}

// takeLocked takes the pending uses and a failed batch for the store,
// leaving both empty; u.mu must be held. The uses become a map outside
// the lock (usesBatch): building it for 100,000 keys under the lock held
// KeyUsed's callers for 17 ms.
func (u *usageState) takeLocked() ([]keyUse, map[store.KeyRef]time.Time) {
	uses, failed := u.pending, u.failed
	u.failed = nil
	if len(uses) > 0 {
		u.batchHint = len(uses)
	}
	// Made again by the next use, sized as this one: an empty list of
	// 100,000 entries would be scanned on every cycle until then.
	u.pending = nil
	return uses, failed
}

// usesBatch adds uses to batch (a failed batch, or nil) as one map for the
// store, keeping each key's latest time. It runs beside the requests,
// often on one CPU: it yields every 256 uses (1,024 took up to 8 ms while
// the map grew, in a round robin's trace), and grows the map rather
// than allocating it whole (the collector makes an allocation made while
// it marks pay its share of the marking at once).
func usesBatch(batch map[store.KeyRef]time.Time, uses []keyUse) map[store.KeyRef]time.Time {
	if len(uses) == 0 {
		return batch
	}
	if batch == nil {
		batch = make(map[store.KeyRef]time.Time, min(len(uses), 4096))
	}
	for i, use := range uses {
		addLater(batch, store.KeyRef{AccountID: use.k.Spec.AccountID, ID: use.k.Spec.ID}, time.Unix(0, use.at))
		yield.Every(i, 256)
	}
	return batch
}

// addLater records at for id in m, keeping the later of two times.
func addLater(m map[store.KeyRef]time.Time, id store.KeyRef, at time.Time) {
	if cur, ok := m[id]; !ok || at.After(cur) {
		m[id] = at
	}
}

// RunUsageFlusher writes the batched last-used times every interval (a
// minute if every <= 0) and once more when ctx is done, then returns nil.
// A failed write is logged and its batch kept for the next one, within
// MaxPendingUsage.
func (c *Cache) RunUsageFlusher(ctx context.Context, w store.UsageWriter, every time.Duration) error {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = c.FlushUsage(ctx, w)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), usageFlushTimeout)
			_ = c.FlushUsage(fctx, w)
			cancel()
			return nil
		}
	}
}

// FlushUsage writes the pending batch now (RunUsageFlusher calls it). On
// error the batch is kept and written again with the next, merged with
// newer uses.
func (c *Cache) FlushUsage(ctx context.Context, w store.UsageWriter) error {
	u := &c.usage
	u.mu.Lock()
	uses, batch := u.takeLocked()
	u.mu.Unlock()
	if batch = usesBatch(batch, uses); batch == nil {
		return nil
	}
	if err := w.TouchKeys(ctx, batch); err != nil {
		u.writeErrors.Add(1)
		c.requeue(batch)
		c.log.Warn("writing key last-used times failed; retrying at the next flush",
			"keys", len(batch), "error", err)
		return err
	}
	u.flushed.Add(uint64(len(batch)))
	return nil
}

// requeue keeps a failed batch for the next flush, merged with a batch
// that failed meanwhile (a flush at shutdown beside the ticker's).
func (c *Cache) requeue(batch map[store.KeyRef]time.Time) {
	u := &c.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.failed == nil {
		u.failed = batch
		return
	}
	for id, at := range batch {
		if _, ok := u.failed[id]; !ok && len(u.failed)+len(u.pending) >= c.opts.MaxPendingUsage {
			u.dropped.Add(1)
			continue
		}
		addLater(u.failed, id, at)
	}
}
