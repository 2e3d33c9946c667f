package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// usageState batches last-used times. The engine calls KeyUsed on every
// allow, so the common case — a key already recorded this minute — is one
// atomic load on the key's record (authz.Key.MarkUsed): no lock, no
// lookup, no allocation.
type usageState struct {
	mu      sync.Mutex
	pending map[store.KeyRef]time.Time // guarded by mu

	flushed, dropped, writeErrors atomic.Uint64
}

func (u *usageState) init() { u.pending = make(map[store.KeyRef]time.Time) }

func (u *usageState) pendingLen() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pending)
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
	u.addLocked(store.KeyRef{AccountID: k.Spec.AccountID, ID: k.Spec.ID}, at, c.opts.MaxPendingUsage)
	u.mu.Unlock()
}

// addLocked queues a use, keeping the later time of a key already queued;
// past max keys queued it is dropped and counted. u.mu must be held.
func (u *usageState) addLocked(id store.KeyRef, at time.Time, max int) {
	if cur, ok := u.pending[id]; ok {
		if at.After(cur) {
			u.pending[id] = at
		}
	} else if len(u.pending) < max {
		u.pending[id] = at
	} else {
		u.dropped.Add(1)
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
// error the batch goes back into the queue, merged with newer uses.
func (c *Cache) FlushUsage(ctx context.Context, w store.UsageWriter) error {
	u := &c.usage
	u.mu.Lock()
	var batch map[store.KeyRef]time.Time
	if len(u.pending) > 0 {
		// Swap the map out under the lock: afterwards the batch is this
		// flusher's alone (an empty pending map stays, and is never read
		// outside the lock).
		batch = u.pending
		u.pending = make(map[store.KeyRef]time.Time, len(batch))
	}
	u.mu.Unlock()

	var err error
	if batch != nil {
		if err = w.TouchKeys(ctx, batch); err != nil {
			u.writeErrors.Add(1)
			c.requeue(batch)
			c.log.Warn("writing key last-used times failed; retrying at the next flush",
				"keys", len(batch), "error", err)
		} else {
			u.flushed.Add(uint64(len(batch)))
		}
	}
	return err
}

// requeue puts a failed batch back, keeping the later time of a key used
// again meanwhile.
func (c *Cache) requeue(batch map[store.KeyRef]time.Time) {
	u := &c.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, at := range batch {
		u.addLocked(id, at, c.opts.MaxPendingUsage)
	}
}
