package account

import (
	"context"
	"errors"
	"net/netip"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Sessions (the console's, SPEC §15) are opened with an account key's
// secret once and then carry only the key's id: every request resumes the
// Caller from the key as stored now, so that deactivating, expiring or
// deleting the key, or narrowing its scope or IP filters, takes effect on
// the session's next request. Both entry points run the data plane's
// decision (SPEC §5) for the account-api service up to and including the
// key's type and IP filters; the scope (row 8) is the page's: Authorize
// checks it per operation, as it does for GraphQL's root fields.

// sessionRequest is a request to the account-api service that names no
// operation: the decision runs every row before the scope.
func sessionRequest(keys []string, ip netip.Addr) *authz.Request {
	r := &authz.Request{
		KeyCount: len(keys),
		ClientIP: ip,
		Route: authz.RouteInput{Method: "POST", Path: "/",
			Extensions: authz.Extensions{Service: authz.AccountAPIService}},
	}
	if len(keys) > 0 {
		r.Key = keys[0]
	}
	return r
}

// sessionCaller turns a session decision into a Caller. scope_denied is
// not a refusal here: no operation was asked for; each one is authorised
// by Authorize. A key whose scope allows no Account API operation at all
// is refused, since a session could do nothing with it.
func (s *Service) sessionCaller(d authz.Decision) (Caller, error) {
	switch d.Reason {
	case authz.OK, authz.ScopeDenied:
	case authz.MissingKey:
		return Caller{}, errorf(Unauthenticated, "missing_key: %s: enter an account key", d.Reason.Message())
	default:
		return Caller{}, s.decisionError("session", d)
	}
	c := Caller{
		AccountID: d.Key.Spec.AccountID,
		Actor:     store.Actor{KeyID: d.Key.Spec.ID, KeyName: d.Key.Spec.Name},
		Scope:     d.Key.Scope(),
	}
	for _, op := range Operations {
		if s.Authorize(c, op) == nil {
			return c, nil
		}
	}
	return Caller{}, errorf(PermissionDenied, "scope_denied: the key's scope allows no %s operation", authz.AccountAPIService)
}

// decisionError is the answer to a refused decision about the calling
// key: the data plane's reason code, message and status class (SPEC §5).
func (s *Service) decisionError(op string, d authz.Decision) error {
	if d.Reason == authz.StoreUnavailable {
		s.log.Error("account API: key store unavailable", "op", op, "err", d.Err)
	}
	code, ok := statusCodes[d.Reason.Status()]
	if !ok {
		s.log.Error("account API: unexpected decision", "op", op, "reason", d.Reason.String())
		code = PermissionDenied
	}
	return errorf(code, "%s: %s", d.Reason, d.Reason.Message())
}

// OpenSession checks an account key's secret for a new session: what
// Authenticate checks, without an operation (see above).
func (s *Service) OpenSession(ctx context.Context, cr Credentials) (Caller, error) {
	d := s.engine.Check(ctx, sessionRequest(cr.Keys, cr.ClientIP))
	if err := ctx.Err(); err != nil {
		return Caller{}, contextError(err)
	}
	return s.sessionCaller(d)
}

// Resume rebuilds the Caller of a session held by the account key keyID
// of accountID, from a client at ip: the key is read from the store (not
// the data plane's cache, so that a change to it ends or narrows the
// session at once), compiled with its roles as the data plane compiles
// it, and decided by the same rows as OpenSession. A key that is gone is
// Unauthenticated.
func (s *Service) Resume(ctx context.Context, accountID, keyID string, ip netip.Addr) (Caller, error) {
	if accountID == "" || keyID == "" {
		return Caller{}, errorf(Unauthenticated, "unauthenticated: the session names no key")
	}
	k, err := s.store.GetKey(ctx, accountID, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return Caller{}, errorf(Unauthenticated, "%s: the session's key was deleted", authz.UnknownKey)
	} else if err != nil {
		return Caller{}, s.storeError(ctx, "Resume", quoted("key", keyID), err)
	}
	roles := authz.RoleMap{}
	for _, id := range k.RoleIDs {
		r, err := s.store.GetRole(ctx, accountID, id)
		if err != nil {
			return Caller{}, s.storeError(ctx, "Resume", quoted("role", id), err)
		}
		roles[id] = &authz.Role{ID: r.ID, AccountID: r.AccountID, Name: r.Name, Scope: r.Scope, RateLimit: r.RateLimit}
	}
	opts := s.compile
	opts.Roles = roles
	spec := k.Spec
	spec.Roles = k.RoleIDs
	key, _, err := authz.CompileStored(spec, opts)
	if err != nil {
		// Stored keys were checked when written; one that no longer
		// compiles cannot be decided (the data plane refuses it too).
		s.log.Error("console session: the session's key does not compile", "key_id", keyID, "err", err)
		return Caller{}, storeUnavailable()
	}
	d := s.engine.Evaluate(ctx, key, sessionRequest([]string{""}, ip), s.now())
	if err := ctx.Err(); err != nil {
		return Caller{}, contextError(err)
	}
	return s.sessionCaller(d)
}

// CountCall takes one call of kind ("query" or "mutation") by a session's
// Caller from its account key's rate limits (SPEC §10), as Authenticate
// does for each API call: a console request is a call.
func (s *Service) CountCall(c Caller, kind string) error {
	if err := s.check(c); err != nil {
		return err
	}
	return s.limiter.allow(c.AccountID, c.Actor.KeyID, kind, s.now())
}
