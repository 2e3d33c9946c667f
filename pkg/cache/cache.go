// Package cache puts keygate's decisions in memory: a decorator in front of
// any store.Source that implements authz.KeyStore (and authz.UsageRecorder)
// so that a check reads only memory on its hot path (SPEC §6).
//
// It holds:
//
//   - the compiled key records (records: ristretto names each by a slot
//     number), keyed by the first 8 bytes of a digest (little endian), each
//     record carrying the full digest so that a prefix collision is ruled
//     out by comparing; a record with a previous digest (rotation grace) is
//     stored under both. ristretto may drop a Set: a record that is not
//     there is loaded again, never assumed absent;
//   - the set of every known digest (see digestSet): a digest outside it is
//     authz.ErrKeyNotFound without any store call, so spraying random keys
//     never reaches the database;
//   - brief negative entries for digests in the set that the store does not
//     know (a set entry that a change will soon remove);
//   - the service access denials (Denials, an authz.DenialIndex for the
//     engine's row 9), loaded with the keys and kept by the feed;
//   - the change-feed watermark: Run follows Source.Listen and applies
//     Source.ChangesSince, revocations first, never skipping one.
//
// Lifecycle: New, Warm (until it succeeds), then Run and RunUsageFlusher in
// their own goroutines, LookupKey and KeyUsed from any number of
// goroutines; Close once lookups, Run and the flusher have returned.
package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sync/singleflight"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxKeys = 1_000_000
	// DefaultMaxBytes bounds the compiled records' memory. Records cost
	// their authz.Key.Size, which counts what an adapter keeps on a key's
	// first allow (its allow, encoded): about 1.7 KB for a small key with
	// the cache's entry, 91 KB for the largest allowed shape, so 256 MiB
	// caches about 160,000 small keys or 2,900 of the largest (the others
	// are read on a miss). With 100,000 of the largest keys a replica
	// measured 145 MiB resident after the warm load (292 MiB at its peak)
	// and under 750 MiB with eight concurrent 1,000-key lists of the
	// Account API beside it: inside the shipped 1 GiB container limit.
	DefaultMaxBytes      = 256 << 20
	DefaultNegativeTTL   = 5 * time.Second
	DefaultDegradedAfter = 5 * time.Second
	DefaultLookupTimeout = 5 * time.Second
	DefaultPollInterval  = 30 * time.Second
	// DefaultDownPollInterval is how often Run catches up while the
	// listener is down: the store may still answer through the pool (only
	// the LISTEN connection was lost, or it cannot come back yet), and a
	// revocation should not wait for the listener or the 30 s safety net.
	DefaultDownPollInterval = time.Second
	DefaultRetryBackoff     = 100 * time.Millisecond
	DefaultMaxPendingUsage  = 100_000
	// DefaultMaxFeedLag is how far behind the change feed a replica may
	// fall before Ready reports degraded (SPEC §10).
	DefaultMaxFeedLag = 5 * time.Second

	maxRetryBackoff = 5 * time.Second
	// catchUpPage is how many changes one ChangesSince call asks for.
	catchUpPage = 1000
	// usageFlushTimeout bounds the last usage write at shutdown.
	usageFlushTimeout = 5 * time.Second
)

