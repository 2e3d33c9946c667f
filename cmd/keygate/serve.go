package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/admin"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/filewatch"
	"github.com/keygate/keygate/pkg/graphql"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/metrics"
	"github.com/keygate/keygate/pkg/route"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/telemetry"
	"go.opentelemetry.io/otel"
)

type serveCmd struct {
	KeysFile   string `name:"keys-file" env:"KEYGATE_KEYS_FILE" type:"path" help:"YAML keys file (hashes only); serve reloads it when it changes."`
	RoutesFile string `name:"routes-file" env:"KEYGATE_ROUTES_FILE" required:"" type:"path" help:"YAML routes file mapping requests to services; serve reloads it when it changes."`
	databaseFlags
	databaseURLFlags // serve keys from the database (with the Account API) instead of a keys file
	limitFlags
	requestFlags
	hashFlags
	logFlags
	telemetryFlags
	httpLimits
	webFlags                      // the console listener: GraphQL Account API and console (web.go)
	tlsFlags                      // TLS and mTLS on every listener (tls.go)
	memoryFlags                   // GOMEMLIMIT from the container's limit (memlimit.go)
	AuthzAddr       string        `name:"authz-addr" env:"KEYGATE_AUTHZ_ADDR" default:"127.0.0.1:9191" help:"gRPC listener for ext_authz Check and grpc.health.v1."`
	HTTPAuthzAddr   string        `name:"http-authz-addr" env:"KEYGATE_HTTP_AUTHZ_ADDR" help:"HTTP ext_authz listener (Envoy http_service, nginx auth_request, Traefik ForwardAuth, Caddy forward_auth); off unless set."`
	StreamWorkers   int           `name:"authz-stream-workers" env:"KEYGATE_AUTHZ_STREAM_WORKERS" default:"64" help:"Goroutines kept to run Check calls on the gRPC listener (0: a new goroutine per call). A kept goroutine keeps its grown stack, so a call does not pay for growing one (about a tenth of a hit's CPU); calls beyond them still get a goroutine of their own."`
	KeptAllowBytes  int64         `name:"authz-kept-allow-bytes" env:"KEYGATE_AUTHZ_KEPT_ALLOW_BYTES" default:"67108864" help:"Bytes of keys' allows kept ready to send on the gRPC listener, in slabs of 1 MiB (64 MiB: about 140,000 keys' allows). Past it the oldest slab's keys encode their allow again on their next request; keygate_kept_allow_encoded_total growing with the requests says it is too small for the keys in use."`
	AdminAddr       string        `name:"admin-addr" env:"KEYGATE_ADMIN_ADDR" default:"127.0.0.1:9193" help:"HTTP listener for /healthz, /readyz and /metrics."`
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"KEYGATE_SHUTDOWN_TIMEOUT" default:"10s" help:"How long in-flight checks may take to finish on shutdown."`
	DrainPeriod     time.Duration `name:"drain-period" env:"KEYGATE_DRAIN_PERIOD" default:"0s" help:"On SIGTERM, report NOT_SERVING and keep answering this long before stopping, so that Envoy's health checks move traffic away first (e.g. 5s behind Envoy)."`
	Pprof           bool          `name:"pprof" env:"KEYGATE_PPROF" help:"Serve Go profiles under /debug/pprof/ on the admin listener (never /debug/pprof/cmdline)."`
}

// maxStreamWorkers bounds --authz-stream-workers: each is a goroutine
// kept for the process's life, with the stack its deepest call grew.
const maxStreamWorkers = 4096

func (c *serveCmd) validateStreamWorkers() error {
	if c.StreamWorkers < 0 || c.StreamWorkers > maxStreamWorkers {
		return fmt.Errorf("authz-stream-workers: %d must be from 0 (a goroutine per call) to %d", c.StreamWorkers, maxStreamWorkers)
	}
	if c.KeptAllowBytes < 1<<20 {
		return fmt.Errorf("authz-kept-allow-bytes: %d is less than one slab (1 MiB = 1048576)", c.KeptAllowBytes)
	}
	return nil
}

func authzCompileOptions(cfg extauthz.Config) authz.CompileOptions {
	return cfg.CompileOptions()
}

// keySource is where serve's keys come from: the keys file, or PostgreSQL
// behind the cache. Its loops run beside the listeners until shutdown.
type keySource struct {
	store authz.KeyStore
	usage authz.UsageRecorder // nil: last-used is not recorded
	// counts counts decisions for usage (SPEC §12); nil: not counted
	// (the keys file has no database to write them to).
	counts *authz.UsageCounter
	// denials are the service access denials row 9 checks (SPEC §11);
	// nil: the source holds none yet.
	denials *authz.DenialIndex
	// quotas are the counts row 10 admits against (SPEC §12): shared
	// through the usage table in database mode, this replica's own with
	// a keys file.
	quotas *authz.Quotas
	count  func() int
	// warm is closed once the keys are loaded; nil when they are before
	// serve starts (the keys file), so that "keygate serving" is logged
	// with the real key count, never with the 0 of a cache still warming.
	warm  <-chan struct{}
	ready admin.Readiness
	loops []func(ctx context.Context)
	// account serves the Account API (database mode only).
	account grpcService
	// accountSvc is the account service the console listener serves:
	// over PostgreSQL, or read-only over the keys file (fileAccount).
	accountSvc *account.Service
	// sessions keeps the console's sessions: in PostgreSQL, or in memory
	// with a keys file.
	sessions store.Sessions
	close    func()
}

// grpcService is a gRPC service on a listener of its own.
type grpcService struct {
	addr     string
	register func(*grpc.Server)
	opts     []grpc.ServerOption
}

// Run serves until the context is cancelled (SIGINT/SIGTERM), then stops
// taking new checks, finishes the ones in flight and returns.
func (c *serveCmd) Run(e *env) error {
	log := c.logger(e.stderr)
	if err := errors.Join(c.httpLimits.validate(), c.webFlags.validate(), c.databaseFlags.validate(), c.limitFlags.validate(), c.memoryFlags.validate(), c.validateStreamWorkers(), c.databaseURLFlags.resolve()); err != nil {
		return err
	}
	c.memoryFlags.apply(e.ctx, log)
	warn := func(w string) { log.Warn("configuration warning", "warning", w) }
	l, err := load(c.RoutesFile, c.requestFlags, c.hashFlags, warn)
	if err != nil {
		return err
	}
	tr, err := telemetry.Setup(e.ctx, telemetry.Config{
		Version: buildVersion(), OTLPEndpoint: c.OTLPEndpoint, Sampler: c.TraceSampler, SampleRatio: c.TraceSampleRatio,
	})
	if err != nil {
		return err
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("telemetry", "error", err) }))
	defer func() {
		// After the servers stopped: flush the spans still buffered.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			log.Warn("flushing traces failed", "error", err)
		}
	}()
	m := metrics.New(buildVersion(), nil)
	// TLS files are read before the keys: a missing certificate stops
	// serve before it connects to anything.
	tlsOn, err := c.tlsFlags.open(log, m, func(listener string) bool {
		switch listener {
		case "http-authz":
			return c.HTTPAuthzAddr != ""
		case "account":
			return c.DatabaseURL != "" && (c.AccountListenAddr != "" || c.AccountAddr != "")
		case "console":
			return c.ConsoleAddr != ""
		}
		return true
	})
	if err != nil {
		return err
	}
	src, err := c.openKeys(e.ctx, l, m, tr, log)
	if err != nil {
		return err
	}
	defer src.close()
	m.KeysLoaded(func() float64 { return float64(src.count()) })

	engine := &authz.Engine{Keys: src.store, Routes: l.router, Hasher: l.hasher, Usage: src.usage, Denials: src.denials, Counts: src.counts, Quotas: src.quotas,
		WeakSecrets: weakSecretWarning{log: log, m: m}}
	obs := tr.Observer(m, src.store) // metrics, plus the decision on the Check span
	authzCfg := l.cfg
	authzCfg.KeptAllowBytes = c.KeptAllowBytes
	authzSrv := extauthz.NewServer(engine, authzCfg, obs, log)
	authzSrv.SetTracer(tr.CheckTracer())
	m.ObserveKeptAllows(authzSrv.KeptAllowStats)

	// keygate decodes CheckRequests itself and sends answers encoded once
	// (pkg/extauthz/grpc.go); health goes through the same codec unchanged.
	grpcSrv := grpc.NewServer(append(append(tr.GRPCServerOptions(), extauthz.ServerCodec(),
		grpc.NumStreamWorkers(uint32(c.StreamWorkers))), tlsOn.grpcOptions("authz", tr)...)...)
	authzSrv.Register(grpcSrv)
	healthSrv := health.NewServer()
	healthWatch := &stoppableHealth{Server: healthSrv, stop: make(chan struct{})}
	healthpb.RegisterHealthServer(grpcSrv, healthWatch)
	healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthSrv.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	group := &listenerGroup{log: log}
	group.add("authz", c.AuthzAddr, grpcServer{grpcSrv}, nil)
	switch {
	case src.account.register != nil && src.account.addr == "":
		// A data-plane Deployment apart from the Account API's.
		log.Info("Account API off (--account-listen-addr is empty)")
	case src.account.register != nil:
		accountSrv := grpc.NewServer(append(append(tr.GRPCServerOptions(), src.account.opts...), tlsOn.grpcOptions("account", tr)...)...)
		src.account.register(accountSrv)
		group.add("account", src.account.addr, grpcServer{accountSrv}, nil)
	}
	c.addWeb(group, src, tlsOn, log)
	if c.HTTPAuthzAddr != "" {
		httpAuthz := c.httpLimits.server(tr.WrapHTTP(tr.WrapHTTPIdentity(extauthz.NewHTTPHandler(engine, l.cfg, obs, log))))
		group.add("http", c.HTTPAuthzAddr, httpServer{httpAuthz}, tlsOn.listen("http-authz", limitedListen(c.HTTPAuthzMaxConnections)))
	}
	adminMux := http.NewServeMux()
	adminMux.Handle("/", admin.Handler(tlsOn.readiness(src.ready), m.Registry))
	if c.Pprof {
		if err := admin.RegisterPprof(adminMux); err != nil {
			return err
		}
	}
	group.addLast("admin", c.AdminAddr, httpServer{c.httpLimits.server(adminMux)}, tlsOn.listen("admin", limitedListen(c.AdminMaxConnections)))
	if err := group.open(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var wg sync.WaitGroup
	loops := append(append(src.loops, tlsOn.loops()...), func(ctx context.Context) {
		c.watch(ctx, log, c.RoutesFile, func() {
			err := reloadRoutes(l.router, l.graphql, c.RoutesFile, log)
			m.ObserveReload("routes", err)
		})
	})
	for _, loop := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); loop(ctx) }()
	}
	started := time.Now()
	failed := group.start()
	serving := func() {
		log.Info("keygate serving", "version", buildVersion(), "keys", src.count(), "hash", string(l.hasher.Algorithm()), "took", time.Since(started))
	}
	if src.warm == nil {
		serving()
	} else {
		log.Info("keygate listening; loading keys (not ready until they are)", "version", buildVersion())
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-src.warm:
				serving()
			case <-ctx.Done():
			}
		}()
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-failed:
	}
	log.Info("shutting down", "drain", c.DrainPeriod, "timeout", c.ShutdownTimeout)
	// Envoy's health checks see NOT_SERVING first; during the drain period
	// checks are still answered while traffic moves to other replicas, then
	// in-flight checks finish.
	healthSrv.Shutdown()
	if c.DrainPeriod > 0 && serveErr == nil {
		time.Sleep(c.DrainPeriod)
	}
	// Health Watch streams never end by themselves: GracefulStop would
	// wait for them until the shutdown timeout.
	healthWatch.Stop()
	group.stop(c.ShutdownTimeout)
	cancel()
	wg.Wait()
	return serveErr
}

// limitedListen is a listen function for the listener group that serves
// at most n connections at once (listenLimited).
func limitedListen(n int) func(string) (net.Listener, error) {
	return func(addr string) (net.Listener, error) { return listenLimited(addr, n) }
}

// telemetryFlags configure tracing. The standard OTEL_* variables
// (OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG,
// OTEL_SERVICE_NAME, OTEL_SDK_DISABLED) apply when these are unset.
type telemetryFlags struct {
	OTLPEndpoint     string  `name:"otlp-endpoint" env:"KEYGATE_OTLP_ENDPOINT" help:"OTLP/gRPC collector for traces as a URL: http://host:4317 (plaintext) or https://host:4317. Unset: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT; none of them: tracing off."`
	TraceSampler     string  `name:"trace-sampler" env:"KEYGATE_TRACE_SAMPLER" help:"always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio. Unset: OTEL_TRACES_SAMPLER, else parentbased_always_on."`
	TraceSampleRatio float64 `name:"trace-sample-ratio" env:"KEYGATE_TRACE_SAMPLE_RATIO" help:"Ratio of the *traceidratio samplers, in [0, 1]. Unset: OTEL_TRACES_SAMPLER_ARG, else 1."`
}

// openKeys opens the keys file (the embedded store) or, with a database
// URL, PostgreSQL behind the cache.
func (c *serveCmd) openKeys(ctx context.Context, l *loaded, m *metrics.Metrics, tr *telemetry.Tracing, log *slog.Logger) (*keySource, error) {
	switch {
	case c.KeysFile != "" && c.DatabaseURL != "":
		return nil, errors.New("--keys-file and --database-url(-file) exclude each other: serve keys from one source")
	case c.DatabaseURL != "":
		return c.openDatabase(ctx, l, m, tr, log)
	case c.KeysFile == "":
		return nil, errors.New("no keys: give --keys-file (KEYGATE_KEYS_FILE), --database-url-file (KEYGATE_DATABASE_URL_FILE) or --database-url (DATABASE_URL)")
	}
	keys, err := keyfile.Open(c.KeysFile, l.keysOpts, log)
	if err != nil {
		return nil, err
	}
	accountSvc, sessions := c.fileAccount(keys, l, log)
	return &keySource{
		accountSvc: accountSvc,
		sessions:   sessions,
		store:      keys,
		denials:    keys.Denials(),
		// Quotas of the file are counted per replica: there is no usage
		// table to share counts through, and a restart counts afresh
		// (docs/usage.md).
		quotas: authz.NewQuotas(),
		count:  keys.Len,
		ready:  func() (bool, string) { return true, "" },
		loops: []func(context.Context){func(ctx context.Context) {
			c.watch(ctx, log, c.KeysFile, func() {
				err := keys.Reload()
				m.ObserveReload("keys", err)
			})
		}},
		close: func() {},
	}, nil
}

// watch calls reload whenever path changes, until ctx is done.
func (c *serveCmd) watch(ctx context.Context, log *slog.Logger, path string, reload func()) {
	w, err := filewatch.New(path)
	if err != nil {
		log.Warn("cannot watch file; it will not be reloaded", "file", path, "error", err)
		return
	}
	defer w.Close()
	w.Run(ctx, reload)
}

// reloadRoutes swaps in a changed routes file, keeping the last good table
// when the new one is invalid.
func reloadRoutes(r *route.Router, gql *graphql.Parser, path string, log *slog.Logger) error {
	table, warnings, err := loadRoutes(path, gql)
	if err != nil {
		log.Warn("routes file reload failed; keeping the last good routes", "file", path, "error", err)
		return err
	}
	for _, w := range warnings {
		log.Warn("configuration warning", "warning", w)
	}
	r.Swap(table)
	log.Info("routes file reloaded", "file", path, "services", len(table.ServiceNames()))
	return nil
}

// stoppableHealth is the gRPC health service whose Watch streams end on
// Stop (with Unavailable, after they were told NOT_SERVING), so that a
// client watching health — grpc-go's client-side health checking does —
// does not hold GracefulStop until the shutdown timeout cancels the checks
// still in flight.
type stoppableHealth struct {
	*health.Server
	stop     chan struct{}
	stopOnce sync.Once
}

// Stop ends every Watch stream, present and future.
func (h *stoppableHealth) Stop() { h.stopOnce.Do(func() { close(h.stop) }) }

func (h *stoppableHealth) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(req, watchStream{stream, ctx})
	select {
	case <-h.stop:
		return status.Error(codes.Unavailable, "keygate is shutting down")
	default:
		return err
	}
}

// watchStream is a Watch stream with a context of its own.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (s watchStream) Context() context.Context { return s.ctx }
