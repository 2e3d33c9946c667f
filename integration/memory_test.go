package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// memoryBound is the resident memory a replica stays under with the
// default flags, whatever its keys hold (SPEC §10): the compiled-key cache
// is bounded by --cache-max-bytes (256 MiB), list answers by 4 MiB each.
// Measured with 100,000 keys of the largest shape: 295 MiB at the peak of
// the warm load, the same after eight concurrent largest lists.
const memoryBound = 512 << 20

// TestMemoryLargestKeys measures a replica's resident memory with
// KEYGATE_MEMORY_KEYS keys (default 10,000; the closing figures use
// 100,000) of the largest shape the Account API allows, written with COPY:
// the real binary with default flags, after its warm load (VmRSS, VmHWM),
// then after eight concurrent ListKeys(page_size=1000) through the Account
// API (VmHWM). Both must stay under memoryBound; the cache fills its byte
// bound with a few thousand such keys, so 10,000 already reach the steady
// state.
func TestMemoryLargestKeys(t *testing.T) {
	n := envInt(t, "KEYGATE_MEMORY_KEYS", 10_000)
	env := newDBEnv(t)
	seedStart := time.Now()
	seedLargestKeys(t, env.url, "acct-test", n)
	report(t, "seeded %d keys of the largest shape with COPY in %v", n, time.Since(seedStart).Round(time.Millisecond))

	start := time.Now()
	srv := startServeBinary(t, buildKeygate(t, false), []string{"authz", "admin", "account"},
		"--database-url", env.url, "--routes-file", env.routesFile, "--log-level", "info")
	waitReadyWithin(t, srv, 15*time.Minute)
	rss, hwm := procMemory(t, srv)
	report(t, "ready in %v; VmRSS %d MiB, VmHWM %d MiB (%s)", time.Since(start).Round(time.Millisecond), rss>>20, hwm>>20, warmLine(srv.Logs()))
	_, metrics := httpGet(t, "http://"+srv.adminAddr+"/metrics")
	report(t, "%s", metricLines(metrics, "keygate_cache_cost_bytes", "keygate_cache_max_bytes", "keygate_keys_unloadable", "go_memstats_heap_inuse_bytes"))

	listStart := time.Now()
	keys := listConcurrently(t, env.client(t, srv), 8)
	rss2, hwm2 := procMemory(t, srv)
	report(t, "8 concurrent ListKeys(page_size=1000): %d keys in %v; VmRSS %d MiB, VmHWM %d MiB",
		keys, time.Since(listStart).Round(time.Millisecond), rss2>>20, hwm2>>20)
	if hwm2 > memoryBound {
		t.Errorf("peak resident memory %d MiB, over the %d MiB a replica with default flags must stay under", hwm2>>20, memoryBound>>20)
	}
}

// envInt is the integer in the environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// report logs a figure and prints it, so that `go test` without -v shows it.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf(format, args...)
	fmt.Printf("memory: "+format+"\n", args...)
}

// seedLargestKeys writes n app keys of the largest allowed shape into
// account (SPEC §10, §9; pkg/account's and pkg/authz's maxima): a 200-byte
// name, a 1 KiB description and a group of 200, a scope of 200
// patterns in 4,000 bytes, 100 IPv6 filters, 20 response headers with
// 64-byte names and 1 KiB values.
func seedLargestKeys(t *testing.T, url, accountID string, n int) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `INSERT INTO apps (account_id, id, name) VALUES ($1, 'big', 'Big')`, accountID); err != nil {
		t.Fatal(err)
	}
	scope, filters, headers := largestFields(t)
	desc, group := strings.Repeat("d", account.MaxDescriptionLen), strings.Repeat("g", account.MaxGroupLen)
	i := 0
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"keys"},
		[]string{"account_id", "id", "name", "type", "app_id", "hash", "scope", "ip_filters",
			"response_headers", "description", "grp", "origin"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i >= n {
				return nil, nil
			}
			id := fmt.Sprintf("big-%09d", i)
			name := id + strings.Repeat("n", 200-len(id))
			hash := apikey.FormatHash(apikey.SHA256, sha256.Sum256([]byte("memory-secret-"+id)))
			i++
			return []any{accountID, id, name, "app", "big", hash, scope, filters, headers, desc, group, "custom"}, nil
		}))
	if err != nil {
		t.Fatalf("copy keys: %v", err)
	}
}

// largestFields are the scope, IP filters and response headers (as
// stored, JSON) of the largest shape.
func largestFields(t *testing.T) (string, []string, []byte) {
	patterns := make([]string, 200)
	for i := range patterns {
		patterns[i] = fmt.Sprintf("s%03d:query:o%07d", i, i)
	}
	filters := make([]string, 100)
	for i := range filters {
		filters[i] = fmt.Sprintf("2001:db8:%x::/48", i)
	}
	type header struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	hs := make([]header, authz.MaxResponseHeaders)
	for i := range hs {
		hs[i] = header{Name: fmt.Sprintf("x-h%02d-%s", i, strings.Repeat("a", authz.MaxHeaderNameLen-6)),
			Value: strings.Repeat("v", authz.MaxHeaderValueLen)}
	}
	headers, err := json.Marshal(hs)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(patterns, " "), filters, headers
}

// waitReadyWithin polls /readyz until 200, for up to d.
func waitReadyWithin(t *testing.T, s *server, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if code, _ := httpGet(t, "http://"+s.adminAddr+"/readyz"); code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %v\n%s", d, s.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// procMemory reads VmRSS and VmHWM (peak resident) of the server process.
func procMemory(t *testing.T, s *server) (rss, hwm int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), ":")
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch {
		case err != nil:
		case name == "VmRSS":
			rss = kb << 10
		case name == "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm
}

// metricLines picks the named metrics' lines from a /metrics body.
func metricLines(body string, names ...string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		for _, n := range names {
			if strings.HasPrefix(l, n+" ") {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "; ")
}

// listConcurrently runs c ListKeys(page_size=1000) at once and returns the
// keys they got in all.
func listConcurrently(t *testing.T, api *accountClient, c int) int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	for range c {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "x-api-key", api.key)
			resp, err := api.ListKeys(ctx, &accountv1.ListKeysRequest{PageSize: 1000}, grpc.MaxCallRecvMsgSize(256<<20))
			if err != nil {
				t.Errorf("ListKeys: %v", err)
				return
			}
			mu.Lock()
			total += len(resp.GetKeys())
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}
