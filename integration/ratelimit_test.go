package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// ratelimitVersion is the envoyproxy/ratelimit pseudo-version the test
// runs: the Makefile's RATELIMIT_VERSION (TestRateLimitVersionPinned).
const ratelimitVersion = "v1.4.1-0.20260122083618-3fb702589d36"

const ratelimitModule = "github.com/envoyproxy/ratelimit/src/service_cmd"

// redisAddr is the Redis the rate-limit service counts in (.ci/run starts
// one on 127.0.0.1:6379); KEYGATE_TEST_REDIS names another.
func redisAddr() string {
	if a := os.Getenv("KEYGATE_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

var ratelimitBuild struct {
	once sync.Once
	path string
	err  error
}

// ratelimitBinary is envoyproxy/ratelimit's service at ratelimitVersion:
// bin/ratelimit-<version>/service_cmd, as `make ratelimit` installs it,
// installed the same way when missing (the Go module and build caches
// make that quick after the first time).
func ratelimitBinary(t testing.TB) string {
	t.Helper()
	ratelimitBuild.once.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			ratelimitBuild.err = err
			return
		}
		dir := filepath.Join(root, "bin", "ratelimit-"+ratelimitVersion)
		path := filepath.Join(dir, "service_cmd")
		if _, err := os.Stat(path); err == nil {
			ratelimitBuild.path = path
			return
		}
		cmd := exec.Command("go", "install", ratelimitModule+"@"+ratelimitVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			ratelimitBuild.err = fmt.Errorf("installing envoyproxy/ratelimit failed (run `make ratelimit`, or GOBIN=%s go install %s@%s): %v\n%s",
				dir, ratelimitModule, ratelimitVersion, err, out)
			return
		}
		ratelimitBuild.path = path
	})
	if ratelimitBuild.err != nil {
		t.Fatal(ratelimitBuild.err)
	}
	return ratelimitBuild.path
}

