package extauthz

import (
	"context"
	"log/slog"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/authz"
)

// Observer records each decision (metrics, the span in ctx). It must not
// block, nor keep d after it returns.
type Observer interface {
	ObserveCheck(ctx context.Context, d *authz.Decision, elapsed time.Duration)
}

type nopObserver struct{}

func (nopObserver) ObserveCheck(context.Context, *authz.Decision, time.Duration) {}

// Server is the ext_authz v3 Authorization service.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	engine      *authz.Engine
	cfg         Config
	obs         Observer
	log         *slog.Logger
	denied      map[authz.Reason]answer
	tracer      CheckTracer
	names       *headerNames
	queryRemove []string
	// allows are the keys' kept allows on the gRPC path.
	allows *allowSlabs
	// protected are the key header and the identity headers: request
	// headers spelled like them go into headers_to_remove (forged.go).
	protected protectedNames
	// states recycles the per-check request and decision: both escape to
	// the heap through the store and router interfaces, and pooling them
	// keeps a cache-hit check free of allocations of its own.
	states sync.Pool
}

type checkState struct {
	req authz.Request
	dec authz.Decision
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// NewServer builds the adapter. cfg should have passed Validate; obs and
// log may be nil.
func NewServer(engine *authz.Engine, cfg Config, obs Observer, log *slog.Logger) *Server {
	cfg = cfg.WithDefaults()
	if obs == nil {
		obs = nopObserver{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		engine:    engine,
		cfg:       cfg,
		obs:       obs,
		log:       log,
		denied:    buildDenials(cfg),
		names:     namesFor(&cfg),
		allows:    newAllowSlabs(cfg.KeptAllowBytes, slabBytes),
		protected: newProtectedNames(cfg.protectedHeaders()),
	}
	if cfg.KeyQueryParam != "" {
		s.queryRemove = []string{cfg.KeyQueryParam}
	}
	return s
}

// CheckTracer observes each Check from start to end (a span around it).
type CheckTracer interface {
	// StartCheck returns the context the check runs in. h reads the
	// checked request's headers (the caller's trace context); it must not
	// be kept past the call.
	StartCheck(ctx context.Context, h Headers) context.Context
	// EndCheck ends what StartCheck began, given its context and the
	// call's error.
	EndCheck(ctx context.Context, err error)
}

// SetTracer installs a tracer around every Check; call it before serving.
// nil (the default) costs nothing.
func (s *Server) SetTracer(t CheckTracer) { s.tracer = t }

// Check answers every request with a CheckResponse; a gRPC error only for
// a call cancelled by the caller.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	v := protoView(req)
	v.message = true
	a, err := s.check(ctx, &v)
	return a.resp, err
}

// check decides one request and answers it, inside the tracer's span when
// there is one.
func (s *Server) check(ctx context.Context, v *requestView) (answer, error) {
	if s.tracer == nil {
		return s.decide(ctx, v)
	}
	ctx = s.tracer.StartCheck(ctx, v.hs)
	a, err := s.decide(ctx, v)
	s.tracer.EndCheck(ctx, err)
	return a, err
}

func (s *Server) decide(ctx context.Context, v *requestView) (answer, error) {
	start := time.Now()
	st, _ := s.states.Get().(*checkState)
	if st == nil {
		st = new(checkState)
	}
	defer func() {
		*st = checkState{} // drop references to the request and the key
		s.states.Put(st)
	}()
	s.fillRequest(&st.req, v)
	st.dec = s.engine.Check(ctx, &st.req)
	if err := ctx.Err(); err != nil {
		return answer{}, status.FromContextError(err).Err()
	}
	d := &st.dec
	var a answer
	var err error
	if d.Allowed() {
		a, err = s.allowResponse(d, v.hs.forgedNames(&s.protected), v.message)
	} else {
		a = s.denyResponse(d)
		logDeny(ctx, s.log, d)
	}
	s.obs.ObserveCheck(ctx, d, time.Since(start))
	return a, err
}

// logDeny writes one debug line per deny and a warning for internal
// failures. It names the key by id only, never by secret or hash.
func logDeny(ctx context.Context, log *slog.Logger, d *authz.Decision) {
	if d.Reason == authz.StoreUnavailable {
		log.WarnContext(ctx, "check failed: key store unavailable", "error", d.Err)
		return
	}
	if !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []any{"reason", d.Reason.String()}
	if d.Key != nil {
		attrs = append(attrs, "key_id", d.Key.Spec.ID)
	}
	if d.Target.Service != "" {
		attrs = append(attrs, "service", d.Target.Service, "operation", d.Target.Operation)
	}
	if d.Denial != nil {
		attrs = append(attrs, "denial_id", d.Denial.ID)
	}
	log.DebugContext(ctx, "denied", attrs...)
}
