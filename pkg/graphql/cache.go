package graphql

import (
	"sync"

	"github.com/keygate/keygate/pkg/authz"
)

// Clients send the same few documents again and again, and parsing one is
// most of the cost of a GraphQL check, so a Parser remembers what each
// document it read recently calls. A document is known by its text as the
// request carries it (still JSON-escaped in a JSON body, so a hit neither
// decodes nor copies it), the operation name and the route's options;
// what is remembered is the operations or the refusal. Only documents up
// to cacheMaxQuery bytes are kept.
//
// The cache has two generations: entries go to the young one, and a hit
// in the old one moves the entry to the young one. When the young one is
// full it becomes the old one and the previous old one is dropped, so the
// documents in use stay and the cache never holds more than twice
// cacheGeneration entries (or cacheGenerationBytes of text).
const (
	cacheMaxQuery        = 16 << 10
	cacheGeneration      = 1024
	cacheGenerationBytes = 4 << 20
)

// docKey is what a document's result depends on.
type docKey struct {
	opts    Options
	escaped bool // query is JSON-escaped
	opName  string
	query   string
}

// docResult is a remembered answer: the operations (never changed once
// stored; readers share them) or the refusal.
type docResult struct {
	key    docKey // owns its strings
	ops    []authz.Operation
	detail string
}

type docCache struct {
	mu        sync.Mutex
	young     map[docKey]*docResult
	old       map[docKey]*docResult
	youngSize int // bytes of text in young
}

func newDocCache() *docCache {
	return &docCache{young: make(map[docKey]*docResult)}
}

func (c *docCache) get(k *docKey) *docResult {
	if c == nil || len(k.query) > cacheMaxQuery {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.young[*k]; r != nil {
		return r
	}
	if r := c.old[*k]; r != nil {
		delete(c.old, *k)
		c.insert(r)
		return r
	}
	return nil
}

// put stores r, whose key owns its strings.
func (c *docCache) put(r *docResult) {
	if c == nil || len(r.key.query) > cacheMaxQuery {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insert(r)
}

func (c *docCache) insert(r *docResult) {
	if _, ok := c.young[r.key]; ok {
		return
	}
	if len(c.young) >= cacheGeneration || c.youngSize+len(r.key.query) > cacheGenerationBytes {
		c.old, c.young, c.youngSize = c.young, make(map[docKey]*docResult, cacheGeneration), 0
	}
	c.young[r.key] = r
	c.youngSize += len(r.key.query) + len(r.key.opName)
}

// len is the number of entries, for tests.
func (c *docCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.young) + len(c.old)
}
