package authz

import (
	"context"
	"errors"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
)

// Decision is the outcome of one check.
type Decision struct {
	Reason Reason
	// Key is the key the request presented, once it is known (rows 4 on).
	Key *Key
	// Target is set once the request has been routed (rows 6 on).
	Target Target
	// Denied names the operation a scope_denied refused (a GraphQL field).
	Denied string
	// Denial is the service access denial that decided an access_denied
	// (row 9); its Reason is the deny body's error, its ID goes into the
	// answer's dynamic metadata.
	Denial *CompiledDenial
	// RetryAfter is the seconds until the used-up quota's period resets
	// (quota_exceeded, row 10).
	RetryAfter uint32
	// Err is the internal error behind store_unavailable, for logs. It never
	// carries key material.
	Err error
	// CacheHit is set when the key store is a HitReporter (a cache) and
	// answered the lookup from memory, without asking the store behind it.
	CacheHit bool
}

// HitReporter is an optional KeyStore extension for stores with a memory
// cache in front: LookupKeyHit is LookupKey that also reports whether the
// answer (found or not found) came from memory. The engine prefers it, to
// fill Decision.CacheHit for telemetry.
type HitReporter interface {
	LookupKeyHit(ctx context.Context, digest apikey.Digest) (key *Key, hit bool, err error)
}

// Allowed reports whether the request may pass.
func (d *Decision) Allowed() bool { return d.Reason == OK }

// Engine runs the checks of SPEC §5 in order; the first that fails decides.
type Engine struct {
	Keys   KeyStore
	Routes Router
	Hasher *apikey.Hasher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Usage, when set, is told about every allowed key.
	Usage UsageRecorder
	// Denials, when set, are the service access denials row 9 checks
	// (SPEC §11); nil denies nothing. A concrete type, not an interface:
	// passing the decision's target to an interface method would move
	// every decision to the heap. Stores that hold denials keep one index
	// and update it (Replace, Apply).
	Denials *DenialIndex
	// Counts, when set, counts every decision Check makes about a known
	// key (SPEC §12: rows 4 on) by key, service, operation, outcome and
	// hour. Evaluate (explain) does not count.
	Counts *UsageCounter
	// Quotas, when set, are the quota counts row 10 admits against (SPEC
	// §12); nil admits everything. Evaluate (explain) neither checks nor
	// counts them.
	Quotas *Quotas
	// WeakSecrets, when set, is told once per key record that the record
	// answered to a custom secret the import rules would now refuse
	// (shorter than 24 bytes or fewer than 10 distinct characters): one
	// imported before the rules, which keeps working with a warning. Only
	// a hash is stored, so the secret's strength is known only when a
	// caller presents it.
	WeakSecrets WeakSecretReporter
}

// WeakSecretReporter hears of keys answering to weak custom secrets
// (Engine.WeakSecrets). It is called on the request path, once per key
// record: it must not block, and must never see the secret.
type WeakSecretReporter interface {
	WeakSecret(key *Key)
}

// Check decides one request. It never panics on bad input and never
// allows a request whose context was cancelled while it was decided.
func (e *Engine) Check(ctx context.Context, r *Request) Decision {
	var d Decision
	switch {
	case r.KeyCount == 0:
		d.Reason = MissingKey
		return d
	case r.KeyCount > 1 || apikey.Validate(r.Key) != nil:
		d.Reason = MalformedKey
		return d
	}
	digest := e.Hasher.Sum(r.Key)
	var (
		key *Key
		err error
	)
	if hr, ok := e.Keys.(HitReporter); ok {
		key, d.CacheHit, err = hr.LookupKeyHit(ctx, digest)
	} else {
		key, err = e.Keys.LookupKey(ctx, digest)
	}
	switch {
	case errors.Is(err, ErrKeyNotFound):
		d.Reason = UnknownKey
		return d
	case err != nil:
		d.Reason, d.Err = StoreUnavailable, err
		return d
	case key == nil:
		d.Reason = UnknownKey
		return d
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	t := now()
	if !key.Matches(digest, t) {
		// A rotated-out secret past its grace period, or a store that
		// answered for another digest: this secret is not a key.
		d.Reason = UnknownKey
		return d
	}
	e.decide(ctx, &d, key, r, t, true)
	if e.Counts != nil {
		e.Counts.Count(key, &d.Target, d.Reason, t)
	}
	if !key.secretVetted.Load() && e.WeakSecrets != nil {
		e.vetSecret(key, r.Key)
	}
	return d
}

// vetSecret tells WeakSecrets, the first time a record answers to a
// secret, whether that secret is a weak custom one. Out of Check's body:
// it runs once per record.
func (e *Engine) vetSecret(key *Key, secret string) {
	if key.secretVetted.Swap(true) {
		return
	}
	if apikey.WeakCustomSecret(secret) {
		e.WeakSecrets.WeakSecret(key)
	}
}

// Evaluate decides rows 4 on (SPEC §5) for a key already found, at now:
// what Check does once the secret has led to the key. It is the entry
// point for callers that hold a key record rather than its secret
// (explain --key-id); Check runs the same code.
func (e *Engine) Evaluate(ctx context.Context, key *Key, r *Request, now time.Time) Decision {
	var d Decision
	e.decide(ctx, &d, key, r, now, false)
	return d
}

// decide is rows 4 on: the key's status, the route, then the key's checks
// against the target. admit says whether row 10 counts the request against
// the quotas (Check) or leaves them alone (Evaluate: explain shows the
// quota state instead).
func (e *Engine) decide(ctx context.Context, d *Decision, key *Key, r *Request, t time.Time, admit bool) {
	d.Key = key
	if key.Unloadable() != "" {
		// A stored key that did not compile: it exists, but nothing about
		// it can be decided until it is fixed (SPEC §10).
		d.Reason, d.Err = StoreUnavailable, ErrKeyUnloadable
		return
	}
	if d.Reason = key.Status(t); d.Reason != OK {
		return
	}
	if d.Target, d.Reason = e.Routes.Resolve(&r.Route); d.Reason != OK {
		return
	}
	d.Reason, d.Denied = key.Authorize(&d.Target, r)
	if d.Reason == OK && e.Denials != nil {
		if dn := e.Denials.MatchDenial(key, &d.Target); dn != nil {
			d.Reason, d.Denial = AccessDenied, dn
		}
	}
	if d.Reason == OK && ctx.Err() != nil {
		// A cancelled call is never answered with an allow.
		d.Reason, d.Err = StoreUnavailable, ctx.Err()
	}
	if d.Reason == OK && admit && e.Quotas != nil && key.hasQuota {
		// Row 10 last: an admission is counted, so it comes after every
		// other row has allowed.
		if ok, retry := e.Quotas.Admit(key, t); !ok {
			d.Reason, d.RetryAfter = QuotaExceeded, retry
		}
	}
	if d.Reason == OK && e.Usage != nil {
		e.Usage.KeyUsed(key, t)
	}
}

// UsageRecorder learns which keys were used (for last-used timestamps). It
// is called on every allow, so it must be cheap and never block; batching
// the writes is its job.
type UsageRecorder interface {
	KeyUsed(k *Key, at time.Time)
}
