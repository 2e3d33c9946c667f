// Package pgtest gives each test its own migrated PostgreSQL database.
//
// The server is the one DATABASE_URL names (default DefaultURL). Once per
// schema version a template database is migrated (named after
// postgres.MigrationsDigest and the time it was built, under an advisory
// lock so that test binaries running in parallel build it once; a template
// of another schema version is dropped only when a day old, so that runs
// of two checkouts on one server do not pull each other's template away);
// each test then gets
// `CREATE DATABASE … TEMPLATE …`, dropped in t.Cleanup. Without a reachable
// server the test fails, saying how to get one: nothing here skips.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store/postgres"
)

// DefaultURL is the server tests use when DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

const (
	templatePrefix = "keygate_tmpl_"
	testPrefix     = "keygate_test_"
	// templateLock serialises template builds across test binaries.
	templateLock int64 = 118092079132780 // "kgtmpl"
	// staleAfter: test databases older than this were left by a killed
	// run (a panic or timeout skips t.Cleanup) and are dropped.
	staleAfter = 24 * time.Hour
)

// URL is the server's URL: DATABASE_URL, or DefaultURL.
func URL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

var tmpl struct {
	sync.Mutex
	done bool
	name string
	err  error
}

// Template returns the name of the migrated template database, building it
// the first time (per schema version and server). Its connections are
// disabled, so that CREATE DATABASE … TEMPLATE never finds it busy.
func Template(t testing.TB) string {
	t.Helper()
	return template(t, "")
}

// template is Template, building the template again when the caller found
// the one named gone (dropped by a run of another checkout under older
// rules, or by hand).
func template(t testing.TB, gone string) string {
	t.Helper()
	tmpl.Lock()
	defer tmpl.Unlock()
	if gone != "" && tmpl.done && tmpl.name == gone {
		tmpl.done = false
	}
	if !tmpl.done {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		tmpl.name, tmpl.err = buildTemplate(ctx)
		cancel()
		tmpl.done = true
	}
	if tmpl.err != nil {
		t.Fatal(tmpl.err)
	}
	return tmpl.name
}

// NewDatabase creates a fresh database from the template and returns its
// URL; the database is dropped (its connections ended) when the test ends.
func NewDatabase(t testing.TB) (url string) {
	t.Helper()
	name := Template(t)
	url, err := createDatabase(t, name)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name: the template is gone
		url, err = createDatabase(t, template(t, name))
	}
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// NewEmptyDatabase creates a database without keygate's schema (for
// migration tests) and returns its URL; dropped when the test ends.
func NewEmptyDatabase(t testing.TB) (url string) {
	t.Helper()
	url, err := createDatabase(t, "template0")
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// NewPool is NewDatabase plus a pool on it, closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Pool(t, NewDatabase(t))
}

// Pool is a pool on the database at url, closed when the test ends.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// createDatabase creates a database from template, dropped when the test
// ends, and returns its URL.
func createDatabase(t testing.TB, template string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := fmt.Sprintf("%s%d_%s", testPrefix, time.Now().Unix(), randomHex(6))
	admin, err := connectAdmin(ctx)
	if err != nil {
		return "", err
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(template)); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := connectAdmin(ctx)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return WithDatabase(URL(), name), nil
}

