package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/apikey"
)

// longRun reports whether the long variants run (KEYGATE_LONG=1, make soak).
func longRun() bool { return os.Getenv("KEYGATE_LONG") == "1" }

// loadTarget is one kind of request a load loop sends, round robin.
type loadTarget struct {
	kind string
	req  *authv3.CheckRequest
}

// loadResult is one answered (or failed) Check of a load loop.
type loadResult struct {
	kind       string
	start, end time.Time
	status     int    // 200 on allow, the deny status, 0 for a gRPC error
	reason     string // deny reason code
	err        error  // gRPC error
}

func (r loadResult) outcome() string {
	switch {
	case r.err != nil:
		return "error:" + status.Code(r.err).String()
	case r.status == 200:
		return "allow"
	}
	return "deny:" + r.reason
}

// load is a bounded Check loop on loopback: workers spread over a few
// connections of its own, each sending the targets round robin with a
// pause between calls, until Stop or its own deadline. A call once
// started runs to its answer (or its own 5 s timeout): stopping the loop
// never cancels one.
type load struct {
	conns []*grpc.ClientConn
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	mu    sync.Mutex
	res   []loadResult
}

// startLoad starts workers sending targets to addr, stopping by itself
// after max at the latest.
func startLoad(t testing.TB, addr string, conns, workers int, pause, max time.Duration, targets []loadTarget) *load {
	t.Helper()
	l := &load{stop: make(chan struct{})}
	for range conns {
		l.conns = append(l.conns, dial(t, addr))
	}
	deadline := time.Now().Add(max)
	t.Cleanup(func() { l.Stop() })
	for w := range workers {
		client := authv3.NewAuthorizationClient(l.conns[w%conns])
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; time.Now().Before(deadline); i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				tg := targets[i%len(targets)]
				r := loadResult{kind: tg.kind, start: time.Now()}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := client.Check(ctx, tg.req)
				cancel()
				r.end = time.Now()
				r.status, r.reason, r.err = classify(resp, err)
				l.mu.Lock()
				l.res = append(l.res, r)
				l.mu.Unlock()
				if pause > 0 {
					select {
					case <-l.stop:
					case <-time.After(pause):
					}
				}
			}
		}()
	}
	return l
}

// Stop ends the loop, closes its connections and returns every result in
// order of start.
func (l *load) Stop() []loadResult {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
	l.mu.Lock()
	defer l.mu.Unlock()
	sort.Slice(l.res, func(i, j int) bool { return l.res[i].start.Before(l.res[j].start) })
	return l.res
}

// Results is a snapshot of the results so far (unsorted).
func (l *load) Results() []loadResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loadResult(nil), l.res...)
}

// classify turns a Check answer into status and reason (0 and the error
// for a gRPC error).
func classify(resp *authv3.CheckResponse, err error) (int, string, error) {
	if err != nil {
		return 0, "", err
	}
	if d := resp.GetDeniedResponse(); d != nil {
		var body struct{ Reason string }
		_ = json.Unmarshal([]byte(d.GetBody()), &body)
		return int(d.GetStatus().GetCode()), body.Reason, nil
	}
	if resp.GetOkResponse() == nil {
		return 0, "", fmt.Errorf("neither ok nor denied")
	}
	return 200, "", nil
}

// tally counts results by outcome, optionally for one kind ("" = all).
type tally struct {
	sent, allowed, denied, errors int
	by                            map[string]int
}

func tallyOf(res []loadResult, kind string) tally {
	t := tally{by: map[string]int{}}
	for _, r := range res {
		if kind != "" && r.kind != kind {
			continue
		}
		t.sent++
		switch {
		case r.err != nil:
			t.errors++
		case r.status == 200:
			t.allowed++
		default:
			t.denied++
		}
		t.by[r.outcome()]++
	}
	return t
}

func (t tally) String() string {
	keys := make([]string, 0, len(t.by))
	for k := range t.by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, t.by[k])
	}
	return fmt.Sprintf("sent %d, allowed %d, denied %d, errors %d (%s)", t.sent, t.allowed, t.denied, t.errors, strings.Join(parts, " "))
}

// firstDeny is the end of the first denied answer for kind that started
// at or after from; ok false when there is none.
func firstDeny(res []loadResult, kind string, from time.Time) (time.Time, bool) {
	var first time.Time
	for _, r := range res {
		if r.kind == kind && r.err == nil && r.status != 200 && !r.start.Before(from) {
			if first.IsZero() || r.end.Before(first) {
				first = r.end
			}
		}
	}
	return first, !first.IsZero()
}

// allowsAfter counts the allowed answers for kind to calls started after t.
func allowsAfter(res []loadResult, kind string, t time.Time) int {
	n := 0
	for _, r := range res {
		if r.kind == kind && r.status == 200 && r.start.After(t) {
			n++
		}
	}
	return n
}

// assertCleanLogs fails on a panic, a fatal runtime error or a race report
// in keygate's logs.
func assertCleanLogs(t testing.TB, s *server) {
	t.Helper()
	logs := s.Logs()
	for _, bad := range []string{"panic", "WARNING: DATA RACE", "fatal error:", "goroutine leak"} {
		if strings.Contains(logs, bad) {
			i := strings.Index(logs, bad)
			t.Errorf("keygate's logs contain %q:\n%s", bad, logs[max(0, i-2000):min(len(logs), i+4000)])
		}
	}
}

var storeQueryLine = regexp.MustCompile(`(?m)^keygate_store_query_duration_seconds_count\{[^}]*\} ([0-9.e+]+)`)

// storeQueries is the number of statements keygate sent to PostgreSQL, from
// its keygate_store_query_duration_seconds histogram; ok false when the
// metric is not there.
func storeQueries(t testing.TB, s *server) (n float64, ok bool) {
	t.Helper()
	_, body := httpGet(t, "http://"+s.adminAddr+"/metrics")
	for _, m := range storeQueryLine.FindAllStringSubmatch(body, -1) {
		f, _ := strconv.ParseFloat(m[1], 64)
		n += f
		ok = true
	}
	return n, ok
}

// xactCommit is pg_stat_database.xact_commit of database, read on conn
// (a fresh snapshot each time). PostgreSQL flushes backend statistics
// about once a second, so callers wait before they read.
func xactCommit(t testing.TB, conn *pgx.Conn, database string) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := conn.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// backends counts the connections to database other than the test's own
// (application_name keygate-test) and conn's: all of them, and the
// change-feed listener's.
func backends(t testing.TB, conn *pgx.Conn, database string) (all, listen int) {
	t.Helper()
	err := conn.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE application_name = 'keygate-listen')
		FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name <> 'keygate-test'`,
		database).Scan(&all, &listen)
	if err != nil {
		t.Fatal(err)
	}
	return all, listen
}

// metricValue sums the samples of a metric on keygate's /metrics (0 when
// it is absent).
func metricValue(t testing.TB, s *server, name string) float64 {
	t.Helper()
	_, body := httpGet(t, "http://"+s.adminAddr+"/metrics")
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			f, _ := strconv.ParseFloat(rest[i+1:], 64)
			sum += f
		}
	}
	return sum
}

// quickKey is newKey without the CLI (each run of the race-detector binary
// costs a second at exit): a generated secret of typ and its hash form.
func quickKey(t testing.TB, typ string) (secret, hash string) {
	t.Helper()
	kind := map[string]apikey.Kind{"service": apikey.KindService, "app": apikey.KindApp, "account": apikey.KindAccount}[typ]
	secret, err := apikey.Generate(kind)
	if err != nil {
		t.Fatal(err)
	}
	return secret, apikey.NewHasher(nil).HashString(secret)
}
