// Package postgres is keygate's system of record on PostgreSQL (pgx/v5): the
// embedded schema migrations, the Account API's reads and writes with their
// audit log, the compiled key reads of the data plane, and the change feed
// (trigger-fed key_changes table plus LISTEN/NOTIFY) that keeps every
// replica's cache current.
//
// Invariants live in the database, not only here: CHECK constraints refuse a
// key that breaks SPEC §1, and triggers append to the change feed for every
// writer, manual SQL included.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Options configure a Store.
type Options struct {
	// Compile is what every key is compiled (and, on writes, validated)
	// with.
	Compile authz.CompileOptions
	// Now is the clock for created/updated/audit times and rotation
	// deadlines; nil means time.Now.
	Now func() time.Time
	// Tracer, when set, is installed by Open on the pool's connections
	// (and so on Listen's, which copies the pool's settings). New leaves
	// a caller's pool as it is.
	Tracer pgx.QueryTracer
	// Logger receives Listen's connection errors and, at warning level,
	// each response header a stored key loses at load; nil discards.
	Logger *slog.Logger
	// Headers, when set, counts the response headers dropped from stored
	// keys at load (metrics.Metrics implements it).
	Headers HeaderObserver
	// Limits are the per-account quotas of accounts without an override
	// (keygate accounts limits); zero fields are store.DefaultLimits'.
	Limits store.Limits
}

// HeaderObserver counts response headers that stored keys lose at load
// because they break SPEC §9's rules (authz.CompileStored): n for one key
// record, each time a record is compiled, never per request.
type HeaderObserver interface {
	ObserveDroppedResponseHeaders(n int)
}

// Store implements store.Accounts, store.Source and store.UsageWriter.
// It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	opts Options
	now  func() time.Time
	log  *slog.Logger

	listenHealthEvery time.Duration // 0: listenHealthEvery; tests shorten it

	// scopes and roles share compiled scopes and role records between
	// every key this store compiles for the data plane, for the store's
	// life (held weakly: what no key holds leaves them).
	scopes authz.ScopeCache
	roles  roleRecords

	// usageParts are the usage_hourly partitions (by month start, Unix
	// seconds) known to exist, so that AddUsage creates each once.
	usageParts sync.Map
}

var (
	_ store.Accounts    = (*Store)(nil)
	_ store.Source      = (*Store)(nil)
	_ store.UsageWriter = (*Store)(nil)
	_ store.UsageCounts = (*Store)(nil)
	_ store.UsageReader = (*Store)(nil)
	_ authz.KeyStore    = (*Store)(nil)
)

// New returns a store on pool, whose schema Migrate has brought up to date.
// The pool stays the caller's to close.
func New(_ context.Context, pool *pgxpool.Pool, opts Options) *Store {
	s := &Store{pool: pool, opts: opts, now: opts.Now, log: opts.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Open connects a pool to url (installing opts.Tracer), checks that the
// server answers, and returns a store on it. Close the pool when done.
// It does not migrate: call Migrate first when the binary should.
func Open(ctx context.Context, url string, opts Options) (*Store, *pgxpool.Pool, error) {
	st, pool, err := OpenLazy(ctx, url, opts)
	if err != nil {
		return nil, nil, err
	}
	if err := Ping(ctx, pool); err != nil {
		pool.Close()
		return nil, nil, err
	}
	return st, pool, nil
}

// OpenLazy is Open without the check that the server answers: the pool
// connects on first use. serve uses it so that a database down at start
// is waited for (unready, retrying) rather than fatal. Only a URL that
// cannot be parsed is an error.
func OpenLazy(ctx context.Context, url string, opts Options) (*Store, *pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: %w", errParseURL)
	}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = opts.Tracer
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return New(ctx, pool, opts), pool, nil
}

// Ping checks that the server behind pool answers, naming it (without its
// password) when it does not.
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: connect to %s: %w", describe(pool.Config().ConnConfig), err)
	}
	return nil
}

// Pool is the pool the store runs on.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// describe names a server without its password, for errors.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// errParseURL stands in for pgx's parse errors, which may quote the
// connection string, password included, in their text or wrapped errors.
var errParseURL = errors.New("cannot parse the database URL (not shown: it may hold a password)")
