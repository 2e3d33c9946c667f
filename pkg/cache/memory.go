package cache

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// entryOverhead is what one ristretto entry costs beyond the record it
// names: ristretto's store item and map slot, and its admission policy's
// key and cost (measured on ristretto v2, rounded up: 96), and the
// record's slot (records, 8).
const entryOverhead = 104

// costOf is what an entry for k costs against
// MaxBytes: its size, but at least minCost, MaxBytes/MaxKeys, so that the
// one ristretto bound keeps both: no more bytes than MaxBytes, and no
// more entries than MaxKeys. A record is charged in full under each of its
// digests (a rotation's grace period), which overstates it, never under.
func (c *Cache) costOf(k *authz.Key) int64 {
	return max(entryOverhead+k.Size(), c.minCost)
}

// warmShare: when not every key fits, the warm load keeps records up to
// 1/warmShare of the bounds (see loadAllLocked).
const warmShare = 2

// fits reports whether one more record of cost cost under digests digests
// keeps the warm load inside 1/share of both bounds, given what it has
// cached (share 1: the bounds themselves).
func (c *Cache) fits(cachedKeys, cachedBytes, digests, cost, share int64) bool {
	return cachedKeys+digests <= c.opts.MaxKeys/share && cachedBytes+digests*cost <= c.opts.MaxBytes/share
}

// maxListedUnloadable is how many unloadable keys /readyz names; the
// count is always whole.
const maxListedUnloadable = 10

// unloadableKeys are the stored keys that cannot be loaded (their records
// are authz.Unloadable: denied store_unavailable), by account and key id, for the
// log, the metric and /readyz. A key leaves when a loadable record of it
// replaces it, when it is deleted, or at the next full load.
type unloadableKeys struct {
	mu   sync.Mutex
	keys map[store.KeyRef]bool
}

// note records k's state: an unloadable record joins (logged the first
// time, with its account and id, never its hash), a loadable one leaves.
func (u *unloadableKeys) note(k *authz.Key, log *slog.Logger) {
	why := k.Unloadable()
	u.mu.Lock()
	defer u.mu.Unlock()
	ref := store.KeyRef{AccountID: k.Spec.AccountID, ID: k.Spec.ID}
	if why == "" {
		delete(u.keys, ref)
		return
	}
	if u.keys[ref] {
		return
	}
	if u.keys == nil {
		u.keys = make(map[store.KeyRef]bool)
	}
	u.keys[ref] = true
	log.Error("stored key cannot be loaded: requests with it are denied store_unavailable until it is fixed or deleted",
		"account_id", k.Spec.AccountID, "key_id", k.Spec.ID, "reason", why)
}

// forget drops a key that is gone.
func (u *unloadableKeys) forget(ref store.KeyRef) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.keys, ref)
}

// reset empties the list before a full load, which notes every key again.
func (u *unloadableKeys) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.keys = nil
}

func (u *unloadableKeys) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.keys)
}

// detail is /readyz's line on unloadable keys, "" when there are none:
// the count and the first few as account/id, in order.
func (u *unloadableKeys) detail() string {
	u.mu.Lock()
	names := make([]string, 0, len(u.keys))
	for ref := range u.keys {
		names = append(names, ref.AccountID+"/"+ref.ID)
	}
	u.mu.Unlock()
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	total, more := len(names), ""
	if total > maxListedUnloadable {
		more = fmt.Sprintf(" and %d more", total-maxListedUnloadable)
		names = names[:maxListedUnloadable]
	}
	return fmt.Sprintf("%d stored keys cannot be loaded and are denied store_unavailable (see the log): %s%s",
		total, strings.Join(names, ", "), more)
}
