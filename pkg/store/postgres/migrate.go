package postgres

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the session advisory lock Migrate holds, so that replicas
// starting at once apply each migration exactly once, one after the other.
const migrationLock int64 = 7739274784134029684 // "kgmigrat"

// migration is one embedded file, NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
	sum     string // hex SHA-256 of sql
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

var loadMigrations = sync.OnceValues(func() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		data, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(data)
		ms = append(ms, migration{version: v, name: m[2], sql: string(data), sum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("two migrations with version %04d", ms[i].version)
		}
	}
	return ms, nil
})

// MigrationsDigest is a hex SHA-256 over the embedded migrations' versions
// and contents: it changes whenever a migration does (test templates are
// named by it).
func MigrationsDigest() string {
	ms, err := loadMigrations()
	if err != nil {
		return "invalid"
	}
	h := sha256.New()
	for _, m := range ms {
		fmt.Fprintf(h, "%04d %s %s\n", m.version, m.name, m.sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Migrate applies the embedded migrations that the database behind pool
// has not had yet, in order, each in its own transaction, on a dedicated
// connection holding an advisory lock (concurrent callers wait for each
// other). Applied versions are recorded in schema_migrations. It is safe
// to call on every start.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return migrate(ctx, pool.Config().ConnConfig.Copy(), 0)
}

// MigrateURL is Migrate on a database given by URL.
func MigrateURL(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", errParseURL)
	}
	return migrate(ctx, cfg, 0)
}

// migrate applies the migrations up to version upTo (0: all of them).
func migrate(ctx context.Context, cfg *pgx.ConnConfig, upTo int) (err error) {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if upTo > 0 {
		ms = slices.DeleteFunc(slices.Clone(ms), func(m migration) bool { return m.version > upTo })
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "keygate-migrate"
	// A connection of its own: closing it releases the session lock on
	// every path, even when ctx is cancelled mid-way.
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: migrate: connect to %s: %w", describe(cfg), err)
	}
	defer func() {
		if cerr := conn.Close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
			err = fmt.Errorf("postgres: migrate: %w", cerr)
		}
	}()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("postgres: migrate: take the migration lock: %w", err)
	}
	// Created under the lock: concurrent CREATE TABLE IF NOT EXISTS races.
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     NOT NULL PRIMARY KEY,
		name       text        NOT NULL,
		checksum   text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: migrate: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		if err := applyMigration(ctx, conn, m); err != nil {
			return fmt.Errorf("postgres: migration %04d_%s: %w", m.version, m.name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m migration) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var applied bool
		err := tx.QueryRow(ctx, "SELECT true FROM schema_migrations WHERE version = $1", m.version).Scan(&applied)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
			m.version, m.name, m.sum)
		return err
	})
}

// ErrNoSchema is CheckSchema's answer for a database without keygate's
// schema, or with an older one than this binary needs.
var ErrNoSchema = errors.New("the database has no keygate schema (or an older one): run keygate migrate (or serve --migrate)")

// CheckSchema reports ErrNoSchema, with the versions, unless the database
// behind pool has every embedded migration applied. Without it a replica
// would fail on the first missing relation ("key_changes does not exist"),
// which does not say what to do. A newer schema is fine: during a rolling
// upgrade older replicas run against the migrated database.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	want := ms[len(ms)-1].version
	have, err := schemaVersion(ctx, pool)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: check the schema version: %w", err)
	case have == 0:
		return fmt.Errorf("%w; no migration applied", ErrNoSchema)
	case have < want:
		return fmt.Errorf("%w; schema version %d, this keygate needs %d", ErrNoSchema, have, want)
	}
	return nil
}

// schemaVersion is the newest migration applied, 0 for none. Two queries:
// a relation named in the one that reads it must exist when the query is
// parsed, whatever CASE around it says.
func schemaVersion(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var version int
	err := pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&version)
	return version, err
}
