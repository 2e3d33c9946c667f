// Applying the change feed: a page of changes in its passes (keys,
// denials, parents that may revoke, the rest), the watermark that
// records what was applied, and the invalidation of records when a pass
// cannot be read.

package cache

import (
	"context"
	"fmt"
	"slices"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

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
// pass names the digests the key had before the pass (old); replaced are
// the digests any of its changes in the pass replaced.
type keyChange struct {
	ref      store.KeyRef
	old      []apikey.Digest
	replaced []apikey.Digest
	now      *authz.Key // nil: gone
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
// old digests were never added by the changes before them. They may have
// been read, though: an earlier pass reads a key as it is when it reads,
// which can be after a change it does not apply (the next pass applies
// it, behind another change of the key), and caches that read's record
// under its digests. So ristretto's slots are dropped for the digests
// every change of the pass replaced, not the first one's alone: a record
// read ahead is never left answering for a secret a later change replaced
// or for a key deleted since (TestSecretReadAheadIsRevokedByALaterPass).
// Such a digest may stay in the set one count too many; a lookup of it then
// finds no record and asks the store, which no longer has it.
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
			c.set.remove(prefixOf(d))
		}
		for _, d := range kc.replaced {
			c.delLocked(prefixOf(d))
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
	if err := c.preRevoke(ctx, page); err != nil {
		return err
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

// revocationLookahead bounds the revocations preRevoke reads at a time.
const revocationLookahead = 10 * catchUpPage

// preRevoke applies ahead of the backlog the revocations committed after
// the watermark (SPEC §10) when page, the feed's next page, is full. A
// full page means more changes wait behind it — a bulk change of
// thousands of another account's keys, say — and a revocation among them
// must not wait for every page before it: each page is a read and
// compile of up to catchUpPage keys.
//
// A revoking key change only drops the records of the digests the key
// had before it (see invalidate), so that the next request for one reads
// the key as it is now from the store; a denial change is applied as
// applyDenials does, reading the denial as it is now. Neither is marked
// applied: both are applied again, in order and with the digest set's
// bookkeeping, when the catch-up reaches them. That is safe in any order:
// what they leave behind is the store's current state, and a record read
// before the drop is never cached after it (the generation moved on).
// Revocations handled once are not read again (feed.ahead).
func (c *Cache) preRevoke(ctx context.Context, page []store.Change) error {
	if len(page) < catchUpPage {
		return nil
	}
	after := max(c.watermark.Load(), c.feed.ahead)
	ahead, err := c.src.RevocationsSince(ctx, after, revocationLookahead)
	if err != nil {
		return fmt.Errorf("revocations since %d: %w", after, err)
	}
	if len(ahead) == 0 {
		return nil
	}
	var keys, denials []*store.Change
	for i := range ahead {
		switch ch := &ahead[i]; ch.Kind {
		case store.ChangeKey, "":
			keys = append(keys, ch)
		case store.ChangeDenial:
			denials = append(denials, ch)
		}
	}
	if len(keys) > 0 {
		c.invalidate(keys, false)
	}
	if len(denials) > 0 {
		if err := c.applyDenials(ctx, denials); err != nil {
			return fmt.Errorf("revocations %d..%d: %w", denials[0].Seq, denials[len(denials)-1].Seq, err)
		}
	}
	c.feed.ahead = ahead[len(ahead)-1].Seq
	c.revokedAhead.Add(uint64(len(keys) + len(denials)))
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
		kc, ok := byRef[ch.Ref()]
		if !ok {
			kc = &keyChange{ref: ch.Ref(), old: ch.OldDigest}
			byRef[ch.Ref()] = kc
			keys = append(keys, kc)
		}
		for _, d := range ch.OldDigest {
			if !slices.Contains(kc.replaced, d) {
				kc.replaced = append(kc.replaced, d)
			}
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
