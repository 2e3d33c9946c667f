package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/admin"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/cache"
	"github.com/keygate/keygate/pkg/metrics"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/telemetry"
	"github.com/keygate/keygate/pkg/usage"
	"google.golang.org/grpc"
)

// databaseFlags configure the PostgreSQL mode of serve.
type databaseFlags struct {
	Migrate           bool   `name:"migrate" env:"KEYGATE_MIGRATE" help:"Apply the embedded schema migrations at start (same as keygate migrate)."`
	AccountListenAddr string `name:"account-listen-addr" env:"KEYGATE_ACCOUNT_LISTEN_ADDR" default:"127.0.0.1:9192" help:"gRPC listener for the Account API (database mode); empty turns it off, for replicas that only decide."`
	// AccountAddr is the listen address's old name, which the CLI uses for
	// the address it dials: accepted with a deprecation warning
	// (accountListenAddr), and bound to no environment variable here.
	AccountAddr               string        `name:"account-addr" hidden:"" help:"Deprecated: --account-listen-addr."`
	CacheMaxKeys              int64         `name:"cache-max-keys" env:"KEYGATE_CACHE_MAX_KEYS" default:"1000000" help:"Compiled key records kept in memory; the set of all key hashes is kept regardless."`
	CacheMaxBytes             int64         `name:"cache-max-bytes" env:"KEYGATE_CACHE_MAX_BYTES" default:"0" help:"Bytes the compiled key records may take in memory (each costs its approximate size); a record is cached while this and --cache-max-keys both hold. 0 (the default): 40% of the Go memory limit (GOMEMLIMIT, or the container's through --memory-limit-ratio), at least 256 MiB; 256 MiB when there is no limit."`
	DegradedAfter             time.Duration `name:"degraded-after" env:"KEYGATE_DEGRADED_AFTER" default:"5s" help:"How long the change feed may be disconnected before /readyz reports degraded."`
	UnreadyAfter              time.Duration `name:"unready-after" env:"KEYGATE_UNREADY_AFTER" default:"0s" help:"Report /readyz 503 once the database has been unreachable this long (0: never; cached keys keep deciding while it is down)."`
	MaxFeedLag                time.Duration `name:"max-feed-lag" env:"KEYGATE_MAX_FEED_LAG" default:"5s" help:"Report /readyz degraded once the oldest change this replica has not applied is older than this (negative: never)."`
	AccountMutationsPerSecond float64       `name:"account-mutations-per-second" env:"KEYGATE_ACCOUNT_MUTATIONS_PER_SECOND" default:"20" help:"Account API: mutations one account key may make per second on this replica (bursts of twice as many); beyond, ResourceExhausted with retry-after."`
	AccountReadsPerSecond     float64       `name:"account-reads-per-second" env:"KEYGATE_ACCOUNT_READS_PER_SECOND" default:"100" help:"Account API: reads one account key may make per second on this replica (bursts of twice as many)."`
	replicaFlags
	UsageInterval      time.Duration `name:"usage-interval" env:"KEYGATE_USAGE_INTERVAL" default:"1m" help:"How often last-used times are written (at most one write per key per interval)."`
	UsageFlushInterval time.Duration `name:"usage-flush-interval" env:"KEYGATE_USAGE_FLUSH_INTERVAL" default:"10s" help:"How often this replica writes its usage counts (hourly buckets) to the database; also at shutdown."`
	UsageRetention     time.Duration `name:"usage-retention" env:"KEYGATE_USAGE_RETENTION" default:"2160h" help:"Usage buckets older than this (default 90 days; days are accepted, e.g. 400d) are dropped, by whole monthly partitions (0: kept forever)."`
	UsageMaxPending    int           `name:"usage-max-pending" env:"KEYGATE_USAGE_MAX_PENDING" default:"1000000" help:"Usage rows (distinct key, service, operation, outcome and hour) this replica holds while the database cannot be written; past it, counts are kept per account and reported."`
}

// validate refuses rate limits that are not positive: the Account API's
// limits cannot be switched off (one account's script would then hold a
// replica for the others).
func (c databaseFlags) validate() error {
	var errs []error
	if c.AccountMutationsPerSecond <= 0 {
		errs = append(errs, fmt.Errorf("account-mutations-per-second: %g must be positive", c.AccountMutationsPerSecond))
	}
	if c.AccountReadsPerSecond <= 0 {
		errs = append(errs, fmt.Errorf("account-reads-per-second: %g must be positive", c.AccountReadsPerSecond))
	}
	errs = append(errs, c.replicaFlags.validate())
	if c.UsageFlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("usage-flush-interval: %v must be positive", c.UsageFlushInterval))
	}
	if c.UsageRetention < 0 {
		errs = append(errs, fmt.Errorf("usage-retention: %v must not be negative (0 keeps usage forever)", c.UsageRetention))
	}
	if c.UsageMaxPending <= 0 {
		errs = append(errs, fmt.Errorf("usage-max-pending: %d must be positive", c.UsageMaxPending))
	}
	return errors.Join(errs...)
}

// defaultAccountListenAddr is --account-listen-addr's default.
const defaultAccountListenAddr = "127.0.0.1:9192"

