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
	// Err is the internal error behind store_unavailable, for logs. It never
	// carries key material.
	Err error
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
	key, err := e.Keys.LookupKey(ctx, e.Hasher.Sum(r.Key))
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
	d.Key = key
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	if d.Reason = key.Status(now()); d.Reason != OK {
		return d
	}
	if d.Target, d.Reason = e.Routes.Resolve(&r.Route); d.Reason != OK {
		return d
	}
	d.Reason, d.Denied = key.Authorize(&d.Target, r)
	if d.Reason == OK && ctx.Err() != nil {
		// A cancelled call is never answered with an allow.
		d.Reason, d.Err = StoreUnavailable, ctx.Err()
	}
	return d
}
