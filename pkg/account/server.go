// Package account serves keygate's Account API (proto/keygate/account/v1):
// apps, tenants, keys and the audit log of one account, over gRPC.
//
// Every call is authenticated by an account key in the x-api-key metadata
// and authorised by the same decision code as the data plane (pkg/authz),
// as service "account-api", kind "query" (Get*/List*) or "mutation"
// (everything else), operation the method name in lowerCamelCase. The
// caller's key decides the account every call is confined to.
//
// Requests are validated before anything is written: a key is compiled
// with authz.Compile exactly as the data plane will load it, so the store
// never receives a key that the cache could not load.
package account

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// KeyHeader is the metadata key that carries the caller's account key.
const KeyHeader = "x-api-key"

// Options are the settings of a Server.
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
}

// Server implements accountv1.AccountServiceServer.
type Server struct {
	accountv1.UnimplementedAccountServiceServer

	store    store.Accounts
	engine   *authz.Engine
	hasher   *apikey.Hasher
	compile  authz.CompileOptions
	log      *slog.Logger
	now      func() time.Time
	maxGrace time.Duration
}

var _ accountv1.AccountServiceServer = (*Server)(nil)

// NewServer returns the Account API over st. engine decides who may call
// it: its Routes must resolve the account-api context extensions the
// interceptor sets (AccountRouter does). hasher hashes new secrets; it must
// hash as the data plane does.
func NewServer(st store.Accounts, engine *authz.Engine, hasher *apikey.Hasher, opts Options) *Server {
	s := &Server{
		store:    st,
		engine:   engine,
		hasher:   hasher,
		compile:  opts.Compile,
		log:      opts.Logger,
		now:      opts.Now,
		maxGrace: opts.MaxGracePeriod,
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

// Register registers the Account API and server reflection on s. s must
// have been built with the server's interceptor, e.g.
//
//	g := grpc.NewServer(grpc.ChainUnaryInterceptor(srv.UnaryInterceptor()))
//	account.Register(g, srv)
//
// Without it every call is refused as unauthenticated.
func Register(s *grpc.Server, srv *Server) {
	accountv1.RegisterAccountServiceServer(s, srv)
	reflection.Register(s)
}

// AccountRouter is the authz.Router of the Account API's engine: it maps the
// context extensions the interceptor sets (service "account-api", kind,
// operation) to a target that only account keys are accepted by, and
// everything else to unknown_route.
func AccountRouter() authz.Router { return accountRouter{} }

type accountRouter struct{}

var accountKeysOnly = authz.KeyTypes(0).With(authz.KeyTypeAccount)

func (accountRouter) Resolve(in *authz.RouteInput) (authz.Target, authz.Reason) {
	if in.Extensions.Service != authz.AccountAPIService {
		return authz.Target{}, authz.UnknownRoute
	}
	return authz.Target{
		Service:   authz.AccountAPIService,
		Kind:      in.Extensions.Kind,
		Operation: in.Extensions.Operation,
		Accepts:   accountKeysOnly,
	}, authz.OK
}

// caller is who is calling: the account key the interceptor accepted.
type caller struct {
	accountID string
	actor     store.Actor
	// scope is the calling key's scope: no account key it creates or
	// changes may allow an Account API operation this one does not.
	scope *scope.Scope
}

type callerKey struct{}

// callerFrom returns the caller the interceptor put in ctx. Its absence
// means the server was registered without the interceptor: refuse rather
// than serve unauthenticated.
func (s *Server) callerFrom(ctx context.Context) (caller, error) {
	c, ok := ctx.Value(callerKey{}).(caller)
	if !ok || c.accountID == "" {
		s.log.Error("account API called without its authentication interceptor; refusing")
		return caller{}, status.Error(codes.Unauthenticated, "unauthenticated: the server is not configured to authenticate calls")
	}
	return c, nil
}

var servicePrefix = "/" + accountv1.AccountService_ServiceDesc.ServiceName + "/"

// MethodKind is the kind of an Account API method for scopes: "query" for
// Get*/List*, "mutation" otherwise.
func MethodKind(method string) string {
	if strings.HasPrefix(method, "Get") || strings.HasPrefix(method, "List") {
		return "query"
	}
	return "mutation"
}

// Operation is the scope operation of an Account API method: its name in
// lowerCamelCase ("GenerateServiceAccessKey" → "generateServiceAccessKey").
func Operation(method string) string {
	r, n := utf8.DecodeRuneInString(method)
	if n == 0 {
		return method
	}
	return string(unicode.ToLower(r)) + method[n:]
}

// UnaryInterceptor authenticates and authorises every Account API call with
// the engine; calls to other services on the same server pass through.
func (s *Server) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		method, ok := strings.CutPrefix(info.FullMethod, servicePrefix)
		if !ok {
			return handler(ctx, req)
		}
		c, err := s.authenticate(ctx, info.FullMethod, method)
		if err != nil {
			return nil, err
		}
		return handler(context.WithValue(ctx, callerKey{}, c), req)
	}
}