// accountListenAddr is where the Account API listens. The setting was
// --account-addr / KEYGATE_ACCOUNT_ADDR, names the CLI uses for the
// address it dials; they still set it, with a warning, unless
// --account-listen-addr (KEYGATE_ACCOUNT_LISTEN_ADDR) is given.
func (c *databaseFlags) accountListenAddr(log *slog.Logger) string {
	if c.AccountListenAddr != defaultAccountListenAddr || os.Getenv("KEYGATE_ACCOUNT_LISTEN_ADDR") != "" {
		return c.AccountListenAddr
	}
	switch old := os.Getenv("KEYGATE_ACCOUNT_ADDR"); {
	case c.AccountAddr != "":
		log.Warn("--account-addr on serve is deprecated: use --account-listen-addr (--account-addr is the address the CLI dials)", "addr", c.AccountAddr)
		return c.AccountAddr
	case old != "":
		log.Warn("KEYGATE_ACCOUNT_ADDR on serve is deprecated: set KEYGATE_ACCOUNT_LISTEN_ADDR (KEYGATE_ACCOUNT_ADDR is the address the CLI dials)", "addr", old)
		return old
	}
	return c.AccountListenAddr
}

// openDatabase serves keys from PostgreSQL behind the cache, with the
// change feed and the Account API.
func (c *serveCmd) openDatabase(ctx context.Context, l *loaded, m *metrics.Metrics, tr *telemetry.Tracing, log *slog.Logger) (*keySource, error) {
	opts := postgres.Options{Compile: l.keysOpts.Compile, Tracer: telemetry.PgxTracer(tr.TracerProvider(), m), Logger: log, Headers: m, Limits: c.limits()}
	// Lazily: a database down at start is waited for by the start-up loop,
	// unready, as a pod started before its database should be.
	st, pool, err := postgres.OpenLazy(ctx, c.DatabaseURL, opts)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	var feed store.Source = st
	if c.HoldFeedFile != "" {
		log.Warn("--hold-feed-file is set: this replica applies no change while the file exists (for tests only)", "file", c.HoldFeedFile)
		feed = heldFeed{Source: st, path: c.HoldFeedFile}
	}
	kc, err := cache.New(telemetry.ObserveChangeFeed(feed, m, nil),
		cache.Options{MaxKeys: c.CacheMaxKeys, MaxBytes: cacheMaxBytes(c.CacheMaxBytes, debug.SetMemoryLimit(-1), log), DegradedAfter: c.DegradedAfter,
			UnreadyAfter: c.UnreadyAfter, MaxFeedLag: c.MaxFeedLag, Logger: log, Access: st})
	if err != nil {
		pool.Close()
		return nil, err
	}
	m.ObserveCache(kc.Stats)
	engine := &authz.Engine{Keys: kc, Routes: account.AccountRouter(), Hasher: l.hasher, Usage: kc}
	// One account service behind both transports (gRPC here, GraphQL on
	// the console listener): one rate limiter, one set of rules.
	accountSvc := account.NewService(st, engine, l.hasher, c.accountOptions(l, log))
	accountSrv := accountgrpc.NewServer(accountSvc, log)
	up := &startup{pool: pool, kc: kc, migrate: c.Migrate, log: log}
	warm := make(chan struct{})
	ready := warmed(up.readiness(kc.Ready), warm)
	if l.hasher.Algorithm() == apikey.SHA256 {
		// Without a pepper, a stolen database lets anyone test guessed
		// custom secrets offline: say so at start and on /readyz.
		const warning = "no --pepper-file: key hashes are plain SHA-256, so a copy of the database can be checked against guessed secrets offline"
		log.Warn("database mode " + warning)
		ready = withDetail(ready, warning)
	}
	counts := authz.NewUsageCounter(0)
	quotas := authz.NewQuotas()
	// One id for the heartbeats and the quota totals this replica writes
	// (its quota sync reads what the others wrote).
	replicaID := c.replicaID()
	// The database's daily rollup repairs itself in the aggregator's
	// hourly maintenance (usage.RollupReconciler).
	var _ usage.RollupReconciler = st
	agg := usage.New(counts, st, usage.Options{Interval: c.UsageFlushInterval, Retention: c.UsageRetention,
		MaxPending: c.UsageMaxPending, Logger: log, Quotas: quotas, Replica: replicaID})
	m.ObserveUsage(agg.Stats)
	src := &keySource{
		counts:     counts,
		quotas:     quotas,
		warm:       warm,
		store:      kc,
		usage:      kc,
		denials:    kc.Denials(), // row 9: the cache's index, kept by the change feed
		count:      kc.Len,
		ready:      ready,
		accountSvc: accountSvc,
		sessions:   st,
		account: grpcService{
			addr:     c.accountListenAddr(log),
			register: func(s *grpc.Server) { accountgrpc.Register(s, accountSrv) },
			opts:     append(accountgrpc.ServerOptions(), grpc.ChainUnaryInterceptor(accountSrv.UnaryInterceptor())),
		},
		close: func() { kc.Close(); pool.Close() },
	}
	src.loops = []func(context.Context){
		func(ctx context.Context) {
			// Warm first: until then the cache is not ready and answers
			// store_unavailable rather than guessing.
			if !up.run(ctx) {
				return
			}
			// The fleet's quota counts before "serving": a restarted
			// replica must not admit every quota afresh (SPEC §12).
			for backoff := startupBackoffMin; agg.SyncQuotas(ctx) != nil; backoff = min(2*backoff, startupBackoffMax) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
			}
			close(warm)
			if err := kc.Run(ctx); err != nil {
				log.Error("change feed stopped", "error", err)
			}
		},
		// Usage counts: flushed every --usage-flush-interval and once more
		// when ctx ends, which is after the listeners stopped (serve's
		// shutdown), so that the last checks are counted. Started once the
		// keys are loaded (the schema is there; before, no known key was
		// decided, so nothing was counted).
		func(ctx context.Context) {
			select {
			case <-warm:
				agg.Run(ctx)
			case <-ctx.Done():
			}
		},
		func(ctx context.Context) {
			h := &heartbeater{rs: st, applied: kc.Applied, every: c.HeartbeatInterval, log: log,
				r: store.Replica{ID: replicaID, Version: buildVersion(), StartedAt: time.Now()}}
			h.run(ctx, warm)
		},
		func(ctx context.Context) {
			if err := kc.RunUsageFlusher(ctx, st, c.UsageInterval); err != nil {
				log.Warn("usage flusher stopped", "error", err)
			}
		},
	}
	return src, nil
}