// Options configure a Cache. Zero values mean the defaults above.
type Options struct {
	// MaxKeys bounds the records held in memory, counted per digest (a key
	// in its rotation grace period counts twice). The digest set is not
	// bounded by it: it always holds every key.
	MaxKeys int64
	// MaxBytes bounds the records' memory: each costs its authz.Key.Size
	// plus the cache's own entry (per digest, like MaxKeys). Both bounds
	// hold at once (see costOf).
	MaxBytes int64
	// NegativeTTL is how long "the store does not know this digest" is
	// remembered; negative disables negative entries.
	NegativeTTL time.Duration
	// DegradedAfter is how long the change feed may be disconnected (or
	// its catch-up failing) before Ready reports degraded.
	DegradedAfter time.Duration
	// UnreadyAfter, when positive, makes Ready false once the feed has been
	// down that long, for deployments that prefer taking a replica out of
	// rotation over serving from a cache that cannot hear about changes.
	// Zero (the default) keeps serving: cached keys keep deciding.
	UnreadyAfter time.Duration
	// LookupTimeout bounds one store lookup on a miss. The load runs
	// detached from the request that started it, since other requests may
	// share it; each request still stops waiting when its own context ends.
	LookupTimeout time.Duration
	// PollInterval is how often Run catches up with the change feed even
	// without a notification, as a safety net; negative disables it.
	PollInterval time.Duration
	// DownPollInterval is how often Run catches up while Listen reports
	// the feed down; negative disables it.
	DownPollInterval time.Duration
	// RetryBackoff is the first wait after a failed catch-up; it doubles
	// up to 5 s (or RetryBackoff, if larger).
	RetryBackoff time.Duration
	// MaxFeedLag: once the oldest change not applied has waited longer,
	// Ready reports degraded; negative disables it.
	MaxFeedLag time.Duration
	// MaxPendingUsage bounds the key ids waiting for the usage flusher;
	// uses beyond it are dropped (and counted) until the next flush.
	MaxPendingUsage int
	// Logger receives feed and flusher events; nil discards.
	Logger *slog.Logger
	// Now is the clock for negative entries, Ready and usage; nil means
	// time.Now.
	Now func() time.Time
	// Access reads the service access denials (SPEC §11) the cache keeps
	// in its index (Denials). Nil: the source's, if it implements
	// store.AccessSource, else the index stays empty.
	Access store.AccessSource
}