func (s *Server) authenticate(ctx context.Context, fullMethod, method string) (caller, error) {
	kind, op := MethodKind(method), Operation(method)
	md, _ := metadata.FromIncomingContext(ctx)
	keys := md.Get(KeyHeader)
	r := authz.Request{
		KeyCount: len(keys),
		ClientIP: peerIP(ctx),
		Route: authz.RouteInput{
			Method:      "POST",
			Path:        fullMethod,
			ContentType: "application/grpc",
			Extensions: authz.Extensions{
				Service:   authz.AccountAPIService,
				Kind:      kind,
				Operation: op,
			},
		},
	}
	if len(keys) > 0 {
		r.Key = keys[0]
	}
	d := s.engine.Check(ctx, &r)
	if err := ctx.Err(); err != nil {
		return caller{}, status.FromContextError(err).Err()
	}
	switch d.Reason {
	case authz.OK:
		return caller{
			accountID: d.Key.Spec.AccountID,
			actor:     store.Actor{KeyID: d.Key.Spec.ID, KeyName: d.Key.Spec.Name},
			scope:     d.Key.Scope(),
		}, nil
	case authz.MissingKey:
		return caller{}, status.Errorf(codes.Unauthenticated, "missing_key: send an account key in the %s metadata", KeyHeader)
	case authz.MalformedKey, authz.UnknownKey, authz.InactiveKey, authz.NotYetValid, authz.ExpiredKey:
		return caller{}, status.Errorf(codes.Unauthenticated, "%s: the account key was refused", d.Reason)
	case authz.WrongKeyType:
		return caller{}, status.Errorf(codes.PermissionDenied, "wrong_key_type: the Account API accepts account keys only")
	case authz.IPNotAllowed:
		return caller{}, status.Errorf(codes.PermissionDenied, "ip_not_allowed: the key's IP filters do not allow this client address")
	case authz.ScopeDenied:
		return caller{}, status.Errorf(codes.PermissionDenied, "scope_denied: the key's scope does not allow %s:%s:%s", authz.AccountAPIService, kind, op)
	case authz.StoreUnavailable:
		s.log.Error("account API: key store unavailable", "method", method, "err", d.Err)
		return caller{}, status.Error(codes.Unavailable, "store_unavailable: the key store cannot be reached; retry later")
	default:
		s.log.Error("account API: unexpected decision", "method", method, "reason", d.Reason.String())
		return caller{}, status.Errorf(codes.PermissionDenied, "%s: the call is not allowed", d.Reason)
	}
}

// accountOperations are the (kind, operation) of every Account API method,
// which is all an account key's scope can grant.
var accountOperations = func() [][2]string {
	var out [][2]string
	for _, m := range accountv1.AccountService_ServiceDesc.Methods {
		out = append(out, [2]string{MethodKind(m.MethodName), Operation(m.MethodName)})
	}
	return out
}()

// withinCaller refuses an account key (being created, or one a call would
// change, rotate or delete) whose scope allows an Account API operation
// the caller's does not: a key allowed to manage keys must not mint or
// take over a more powerful one (a key limited to generateAccountAccessKey
// creating an unlimited key, or regenerating the bootstrap key to learn
// its new secret). Service and app keys never reach the Account API, so
// their scopes grant nothing here.
func withinCaller(c caller, typ authz.KeyType, ks *scope.Scope) error {
	if typ != authz.KeyTypeAccount {
		return nil
	}
	for _, op := range accountOperations {
		if ks.Allows(authz.AccountAPIService, op[0], op[1]) && !c.scope.Allows(authz.AccountAPIService, op[0], op[1]) {
			return status.Errorf(codes.PermissionDenied,
				"scope_exceeds_caller: the account key would allow %s:%s:%s, which the calling key's scope does not; "+
					"an account key can only create or manage account keys with at most its own rights",
				authz.AccountAPIService, op[0], op[1])
		}
	}
	return nil
}

// peerIP is the caller's address for IP filters; the zero Addr when the
// transport has none (which fails closed for keys with filters).
func peerIP(ctx context.Context) netip.Addr {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.Addr{}
	}
	if a, ok := p.Addr.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(p.Addr.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// storeError maps a store error to a gRPC status. what names the object
// (`app "billing"`) for NotFound; the store's own messages, which name the
// field, are kept for AlreadyExists and InvalidArgument. Anything else is
// logged and answered generically: its text may carry database detail.
func (s *Server) storeError(ctx context.Context, op, what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrAlreadyExists):
		// The store's message names the id or name taken.
		return status.Errorf(codes.AlreadyExists, "%v", err)
	case errors.Is(err, store.ErrInvalid):
		return status.Errorf(codes.InvalidArgument, "%v", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	s.log.Error("account API: store error", "op", op, "object", what, "err", err)
	return status.Error(codes.Internal, "internal error")
}
