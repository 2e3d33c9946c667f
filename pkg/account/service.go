// Package account is keygate's account service: apps, tenants, keys and
// the audit log of one account, behind the Account API (SPEC §7, §14).
//
// It owns what every transport shares — authentication of the calling
// account key and authorisation of the operation through the data plane's
// decision code (pkg/authz), validation, the escalation rule, audit and
// store errors — and knows nothing of gRPC, GraphQL or HTML: methods take
// (ctx, Caller, plain input) and answer plain records or an *Error whose
// Code mirrors gRPC's. pkg/accountgrpc is the gRPC adapter over it.
//
// Requests are validated before anything is written: a key is compiled
// with authz.Compile exactly as the data plane will load it, so the store
// never receives a key that the cache could not load.
package account

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// Options are the settings of a Service.
type Options struct {
	// Compile is what keys are checked against before they are stored: the
	// same options the data plane compiles keys with (reserved header
	// names).
	Compile authz.CompileOptions
	// Logger gets internal errors and changes; nil discards. Secrets never
	// reach it.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxGracePeriod bounds RegenerateKey's grace period; 0 means 30 days.
	MaxGracePeriod time.Duration
	// RateLimits bound each account key's calls; zero fields are
	// DefaultRateLimits'.
	RateLimits RateLimits
	// ReplicaTimeout: a replica silent for longer is not live in the
	// sync status; 0 means DefaultReplicaTimeout.
	ReplicaTimeout time.Duration
	// Routes, when set, are the routes being served: scopes that name a
	// service they do not declare, or a kind no route of the service
	// has, are accepted with a warning. Nil: no such warnings.
	Routes Routes
}

// Service is the account service over a store.
type Service struct {
	store    store.Accounts
	engine   *authz.Engine
	hasher   *apikey.Hasher
	compile  authz.CompileOptions
	log      *slog.Logger
	now      func() time.Time
	maxGrace time.Duration
	limiter  *callLimiter
	routes   Routes
	// readOnly is set when the store changes nothing (store.ReadOnly).
	readOnly *store.ReadOnlyError

	replicaTimeout time.Duration
}

