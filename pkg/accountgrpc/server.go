// Package accountgrpc serves the account service (pkg/account) as
// keygate's gRPC Account API (proto/keygate/account/v1). It converts
// messages to the service's inputs and its records and errors back; every
// rule lives in the service.
//
// Every call is authenticated by an account key in the x-api-key metadata
// and authorised as the catalogue operation of its method (account
// .Operations: the method name in lowerCamelCase).
package accountgrpc

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/store"
)

// KeyHeader is the metadata key that carries the caller's account key.
const KeyHeader = "x-api-key"

// Server implements accountv1.AccountServiceServer over the account
// service.
type Server struct {
	accountv1.UnimplementedAccountServiceServer
	svc *account.Service
	log *slog.Logger
}

var _ accountv1.AccountServiceServer = (*Server)(nil)

// NewServer returns the gRPC Account API over svc; log (nil discards)
// gets what the adapter alone sees (an audit event it cannot convert).
func NewServer(svc *account.Service, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{svc: svc, log: log}
}

// Register registers the Account API and server reflection on s. s must
// have been built with the server's interceptor, e.g.
//
//	g := grpc.NewServer(grpc.ChainUnaryInterceptor(srv.UnaryInterceptor()))
//	accountgrpc.Register(g, srv)
//
// Without it every call is refused as unauthenticated.
func Register(s *grpc.Server, srv *Server) {
	accountv1.RegisterAccountServiceServer(s, srv)
	reflection.Register(s)
}

// Message size bounds of the Account API (SPEC §10). No request comes
// near 1 MiB — the largest, a key of the largest allowed shape (4 KiB of
// scope, 20 headers of 1 KiB, 100 IP filters, 1 KiB of description), is
// under 40 KiB — so a larger one is refused by gRPC before it is decoded
// into memory. Answers are lists bounded by account.MaxListBytes, plus a
// page token and framing.
const (
	MaxRecvMsgSize = 1 << 20
	MaxSendMsgSize = account.MaxListBytes + 256<<10
)

// ServerOptions are the options every gRPC server of the Account API
// needs beside the interceptor: its message size bounds.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxRecvMsgSize), grpc.MaxSendMsgSize(MaxSendMsgSize)}
}

var servicePrefix = "/" + accountv1.AccountService_ServiceDesc.ServiceName + "/"

// OperationOf is the catalogue operation of an Account API method: its
// name in lowerCamelCase ("GenerateServiceAccessKey" →
// "generateServiceAccessKey"). false for a method the catalogue lacks,
// which is refused rather than authorised under a guessed name.
func OperationOf(method string) (account.Operation, bool) {
	if name, ok := queryNames[method]; ok {
		return account.OperationNamed(name)
	}
	r, n := utf8.DecodeRuneInString(method)
	if n == 0 {
		return account.Operation{}, false
	}
	return account.OperationNamed(string(unicode.ToLower(r)) + method[n:])
}

// queryNames are the methods whose operation is named as its GraphQL
// query field (SPEC §14), not as the method in lowerCamelCase: a gRPC
// method is authorised under its GraphQL field's name, so that one scope
// (account-api:query:apps) means the same on both transports.
var queryNames = map[string]string{
	"GetApp":                   "app",
	"ListApps":                 "apps",
	"GetTenant":                "tenant",
	"ListTenants":              "tenants",
	"GetKey":                   "key",
	"ListKeys":                 "keys",
	"ListAuditEvents":          "auditEvents",
	"GetServiceAccessRole":     "serviceAccessRole",
	"ListServiceAccessRoles":   "serviceAccessRoles",
	"GetServiceAccessDenial":   "serviceAccessDenial",
	"ListServiceAccessDenials": "serviceAccessDenials",
	"GetSyncStatus":            "syncStatus",
	"ListReplicas":             "replicas",
	"GetUsage":                 "usage",
	"ListServices":             "services",
	"GetAccount":               "account",
}

type callerKey struct{}

