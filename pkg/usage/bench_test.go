package usage_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
	"github.com/keygate/keygate/pkg/usage"
)

// BenchmarkQuotaFlushSync100k is the load test's quota work on one
// replica: 300,000 keys with a daily quota, 100,000 of them service keys
// under a tenant with a monthly one, each of those used once per interval.
// flush is one flush of their counts; sync the quota sync after it.
func BenchmarkQuotaFlushSync100k(b *testing.B) {
	ctx := b.Context()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := pgtest.SeedKeys(ctx, pool, "acct", 300_000); err != nil {
		b.Fatal(err)
	}
	if err := pgtest.SeedFeatures(ctx, pool, "acct"); err != nil {
		b.Fatal(err)
	}
	// Every key with a daily quota, as in the load test: 300,000 subjects.
	if _, err := pool.Exec(ctx, `UPDATE keys SET quota = '1000000000000/day' WHERE account_id = 'acct' AND quota IS NULL`); err != nil {
		b.Fatal(err)
	}
	st := postgres.New(ctx, pool, postgres.Options{})
	var keys []*authz.Key
	if _, err := st.LoadAll(ctx, func(k *authz.Key) error {
		if k.Spec.Type == authz.KeyTypeService {
			keys = append(keys, k)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	quotas, counter := authz.NewQuotas(), authz.NewUsageCounter(0)
	agg := usage.New(counter, st, usage.Options{Quotas: quotas, Now: clock})
	if err := agg.SyncQuotas(ctx); err != nil {
		b.Fatal(err)
	}
	count := func() {
		for _, k := range keys {
			if ok, _ := quotas.Admit(k, now); ok {
				counter.Count(k, &read, authz.OK, now)
			}
		}
	}
	// The first flush begins the totals.
	count()
	if err := agg.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if err := agg.SyncQuotas(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("flush", func(b *testing.B) { measureStep(b, count, func() error { return agg.Flush(ctx) }) })
	// flush-stall: what the flush makes requests beside it wait on a
	// replica with one CPU.
	b.Run("flush-stall", func(b *testing.B) { measureStall(b, count, func() error { return agg.Flush(ctx) }) })
	b.Run("sync", func(b *testing.B) {
		measureStep(b, func() {
			count()
			if err := agg.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}, func() error { return agg.SyncQuotas(ctx) })
	})
}

// measureStep times step alone, with its CPU (cpuMeter), after prepare
// each time, outside the timer.
func measureStep(b *testing.B, prepare func(), step func() error) {
	var cpu cpuMeter
	for b.Loop() {
		b.StopTimer()
		prepare()
		cpu.start()
		b.StartTimer()
		if err := step(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu.stop()
		b.StartTimer()
	}
	cpu.report(b)
}

// cpuMeter sums the CPU time of this process and, with KEYGATE_BENCH_PG_PID
// set to a postmaster's pid, of its children (the PostgreSQL backends),
// over the measured sections.
type cpuMeter struct {
	n                 int
	self, pg, s0, pg0 time.Duration
}

func (m *cpuMeter) start() { m.s0, m.pg0 = selfCPU(), pgCPU() }

func (m *cpuMeter) stop() {
	m.n++
	m.self += selfCPU() - m.s0
	m.pg += pgCPU() - m.pg0
}

func (m *cpuMeter) report(b *testing.B) {
	if m.n == 0 {
		return
	}
	b.ReportMetric(float64(m.self.Milliseconds())/float64(m.n), "keygate-cpu-ms/op")
	if os.Getenv("KEYGATE_BENCH_PG_PID") != "" {
		b.ReportMetric(float64(m.pg.Milliseconds())/float64(m.n), "pg-cpu-ms/op")
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pgCPU is the CPU time of the postmaster's children, from /proc (Linux:
// clock ticks of 10 ms).
func pgCPU() time.Duration {
	parent := os.Getenv("KEYGATE_BENCH_PG_PID")
	if parent == "" {
		return 0
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: state ppid ...
		// utime (14th field overall) stime (15th).
		i := strings.LastIndexByte(string(data), ')')
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 || f[1] != parent {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
