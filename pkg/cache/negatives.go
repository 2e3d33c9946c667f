package cache

import (
	"sync"

	"github.com/keygate/keygate/pkg/apikey"
)

// maxNegatives bounds the negative entries. They are only made for
// digests in the set that the store does not know — a set entry a change
// is about to remove — so a handful exist at a time; past the bound an
// answer is simply not remembered (the next lookup asks the store again).
const maxNegatives = 10_000

// negatives are the brief "the store does not know this digest" answers
// (SPEC §6), by digest prefix. They live beside ristretto rather than in
// it, so that ristretto's entries are the records themselves, with no
// wrapper per key; lookups read them only after a ristretto miss.
type negatives struct {
	mu sync.Mutex
	m  map[uint64]negative
}

type negative struct {
	digest  apikey.Digest
	expires int64 // Unix nanoseconds
}

// has reports whether d is known absent at now.
func (n *negatives) has(p uint64, d apikey.Digest, now int64) bool {
	n.mu.Lock()
	e, ok := n.m[p]
	n.mu.Unlock()
	return ok && e.digest == d && now < e.expires
}

// put remembers d as absent until expires, dropping expired entries when
// the bound is reached.
func (n *negatives) put(p uint64, d apikey.Digest, expires, now int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = make(map[uint64]negative)
	}
	if len(n.m) >= maxNegatives {
		for q, e := range n.m {
			if e.expires <= now {
				delete(n.m, q)
			}
		}
		if len(n.m) >= maxNegatives {
			return
		}
	}
	n.m[p] = negative{digest: d, expires: expires}
}

func (n *negatives) del(p uint64) {
	n.mu.Lock()
	delete(n.m, p)
	n.mu.Unlock()
}

func (n *negatives) clear() {
	n.mu.Lock()
	clear(n.m)
	n.mu.Unlock()
}

// delLocked forgets whatever is cached under prefix p: a record's slot and
// a negative answer. wmu is held.
func (c *Cache) delLocked(p uint64) {
	c.rc.Del(p)
	c.neg.del(p)
}

// clearLocked forgets every record and negative answer. wmu is held.
func (c *Cache) clearLocked() {
	c.rc.Clear()
	c.cold = nil
	c.neg.clear()
}
