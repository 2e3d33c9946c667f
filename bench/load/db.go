package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

const dbPrefix = "keygate_bench_"

// pg is the harness's connection to the server's maintenance database
// (the one DATABASE_URL names): it creates and drops the benchmark
// databases and reads pg_stat_database. It never connects to keygate's
// database, so that its own statements are not counted as keygate's.
type pg struct {
	url  string
	conn *pgx.Conn
}

func connectPG(ctx context.Context, url string) (*pg, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url cannot be parsed (not shown: it may hold a password): %w", err)
	}
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL is not reachable at %s@%s:%d/%s (set DATABASE_URL): %w",
			cfg.User, cfg.Host, cfg.Port, cfg.Database, err)
	}
	p := &pg{url: url, conn: conn}
	p.dropStale(ctx)
	return p, nil
}

func (p *pg) close() { _ = p.conn.Close(context.Background()) }

// database is one benchmark database.
type database struct {
	name, url string
}

// create makes an empty database and applies keygate's migrations with
// `keygate migrate`.
func (p *pg) create(ctx context.Context, keygateBin string) (*database, error) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := fmt.Sprintf("%s%d_%s", dbPrefix, time.Now().Unix(), hex.EncodeToString(b))
	if _, err := p.conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	db := &database{name: name, url: pgtest.WithDatabase(p.url, name)}
	cmd := exec.CommandContext(ctx, keygateBin, "migrate", "--database-url", db.url)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		p.drop(db)
		return nil, fmt.Errorf("keygate migrate: %v\n%s", err, out)
	}
	return db, nil
}

// seed bulk-loads n keys into account with pgtest.SeedKeys, and with
// features the roles, denials and quotas of pgtest.SeedFeatures.
func (p *pg) seed(ctx context.Context, db *database, account string, n int, features bool) (time.Duration, error) {
	pool, err := pgxpool.New(ctx, db.url)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	start := time.Now()
	if err := pgtest.SeedKeys(ctx, pool, account, n); err != nil {
		return 0, err
	}
	if features {
		if err := pgtest.SeedFeatures(ctx, pool, account); err != nil {
			return 0, err
		}
	}
	// Fresh statistics, as a database that has been running would have.
	if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// drop removes the database, ending its connections.
func (p *pg) drop(db *database) {
	if db == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = p.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db.name}.Sanitize()+" WITH (FORCE)")
}

// xactCommit is pg_stat_database.xact_commit of the database: the
// transactions committed in it, which for keygate is one per statement
// (every query runs in its own implicit transaction). The cumulative
// statistics of a backend reach pg_stat_database when it goes idle, at
// most once a second, and otherwise within 10 s (PGSTAT_IDLE_INTERVAL).
func (p *pg) xactCommit(ctx context.Context, db *database) (int64, error) {
	// A fresh snapshot: outside a transaction each statement sees the
	// current statistics.
	var n int64
	err := p.conn.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", db.name).Scan(&n)
	return n, err
}

// statsSettle is how long after the last statement pg_stat_database is
// known to include it (PGSTAT_IDLE_INTERVAL is 10 s in PostgreSQL 15).
const statsSettle = 11 * time.Second

func (p *pg) serverVersion(ctx context.Context) string {
	var v string
	_ = p.conn.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v
}

// dropStale removes benchmark databases left by runs that were killed
// (older than a day, so that a run in parallel is never disturbed).
func (p *pg) dropStale(ctx context.Context) {
	pgtest.DropStale(ctx, p.conn, dbPrefix, 24*time.Hour)
}
