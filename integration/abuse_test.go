package integration

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// TestKeySpraying sends 100,000 unique, well-formed, unknown keys through
// ext_authz Check from several concurrent clients: generated ones with
// valid checksums (every type) and custom-shaped ones. Every one must be
// unknown_key; the statements keygate sends to PostgreSQL meanwhile must
// stay under 1% of the requests (SPEC §6: the digest set refuses them
// without a query), and keygate's memory must stay bounded.
// KEYGATE_LONG=1 sends 1,000,000.
func TestKeySpraying(t *testing.T) {
	n := 100_000
	if longRun() {
		n = 1_000_000
	}
	env := newDBEnv(t)
	// A measurement: the binary without the race detector, which
	// multiplies time and memory (keygate's races are the other tests').
	srv := startServeBinary(t, buildKeygate(t, false), []string{"authz", "admin", "account"},
		"--database-url", env.url, "--routes-file", env.routesFile, "--pprof")
	waitReady(t, srv)
	secrets := seed(t, env.client(t, srv))
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", secrets["svc"], nil), 200, 10*time.Second)

	// Statistics are read from another database, so that reading them
	// does not count.
	stats, err := pgx.Connect(context.Background(), pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close(context.Background())
	conn, err := pgx.Connect(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	dbName := conn.Config().Database
	conn.Close(context.Background())

	time.Sleep(1500 * time.Millisecond) // PostgreSQL flushes statistics about every second
	q0, haveMetric := storeQueries(t, srv)
	x0 := xactCommit(t, stats, dbName)
	rss0, heap0 := memoryAfterGC(t, srv)

	const workers, conns = 8, 4
	var (
		next     atomic.Int64
		outcomes sync.Map // outcome → *atomic.Int64
		wg       sync.WaitGroup
	)
	count := func(o string) {
		v, _ := outcomes.LoadOrStore(o, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	kinds := []apikey.Kind{apikey.KindService, apikey.KindApp, apikey.KindAccount}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for c := range conns {
		client := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
		for range workers / conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
				for ctx.Err() == nil {
					i := next.Add(1) - 1
					if i >= int64(n) {
						return
					}
					var key string
					if i%2 == 0 {
						key, _ = apikey.Generate(kinds[i%3])
					} else {
						key = customShaped(rng, i)
					}
					resp, err := client.Check(ctx, sprayReq(key))
					st, reason, err := classify(resp, err)
					switch {
					case err != nil:
						count("error")
					case st == 200:
						count("allow")
					default:
						count("deny:" + reason)
					}
				}
			}()
		}
	}
	wg.Wait()
	took := time.Since(start)

	time.Sleep(1500 * time.Millisecond)
	q1, _ := storeQueries(t, srv)
	x1 := xactCommit(t, stats, dbName)
	rss1, heap1 := memoryAfterGC(t, srv)

	got := map[string]int64{}
	outcomes.Range(func(k, v any) bool { got[k.(string)] = v.(*atomic.Int64).Load(); return true })
	if got["deny:unknown_key"] != int64(n) {
		t.Errorf("outcomes %v, want %d unknown_key", got, n)
	}
	queries, xacts := q1-q0, float64(x1-x0)
	t.Logf("%d sprayed keys in %v (%.0f/s): outcomes %v; store statements %v (metric present: %v, %.4f%% of requests), "+
		"committed transactions %v (%.4f%%); RSS %d → %d MiB, heap in use %d → %d MiB",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), got, queries, haveMetric, 100*queries/float64(n),
		xacts, 100*xacts/float64(n), rss0>>20, rss1>>20, heap0>>20, heap1>>20)
	if haveMetric && queries > float64(n)/100 {
		t.Errorf("keygate sent %v statements to PostgreSQL for %d unknown keys (over 1%%)", queries, n)
	}
	if xacts > float64(n)/100 {
		t.Errorf("keygate's database committed %v transactions during %d unknown keys (over 1%%)", xacts, n)
	}
	const bound = 64 << 20
	if heap1-heap0 > bound || rss1-rss0 > bound {
		t.Errorf("memory grew by more than 64 MiB: RSS %d → %d MiB, heap %d → %d MiB", rss0>>20, rss1>>20, heap0>>20, heap1>>20)
	}
	// Still serving the real keys.
	if got, _ := call(t, authz, checkReq("GET", "/email/inbox", secrets["svc"], nil)); got.status != 200 {
		t.Errorf("a real key after the spray: %+v", got)
	}
	assertCleanLogs(t, srv)
}

// customShaped is a unique custom-secret-shaped key: 16–80 printable ASCII
// bytes without commas or spaces, not starting with kg_.
func customShaped(rng *rand.Rand, i int64) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'()*+-./:;<=>?@[]^_`{|}~\"\\"
	var b strings.Builder
	b.WriteString("spray-")
	for v := i; ; v /= 62 { // the index makes it unique
		b.WriteByte(chars[v%62])
		if v < 62 {
			break
		}
	}
	b.WriteByte('-')
	for l := 8 + rng.IntN(64); l > 0; l-- {
		b.WriteByte(chars[rng.IntN(len(chars))])
	}
	return b.String()
}

// memoryAfterGC is memoryOf after a garbage collection in keygate (the
// heap profile with gc=1 runs one; serve needs --pprof), so that the heap
// figure is what is live rather than what the next GC would free.
func memoryAfterGC(t testing.TB, s *server) (rss, heap int64) {
	t.Helper()
	if code, _ := httpGet(t, "http://"+s.adminAddr+"/debug/pprof/heap?gc=1"); code != 200 {
		t.Fatalf("/debug/pprof/heap: %d (serve needs --pprof)", code)
	}
	return memoryOf(t, s)
}

// sprayReq is the smallest CheckRequest that carries a key: the spray's
// client runs under the race detector too, and request size is its cost.
func sprayReq(key string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/email/inbox", Headers: map[string]string{"x-api-key": key}},
	}}}
}