// callerFrom returns the caller the interceptor put in ctx; without one
// the service refuses the call (the zero Caller).
func callerFrom(ctx context.Context) account.Caller {
	c, _ := ctx.Value(callerKey{}).(account.Caller)
	return c
}

// UnaryInterceptor authenticates and authorises every Account API call
// with the service; calls to other services on the same server pass
// through.
func (s *Server) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		method, ok := strings.CutPrefix(info.FullMethod, servicePrefix)
		if !ok {
			return handler(ctx, req)
		}
		op, ok := OperationOf(method)
		if !ok {
			return nil, status.Errorf(codes.Unimplemented, "%s is not an Account API operation", method)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		c, err := s.svc.Authenticate(ctx, account.Credentials{Keys: md.Get(KeyHeader), ClientIP: peerIP(ctx)}, op)
		if err != nil {
			setRetryAfter(ctx, err)
			return nil, grpcError(err)
		}
		ctx = context.WithValue(ctx, callerKey{}, c)
		if op.Kind != "mutation" {
			return handler(ctx, req)
		}
		ctx, cn := store.WithChangeNumbers(ctx)
		resp, err := handler(ctx, req)
		if err == nil {
			setChangeNumber(resp, cn)
		}
		return resp, err
	}
}

// setChangeNumber fills a mutation response's change_number with the
// change number its store writes committed (SPEC §13).
func setChangeNumber(resp any, cn *store.ChangeNumbers) {
	seq, ok := cn.Get()
	m, isMsg := resp.(proto.Message)
	if !ok || !isMsg {
		return
	}
	r := m.ProtoReflect()
	if f := r.Descriptor().Fields().ByName("change_number"); f != nil && f.Kind() == protoreflect.Int64Kind {
		r.Set(f, protoreflect.ValueOfInt64(seq))
	}
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

// setRetryAfter sends a rate limit's wait as the retry-after header (whole
// seconds, at least 1), as HTTP does, for clients and proxies that back off
// by it.
func setRetryAfter(ctx context.Context, err error) {
	var e *account.Error
	if !errors.As(err, &e) || e.RetryAfter <= 0 {
		return
	}
	secs := int64(math.Ceil(e.RetryAfter.Seconds()))
	_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", strconv.FormatInt(max(secs, 1), 10)))
}

// ErrorDomain is the domain of the ErrorInfo details the Account API
// sends.
const ErrorDomain = "keygate"

// grpcError maps the service's errors to gRPC statuses: the codes mirror
// gRPC's, an InvalidArgument carries a BadRequest detail per field, an
// error with a reason an ErrorInfo.
// Anything else never reaches a caller as it is (the service logs and
// wraps what is not the caller's): Internal.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	var e *account.Error
	if !errors.As(err, &e) {
		return status.Error(codes.Internal, "internal error")
	}
	st := status.New(codes.Code(e.Code), e.Message)
	if e.Reason != "" {
		// The reason clients act on (retry on store_unavailable, confirm
		// a cascade with its key count) without parsing the message.
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: e.Reason, Domain: ErrorDomain, Metadata: e.Metadata}); derr == nil {
			st = d
		}
	}
	if e.Code == account.ResourceExhausted && (e.Field != "" || len(e.Violations) > 0) {
		// A size or quota limit: the detail a client's retry logic reads.
		if d, derr := st.WithDetails(quotaFailure(e)); derr == nil {
			st = d
		}
		return st.Err()
	}
	if len(e.Violations) > 0 {
		fv := make([]*errdetails.BadRequest_FieldViolation, len(e.Violations))
		for i, v := range e.Violations {
			fv[i] = &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description}
		}
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: fv}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// quotaFailure names the limits a ResourceExhausted error is about: each
// field past a size limit, or the account quota (max_keys, …).
func quotaFailure(e *account.Error) *errdetails.QuotaFailure {
	if len(e.Violations) == 0 {
		return &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: e.Field, Description: e.Message}}}
	}
	q := &errdetails.QuotaFailure{}
	for _, v := range e.Violations {
		q.Violations = append(q.Violations, &errdetails.QuotaFailure_Violation{Subject: v.Field, Description: v.Description})
	}
	return q
}
