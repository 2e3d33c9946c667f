package account

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimits bound how often one account key may call the Account API on
// one replica (SPEC §10): a token bucket per key and kind, with a burst of
// twice the rate, so that no account's script can keep a replica busy for
// the others.
type RateLimits struct {
	MutationsPerSecond float64
	ReadsPerSecond     float64
}

// DefaultRateLimits are SPEC §10's defaults.
var DefaultRateLimits = RateLimits{MutationsPerSecond: 20, ReadsPerSecond: 100}

// callLimiter holds the buckets of the account keys that called lately.
// Only keys that authenticated get one, so their number is bounded by the
// account keys that exist; buckets idle for a minute (full again long
// before) are swept.
type callLimiter struct {
	limits RateLimits

	mu        sync.Mutex
	buckets   map[string]*keyBuckets
	lastSweep time.Time
}

type keyBuckets struct {
	mutation, read *rate.Limiter
	used           time.Time
	// denied bounds the refused calls recorded in the audit log; skipped
	// counts those left out since the last one recorded.
	denied  *rate.Limiter
	skipped int
}

// deniedRecordsPerSecond (burst deniedRecordsBurst) bound the refused
// calls one account key gets recorded in the audit log on one replica:
// refusals write nothing else, so they must not become a way to fill the
// table faster than the changes a key can make.
const (
	deniedRecordsPerSecond = 1
	deniedRecordsBurst     = 10
)

const (
	bucketIdle     = time.Minute
	sweepThreshold = 1024
)

func newCallLimiter(l RateLimits) *callLimiter {
	if l.MutationsPerSecond <= 0 {
		l.MutationsPerSecond = DefaultRateLimits.MutationsPerSecond
	}
	if l.ReadsPerSecond <= 0 {
		l.ReadsPerSecond = DefaultRateLimits.ReadsPerSecond
	}
	return &callLimiter{limits: l, buckets: make(map[string]*keyBuckets)}
}

// allow takes one call of kind for the key from its bucket at now, or
// answers ResourceExhausted with how long until the bucket has one.
func (l *callLimiter) allow(accountID, keyID, kind string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketsLocked(accountID, keyID, now)
	lim, per := b.read, l.limits.ReadsPerSecond
	what := "reads"
	if kind != kindQuery {
		lim, per, what = b.mutation, l.limits.MutationsPerSecond, "mutations"
	}
	if lim.AllowN(now, 1) {
		return nil
	}
	wait := time.Duration((1 - lim.TokensAt(now)) / per * float64(time.Second))
	wait = max(wait, time.Millisecond)
	return &Error{
		Code: ResourceExhausted,
		Message: fmt.Sprintf("rate_limited: an account key may make %g %s per second on each replica (bursts of %d); retry after %s",
			per, what, lim.Burst(), wait.Round(time.Millisecond)),
		RetryAfter: wait,
	}
}

// charge takes n more mutations from the key's bucket at now, as n
// calls would: a bulk change is a change per key for the replicas that
// apply it (SPEC §10), whatever the number of calls it took. The bucket
// may go into debt; the key's next calls wait (retry-after) until it has
// refilled.
func (l *callLimiter) charge(accountID, keyID string, n int, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.bucketsLocked(accountID, keyID, now).mutation
	for n > 0 {
		// ReserveN takes at most a burst at a time; a reservation
		// (never cancelled) is a debt that later calls wait out.
		step := min(n, lim.Burst())
		lim.ReserveN(now, step)
		n -= step
	}
}

// bucketsLocked returns the key's buckets, created full when missing.
func (l *callLimiter) bucketsLocked(accountID, keyID string, now time.Time) *keyBuckets {
	l.sweep(now)
	id := accountID + "\x00" + keyID
	b := l.buckets[id]
	if b == nil {
		b = &keyBuckets{
			mutation: newBucket(l.limits.MutationsPerSecond),
			read:     newBucket(l.limits.ReadsPerSecond),
			denied:   rate.NewLimiter(deniedRecordsPerSecond, deniedRecordsBurst),
		}
		l.buckets[id] = b
	}
	b.used = now
	return b
}

// recordDenied takes one recorded refusal for the key at now: ok false
// when its bucket is empty (the refusal is counted, not recorded), else
// how many were left out before this one.
func (l *callLimiter) recordDenied(accountID, keyID string, now time.Time) (ok bool, skipped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketsLocked(accountID, keyID, now)
	if !b.denied.AllowN(now, 1) {
		b.skipped++
		return false, 0
	}
	skipped, b.skipped = b.skipped, 0
	return true, skipped
}

func newBucket(perSecond float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perSecond), int(math.Ceil(2*perSecond)))
}

// sweep drops buckets idle for bucketIdle, at most once per bucketIdle and
// only when there are many.
func (l *callLimiter) sweep(now time.Time) {
	if len(l.buckets) < sweepThreshold || now.Sub(l.lastSweep) < bucketIdle {
		return
	}
	l.lastSweep = now
	for id, b := range l.buckets {
		if now.Sub(b.used) >= bucketIdle {
			delete(l.buckets, id)
		}
	}
}