func (o *Options) setDefaults() error {
	switch {
	case o.MaxKeys < 0:
		return fmt.Errorf("cache: MaxKeys %d is negative", o.MaxKeys)
	case o.MaxKeys == 0:
		o.MaxKeys = DefaultMaxKeys
	}
	switch {
	case o.MaxBytes < 0:
		return fmt.Errorf("cache: MaxBytes %d is negative", o.MaxBytes)
	case o.MaxBytes == 0:
		o.MaxBytes = DefaultMaxBytes
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.DegradedAfter <= 0 {
		o.DegradedAfter = DefaultDegradedAfter
	}
	if o.LookupTimeout <= 0 {
		o.LookupTimeout = DefaultLookupTimeout
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.DownPollInterval == 0 {
		o.DownPollInterval = DefaultDownPollInterval
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.MaxFeedLag == 0 {
		o.MaxFeedLag = DefaultMaxFeedLag
	}
	if o.MaxPendingUsage <= 0 {
		o.MaxPendingUsage = DefaultMaxPendingUsage
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Errors LookupKey returns when the cache cannot answer. Neither is
// authz.ErrKeyNotFound, so the engine answers 503 store_unavailable.
var (
	ErrNotWarm = errors.New("cache: keys not loaded yet")
	ErrClosed  = errors.New("cache: closed")
)

const (
	stateCold int32 = iota
	stateWarm
	stateClosed
)

// Cache is an authz.KeyStore that answers from memory. See the package
// documentation.
type Cache struct {
	src  store.Source
	opts Options
	log  *slog.Logger

	state atomic.Int32
	// rc holds the records by digest prefix, each under its current and
	// (in a rotation's grace period) previous digest; the record's own
	// digests rule out a prefix collision, so no wrapper is kept per entry.
	rc  *records
	neg negatives
	set *digestSet
	sf  singleflight.Group

	// wmu orders every write that a change must be able to overrule: the
	// digest set, gen, and each ristretto Set/Del. A change bumps gen under
	// it; a load started before that bump finds gen moved and does not
	// store what it read (it may be the record the change replaced).
	wmu sync.Mutex
	gen atomic.Uint64
	// cold are the digest prefixes of the records the warm load kept
	// when not every key fit, in load order (guarded by wmu). Those
	// records are guesses: until a lookup finds one (Key.Found), a record
	// a miss loads replaces it first (makeRoomLocked), so that the keys in
	// use displace the guesses at once. Left to ristretto's admission, a
	// working set that fits went on missing for several passes: every
	// record looks alike to its sampled, lossy frequency counts
	// (TestMissesReplaceWarmGuesses).
	cold []uint64

	// Change feed, written by Run's goroutines.
	watermark    atomic.Int64
	running      atomic.Bool
	connected    atomic.Bool
	downSince    atomic.Int64 // Unix ns the feed went down; 0 while up
	failingSince atomic.Int64 // Unix ns catch-up started failing; 0 when fine

	// Hot-path counters are striped by digest so that cores do not share
	// a cache line; the others are rare events.
	hits, negHits, notInSet, misses             stripedCounter
	storeLookups, storeErrors, loadsDiscarded   atomic.Uint64
	changesApplied, feedConnects, catchUpErrors atomic.Uint64
	// revokedAhead counts revocations applied ahead of a backlog (see
	// preRevoke).
	revokedAhead atomic.Uint64
	feed         feedProgress

	usage usageState

	// minCost is what the smallest entry costs: MaxBytes/MaxKeys (see
	// costOf).
	minCost int64
	// unloadable lists the stored keys that cannot be loaded (see
	// unloadable.go).
	unloadable unloadableKeys

	// access reads denials; denials is their index (see denials.go).
	access  store.AccessSource
	denials *authz.DenialIndex
}

var (
	_ authz.KeyStore      = (*Cache)(nil)
	_ authz.UsageRecorder = (*Cache)(nil)
	_ authz.HitReporter   = (*Cache)(nil)
)

// New returns a cold cache in front of src; call Warm before serving.
func New(src store.Source, opts Options) (*Cache, error) {
	if src == nil {
		return nil, errors.New("cache: nil source")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	rc, err := newRecords(ristretto.Config[uint64, uint32]{
		// Ten counters per entry MaxKeys allows, as ristretto advises. The
		// byte bound usually allows far fewer entries, and sizing them
		// from it saved 48 MB of a replica's heap, but those counters hold
		// no pointers and pace the collector: without them a hit's heap
		// was a quarter smaller, the collector ran a third more often and
		// keygate's CPU per request on a hit rose from 0.67-0.72x the
		// floor's to 0.78-0.82x (docs/performance.md, evening run).
		NumCounters: 10 * opts.MaxKeys,
		MaxCost:     opts.MaxBytes,
		BufferItems: 64,
		// Prefixes are uniformly random already; the cost of an entry is
		// what costOf says, ristretto's own per-item bytes included.
		KeyToHash:          func(p uint64) (uint64, uint64) { return p, 0 },
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c := &Cache{src: src, opts: opts, log: opts.Logger, rc: rc, set: newDigestSet(),
		minCost: max(1, (opts.MaxBytes+opts.MaxKeys-1)/opts.MaxKeys), denials: authz.NewDenialIndex(),
		access: opts.Access}
	if c.access == nil {
		c.access, _ = src.(store.AccessSource)
	}
	c.feed.applied = map[int64]struct{}{}
	return c, nil
}

// prefixOf is the ristretto key and set entry of a digest.
func prefixOf(d apikey.Digest) uint64 { return binary.LittleEndian.Uint64(d[:8]) }

// LookupKey finds the key whose current or previous digest is d. A hit
// reads only memory and does not allocate; a digest outside the set is
// authz.ErrKeyNotFound without any store call; otherwise the store is asked
// once for all concurrent callers. Store errors are returned as they are
// and never cached.
func (c *Cache) LookupKey(ctx context.Context, d apikey.Digest) (*authz.Key, error) {
	k, _, err := c.LookupKeyHit(ctx, d)
	return k, err
}

// LookupKeyHit is LookupKey that also reports whether it answered from
// memory: a record, a negative entry, or a digest outside the set (true),
// or the store on the miss path (false). It implements authz.HitReporter.
func (c *Cache) LookupKeyHit(ctx context.Context, d apikey.Digest) (*authz.Key, bool, error) {
	if s := c.state.Load(); s != stateWarm {
		if s == stateClosed {
			return nil, false, ErrClosed
		}
		return nil, false, ErrNotWarm
	}
	p := prefixOf(d)
	if !c.set.contains(p) {
		c.notInSet.add(p)
		return nil, true, authz.ErrKeyNotFound
	}
	// ristretto's slot number and the slot, not records.Get: one call
	// less on every hit (records.Get is too large to inline).
	s, _ := c.rc.rc.Get(p)
	if k := c.rc.at(s); k != nil && (k.Digest == d || (k.HasPrevious && k.PreviousDigest() == d)) {
		c.hits.add(p)
		k.MarkFound()
		return k, true, nil
	}
	if c.neg.has(p, d, c.opts.Now().UnixNano()) {
		c.negHits.add(p)
		return nil, true, authz.ErrKeyNotFound
	}
	k, err := c.load(ctx, d, p)
	return k, false, err
}

// load is the miss path: one store lookup per digest and generation, shared
// by every caller; each caller waits at most until its own ctx is done.
func (c *Cache) load(ctx context.Context, d apikey.Digest, p uint64) (*authz.Key, error) {
	gen := c.gen.Load()
	// Callers on both sides of a change never share a load: the key names
	// the generation too.
	var name [len(d) + 8]byte
	copy(name[:], d[:])
	binary.LittleEndian.PutUint64(name[len(d):], gen)
	ch := c.sf.DoChan(string(name[:]), func() (any, error) { return c.fetch(ctx, d, gen) })
	// Counted once joined, so that a test seeing n misses knows n callers
	// share the load.
	c.misses.add(p)
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*authz.Key), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetch asks the store and caches the answer, unless a change was applied
// since gen (then the answer may predate it and is only returned).
func (c *Cache) fetch(ctx context.Context, d apikey.Digest, gen uint64) (*authz.Key, error) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LookupTimeout)
	defer cancel()
	c.storeLookups.Add(1)
	k, err := c.src.LookupKey(lctx, d)
	if err != nil && !errors.Is(err, authz.ErrKeyNotFound) {
		c.storeErrors.Add(1)
		return nil, err
	}
	found := err == nil && k != nil

	c.wmu.Lock()
	switch {
	case c.gen.Load() != gen || c.state.Load() != stateWarm:
		c.loadsDiscarded.Add(1)
	case found:
		// Asked for: should its prefix still be listed in c.cold (its
		// warm-loaded record was dropped since), it must not count as
		// a guess there.
		k.MarkFound()
		c.makeRoomLocked(k)
		c.setRecordLocked(k)
	case c.opts.NegativeTTL > 0:
		now := c.opts.Now()
		c.neg.put(prefixOf(d), d, now.Add(c.opts.NegativeTTL).UnixNano(), now.UnixNano())
	}
	c.wmu.Unlock()

	if !found {
		return nil, authz.ErrKeyNotFound
	}
	return k, nil
}

// makeRoomLocked drops, for a record a miss loaded into a cache without
// room for it, warm-load guesses that no lookup has found (c.cold) worth
// the room missing, so that ristretto admits it without weighing it
// against other records. The room is ristretto's once it has applied
// every Set queued (only while warm-load guesses are left: a miss already
// waits for the store). wmu is held.
func (c *Cache) makeRoomLocked(k *authz.Key) {
	if len(c.cold) == 0 {
		return
	}
	c.rc.Wait()
	need := c.costOf(k)*digestCount(k) - c.rc.RemainingCost()
	for need > 0 && len(c.cold) > 0 {
		p := c.cold[0]
		c.cold = c.cold[1:]
		r, ok := c.rc.Get(p)
		if !ok || r.Found() || prefixOf(r.Digest) != p {
			continue // gone, in use, or the slot of another record now
		}
		c.delRecordLocked(r)
		need -= c.costOf(r) * digestCount(r)
	}
	if len(c.cold) == 0 {
		c.cold = nil
	}
}

// digestCount is how many ristretto slots k takes: one per digest.
func digestCount(k *authz.Key) int64 {
	if k.HasPrevious {
		return 2
	}
	return 1
}

// setRecordLocked caches k under each of its digests; wmu is held (or the
// cache is still cold). It reports whether ristretto took every Set.
func (c *Cache) setRecordLocked(k *authz.Key) bool {
	c.unloadable.note(k, c.log)
	cost := c.costOf(k)
	c.neg.del(prefixOf(k.Digest))
	ok := c.rc.Set(prefixOf(k.Digest), k, cost)
	if k.HasPrevious {
		c.neg.del(prefixOf(k.PreviousDigest()))
		ok = c.rc.Set(prefixOf(k.PreviousDigest()), k, cost) && ok
	}
	return ok
}

// Ready reports whether the cache can serve: false until Warm succeeded
// (and after Close). While the change feed has been disconnected, or its
// catch-up failing, for longer than DegradedAfter it stays ready — cached
// keys keep deciding — and says "degraded: …" so that /readyz can show it.
func (c *Cache) Ready() (bool, string) {
	switch c.state.Load() {
	case stateCold:
		return false, "cache not warm: keys not loaded yet"
	case stateClosed:
		return false, "cache closed"
	}
	ready, detail := c.feedReady()
	if u := c.unloadable.detail(); u != "" {
		if detail == "ok" {
			detail = u
		} else {
			detail += "; " + u
		}
	}
	return ready, detail
}

// feedReady is Ready for a warm cache, as the change feed stands.
func (c *Cache) feedReady() (bool, string) {
	now := c.opts.Now()
	for _, w := range []struct {
		since int64
		what  string
	}{
		{c.downSince.Load(), "change feed disconnected"},
		{c.failingSince.Load(), "change feed catch-up failing"},
	} {
		if w.since == 0 {
			continue
		}
		d := now.Sub(time.Unix(0, w.since))
		if c.opts.UnreadyAfter > 0 && d >= c.opts.UnreadyAfter {
			return false, fmt.Sprintf("unready: %s for %d s", w.what, int64(d/time.Second))
		}
		if d >= c.opts.DegradedAfter {
			return true, fmt.Sprintf("degraded: %s for %d s", w.what, int64(d/time.Second))
		}
	}
	if lag := c.FeedLag(); c.opts.MaxFeedLag > 0 && lag > c.opts.MaxFeedLag {
		return true, fmt.Sprintf("degraded: change feed lag %s, over --max-feed-lag %s",
			lag.Round(time.Millisecond), c.opts.MaxFeedLag)
	}
	return true, "ok"
}

// Len is the number of digests in the set (a key in its rotation grace
// period counts twice).
func (c *Cache) Len() int { return c.set.len() }

// Applied is the change-feed seq up to which every change is applied (the
// watermark: it never passes a change not yet applied, whatever order the
// passes apply them in), what a replica reports as synced (SPEC §13).
func (c *Cache) Applied() int64 { return c.watermark.Load() }

// Wait blocks until ristretto has applied every buffered Set, so that a
// test (or a benchmark) sees what was stored.
func (c *Cache) Wait() { c.rc.Wait() }

// Close stops ristretto's goroutines. Call it once lookups, Run and the
// usage flusher have returned; lookups after it return ErrClosed.
func (c *Cache) Close() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.state.Swap(stateClosed) == stateClosed {
		return
	}
	c.rc.Close()
}
