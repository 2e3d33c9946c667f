package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
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

// applyPage applies the changes of one page not applied yet, in four
// passes: every key change (they are cheap, and all changes of one key
// must be applied together: see applyKeys), then every denial change (a
// new denial is a revocation; see applyDenials), then the app, tenant and
// role changes that may revoke (deactivations, narrowed roles), then the
// rest of them (renames, activations, widened roles), the bulk a flood is
// made of. While the keys of
// an app or tenant are being read, key changes that arrive meanwhile are
// applied at once (see applyParents), so no revocation waits for a bulk
// read.
func (c *Cache) applyPage(ctx context.Context, changes []store.Change, kick <-chan struct{}) error {
	var keys, denials, revoking, bulk []*store.Change
	for i := range changes {
		ch := &changes[i]
		switch {
		case c.isApplied(ch.Seq):
		case ch.Kind == store.ChangeKey || ch.Kind == "":
			keys = append(keys, ch)
		case ch.Kind == store.ChangeDenial:
			denials = append(denials, ch)
		case ch.Revokes:
			revoking = append(revoking, ch)
		default:
			bulk = append(bulk, ch)
		}
	}
	if len(keys)+len(denials)+len(revoking)+len(bulk) > 0 {
		c.notePending(changes)
	}
	if len(keys) > 0 {
		if err := c.applyKeys(ctx, keys); err != nil {
			return fmt.Errorf("changes %d..%d: %w", keys[0].Seq, keys[len(keys)-1].Seq, err)
		}
		c.markApplied(keys, changes)
	}
	// Denials next: a new one is a revocation, and each is one small read.
	if len(denials) > 0 {
		if err := c.applyDenials(ctx, denials); err != nil {
			return fmt.Errorf("changes %d..%d: %w", denials[0].Seq, denials[len(denials)-1].Seq, err)
		}
		c.markApplied(denials, changes)
	}
	for _, pass := range [][]*store.Change{revoking, bulk} {
		if len(pass) == 0 {
			continue
		}
		if err := c.applyParents(ctx, pass, kick); err != nil {
			return err
		}
		c.markApplied(pass, changes)
	}
	// A page whose every change was applied before (a retried page)
	// still moves the watermark.
	c.markApplied(nil, changes)
	return nil
}

// isApplied reports whether the change of seq is applied already.
func (c *Cache) isApplied(seq int64) bool {
	_, done := c.feed.applied[seq]
	return done || seq <= c.watermark.Load()
}

// notePending records when the oldest change not yet applied was
// committed (or, when the source does not say, first seen), for the lag.
func (c *Cache) notePending(changes []store.Change) {
	for i := range changes {
		ch := &changes[i]
		if c.isApplied(ch.Seq) {
			continue
		}
		at := ch.At
		if at.IsZero() {
			at = c.opts.Now()
		}
		c.feed.oldestPending.Store(at.UnixNano())
		return
	}
}

// markApplied records a pass as applied and moves the watermark over
// every change of the page, in seq order, that is applied by now. The page
// holds every committed change after the watermark up to its last (the
// store's seq order is its commit order), so no unapplied change hides
// between two of its entries.
func (c *Cache) markApplied(pass []*store.Change, page []store.Change) {
	for _, ch := range pass {
		c.feed.applied[ch.Seq] = struct{}{}
	}
	c.changesApplied.Add(uint64(len(pass)))
	w := c.watermark.Load()
	for i := range page {
		seq := page[i].Seq
		if seq <= w {
			continue
		}
		if _, done := c.feed.applied[seq]; !done {
			break
		}
		delete(c.feed.applied, seq)
		w = seq
	}
	c.watermark.Store(w)
}

// keyChange is what one pass does for one key: its first change in the
// pass names the digests the key had before the pass.
type keyChange struct {
	ref store.KeyRef
	old []apikey.Digest
	now *authz.Key // nil: gone
}