// NewService returns the account service over st. engine decides who may
// call it: its Routes must resolve the account-api context extensions
// Authenticate sets (AccountRouter does). hasher hashes new secrets; it
// must hash as the data plane does.
func NewService(st store.Accounts, engine *authz.Engine, hasher *apikey.Hasher, opts Options) *Service {
	s := &Service{
		store:    st,
		engine:   engine,
		hasher:   hasher,
		compile:  opts.Compile,
		log:      opts.Logger,
		now:      opts.Now,
		maxGrace: opts.MaxGracePeriod,
		limiter:  newCallLimiter(opts.RateLimits),
		routes:   opts.Routes,

		replicaTimeout: opts.ReplicaTimeout,
	}
	if ro, ok := st.(store.ReadOnly); ok {
		s.readOnly = ro.ReadOnly()
	}
	if s.replicaTimeout <= 0 {
		s.replicaTimeout = DefaultReplicaTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxGrace <= 0 {
		s.maxGrace = 30 * 24 * time.Hour
	}
	return s
}

// Caller is who is calling: the account key Authenticate accepted. Every
// call is confined to its account.
type Caller struct {
	AccountID string
	Actor     store.Actor
	// Scope is the calling key's scope: no account key it creates or
	// changes may allow an Account API operation this one does not.
	Scope *scope.Scope
}

func (c Caller) valid() bool { return c.AccountID != "" }

// Credentials are what a call presents: the account key values it carried
// (several is malformed_key) and the client address its IP filters are
// checked against (the zero Addr fails closed for keys with filters).
type Credentials struct {
	Keys     []string
	ClientIP netip.Addr
}

// Authenticate checks the calling key for op with the data plane's
// decision (SPEC §5 rows 1–8, as service account-api) and returns the
// Caller. A refusal is Unauthenticated (the key) or PermissionDenied (its
// type, IP filters or scope), its message starting with the reason code.
func (s *Service) Authenticate(ctx context.Context, cr Credentials, op Operation) (Caller, error) {
	return s.authenticate(ctx, cr, op, false)
}

// AuthenticateRequest checks the calling key of a request that runs
// several operations of one kind (a GraphQL document's root fields) with
// the data plane's decision, rows 1–7: the key, its type and IP filters.
// Row 8, the scope, is left to AuthorizeCall for each operation, so that a
// refused field does not cost the fields the scope allows; so is the rate
// limit, which counts each operation as gRPC counts each call.
func (s *Service) AuthenticateRequest(ctx context.Context, cr Credentials, kind string) (Caller, error) {
	if kind != kindQuery && kind != kindMutation {
		return Caller{}, errorf(InvalidArgument, "operation type %q: the Account API has queries and mutations only", kind)
	}
	return s.authenticate(ctx, cr, Operation{Kind: kind}, true)
}

// authenticate is Authenticate; with anyScope a scope_denied decision
// (the last row an account key's call reaches) accepts the key.
func (s *Service) authenticate(ctx context.Context, cr Credentials, op Operation, anyScope bool) (Caller, error) {
	r := authz.Request{
		KeyCount: len(cr.Keys),
		ClientIP: cr.ClientIP,
		Route: authz.RouteInput{
			Method:     "POST",
			Path:       "/" + op.Name,
			Extensions: authz.Extensions{Service: authz.AccountAPIService, Kind: op.Kind, Operation: op.Name},
		},
	}
	if len(cr.Keys) > 0 {
		r.Key = cr.Keys[0]
	}
	d := s.engine.Check(ctx, &r)
	if err := ctx.Err(); err != nil {
		return Caller{}, contextError(err)
	}
	reason := d.Reason
	if anyScope && reason == authz.ScopeDenied && d.Key != nil {
		reason = authz.OK
	}
	switch reason {
	case authz.OK:
		// With anyScope the request's operations are admitted one by one
		// (AuthorizeCall).
		if !anyScope {
			if err := s.limiter.allow(d.Key.Spec.AccountID, d.Key.Spec.ID, op.Kind, s.now()); err != nil {
				return Caller{}, err
			}
		}
		return Caller{
			AccountID: d.Key.Spec.AccountID,
			Actor:     store.Actor{KeyID: d.Key.Spec.ID, KeyName: d.Key.Spec.Name},
			Scope:     d.Key.Scope(),
		}, nil
	case authz.ScopeDenied:
		return Caller{}, scopeDenied(op)
	case authz.MissingKey:
		return Caller{}, errorf(Unauthenticated, "missing_key: %s: send an account key in x-api-key (the gRPC metadata or HTTP header)", d.Reason.Message())
	}
	// Every other refusal is the data plane's answer: its reason code,
	// message and status class (SPEC §5), one table in authz.
	return Caller{}, s.decisionError(op.Name, d)
}

// statusCodes are the codes of the HTTP statuses SPEC §5 answers with.
var statusCodes = map[int]Code{
	400: InvalidArgument,
	401: Unauthenticated,
	403: PermissionDenied,
	429: ResourceExhausted,
	503: Unavailable,
}

// Authorize checks that an authenticated caller's scope allows op: for a
// transport that authenticates once and runs several operations (a
// GraphQL document's root fields). Over a read-only store every mutation
// the scope allows is refused with ReadOnly's error.
func (s *Service) Authorize(c Caller, op Operation) error {
	if !c.valid() {
		return errorf(Unauthenticated, "unauthenticated: no account key was accepted for this call")
	}
	if !c.Scope.Allows(authz.AccountAPIService, op.Kind, op.Name) {
		return scopeDenied(op)
	}
	if op.Kind == kindMutation && s.readOnly != nil {
		return readOnlyError(s.readOnly)
	}
	return nil
}

// AuthorizeCall is Authorize, then the caller's rate limit for op's kind:
// one operation of a request AuthenticateRequest accepted, counted as
// one gRPC call is.
func (s *Service) AuthorizeCall(c Caller, op Operation) error {
	if err := s.Authorize(c, op); err != nil {
		return err
	}
	return s.CountCall(c, op.Kind)
}

func scopeDenied(op Operation) *Error {
	return errorf(PermissionDenied, "scope_denied: the key's scope does not allow %s:%s:%s", authz.AccountAPIService, op.Kind, op.Name)
}

// check refuses a Caller that no Authenticate produced: an adapter wired
// without authentication must not serve anything.
func (s *Service) check(c Caller) error {
	if !c.valid() {
		s.log.Error("account API called without an authenticated caller; refusing")
		return errorf(Unauthenticated, "unauthenticated: the server is not configured to authenticate calls")
	}
	return nil
}

// withinCaller refuses an account key (being created, or one a call would
// change, rotate or delete) whose scope allows an Account API operation
// the caller's does not: a key allowed to manage keys must not mint or
// take over a more powerful one (a key limited to generateAccountAccessKey
// creating an unlimited key, or regenerating the bootstrap key to learn
// its new secret). Service and app keys never reach the Account API, so
// their scopes grant nothing here.
func withinCaller(c Caller, typ authz.KeyType, ks *scope.Scope) error {
	if typ != authz.KeyTypeAccount {
		return nil
	}
	for _, op := range Operations {
		if ks.Allows(authz.AccountAPIService, op.Kind, op.Name) && !c.Scope.Allows(authz.AccountAPIService, op.Kind, op.Name) {
			return errorf(PermissionDenied,
				"scope_exceeds_caller: the account key would allow %s:%s:%s, which the calling key's scope does not; "+
					"an account key can only create or manage account keys with at most its own rights",
				authz.AccountAPIService, op.Kind, op.Name)
		}
	}
	return nil
}

// quotaError is a create refused by the account's quota (SPEC §10): it
// names the limit and the number, and who can raise it (an operator: an
// account cannot raise its own limits).
func quotaError(q *store.QuotaError) *Error {
	return &Error{Code: ResourceExhausted, Field: store.LimitName(q.Kind),
		Message: q.Error() + "; ask the operator to raise it with keygate accounts limits"}
}

// contextError is the answer to a call whose context ended.
func contextError(err error) *Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errorf(DeadlineExceeded, "deadline exceeded")
	}
	return errorf(Canceled, "canceled")
}

