package integration

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// TestWarmLoadScale loads KEYGATE_SCALE_KEYS keys (default 1,000,000) into
// PostgreSQL and reports how long keygate takes to become ready and how
// much memory each key costs it; KEYGATE_SCALE_ARGS adds serve flags (e.g.
// a --cache-max-bytes that holds every record); KEYGATE_SCALE_VACUUM=1
// vacuums the keys table after the seed, as autovacuum does to a table
// that took many inserts, so that the load reads a database that has been
// running rather than rows copied in a moment before (whose first reader
// PostgreSQL makes check and mark every row's commit). Long: runs only
// with KEYGATE_LONG=1 (make soak).
func TestWarmLoadScale(t *testing.T) {
	if os.Getenv("KEYGATE_LONG") != "1" {
		t.Skip("long test: set KEYGATE_LONG=1 (make soak)")
	}
	n := envInt(t, "KEYGATE_SCALE_KEYS", 1_000_000)
	routes := t.TempDir() + "/routes.yaml"
	writeFile(t, routes, routesYAML)

	empty := pgtest.NewDatabase(t)
	plain := buildKeygate(t, false)
	base := startServeBinary(t, plain, []string{"authz", "admin"}, "--database-url", empty, "--routes-file", routes, "--log-level", "info")
	waitReady(t, base)
	baseRSS, baseHeap := memoryOf(t, base)

	url := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	seedStart := time.Now()
	if err := pgtest.SeedKeys(context.Background(), pool, "scale", n); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d keys in %v", n, time.Since(seedStart).Round(time.Millisecond))
	if os.Getenv("KEYGATE_SCALE_VACUUM") == "1" {
		vacuumStart := time.Now()
		if _, err := pool.Exec(context.Background(), "VACUUM (ANALYZE) keys"); err != nil {
			t.Fatal(err)
		}
		t.Logf("vacuumed the keys table in %v", time.Since(vacuumStart).Round(time.Millisecond))
	}
	pool.Close()

	start := time.Now()
	args := append([]string{"--database-url", url, "--routes-file", routes, "--log-level", "info"},
		strings.Fields(os.Getenv("KEYGATE_SCALE_ARGS"))...)
	srv := startServeBinary(t, plain, []string{"authz", "admin"}, args...)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		code, _ := httpGet(t, "http://"+srv.adminAddr+"/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 5 minutes\n%s", srv.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ready := time.Since(start)
	rss, heap := memoryOf(t, srv)
	t.Logf("%d keys: ready %v after start (%s); RSS %d MiB (%.0f B/key over an empty server), heap in use %d MiB (%.0f B/key)",
		n, ready.Round(time.Millisecond), warmLine(srv.Logs()),
		rss>>20, float64(rss-baseRSS)/float64(n), heap>>20, float64(heap-baseHeap)/float64(n))

	c := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	if got, _ := call(t, c, checkReq("GET", "/email/inbox", pgtest.SeedSecret("scale", 3), nil)); got.status != 200 {
		t.Fatalf("a seeded service key: %+v", got)
	}
}

var (
	rssLine  = regexp.MustCompile(`(?m)^process_resident_memory_bytes ([0-9.e+]+)`)
	heapLine = regexp.MustCompile(`(?m)^go_memstats_heap_inuse_bytes ([0-9.e+]+)`)
)

// memoryOf reads keygate's resident memory and heap in use from /metrics.
func memoryOf(t testing.TB, s *server) (rss, heap int64) {
	t.Helper()
	_, body := httpGet(t, "http://"+s.adminAddr+"/metrics")
	num := func(re *regexp.Regexp) int64 {
		m := re.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics lacks %s", re)
		}
		f, _ := strconv.ParseFloat(m[1], 64)
		return int64(f)
	}
	return num(rssLine), num(heapLine)
}

// warmLine is the cache's own account of the warm load, from the logs.
func warmLine(logs string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "key cache warm") {
			return l
		}
	}
	return "no warm line"
}
