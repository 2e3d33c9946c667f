package postgres_test

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

func runtimeGoroutines() int { return runtime.NumGoroutine() }

func pgxpoolConfig(url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

type countingTracer struct{ n atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func TestOpenInstallsTracer(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	tr := &countingTracer{}
	s, pool, err := postgres.Open(t.Context(), url, postgres.Options{Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := s.GetAccount(t.Context(), "none"); err == nil {
		t.Fatal("found a missing account")
	}
	if tr.n.Load() == 0 {
		t.Fatal("the tracer saw no query")
	}
	if _, _, err := postgres.Open(t.Context(), "postgres://u:hunter2@[bad", postgres.Options{}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad URL: %v", err)
	}
}