// storeError maps a store error. what names the object (`app "billing"`)
// for NotFound; the store's own messages, which name the field, are kept
// for AlreadyExists and InvalidArgument. An unreachable store is
// Unavailable (store_unavailable), unless the call's own context ended
// first. Anything else is logged and answered Internal: its text may carry
// database detail.
func (s *Service) storeError(ctx context.Context, op, what string, err error) error {
	var quota *store.QuotaError
	var keys *store.HasKeysError
	var ro *store.ReadOnlyError
	switch {
	case errors.As(err, &ro):
		return readOnlyError(ro)
	case errors.As(err, &quota):
		return quotaError(quota)
	case errors.As(err, &keys):
		return hasKeys(keys)
	case errors.Is(err, store.ErrNotFound):
		return errorf(NotFound, "%s not found", what)
	case errors.Is(err, store.ErrAlreadyExists):
		return errorf(AlreadyExists, "%v", err)
	case errors.Is(err, store.ErrInvalid):
		return errorf(InvalidArgument, "%v", err)
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return contextError(ctx.Err())
	case errors.Is(err, store.ErrUnavailable):
		s.log.Warn("account API: store unavailable", "op", op, "object", what, "err", err)
		return storeUnavailable()
	}
	s.log.Error("account API: store error", "op", op, "object", what, "err", err)
	return internal()
}
