// Command load is keygate's load harness (make bench-load). In one run on
// loopback it starts the floor server (bench/floor: the smallest possible
// Authorization/Check) and keygate serving keys from PostgreSQL, each
// pinned to one CPU with taskset, and drives each in turn with ghz pinned
// to the other CPU: A B A B A B per scenario, compared by medians, because
// a shared machine moves the same server by 20% between runs.
//
// Scenarios: a valid key on every request (hit, 100,000 keys in the
// database), 100,000 distinct valid keys in round robin (rr: the cache's
// working set; on a database of 300,000 keys, or of 1,000,000 with
// -large), unknown keys (spray: PostgreSQL must not see them), and with
// -large hit, rr and spray with 1,000,000 keys loaded. In the hit and spray
// scenarios a third server, floor+resp, answers with keygate's own
// response, to tell the cost of keygate's decision from the cost of its
// larger answer. It prints requests/s, p50, p99, p99.9, server CPU and
// allocations per request, keygate's ratios to the floor, warm-load time
// and memory per key, with -profile the top of keygate's CPU and
// allocation profiles, and the acceptance verdicts of issue 6. A missed
// target is printed, not an error: the exit status is non-zero only when
// the harness itself fails. See docs/performance.md.
//
//	make bench-load                                # installs ghz (pinned); -large -profile
//	go run ./bench/load -ghz bin/ghz-v0.121.0/ghz  # the default run, without 1M keys
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

type config struct {
	dbURL        string
	ghz          string
	client       string
	out          string
	duration     time.Duration
	warmup       time.Duration
	rounds       int
	concurrency  int
	connections  int
	keys         int
	rrKeys       int
	sprayKeys    int
	large        bool
	largeKeys    int
	profile      bool
	profileTime  time.Duration
	trace        bool
	traceTime    time.Duration
	serverCPU    string
	clientCPU    string
	cacheMaxKeys int64
	only         string
	features     bool
	ghzGOGC      string
	respFloor    bool
	answers      bool
	keygateBin   string
	keygateArgs  string
	memoryLimit  int64
	quietWait    time.Duration
	quietBusy    float64
	tls          bool
	keepData     bool
}