// The start-up loop's retry delays: short at first (a database starting
// beside keygate is usually up within seconds), capped so that a long
// outage is not hammered yet is noticed within half a minute.
const (
	startupBackoffMin = 500 * time.Millisecond
	startupBackoffMax = 30 * time.Second
)

// startup brings a database-mode replica to a warm cache: migrate (with
// --migrate), check the schema, load every key. Each failure is logged,
// shown on /readyz and retried with capped backoff, so that a replica
// started before its database, or before `keygate migrate`, becomes ready
// by itself; the listeners are up meanwhile (Check answers
// store_unavailable until the cache is warm).
type startup struct {
	pool    *pgxpool.Pool
	kc      *cache.Cache
	migrate bool
	log     *slog.Logger
	// reason is why the last attempt failed, for /readyz; nil before the
	// first failure and once warm.
	reason atomic.Pointer[string]
}

// run retries attempt until it succeeds (true) or ctx is done (false).
func (s *startup) run(ctx context.Context) bool {
	for backoff := startupBackoffMin; ; backoff = min(2*backoff, startupBackoffMax) {
		err := s.attempt(ctx)
		if err == nil {
			s.reason.Store(nil)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		reason := startupReason(err)
		s.reason.Store(&reason)
		s.log.Error("keys not loaded; retrying", "reason", reason, "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
	}
}

func (s *startup) attempt(ctx context.Context) error {
	if s.migrate {
		if err := postgres.Migrate(ctx, s.pool); err != nil {
			return fmt.Errorf("%w: %w", errStartupMigrate, err)
		}
	}
	// Checked before loading: a missing relation says nothing about what
	// to do, the schema version does.
	if err := postgres.CheckSchema(ctx, s.pool); err != nil {
		return err
	}
	return s.kc.Warm(ctx)
}

// errStartupMigrate marks a failure of --migrate among start-up errors.
var errStartupMigrate = errors.New("migrate")

// startupReason words a failed attempt for /readyz: what to do about a
// missing schema, otherwise what failed. The full error, which may be
// long, goes to the log only.
func startupReason(err error) string {
	var connect *pgconn.ConnectError
	switch {
	case errors.Is(err, postgres.ErrNoSchema):
		return postgres.ErrNoSchema.Error()
	case errors.As(err, &connect):
		return "database unreachable (retrying with backoff; see the log)"
	case errors.Is(err, errStartupMigrate):
		return "--migrate failed (retrying with backoff; see the log)"
	}
	return "loading the keys from the database failed (retrying with backoff; see the log)"
}

// readiness is r with, while the replica is not ready, the reason the last
// start-up attempt failed.
func (s *startup) readiness(r admin.Readiness) admin.Readiness {
	return func() (bool, string) {
		ok, detail := r()
		if reason := s.reason.Load(); !ok && reason != nil {
			detail += ": " + *reason
		}
		return ok, detail
	}
}

// warmed is r, not ready until warm is closed: the keys are loaded and
// the fleet's quota counts read (a replica ready before would admit every
// quota afresh).
func warmed(r admin.Readiness, warm <-chan struct{}) admin.Readiness {
	return func() (bool, string) {
		ok, detail := r()
		if !ok {
			return ok, detail
		}
		select {
		case <-warm:
			return ok, detail
		default:
			return false, "reading the quota counts"
		}
	}
}

// withDetail adds a standing detail to a readiness report: ready as r
// says, the detail beside r's own.
func withDetail(r admin.Readiness, detail string) admin.Readiness {
	return func() (bool, string) {
		ok, d := r()
		if d == "" || d == "ok" {
			return ok, detail
		}
		return ok, d + "; " + detail
	}
}