func buildTemplate(ctx context.Context) (string, error) {
	version := templatePrefix + postgres.MigrationsDigest()[:16] + "_"
	admin, err := connectAdmin(ctx)
	if err != nil {
		return "", err
	}
	defer admin.Close(context.Background())
	// Session lock: released when admin closes, on every path.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLock); err != nil {
		return "", fmt.Errorf("pgtest: template lock: %w", err)
	}
	dropStale(ctx, admin, version)
	for _, n := range databasesLike(ctx, admin, version) {
		if !strings.HasSuffix(n, "_build") {
			return n, nil
		}
	}
	name := fmt.Sprintf("%s%d", version, time.Now().Unix())
	// Built under another name and renamed when complete, so that a run
	// killed half-way never leaves a half-migrated template behind.
	build := version + "build"
	for _, sql := range []string{
		"DROP DATABASE IF EXISTS " + ident(build) + " WITH (FORCE)",
		"CREATE DATABASE " + ident(build) + " TEMPLATE template0",
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			return "", fmt.Errorf("pgtest: build template: %w", err)
		}
	}
	if err := postgres.MigrateURL(ctx, WithDatabase(URL(), build)); err != nil {
		return "", fmt.Errorf("pgtest: migrate template: %w", err)
	}
	for _, sql := range []string{
		"ALTER DATABASE " + ident(build) + " RENAME TO " + ident(name),
		"ALTER DATABASE " + ident(name) + " WITH ALLOW_CONNECTIONS false",
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			return "", fmt.Errorf("pgtest: build template: %w", err)
		}
	}
	return name, nil
}

// dropStale drops, best effort, templates of other schema versions built
// more than staleAfter ago (a younger one may be in use by a run of another
// checkout) and test databases left behind by killed runs.
func dropStale(ctx context.Context, admin *pgx.Conn, version string) {
	for _, n := range databasesLike(ctx, admin, templatePrefix) {
		if strings.HasPrefix(n, version) {
			continue
		}
		if !templateStale(strings.TrimPrefix(n, templatePrefix), time.Now()) {
			continue
		}
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(n)+" WITH (FORCE)")
	}
	DropStale(ctx, admin, testPrefix, staleAfter)
}

// templateStale tells whether a template named <digest>_<Unix seconds>
// (without the prefix) was built more than staleAfter before now. A name
// without a readable time (a template of the earlier naming, or a build
// left half-way) is stale.
func templateStale(rest string, now time.Time) bool {
	_, sec, ok := strings.Cut(rest, "_")
	built, err := strconv.ParseInt(sec, 10, 64)
	return !ok || err != nil || now.Sub(time.Unix(built, 0)) > staleAfter
}

// DropStale drops, best effort, the databases named prefix<Unix seconds>_…
// that were created more than age ago: those of runs that were killed
// (a run in progress is younger). Other names with the prefix stay.
func DropStale(ctx context.Context, admin *pgx.Conn, prefix string, age time.Duration) {
	for _, n := range databasesLike(ctx, admin, prefix) {
		sec, _, ok := strings.Cut(strings.TrimPrefix(n, prefix), "_")
		t, err := strconv.ParseInt(sec, 10, 64)
		if !ok || err != nil || time.Since(time.Unix(t, 0)) <= age {
			continue
		}
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(n)+" WITH (FORCE)")
	}
}

// databasesLike lists the databases whose names start with prefix.
func databasesLike(ctx context.Context, admin *pgx.Conn, prefix string) []string {
	pattern := strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`).Replace(prefix) + "%"
	rows, err := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, pattern)
	if err != nil {
		return nil
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	return names
}

func connectAdmin(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(URL())
	if err != nil {
		return nil, fmt.Errorf("pgtest: DATABASE_URL cannot be parsed (not shown: it may hold a password). %s", howTo)
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 5 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgtest: PostgreSQL is not reachable at %s@%s:%d/%s: %v\n%s",
			cfg.User, cfg.Host, cfg.Port, cfg.Database, err, howTo)
	}
	return conn, nil
}

const howTo = `These tests need a real PostgreSQL (15 or later) and fail without one. ` +
	`Set DATABASE_URL to a server where the user may create databases ` +
	`(e.g. DATABASE_URL=postgres://user:pass@host:5432/postgres?sslmode=disable), ` +
	`or start PostgreSQL on 127.0.0.1:5432 with user postgres (trust auth) and a database named test.`

// WithDatabase returns the connection string u with its database replaced.
// It understands URLs (postgres://…) and keyword/value strings.
func WithDatabase(u, database string) string {
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		if p, err := url.Parse(u); err == nil {
			p.Path = "/" + database
			p.RawPath = ""
			return p.String()
		}
	}
	return u + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(database) + "'"
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