func main() {
	var c config
	flag.StringVar(&c.dbURL, "database-url", pgtest.URL(), "PostgreSQL server (the database named is used for CREATE DATABASE; default DATABASE_URL)")
	flag.StringVar(&c.ghz, "ghz", "bin/ghz", "ghz binary (make bench-load installs the pinned version into bin/)")
	flag.StringVar(&c.client, "client", "ghz", "load client: ghz (the criteria's), or go (diagnostic: bench/client, the same calls, answers decoded with compiled types as Envoy decodes them, not by reflection)")
	flag.StringVar(&c.out, "out", "", "directory for binaries, logs, profiles and results (default: a new temporary directory)")
	flag.DurationVar(&c.duration, "duration", 6*time.Second, "length of each measured round")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured run per server before a scenario's rounds")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds per scenario; each round runs the floor, then keygate")
	flag.IntVar(&c.concurrency, "concurrency", 50, "ghz concurrent workers")
	flag.IntVar(&c.connections, "connections", 1, "ghz gRPC connections (Envoy multiplexes checks on few connections)")
	flag.IntVar(&c.keys, "keys", 100_000, "keys in PostgreSQL for the hit and spray scenarios")
	flag.IntVar(&c.rrKeys, "rr-keys", 100_000, "distinct valid keys in round robin (the database then holds 3x as many: a third are service keys)")
	flag.IntVar(&c.sprayKeys, "spray-keys", 20_000, "distinct unknown keys per spraying round (fresh ones each round)")
	flag.BoolVar(&c.large, "large", false, "also run every scenario with -large-keys keys loaded (seeding 1M keys takes about a minute)")
	flag.IntVar(&c.largeKeys, "large-keys", 1_000_000, "keys in PostgreSQL with -large")
	flag.BoolVar(&c.profile, "profile", false, "profile keygate (CPU and allocations) during an extra run of the first hit and round-robin scenarios and print the top entries")
	flag.DurationVar(&c.profileTime, "profile-time", 10*time.Second, "length of the profile")
	flag.BoolVar(&c.trace, "trace", false, "take an execution trace of keygate during an extra run of the first hit and round-robin scenarios and report how long the collector's mark worker held its CPU at a stretch (the round robin's tail on one CPU)")
	flag.DurationVar(&c.traceTime, "trace-time", 3*time.Second, "length of the execution trace")
	flag.StringVar(&c.serverCPU, "server-cpu", "1", "CPU list (taskset -c) for the servers")
	flag.StringVar(&c.clientCPU, "client-cpu", "0", "CPU list (taskset -c) for ghz")
	flag.Int64Var(&c.cacheMaxKeys, "cache-max-keys", 0, "keygate --cache-max-keys (0: keygate's default)")
	flag.StringVar(&c.ghzGOGC, "ghz-gogc", "400", "GOGC of ghz, so that its GC takes less of the client CPU")
	flag.StringVar(&c.keygateBin, "keygate-bin", "", "keygate binary to measure (default: go build ./cmd/keygate, without -race), e.g. to compare a change")
	flag.Int64Var(&c.memoryLimit, "keygate-memory-limit", 1<<30, "run keygate as in a container of this many bytes of memory (GOMEMLIMIT at 90% of it, as --memory-limit-ratio sets it; the cache is sized from it); the shipped deploy/kubernetes limit is 1 GiB; 0: no limit")
	flag.StringVar(&c.keygateArgs, "keygate-args", "", "extra flags for keygate serve, space-separated (e.g. tracing settings)")
	flag.BoolVar(&c.respFloor, "resp-floor", true, "in the hit and spray scenarios of the -keys database also run the floor answering with keygate's own response (floor+resp), to tell decision cost from response size")
	flag.BoolVar(&c.answers, "answers", true, "after the hit scenario of the -keys database, also run the floor answering variants of keygate's allow (no metadata, no identity headers, …): what each part of the answer costs ghz")
	flag.DurationVar(&c.quietWait, "quiet-wait", 30*time.Second, "before each round, wait up to this long for the machine to be quiet (other processes busy)")
	flag.Float64Var(&c.quietBusy, "quiet-busy", 0.25, "quiet: at most this share of all CPUs busy over 300 ms")
	flag.BoolVar(&c.features, "features", true, "seed every service key with three roles, its tenant with ten denials and a monthly quota, and the key with a daily quota (issue 22 point 3); -features=false measures the bare keys")
	flag.StringVar(&c.only, "only", "", "comma-separated scenarios to run (hit, rr, spray); default all")
	flag.BoolVar(&c.tls, "tls", false, "serve the floor and keygate's authz listener over mTLS with the same throwaway certificates (pkg/tlsfiles settings), the clients presenting a client certificate as Envoy would")
	flag.BoolVar(&c.keepData, "keep-data", false, "keep the call data files (OUT/data) after the run, e.g. to drive bench/client by hand")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/load:", err)
		os.Exit(1)
	}
}

// harness holds what one run shares.
type harness struct {
	cfg        config
	out        string
	keygateBin string
	floorBin   string
	routes     string
	client     loadClient // ghz, or bench/client with -client go
	// offsets are where each server's next run over a call data file
	// starts (runClient).
	offsetsMu  sync.Mutex
	offsets    map[string]uint64
	clientName string
	pg         *pg
	floor      *server
	machine    machineInfo
	results    []*scenarioResult
	phases     []*phaseResult
	baseline   memSample
	profiles   []profileSummary
	profiled   map[scenarioKind]bool
	traced     map[scenarioKind]bool
	traces     []traceResult
	floorResp  map[scenarioKind]*server // the floor answering with keygate's response
	respBytes  map[scenarioKind]int     // size of keygate's response on the wire
	kgResp     map[scenarioKind]*authv3.CheckResponse
	answers    []*answerVariant // the answer-cost diagnostic (-answers)
	tls        *tlsSetup        // -tls: the certificates; nil: cleartext
}

