package accounttest

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/logbuf"
	"github.com/keygate/keygate/pkg/store"
)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Buffer is a log sink safe for concurrent writes.
type Buffer = logbuf.Buffer

// Unlimited are rate limits no test reaches: the test clock stands still,
// so the default buckets would never refill. Tests of the limits set
// their own.
var Unlimited = account.RateLimits{MutationsPerSecond: 1e9, ReadsPerSecond: 1e9}

// T0 is where the test clock starts.
var T0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// CompileOptions are the options the test server and store compile keys
// with: keygate's default key header and identity headers are reserved,
// and the identity headers' prefix.
var CompileOptions = authz.CompileOptions{ReservedHeaders: []string{
	"x-api-key", "x-keygate-key-id", "x-keygate-key-name", "x-keygate-app-id",
	"x-keygate-tenant-id", "x-keygate-account-id",
}, ReservedPrefixes: []string{"x-keygate-"}}

// Server is a running Account API on a 127.0.0.1 port, with one account
// ("acct-1") and its bootstrap account key ("root", full scope), and a
// second account ("acct-2", key "other-root") to check isolation.
type Server struct {
	Addr string
	// Store is the fake the server runs on (Start); nil under StartOn.
	Store *Store
	// Accounts is the store the service runs on: Store, or StartOn's.
	Accounts Backend
	API      *accountgrpc.Server
	// Service is the account service the API adapts.
	Service *account.Service
	Engine  *authz.Engine
	Hasher  *apikey.Hasher
	Clock   *Clock
	// Logs receives the server's JSON logs.
	Logs   *Buffer
	Conn   *grpc.ClientConn
	Client accountv1.AccountServiceClient

	AccountID string
	RootKeyID string
	RootKey   string // the root key's secret
	OtherKey  string // acct-2's account key secret
}

// Backend is a store a Server can run on: the fake, or PostgreSQL's
// (pkg/store/postgres) for suites that hold both to the same answers.
type Backend interface {
	store.Accounts
	authz.KeyStore
}

// Start runs a server on the fake store until the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	clock := NewClock(T0)
	st := NewStore(tb, CompileOptions, clock.Now)
	s := StartOn(tb, st, clock)
	s.Store = st
	return s
}

// StartOn is Start on st, an empty store whose clock is clock's and which
// compiles keys with CompileOptions.
func StartOn(tb testing.TB, st Backend, clock *Clock) *Server {
	tb.Helper()
	s := &Server{
		Accounts:  st,
		Hasher:    apikey.NewHasher(nil),
		Clock:     clock,
		Logs:      &Buffer{},
		AccountID: "acct-1",
		RootKeyID: "root",
	}
	ctx := context.Background()
	for _, id := range []string{"acct-1", "acct-2"} {
		if _, err := st.CreateAccount(ctx, store.Actor{}, store.Account{ID: id, Name: id}); err != nil {
			tb.Fatal(err)
		}
	}
	s.RootKey = s.AddKey(tb, authz.KeySpec{ID: "root", Name: "root", Type: authz.KeyTypeAccount, AccountID: "acct-1", Active: true})
	s.OtherKey = s.AddKey(tb, authz.KeySpec{ID: "other-root", Name: "other-root", Type: authz.KeyTypeAccount, AccountID: "acct-2", Active: true})

	s.Engine = &authz.Engine{Keys: st, Routes: account.AccountRouter(), Hasher: s.Hasher, Now: clock.Now}
	log := slog.New(slog.NewJSONHandler(s.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s.Service = account.NewService(st, s.Engine, s.Hasher, account.Options{Compile: CompileOptions, Logger: log, Now: clock.Now,
		RateLimits: Unlimited})
	s.API = accountgrpc.NewServer(s.Service, log)

	g := grpc.NewServer(append(accountgrpc.ServerOptions(), grpc.ChainUnaryInterceptor(s.API.UnaryInterceptor()))...)
	accountgrpc.Register(g, s.API)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.Addr = lis.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(lis)
	}()
	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(accountgrpc.MaxSendMsgSize)))
	if err != nil {
		tb.Fatal(err)
	}
	s.Conn = conn
	s.Client = accountv1.NewAccountServiceClient(conn)
	tb.Cleanup(func() {
		conn.Close()
		g.Stop()
		<-done
	})
	return s
}

// AddKey stores a key directly (as bootstrap would) with a new generated
// secret of its type and returns the secret. spec needs no hash.
func (s *Server) AddKey(tb testing.TB, spec authz.KeySpec) string {
	tb.Helper()
	secret, err := apikey.Generate(spec.Type.SecretKind())
	if err != nil {
		tb.Fatal(err)
	}
	spec.Hash = s.Hasher.HashString(secret)
	if _, err := s.Accounts.CreateKey(context.Background(), store.Actor{}, store.Key{Spec: spec, Origin: store.OriginGenerated}); err != nil {
		tb.Fatal(err)
	}
	return secret
}

// Ctx returns ctx with key as the call's x-api-key metadata.
func Ctx(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, accountgrpc.KeyHeader, key)
}

// Root returns a context that calls as the root key.
func (s *Server) Root(ctx context.Context) context.Context { return Ctx(ctx, s.RootKey) }