func TestRateLimitVersionPinned(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RATELIMIT_VERSION\s*:?=\s*(\S+)`).FindSubmatch(mk)
	if m == nil || string(m[1]) != ratelimitVersion {
		t.Fatalf("Makefile RATELIMIT_VERSION %q, the test runs %s: keep them equal", m, ratelimitVersion)
	}
}

// startRateLimitService runs envoyproxy/ratelimit on loopback against the
// local Redis with the shipped envoy/ratelimit/config/domain-keygate.yaml,
// its counters under a key prefix of this run's own; it returns the gRPC
// address once the service answers for domain keygate.
func startRateLimitService(t *testing.T) string {
	t.Helper()
	bin := ratelimitBinary(t)
	if c, err := net.DialTimeout("tcp", redisAddr(), 2*time.Second); err != nil {
		t.Fatalf("no Redis on %s (%v): start redis-server (.ci/run does), or set KEYGATE_TEST_REDIS", redisAddr(), err)
	} else {
		c.Close()
	}
	root := t.TempDir()
	cfg, err := os.ReadFile("../envoy/ratelimit/config/domain-keygate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "ratelimit", "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "ratelimit", "config", "domain-keygate.yaml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	grpcPort := freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"USE_STATSD=false", "LOG_LEVEL=warn",
		"REDIS_SOCKET_TYPE=tcp", "REDIS_URL=" + redisAddr(),
		// This run's counters only: never another run's, nothing else in Redis.
		"CACHE_KEY_PREFIX=keygate-test-" + hex.EncodeToString(nonce[:]) + ":",
		"RUNTIME_ROOT=" + root, "RUNTIME_SUBDIRECTORY=ratelimit",
		"RUNTIME_WATCH_ROOT=false", "RUNTIME_IGNOREDOTFILES=true",
		"HOST=127.0.0.1", "PORT=" + strconv.Itoa(freePort(t)),
		"GRPC_HOST=127.0.0.1", "GRPC_PORT=" + strconv.Itoa(grpcPort),
		"DEBUG_HOST=127.0.0.1", "DEBUG_PORT=" + strconv.Itoa(freePort(t)),
	}
	var logs strings.Builder
	var mu sync.Mutex
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	addr := "127.0.0.1:" + strconv.Itoa(grpcPort)
	rls := rlsv3.NewRateLimitServiceClient(dial(t, addr))
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := rls.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "keygate", HitsAddend: 0,
			Descriptors: []*commonrlv3.RateLimitDescriptor{{Entries: []*commonrlv3.RateLimitDescriptor_Entry{{Key: "account_id", Value: "probe"}}}}})
		cancel()
		if err == nil {
			return addr
		}
		select {
		case err := <-done:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("envoyproxy/ratelimit exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("envoyproxy/ratelimit does not answer on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// envoyDescriptor plays Envoy's part with envoy/envoy-ratelimit.yaml's
// per-key rate limit: the descriptor (account_id, tenant_id, key_id) from
// keygate's dynamic metadata (tenant_id skipped when absent), and the
// limit.dynamic_metadata override from its rate_limit struct, converted
// as Envoy does (requests_per_unit a number, unit RateLimitUnit's name).
func envoyDescriptor(t *testing.T, md *structpb.Struct) *commonrlv3.RateLimitDescriptor {
	t.Helper()
	f := md.GetFields()
	d := &commonrlv3.RateLimitDescriptor{}
	for _, k := range []string{"account_id", "tenant_id", "key_id"} {
		v, ok := f[k]
		if !ok && k == "tenant_id" {
			continue
		}
		if !ok || v.GetStringValue() == "" {
			t.Fatalf("dynamic metadata has no %s: %v", k, md)
		}
		d.Entries = append(d.Entries, &commonrlv3.RateLimitDescriptor_Entry{Key: k, Value: v.GetStringValue()})
	}
	rl := f["rate_limit"].GetStructValue().GetFields()
	n, okN := rl["requests_per_unit"].GetKind().(*structpb.Value_NumberValue)
	u, okU := rl["unit"].GetKind().(*structpb.Value_StringValue)
	if !okN || !okU {
		return d // Envoy sends the descriptor without a limit
	}
	unit, ok := typev3.RateLimitUnit_value[u.StringValue]
	if !ok {
		return d
	}
	d.Limit = &commonrlv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: uint32(n.NumberValue), Unit: typev3.RateLimitUnit(unit)}
	return d
}

// TestRateLimitThroughEnvoyService: the real envoyproxy/ratelimit service
// on the local Redis enforces the rate_limit keygate returns (SPEC §12).
// A key with 5 requests a second gets its sixth call within a second
// refused (OVER_LIMIT); another key with the same limit, and a key
// without one, are unaffected.
func TestRateLimitThroughEnvoyService(t *testing.T) {
	rlsAddr := startRateLimitService(t)
	dir := t.TempDir()
	limited, limitedHash := newKey(t, "service")
	other, otherHash := newKey(t, "service")
	free, freeHash := newKey(t, "service")
	rate := "    rate_limit: {requests_per_unit: 5, unit: second}\n"
	keysFile := filepath.Join(dir, "keys.yaml")
	routesFile := filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML(
		keyEntry{id: "k-limited", typ: "service", hash: limitedHash, extra: rate},
		keyEntry{id: "k-other", typ: "service", hash: otherHash, extra: rate},
		keyEntry{id: "k-free", typ: "service", hash: freeHash},
	))
	writeFile(t, routesFile, routesYAML)
	srv := startServer(t, keysFile, routesFile)
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	rls := rlsv3.NewRateLimitServiceClient(dial(t, rlsAddr))

	// One request through Envoy: keygate's Check, then, on allow, the
	// rate-limit service with the descriptor built from the metadata.
	descriptors := map[string]*commonrlv3.RateLimitDescriptor{}
	for _, k := range []struct{ id, secret string }{{"k-limited", limited}, {"k-other", other}, {"k-free", free}} {
		o, resp := call(t, authz, checkReq("GET", "/email/inbox", k.secret, nil))
		if o.status != 200 {
			t.Fatalf("%s: keygate denied %+v", k.id, o)
		}
		descriptors[k.id] = envoyDescriptor(t, resp.GetDynamicMetadata())
	}
	for id, want := range map[string]string{"k-limited": "requests_per_unit:5 unit:SECOND", "k-other": "requests_per_unit:5 unit:SECOND", "k-free": ""} {
		got := ""
		if l := descriptors[id].GetLimit(); l != nil {
			got = strings.Join(strings.Fields(l.String()), " ")
		}
		if got != want {
			t.Errorf("%s: limit override %q, want %q", id, got, want)
		}
		if e := descriptors[id].GetEntries(); len(e) != 3 || e[0].GetValue() != "default" || e[1].GetValue() != "acme" || e[2].GetValue() != id {
			t.Errorf("%s: descriptor entries %v", id, e)
		}
	}
	should := func(id string) rlsv3.RateLimitResponse_Code {
		t.Helper()
		o, resp := call(t, authz, checkReq("GET", "/email/inbox", map[string]string{"k-limited": limited, "k-other": other, "k-free": free}[id], nil))
		if o.status != 200 {
			t.Fatalf("%s: keygate denied %+v", id, o)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := rls.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "keygate", HitsAddend: 1,
			Descriptors: []*commonrlv3.RateLimitDescriptor{envoyDescriptor(t, resp.GetDynamicMetadata())}})
		if err != nil {
			t.Fatalf("ShouldRateLimit: %v", err)
		}
		return r.GetOverallCode()
	}

	// The limit counts per second of the clock (a fixed window): six calls
	// that straddle a second boundary may all pass. A round is judged only
	// when all its calls fell in one second; a straddling round is played
	// again (at most 5 times), never taken as a pass.
	for round := 0; ; round++ {
		if round == 5 {
			t.Fatal("five rounds of six calls each straddled a second boundary: the machine is too slow for the test")
		}
		// Start just after a second begins.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 5*time.Millisecond)))
		start := time.Now().Unix()
		var codes []rlsv3.RateLimitResponse_Code
		for range 6 {
			codes = append(codes, should("k-limited"))
		}
		otherCode := should("k-other")
		freeCodes := []rlsv3.RateLimitResponse_Code{should("k-free"), should("k-free"), should("k-free"), should("k-free"), should("k-free"), should("k-free"), should("k-free")}
		if time.Now().Unix() != start {
			t.Logf("round %d straddled a second boundary; again", round)
			continue
		}
		for i, c := range codes[:5] {
			if c != rlsv3.RateLimitResponse_OK {
				t.Errorf("k-limited call %d: %v, want OK", i+1, c)
			}
		}
		if codes[5] != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Errorf("k-limited sixth call within a second: %v, want OVER_LIMIT", codes[5])
		}
		if otherCode != rlsv3.RateLimitResponse_OK {
			t.Errorf("k-other (same limit, another key): %v, want OK", otherCode)
		}
		for i, c := range freeCodes {
			if c != rlsv3.RateLimitResponse_OK {
				t.Errorf("k-free (no rate_limit) call %d: %v, want OK", i+1, c)
			}
		}
		break
	}
}