// applyKeys makes a set of key changes visible at once. Every key is read
// again first, in one query, so that a digest both before and after the
// change (an update that kept the secret) never leaves the set, not even
// for the length of a store round trip. Several changes of one key
// collapse into one: its current state is what is applied. Then, under
// wmu and in one pass: the generation moves on (in-flight loads will not
// cache what they read), the keys' new digests join the set before their
// old ones leave it, every slot of their old and new digests is dropped
// from ristretto — negative entries included — and drained with one Wait
// so that no Set queued before the changes can surface after them, and
// the new records are stored. A key that is gone only loses its digests.
//
// The set counts each key's digests once (a multiset), so a key's old
// digests are those of its first change in the pass: the later changes'
// old digests were never added.
//
// If the keys cannot be read, their old records are dropped all the same
// (see invalidate) and the pass is retried as a whole.
func (c *Cache) applyKeys(ctx context.Context, pass []*store.Change) error {
	keys := collapseKeys(pass)
	if err := c.readKeys(ctx, keys); err != nil {
		c.invalidate(pass, false)
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.state.Load() != stateWarm {
		return ErrClosed
	}
	c.gen.Add(1)
	for _, kc := range keys {
		if kc.now == nil {
			c.unloadable.forget(kc.ref) // deleted
		} else {
			c.set.add(prefixOf(kc.now.Digest))
			if kc.now.HasPrevious {
				c.set.add(prefixOf(kc.now.PreviousDigest()))
			}
		}
	}
	for _, kc := range keys {
		for _, d := range kc.old {
			p := prefixOf(d)
			c.set.remove(p)
			c.delLocked(p)
		}
		c.delRecordLocked(kc.now)
	}
	c.rc.Wait()
	for _, kc := range keys {
		if kc.now != nil {
			c.setRecordLocked(kc.now)
		}
	}
	return nil
}

// applyParents applies app and tenant changes, one read of each parent's
// keys however many of its changes the pass holds. A read of many keys
// takes a while: a notification meanwhile applies the key changes that
// arrived (applyUrgent), and the parent's records then leave those keys
// alone, since the read may predate them. If a parent's keys cannot be
// read and its change may revoke, every record is dropped (see
// invalidate).
func (c *Cache) applyParents(ctx context.Context, pass []*store.Change, kick <-chan struct{}) error {
	for _, p := range collapseParents(pass) {
		touched := map[store.KeyRef]bool{}
		ks, err := c.readParent(ctx, p, kick, touched)
		if err != nil {
			c.invalidate(nil, p.Revokes)
			return fmt.Errorf("keys of %s %s: %w", p.Kind, p.ID, err)
		}
		c.wmu.Lock()
		if c.state.Load() != stateWarm {
			c.wmu.Unlock()
			return ErrClosed
		}
		c.gen.Add(1)
		c.replaceRecordsLocked(slices.DeleteFunc(ks, func(k *authz.Key) bool {
			return touched[store.KeyRef{AccountID: k.Spec.AccountID, ID: k.Spec.ID}]
		}))
		c.wmu.Unlock()
	}
	return nil
}

// readParent reads a parent's keys in a goroutine of its own, applying
// urgent key changes whenever kick fires meanwhile; touched collects the
// keys those changed.
func (c *Cache) readParent(ctx context.Context, p *store.Change, kick <-chan struct{}, touched map[store.KeyRef]bool) ([]*authz.Key, error) {
	type result struct {
		keys []*authz.Key
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		ks, err := c.src.LookupKeysOfParent(ctx, p.AccountID, p.Kind, p.ID)
		done <- result{ks, err}
	}()
	for {
		select {
		case r := <-done:
			return r.keys, r.err
		case <-kick:
			if err := c.applyUrgent(ctx, touched); err != nil {
				return nil, err
			}
		}
	}
}

// applyUrgent applies the key and denial changes after the watermark not
// applied yet (a revocation, perhaps), ahead of the parent change being
// read.
func (c *Cache) applyUrgent(ctx context.Context, touched map[store.KeyRef]bool) error {
	page, err := c.src.ChangesSince(ctx, c.watermark.Load(), catchUpPage)
	if err != nil {
		return fmt.Errorf("changes since %d: %w", c.watermark.Load(), err)
	}
	var keys, denials []*store.Change
	for i := range page {
		ch := &page[i]
		switch {
		case c.isApplied(ch.Seq):
		case ch.Kind == store.ChangeKey || ch.Kind == "":
			keys = append(keys, ch)
		case ch.Kind == store.ChangeDenial:
			denials = append(denials, ch)
		}
	}
	if len(keys)+len(denials) == 0 {
		return nil
	}
	c.noteHead(page[len(page)-1].Seq)
	if len(keys) > 0 {
		if err := c.applyKeys(ctx, keys); err != nil {
			return fmt.Errorf("changes %d..%d: %w", keys[0].Seq, keys[len(keys)-1].Seq, err)
		}
		for _, ch := range keys {
			touched[ch.Ref()] = true
		}
		c.markApplied(keys, page)
	}
	if len(denials) > 0 {
		if err := c.applyDenials(ctx, denials); err != nil {
			return fmt.Errorf("changes %d..%d: %w", denials[0].Seq, denials[len(denials)-1].Seq, err)
		}
		c.markApplied(denials, page)
	}
	return nil
}

// replaceRecordsLocked stores the records of an app's or tenant's keys,
// whose digests did not change. They are not dropped first: ristretto
// replaces a cached record at once, so that a flood of renames leaves
// every lookup a hit instead of sending thousands to the store. A Set it
// drops (its buffer full) may leave behind an older queued one, so the
// buffer is drained and the Set made again: every Set happens under wmu,
// so the second one is queued behind nothing.
func (c *Cache) replaceRecordsLocked(ks []*authz.Key) {
	for _, k := range ks {
		if !c.setRecordLocked(k) {
			c.rc.Wait()
			c.setRecordLocked(k)
		}
	}
}

// delRecordLocked drops the ristretto slots of k's digests (nil: none).
func (c *Cache) delRecordLocked(k *authz.Key) {
	if k == nil {
		return
	}
	c.delLocked(prefixOf(k.Digest))
	if k.HasPrevious {
		c.delLocked(prefixOf(k.PreviousDigest()))
	}
}

// collapseKeys makes one entry per key of a pass, in the order of their
// first change.
func collapseKeys(pass []*store.Change) []*keyChange {
	var keys []*keyChange
	byRef := map[store.KeyRef]*keyChange{}
	for _, ch := range pass {
		if _, ok := byRef[ch.Ref()]; !ok {
			kc := &keyChange{ref: ch.Ref(), old: ch.OldDigest}
			byRef[ch.Ref()] = kc
			keys = append(keys, kc)
		}
	}
	return keys
}

// collapseParents makes one entry per app or tenant of a pass, revoking
// if any of its changes does.
func collapseParents(pass []*store.Change) []*store.Change {
	type parent struct {
		account string
		kind    store.ChangeKind
		id      string
	}
	var parents []*store.Change
	seen := map[parent]*store.Change{}
	for _, ch := range pass {
		key := parent{ch.AccountID, ch.Kind, ch.ID}
		if p, ok := seen[key]; ok {
			p.Revokes = p.Revokes || ch.Revokes
			continue
		}
		p := &store.Change{AccountID: ch.AccountID, Kind: ch.Kind, ID: ch.ID, Revokes: ch.Revokes}
		seen[key] = p
		parents = append(parents, p)
	}
	return parents
}

// readKeys reads the current state of the changed keys in one query.
func (c *Cache) readKeys(ctx context.Context, keys []*keyChange) error {
	if len(keys) == 0 {
		return nil
	}
	refs := make([]store.KeyRef, len(keys))
	for i, kc := range keys {
		refs[i] = kc.ref
	}
	found, err := c.src.LookupKeysByID(ctx, refs)
	if err != nil {
		return fmt.Errorf("look up %d changed keys: %w", len(refs), err)
	}
	byRef := make(map[store.KeyRef]*authz.Key, len(found))
	for _, k := range found {
		byRef[store.KeyRef{AccountID: k.Spec.AccountID, ID: k.Spec.ID}] = k
	}
	for _, kc := range keys {
		kc.now = byRef[kc.ref]
	}
	return nil
}

// invalidate drops the records of a pass's old digests, keeping the
// digests in the set: until the retry succeeds a lookup asks the store,
// which answers or fails with store_unavailable — a changed key, perhaps
// revoked, is never decided from its old record. An app's or tenant's
// change names no digests; when it may revoke (a deactivation) every
// record goes, since which ones are its keys' cannot be known without the
// store. That costs store lookups only while the store already fails
// this replica's reads.
func (c *Cache) invalidate(pass []*store.Change, all bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.state.Load() != stateWarm {
		return
	}
	c.gen.Add(1)
	if all {
		c.clearLocked()
		return
	}
	for _, ch := range pass {
		for _, d := range ch.OldDigest {
			c.delLocked(prefixOf(d))
		}
	}
	c.rc.Wait()
}

// feedProgress is the catch-up's bookkeeping beyond the watermark.
type feedProgress struct {
	// applied holds the seqs above the watermark already applied (a pass
	// that succeeded before a later one failed); catchUp's goroutine only.
	applied map[int64]struct{}
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