func run(ctx context.Context, c config) error {
	if c.rounds < 3 {
		return errors.New("-rounds: at least 3 rounds (A B A B A B) are needed for a median")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	for _, l := range []string{c.serverCPU, c.clientCPU} {
		if _, err := cpuLines(l); err != nil {
			return fmt.Errorf("-server-cpu, -client-cpu: %w", err)
		}
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return errors.New("taskset not found (util-linux): the servers and ghz are pinned to CPUs with it")
	}
	ghzBin, err := filepath.Abs(c.ghz)
	if err != nil {
		return err
	}
	switch c.client {
	case "ghz":
		if _, err := os.Stat(ghzBin); err != nil {
			return fmt.Errorf("ghz not found at %s: run `make bench-load`, which installs the pinned version into bin/", c.ghz)
		}
	case "go":
	default:
		return fmt.Errorf("-client %q: ghz or go", c.client)
	}
	if c.out == "" {
		if c.out, err = os.MkdirTemp("", "keygate-bench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	if c.out, err = filepath.Abs(c.out); err != nil {
		return err
	}
	h := &harness{cfg: c, out: c.out, profiled: map[scenarioKind]bool{}, traced: map[scenarioKind]bool{}, offsets: map[string]uint64{},
		floorResp: map[scenarioKind]*server{}, respBytes: map[scenarioKind]int{},
		kgResp: map[scenarioKind]*authv3.CheckResponse{}}
	h.logf("output in %s", h.out)
	// The call data files are large (up to hundreds of MB): not kept.
	if !c.keepData {
		defer os.RemoveAll(filepath.Join(h.out, "data"))
	}
	h.machine = describeMachine(c)

	// Both servers without -race, from this module.
	h.keygateBin = filepath.Join(h.out, "keygate")
	h.floorBin = filepath.Join(h.out, "floor")
	builds := [][2]string{{h.keygateBin, "./cmd/keygate"}, {h.floorBin, "./bench/floor"}}
	if c.keygateBin != "" {
		if h.keygateBin, err = filepath.Abs(c.keygateBin); err != nil {
			return err
		}
		builds = builds[1:]
	}
	clientBin := filepath.Join(h.out, "client")
	if c.client == "go" {
		builds = append(builds, [2]string{clientBin, "./bench/client"})
	}
	for _, b := range builds {
		h.logf("go build %s", b[1])
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	if c.tls {
		if h.tls, err = writeTLS(filepath.Join(h.out, "tls")); err != nil {
			return err
		}
		h.logf("mTLS with the certificates in %s", filepath.Join(h.out, "tls"))
	}
	protoset := filepath.Join(h.out, "check.protoset")
	if err := writeProtoset(protoset); err != nil {
		return fmt.Errorf("protoset: %w", err)
	}
	h.client, h.clientName = ghzOptions{bin: ghzBin, cpu: c.clientCPU, protoset: protoset, concurrency: c.concurrency, connections: c.connections, gogc: c.ghzGOGC, tls: h.tls}, "ghz"
	if c.client == "go" {
		h.client, h.clientName = goClient{bin: clientBin, cpu: c.clientCPU, concurrency: c.concurrency, connections: c.connections, gogc: c.ghzGOGC, tls: h.tls}, "bench/client"
	}
	h.routes = filepath.Join(h.out, "routes.yaml")
	if err := os.WriteFile(h.routes, []byte(routesYAML), 0o644); err != nil {
		return err
	}

	if h.pg, err = connectPG(ctx, c.dbURL); err != nil {
		return err
	}
	defer h.pg.close()
	h.machine.postgres = h.pg.serverVersion(ctx)

	if h.floor, err = h.startFloor(ctx, "floor"); err != nil {
		return err
	}
	defer h.floor.stop()
	defer func() {
		for _, s := range h.floorResp {
			s.stop()
		}
	}()

	if err := h.measureBaseline(ctx); err != nil {
		return err
	}
	for _, ph := range h.plan() {
		if err := h.runPhase(ctx, ph); err != nil {
			return err
		}
	}
	report := h.report()
	fmt.Print(report)
	return os.WriteFile(filepath.Join(h.out, "results.md"), []byte(report), 0o644)
}

// routesYAML routes GET /email/inbox to email-api, which service keys may
// call (the seeded service keys' scope allows it).
const routesYAML = `services:
  - name: email-api
    key_types: [service]
    routes:
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {path: /email/send, methods: [POST], kind: mutation, operation: sendEmail}
`

// seedAccount is the account SeedKeys puts the keys under.
const seedAccount = "bench"

// hitKey is the seeded key of the hit scenario: a service key (i%3 == 0)
// without IP filter or response header (i%10 != 0).
const hitKey = 3

type scenarioKind string

const (
	hit   scenarioKind = "hit"
	rr    scenarioKind = "rr"
	spray scenarioKind = "spray"
)

type phase struct {
	name      string
	keys      int
	scenarios []scenarioKind
}

// plan is the list of databases and the scenarios run on each.
func (h *harness) plan() []phase {
	c := h.cfg
	want := func(ks ...scenarioKind) []scenarioKind {
		if c.only == "" {
			return ks
		}
		var out []scenarioKind
		for _, k := range ks {
			for _, o := range strings.Split(c.only, ",") {
				if strings.TrimSpace(o) == string(k) {
					out = append(out, k)
				}
			}
		}
		return out
	}
	var ps []phase
	add := func(name string, keys int, ks ...scenarioKind) {
		if ks = want(ks...); len(ks) > 0 {
			ps = append(ps, phase{name, keys, ks})
		}
	}
	add(count(c.keys)+" keys", c.keys, hit, spray)
	if c.large && (c.largeKeys+2)/3 >= c.rrKeys {
		// Round robin over rrKeys of the large database's service keys.
		add(count(c.largeKeys)+" keys", c.largeKeys, hit, rr, spray)
		return ps
	}
	// Round robin needs rrKeys valid keys: only the service third of the
	// seeded keys may call email-api.
	add(count(3*c.rrKeys)+" keys", 3*c.rrKeys, rr)
	if c.large {
		add(count(c.largeKeys)+" keys", c.largeKeys, hit, spray)
	}
	return ps
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run bench/load inside the keygate module")
	}
	return filepath.Dir(mod), nil
}

// scenario is one workload: its call data per round (index 0 is the
// warm-up) and what keygate must answer.
type scenario struct {
	kind   scenarioKind
	title  string
	files  []string // per round; the last one repeats
	sample []*authv3.CheckRequest
	allow  bool
}

func (s *scenario) file(round int) string { return s.files[min(round, len(s.files)-1)] }

// buildScenario writes the call data of a scenario on a database of n keys.
func (h *harness) buildScenario(ph phase, kind scenarioKind) (*scenario, error) {
	dir := filepath.Join(h.out, "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tag := strings.ReplaceAll(ph.name, " ", "-") + "-" + string(kind)
	sc := &scenario{kind: kind}
	write := func(name string, reqs []*authv3.CheckRequest) error {
		p := filepath.Join(dir, tag+"-"+name+".bin")
		sc.files = append(sc.files, p)
		if sc.sample == nil {
			sc.sample = reqs[:min(len(reqs), 3)]
		}
		return writeData(p, reqs)
	}
	switch kind {
	case hit:
		sc.title, sc.allow = "cache hit: one valid key", true
		return sc, write("all", []*authv3.CheckRequest{checkRequest(pgtest.SeedSecret(seedAccount, hitKey), 0)})
	case rr:
		services := (ph.keys + 2) / 3
		n := min(h.cfg.rrKeys, services)
		sc.title, sc.allow = fmt.Sprintf("round robin: %s distinct valid keys", count(n)), true
		// Spread over all service keys, in an order unrelated to their
		// position in the table.
		idx := make([]int, n)
		for j := range idx {
			idx[j] = 3 * int(int64(j)*int64(services)/int64(n))
		}
		rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		reqs := make([]*authv3.CheckRequest, n)
		for j, i := range idx {
			reqs[j] = checkRequest(pgtest.SeedSecret(seedAccount, i), j)
		}
		return sc, write("all", reqs)
	case spray:
		sc.title = fmt.Sprintf("spraying: unknown keys, %s fresh ones per round", count(h.cfg.sprayKeys))
		for r := 0; r <= h.cfg.rounds; r++ {
			keys := unknownKeys(h.cfg.sprayKeys)
			reqs := make([]*authv3.CheckRequest, len(keys))
			for j, k := range keys {
				reqs[j] = checkRequest(k, j)
			}
			if err := write(fmt.Sprintf("round%d", r), reqs); err != nil {
				return nil, err
			}
		}
		return sc, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", kind)
}

// machineInfo describes where the run happened.
type machineInfo struct {
	cpu, kernel, goVersion, postgres, client string // client: the load generator and its version
	cpus                                     int
	memTotal                                 string
}

func describeMachine(c config) machineInfo {
	m := machineInfo{cpus: runtime.NumCPU(), goVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				m.memTotal = strings.TrimSpace(v)
			}
		}
	}
	if c.client == "go" {
		m.client = "bench/client of this tree"
	} else if out, err := exec.Command("go", "version", "-m", c.ghz).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == "mod" {
				m.client = f[1] + "@" + f[2]
			}
		}
	}
	return m
}
