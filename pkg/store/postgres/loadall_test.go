package postgres_test

import (
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// TestLoadAllMany seeds keys with COPY and loads them all back, keeping
// every compiled key as a cache would, and reports load time and retained
// heap per key. It loads 20,000 keys; KEYGATE_LONG=1 makes it 1,000,000
// (KEYGATE_LOAD_KEYS=n picks any n). KEYGATE_HEAP_PROFILE=file writes a
// heap profile while the keys are held.
func TestLoadAllMany(t *testing.T) {
	t.Parallel()
	n := 20_000
	if os.Getenv("KEYGATE_LONG") == "1" {
		n = 1_000_000
	}
	if v := os.Getenv("KEYGATE_LOAD_KEYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("KEYGATE_LOAD_KEYS: %v", err)
		}
	}
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	start := time.Now()
	if err := pgtest.SeedKeys(ctx, pool, "acct", n); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d keys with COPY in %v", n, time.Since(start).Round(time.Millisecond))
	s := postgres.New(ctx, pool, postgres.Options{Compile: reserved})

	keys := make([]*authz.Key, 0, n) // what a cache keeps; sized up front so that growth is not counted
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start = time.Now()
	seq, err := s.LoadAll(ctx, func(k *authz.Key) error {
		keys = append(keys, k)
		return nil
	})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(keys) != n || seq == 0 {
		t.Fatalf("loaded %d keys at seq %d, want %d", len(keys), seq, n)
	}
	if p := os.Getenv("KEYGATE_HEAP_PROFILE"); p != "" {
		// What the loaded keys hold, while they are alive:
		// go tool pprof -sample_index=inuse_space <test binary> <p>
		writeHeapProfile(t, p)
	}
	retained := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("LoadAll: %d keys in %v (%.1f µs/key); retained heap %.0f bytes/key; allocated %.0f bytes/key during the load",
		n, took.Round(time.Millisecond), float64(took.Microseconds())/float64(n),
		float64(retained)/float64(n), float64(after.TotalAlloc-before.TotalAlloc)/float64(n))
	runtime.KeepAlive(keys)
}

// BenchmarkLoadAll loads 100,000 seeded keys (KEYGATE_BENCH_KEYS=n for
// another count) per iteration, dropping each key after the callback.
func BenchmarkLoadAll(b *testing.B) {
	n := 100_000
	if v := os.Getenv("KEYGATE_BENCH_KEYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("KEYGATE_BENCH_KEYS: %v", err)
		}
	}
	ctx := b.Context()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := pgtest.SeedKeys(ctx, pool, "acct", n); err != nil {
		b.Fatal(err)
	}
	s := postgres.New(ctx, pool, postgres.Options{Compile: reserved})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got := 0
		if _, err := s.LoadAll(ctx, func(*authz.Key) error { got++; return nil }); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("loaded %d keys, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/key")
}

// BenchmarkLookupKey measures one data-plane lookup by digest.
func BenchmarkLookupKey(b *testing.B) {
	ctx := b.Context()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := pgtest.SeedKeys(ctx, pool, "acct", 10_000); err != nil {
		b.Fatal(err)
	}
	s := postgres.New(ctx, pool, postgres.Options{Compile: reserved})
	d := digestOf(pgtest.SeedSecret("acct", 42))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.LookupKey(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
}

func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}

// TestSeedFeatures: the keys pgtest.SeedFeatures equips (what the load
// harness measures with -features) load with three roles, their tenant's
// monthly quota and a daily quota of their own; the tenant has ten
// denials, none of which covers listing the inbox; QuotaUsage lists the
// tenant and every service key.
func TestSeedFeatures(t *testing.T) {
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgtest.SeedKeys(ctx, pool, "acct", 30); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.SeedFeatures(ctx, pool, "acct"); err != nil {
		t.Fatal(err)
	}
	s := postgres.New(ctx, pool, postgres.Options{Compile: reserved})
	services := 0
	if _, err := s.LoadAll(ctx, func(k *authz.Key) error {
		if k.Spec.Type != authz.KeyTypeService {
			return nil
		}
		services++
		if len(k.Roles()) != 3 || k.Spec.TenantQuota != 1_000_000_000_000_000 || k.Spec.Quota.String() != "1000000000000/day" {
			t.Errorf("key %s: %d roles, tenant quota %d, quota %q", k.Spec.ID, len(k.Roles()), k.Spec.TenantQuota, k.Spec.Quota)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ds, _, err := s.ListDenials(ctx, "acct", store.DenialFilter{TenantID: pgtest.SeedTenantID}, store.Page{})
	if err != nil || len(ds) != 10 {
		t.Fatalf("denials %d, %v; want 10", len(ds), err)
	}
	uses, err := s.QuotaUsage(ctx, time.Now())
	if err != nil || len(uses) != services+1 {
		t.Fatalf("QuotaUsage: %d subjects, %v; want %d (the tenant and every service key)", len(uses), err, services+1)
	}
}
