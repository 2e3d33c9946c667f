package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// server is a running floor or keygate.
type server struct {
	name  string
	proc  *process
	addr  string // gRPC (Check)
	admin string // keygate: admin listener; floor: its /stats listener
	conn  *grpc.ClientConn
}

func (s *server) stop() {
	if s == nil {
		return
	}
	if s.conn != nil {
		s.conn.Close()
	}
	s.proc.stop()
}

func (s *server) dial(t *tlsSetup) error {
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(t.transport()))
	if err != nil {
		return err
	}
	s.conn = conn
	return nil
}

// allocs reads the server's allocation counters: heap objects and bytes
// allocated and GC cycles since start (the floor's /stats, keygate's
// /metrics: the same runtime/metrics samples).
func (s *server) allocs(ctx context.Context) (objects, bytes, gcs float64, err error) {
	if s.name != "keygate" {
		_, body, err := httpGet(ctx, "http://"+s.admin+"/stats")
		if err != nil {
			return 0, 0, 0, err
		}
		var v struct {
			Mallocs    float64 `json:"mallocs"`
			AllocBytes float64 `json:"alloc_bytes"`
			GCCycles   float64 `json:"gc_cycles"`
		}
		err = json.Unmarshal(body, &v)
		return v.Mallocs, v.AllocBytes, v.GCCycles, err
	}
	m, err := scrape(ctx, "http://"+s.admin+"/metrics")
	if err != nil {
		return 0, 0, 0, err
	}
	o, ok1 := m.sum("go_memstats_mallocs_total")
	b, ok2 := m.sum("go_memstats_alloc_bytes_total")
	g, ok3 := m.sum("go_gc_duration_seconds_count")
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, errors.New("keygate's /metrics lacks go_memstats_mallocs_total, go_memstats_alloc_bytes_total or go_gc_duration_seconds_count")
	}
	return o, b, g, nil
}

// startFloor starts the floor server; name is "floor", or "floor+resp"
// with a response file.
func (h *harness) startFloor(ctx context.Context, name string, extra ...string) (*server, error) {
	addr, err1 := freeAddr()
	stats, err2 := freeAddr()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	args := append(append([]string{"--addr", addr, "--stats-addr", stats}, h.tls.serverArgs("")...), extra...)
	p, err := startPinned(name, h.cfg.serverCPU, filepath.Join(h.out, strings.ReplaceAll(name, "+", "-")+".log"), h.floorBin, nil, args...)
	if err != nil {
		return nil, err
	}
	s := &server{name: name, proc: p, addr: addr, admin: stats}
	if err := s.dial(h.tls); err != nil {
		s.stop()
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := p.exited(); err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := authv3.NewAuthorizationClient(s.conn).Check(cctx, checkRequest("any", 0))
		cancel()
		if err == nil {
			h.logf("%s ready on %s (pid %d, cpu %s)", name, addr, p.pid(), h.cfg.serverCPU)
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s not answering on %s: %v", name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startKeygate serves db's keys and waits until /readyz says the cache is
// warm; it returns the time from process start to ready.
func (h *harness) startKeygate(ctx context.Context, db *database, tag string) (*server, time.Duration, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return nil, 0, err
		}
		addrs[i] = a
	}
	args := []string{"serve",
		"--database-url", db.url,
		"--routes-file", h.routes,
		"--authz-addr", addrs[0], "--admin-addr", addrs[1], "--account-listen-addr", addrs[2],
		"--log-level", "warn",
		"--pprof",
	}
	args = append(args, h.tls.serverArgs("authz-")...)
	args = append(args, strings.Fields(h.cfg.keygateArgs)...)
	if h.cfg.cacheMaxKeys > 0 {
		args = append(args, "--cache-max-keys", strconv.FormatInt(h.cfg.cacheMaxKeys, 10))
	}
	var env []string
	if h.cfg.memoryLimit > 0 {
		// As a replica in a container of that limit runs: GOMEMLIMIT at
		// --memory-limit-ratio's 90% of it, which also sizes the cache.
		env = append(env, fmt.Sprintf("GOMEMLIMIT=%dMiB", h.cfg.memoryLimit*9/10>>20))
	}
	p, err := startPinned("keygate", h.cfg.serverCPU, filepath.Join(h.out, "keygate-"+tag+".log"), h.keygateBin, env, args...)
	if err != nil {
		return nil, 0, err
	}
	s := &server{name: "keygate", proc: p, addr: addrs[0], admin: addrs[1]}
	if err := waitReady(ctx, p, "http://"+s.admin+"/readyz", 10*time.Minute); err != nil {
		s.stop()
		return nil, 0, err
	}
	ready := time.Since(p.start)
	if err := s.dial(h.tls); err != nil {
		s.stop()
		return nil, 0, err
	}
	h.logf("keygate ready on %s in %v (pid %d, cpu %s)", s.addr, ready.Round(time.Millisecond), p.pid(), h.cfg.serverCPU)
	return s, ready, nil
}

// heapProfilePath is where keygate's live heap profile of a phase goes
// with -profile ("": not kept).
func (h *harness) heapProfilePath(phase, when string) string {
	if !h.cfg.profile {
		return ""
	}
	return filepath.Join(h.out, "keygate-"+strings.ReplaceAll(phase, " ", "-")+"-"+when+".heap.pprof")
}

// memSample is keygate's memory: resident set and live heap (heap in use
// right after a forced collection).
type memSample struct {
	rss, heap int64
}

func (h *harness) memory(ctx context.Context, kg *server, heapProfile string) (memSample, error) {
	// /debug/pprof/heap?gc=1 runs a collection first, so that heap in use
	// is what is live rather than what the last cycle left.
	code, body, err := httpGet(ctx, "http://"+kg.admin+"/debug/pprof/heap?gc=1")
	if err != nil || code != 200 {
		return memSample{}, fmt.Errorf("keygate /debug/pprof/heap: %d %v", code, err)
	}
	if heapProfile != "" {
		// What the live heap holds (go tool pprof -sample_index=inuse_space).
		if err := os.WriteFile(heapProfile, body, 0o644); err != nil {
			return memSample{}, err
		}
	}
	rss, err := rssBytes(kg.proc.pid())
	if err != nil {
		return memSample{}, err
	}
	m, err := scrape(ctx, "http://"+kg.admin+"/metrics")
	if err != nil {
		return memSample{}, err
	}
	heap, ok := m.sum("go_memstats_heap_inuse_bytes")
	if !ok {
		return memSample{}, errors.New("keygate's /metrics lacks go_memstats_heap_inuse_bytes")
	}
	return memSample{rss: rss, heap: int64(heap)}, nil
}

// measureBaseline is keygate's memory with no key, to subtract.
func (h *harness) measureBaseline(ctx context.Context) error {
	db, err := h.pg.create(ctx, h.keygateBin)
	if err != nil {
		return err
	}
	defer h.pg.drop(db)
	kg, _, err := h.startKeygate(ctx, db, "empty")
	if err != nil {
		return err
	}
	defer kg.stop()
	h.baseline, err = h.memory(ctx, kg, "")
	return err
}

// phaseResult is one database size: seeding, warm load and memory.
type phaseResult struct {
	name     string
	keys     int
	seed     time.Duration
	ready    time.Duration
	mem      memSample // after warm load, before any request
	memAfter memSample // after the phase's load
}

func (h *harness) runPhase(ctx context.Context, ph phase) error {
	h.logf("== %s: create database, migrate, seed %d keys", ph.name, ph.keys)
	db, err := h.pg.create(ctx, h.keygateBin)
	if err != nil {
		return err
	}
	defer h.pg.drop(db)
	pr := &phaseResult{name: ph.name, keys: ph.keys}
	if pr.seed, err = h.pg.seed(ctx, db, seedAccount, ph.keys, h.cfg.features); err != nil {
		return err
	}
	h.logf("seeded %d keys in %v", ph.keys, pr.seed.Round(time.Millisecond))
	kg, ready, err := h.startKeygate(ctx, db, strings.ReplaceAll(ph.name, " ", "-"))
	if err != nil {
		return err
	}
	defer kg.stop()
	pr.ready = ready
	if pr.mem, err = h.memory(ctx, kg, h.heapProfilePath(ph.name, "at-rest")); err != nil {
		return err
	}
	h.phases = append(h.phases, pr)
	for _, kind := range ph.scenarios {
		sc, err := h.buildScenario(ph, kind)
		if err != nil {
			return err
		}
		res, err := h.runScenario(ctx, ph, sc, kg, db)
		if err != nil {
			return err
		}
		h.results = append(h.results, res)
		if kind == hit && h.cfg.answers && ph.keys == h.cfg.keys && h.answers == nil {
			if err := h.measureAnswers(ctx, kg, sc); err != nil {
				return err
			}
		}
		if h.cfg.profile && (kind == hit || kind == rr) && !h.profiled[kind] {
			h.profiled[kind] = true
			if err := h.profileKeygate(ctx, ph, sc, kg); err != nil {
				return err
			}
		}
		if h.cfg.trace && (kind == hit || kind == rr) && !h.traced[kind] {
			h.traced[kind] = true
			if err := h.traceKeygate(ctx, ph, sc, kg); err != nil {
				return err
			}
		}
	}
	if pr.memAfter, err = h.memory(ctx, kg, h.heapProfilePath(ph.name, "after-load")); err != nil {
		return err
	}
	return nil
}

// verify checks a scenario's sample requests against a server before any
// load: keygate must allow the valid keys and refuse the unknown ones as
// unknown_key (a fast deny would otherwise pass for a fast allow).
func (h *harness) verify(ctx context.Context, s *server, sc *scenario) error {
	c := authv3.NewAuthorizationClient(s.conn)
	for _, req := range sc.sample {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := c.Check(cctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: sample Check: %w", s.name, err)
		}
		switch {
		case s.name == "floor+resp":
			// Answers what keygate answered, allow or deny.
		case s.name != "keygate" || sc.allow:
			if resp.GetOkResponse() == nil {
				return fmt.Errorf("%s denied a %s request: %v", s.name, sc.kind, resp.GetDeniedResponse().GetBody())
			}
		default:
			var body struct{ Reason string }
			d := resp.GetDeniedResponse()
			if d == nil || json.Unmarshal([]byte(d.GetBody()), &body) != nil || body.Reason != "unknown_key" {
				return fmt.Errorf("%s: an unknown key was not refused as unknown_key: %v", s.name, resp)
			}
		}
	}
	return nil
}

// roundResult is one ghz run against one server.
type roundResult struct {
	round       int
	ghz         *ghzResult
	serverCPU   time.Duration // utime+stime delta of the server process
	cpuPerReq   float64       // µs
	clientReq   float64       // ghz CPU µs per request (its start-up included)
	allocsReq   float64       // heap objects per request
	bytesReq    float64
	gcs         int     // GC cycles the server ran during the round
	serverShare float64 // server process CPU time over the load's duration
	clientBusy  float64 // share of the client CPU busy while the server was loaded
	serverBusy  float64 // share of the server CPU busy (all processes) likewise
	steal       float64 // share of both CPUs' time stolen by the hypervisor
	quiet       bool    // the machine was quiet before the round (see waitQuiet)
}

// scenarioResult is a scenario's rounds on both servers and keygate's
// counters over its rounds.
type scenarioResult struct {
	phase      string
	keys       int
	kind       scenarioKind
	title      string
	floor, kg  []roundResult
	resp       []roundResult // the floor answering with keygate's response (hit only)
	pgXacts    int64         // xact_commit delta of keygate's database
	pgRequests uint64        // keygate requests during that window
	counters   [][2]string
	loadavg    [2]string // /proc/loadavg before and after
}

func (h *harness) runScenario(ctx context.Context, ph phase, sc *scenario, kg *server, db *database) (*scenarioResult, error) {
	h.logf("-- %s / %s", ph.name, sc.title)
	servers := []*server{h.floor, kg}
	if (sc.kind == hit || sc.kind == spray) && h.cfg.respFloor && ph.keys == h.cfg.keys {
		rf, err := h.respFloor(ctx, kg, sc)
		if err != nil {
			return nil, err
		}
		servers = []*server{h.floor, rf, kg}
	}
	for _, s := range servers {
		if err := h.verify(ctx, s, sc); err != nil {
			return nil, err
		}
	}
	for _, s := range servers {
		// Round robin measures the steady state, each key of the set
		// asked for at least once before: the warm-up goes on until it
		// has sent as many requests as there are keys in turn (at most
		// three minutes: on a slow machine the first pass's misses took
		// longer than one, and the first measured round then had them),
		// so that a replica's cache holds what the fleet would have it
		// hold after its first pass.
		want, sent := uint64(0), uint64(0)
		if sc.kind == rr {
			want = uint64(h.cfg.rrKeys)
		}
		for start := time.Now(); ; {
			r, err := h.runClient(ctx, s, sc.file(0), h.cfg.warmup, filepath.Join(h.out, "ghz-warmup.json"))
			if err != nil {
				return nil, fmt.Errorf("warm-up of %s: %w", s.name, err)
			}
			sent += r.Count
			if sent >= want || time.Since(start) > 3*time.Minute {
				break
			}
		}
		if want > 0 {
			h.logf("   warm-up of %s: %d requests over the %d keys in turn", s.name, sent, want)
		}
	}
	res := &scenarioResult{phase: ph.name, keys: ph.keys, kind: sc.kind, title: sc.title}
	res.loadavg[0] = loadavg()
	x0, err := h.pg.xactCommit(ctx, db)
	if err != nil {
		return nil, err
	}
	m0, err := scrape(ctx, "http://"+kg.admin+"/metrics")
	if err != nil {
		return nil, err
	}
	for r := 1; r <= h.cfg.rounds; r++ {
		for _, s := range servers {
			rr, err := h.measure(ctx, s, sc.file(r), r)
			if err != nil {
				return nil, err
			}
			h.logf("   round %d %-7s %8.0f req/s  p50 %-9s p99 %-9s p99.9 %-9s cpu %5.1f µs/req (%3.0f%% of a core)  %5.1f allocs/req  ghz %5.1f µs/req  cpu%s busy %3.0f%%  cpu%s busy %3.0f%%",
				r, s.name, rr.ghz.Rps, dur(float64(rr.ghz.p50)), dur(float64(rr.ghz.p99)), dur(float64(rr.ghz.p999)),
				rr.cpuPerReq, 100*rr.serverShare, rr.allocsReq, rr.clientReq, h.cfg.serverCPU, 100*rr.serverBusy, h.cfg.clientCPU, 100*rr.clientBusy)
			switch s {
			case h.floor:
				res.floor = append(res.floor, rr)
			case kg:
				res.kg = append(res.kg, rr)
				res.pgRequests += rr.ghz.Count
			default:
				res.resp = append(res.resp, rr)
			}
		}
	}
	m1, err := scrape(ctx, "http://"+kg.admin+"/metrics")
	if err != nil {
		return nil, err
	}
	// keygate's queries reach pg_stat_database when its backends go
	// idle, within PGSTAT_IDLE_INTERVAL: wait for them before reading.
	// The window also holds the floor's rounds (keygate idle), so any
	// background statement keygate made counts against it.
	if sc.kind == spray {
		h.logf("   waiting %v for pg_stat_database", statsSettle)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(statsSettle):
		}
	}
	x1, err := h.pg.xactCommit(ctx, db)
	if err != nil {
		return nil, err
	}
	res.pgXacts = x1 - x0
	res.loadavg[1] = loadavg()
	res.counters = counterDeltas(m0, m1)
	return res, nil
}

// respFloor returns the floor answering with keygate's own response to
// the scenario's first request, starting it the first time.
func (h *harness) respFloor(ctx context.Context, kg *server, sc *scenario) (*server, error) {
	if s := h.floorResp[sc.kind]; s != nil {
		return s, nil
	}
	resp, err := h.keygateAnswer(ctx, kg, sc)
	if err != nil {
		return nil, err
	}
	b, err := protojson.Marshal(resp)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(h.out, "keygate-"+string(sc.kind)+"-response.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return nil, err
	}
	h.respBytes[sc.kind] = proto.Size(resp)
	s, err := h.startFloor(ctx, "floor+resp", "--response-file", path)
	if err != nil {
		return nil, err
	}
	h.floorResp[sc.kind] = s
	return s, nil
}

// keygateAnswer is keygate's response to the scenario's first request,
// asked once.
func (h *harness) keygateAnswer(ctx context.Context, kg *server, sc *scenario) (*authv3.CheckResponse, error) {
	if r := h.kgResp[sc.kind]; r != nil {
		return r, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(kg.conn).Check(cctx, sc.sample[0])
	if err != nil {
		return nil, err
	}
	h.kgResp[sc.kind] = resp
	return resp, nil
}

// counterDeltas are keygate's own counters over the rounds (when its
// /metrics has them), to show what the cache did.
func counterDeltas(m0, m1 metricsSnapshot) [][2]string {
	var out [][2]string
	for _, c := range []struct{ label, name string }{
		{"decisions allow", "keygate_decisions_total{result=\"allow\""},
		{"decisions deny", "keygate_decisions_total{result=\"deny\""},
		{"cache hits", "keygate_cache_hits_total"},
		{"cache misses (to the store)", "keygate_cache_misses_total"},
		{"cache negative hits", "keygate_cache_negative_hits_total"},
		{"refused by the key set (no query)", "keygate_cache_rejects_total"},
		{"store queries", "keygate_store_query_duration_seconds_count"},
	} {
		name, label, _ := strings.Cut(c.name, "{")
		var d float64
		var ok bool
		if label != "" {
			d, ok = delta(m0, m1, name, label)
		} else {
			d, ok = delta(m0, m1, name)
		}
		if ok {
			out = append(out, [2]string{c.label, strconv.FormatFloat(d, 'f', 0, 64)})
		}
	}
	return out
}

// runClient runs the load client against s with the call data in data,
// starting where its last run over the same data stopped: the runs of a
// scenario (warm-up, rounds, profile) continue one round robin instead of
// each starting again at the first request, which had round robin over
// 100,000 keys ask for the first 60,000 or so in every round, and the
// keys past them only once a faster round reached them (as misses).
func (h *harness) runClient(ctx context.Context, s *server, data string, d time.Duration, report string) (*ghzResult, error) {
	key := s.addr + " " + data
	h.offsetsMu.Lock()
	off := h.offsets[key]
	h.offsetsMu.Unlock()
	r, err := h.client.run(ctx, s.addr, data, off, d, report)
	if r != nil {
		h.offsetsMu.Lock()
		h.offsets[key] += r.Count
		h.offsetsMu.Unlock()
	}
	return r, err
}

// measure runs ghz against s for one round and takes the server's CPU
// time and allocations around it.
func (h *harness) measure(ctx context.Context, s *server, data string, round int) (roundResult, error) {
	if err := s.proc.exited(); err != nil {
		return roundResult{}, err
	}
	quiet := h.waitQuiet(ctx)
	o0, b0, g0, err := s.allocs(ctx)
	if err != nil {
		return roundResult{}, err
	}
	t0, err := cpuTicks(s.proc.pid())
	if err != nil {
		return roundResult{}, err
	}
	smp := h.startSampler(s.proc.pid())
	g, err := h.runClient(ctx, s, data, h.cfg.duration, filepath.Join(h.out, "ghz-report.json"))
	busy := smp.stop()
	if err != nil {
		return roundResult{}, fmt.Errorf("%s round %d: %w", s.name, round, err)
	}
	t1, err := cpuTicks(s.proc.pid())
	if err != nil {
		return roundResult{}, err
	}
	o1, b1, g1, err := s.allocs(ctx)
	if err != nil {
		return roundResult{}, err
	}
	n := float64(g.Count)
	cpu := ticksToDuration(t1 - t0)
	return roundResult{
		round: round, ghz: g, serverCPU: cpu,
		cpuPerReq:   float64(cpu.Microseconds()) / n,
		clientReq:   float64(g.clientCPU.Microseconds()) / n,
		allocsReq:   (o1 - o0) / n,
		bytesReq:    (b1 - b0) / n,
		gcs:         int(g1 - g0),
		serverShare: cpu.Seconds() / g.Total.Seconds(),
		quiet:       quiet,
		clientBusy:  busy.client, serverBusy: busy.server, steal: busy.steal,
	}, nil
}

// sampler reads the per-CPU counters of /proc/stat and the server's CPU
// time every 100 ms while ghz runs, and keeps the intervals in which the
// server was busy (ghz spends its first moments loading the call data):
// how busy the client's and the server's CPUs were under load tells
// whether the client or the server set the pace.
type sampler struct {
	stopc chan struct{}
	done  chan busyShare
}

type busyShare struct{ client, server, steal float64 }

type cpuCounters struct{ busy, total, steal int64 }

// readCPUs reads /proc/stat's counters for each of sets: "cpu" (the
// machine) or a taskset CPU list ("1", "0,1", "0-3"), summed over its CPUs.
func readCPUs(sets ...string) (map[string]cpuCounters, error) {
	members := map[string][]string{} // /proc/stat line → the sets it counts in
	for _, set := range slices.Compact(slices.Sorted(slices.Values(sets))) {
		lines := []string{"cpu"}
		if set != "cpu" {
			var err error
			if lines, err = cpuLines(set); err != nil {
				return nil, err
			}
		}
		for _, l := range lines {
			members[l] = append(members[l], set)
		}
	}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]cpuCounters{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 9 || len(members[fields[0]]) == 0 {
			continue
		}
		var v [8]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(fields[1+i], 10, 64)
		}
		// user nice system idle iowait irq softirq steal
		busy := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
		for _, set := range members[fields[0]] {
			c := out[set]
			c.busy += busy
			c.total += busy + v[3] + v[4]
			c.steal += v[7]
			out[set] = c
		}
	}
	return out, sc.Err()
}

// cpuLines are the /proc/stat lines of a taskset CPU list.
func cpuLines(list string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU or a range of CPUs", list, part)
		}
		for c := a; c <= b; c++ {
			out = append(out, "cpu"+strconv.Itoa(c))
		}
	}
	// A CPU named twice is one CPU.
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (h *harness) startSampler(pid int) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan busyShare, 1)}
	client, srv := h.cfg.clientCPU, h.cfg.serverCPU
	go func() {
		var sum struct{ cb, ct, sb, st, steal int64 }
		prev, _ := readCPUs(client, srv)
		prevTicks, _ := cpuTicks(pid)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stopc:
				var b busyShare
				if sum.ct > 0 && sum.st > 0 {
					b = busyShare{float64(sum.cb) / float64(sum.ct), float64(sum.sb) / float64(sum.st),
						float64(sum.steal) / float64(sum.ct+sum.st)}
				}
				s.done <- b
				return
			case <-tick.C:
			}
			cur, err := readCPUs(client, srv)
			ticks, err2 := cpuTicks(pid)
			if err != nil || err2 != nil {
				continue
			}
			// Loaded: the server used at least a fifth of its CPU.
			if ticks-prevTicks >= 2 {
				c, p := cur[client], prev[client]
				sv, sp := cur[srv], prev[srv]
				sum.cb += c.busy - p.busy
				sum.ct += c.total - p.total
				sum.sb += sv.busy - sp.busy
				sum.st += sv.total - sp.total
				sum.steal += c.steal - p.steal + sv.steal - sp.steal
			}
			prev, prevTicks = cur, ticks
		}
	}()
	return s
}

func (s *sampler) stop() busyShare {
	close(s.stopc)
	return <-s.done
}

// profileSummary is what the report shows of one profile.
type profileSummary struct {
	title, file, top string
}

// profileKeygate runs keygate alone on the hit scenario once more (not
// measured) and takes a CPU profile and an allocation profile of the same
// seconds from /debug/pprof.
func (h *harness) profileKeygate(ctx context.Context, ph phase, sc *scenario, kg *server) error {
	secs := int(h.cfg.profileTime.Seconds())
	h.logf("   profiling keygate for %ds (%s, %s)", secs, ph.name, sc.kind)
	type fetched struct {
		name string
		err  error
	}
	var wg sync.WaitGroup
	results := make(chan fetched, 2)
	base := strings.ReplaceAll(ph.name, " ", "-") + "-" + string(sc.kind)
	files := map[string]string{
		"cpu":    filepath.Join(h.out, "keygate-"+base+".cpu.pprof"),
		"allocs": filepath.Join(h.out, "keygate-"+base+".allocs.pprof"),
	}
	ghzDone := make(chan error, 1)
	go func() {
		_, err := h.runClient(ctx, kg, sc.file(0), h.cfg.profileTime+4*time.Second, filepath.Join(h.out, "ghz-profile.json"))
		ghzDone <- err
	}()
	// ghz needs a moment to start; the profiles then cover steady load.
	time.Sleep(2 * time.Second)
	for name, path := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			endpoint := "profile"
			if name == "allocs" {
				endpoint = "allocs"
			}
			code, body, err := httpGetFor(ctx, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", kg.admin, endpoint, secs), time.Duration(secs)*time.Second)
			if err == nil && code != 200 {
				err = fmt.Errorf("/debug/pprof/%s: %d %s", endpoint, code, body)
			}
			if err == nil {
				err = os.WriteFile(path, body, 0o644)
			}
			results <- fetched{name, err}
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil {
			return r.err
		}
	}
	if err := <-ghzDone; err != nil {
		return err
	}
	for _, p := range []struct {
		title, file string
		args        []string
	}{
		{"CPU, flat", files["cpu"], []string{"-top", "-nodecount=25"}},
		{"CPU, cumulative", files["cpu"], []string{"-top", "-cum", "-nodecount=40"}},
		{"allocated objects, flat", files["allocs"], []string{"-top", "-sample_index=alloc_objects", "-nodecount=20"}},
		{"allocated bytes, flat", files["allocs"], []string{"-top", "-sample_index=alloc_space", "-nodecount=15"}},
	} {
		out, err := exec.CommandContext(ctx, "go", append(append([]string{"tool", "pprof"}, p.args...), h.keygateBin, p.file)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof %s: %v\n%s", p.file, err, out)
		}
		h.profiles = append(h.profiles, profileSummary{title: fmt.Sprintf("%s, %s: %s", ph.name, sc.kind, p.title), file: p.file, top: string(out)})
	}
	return nil
}

// hitSecret is the secret of the hit scenario's key, for the report.
func hitSecret() string { return pgtest.SeedSecret(seedAccount, hitKey) }

// loadavg is the first three fields of /proc/loadavg: how busy the shared
// machine was.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// waitQuiet waits, up to -quiet-wait, until the machine's CPUs are mostly
// idle (other work on a shared machine is what makes rounds differ), and
// reports whether they were.
func (h *harness) waitQuiet(ctx context.Context) bool {
	deadline := time.Now().Add(h.cfg.quietWait)
	for {
		a, err := readCPUs("cpu")
		if err != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(300 * time.Millisecond):
		}
		b, err := readCPUs("cpu")
		if err != nil {
			return false
		}
		busy := float64(b["cpu"].busy-a["cpu"].busy) / float64(max(1, b["cpu"].total-a["cpu"].total))
		if busy <= h.cfg.quietBusy {
			return true
		}
		if time.Now().After(deadline) {
			h.logf("   the machine is busy (%.0f%% of all CPUs): measuring anyway", 100*busy)
			return false
		}
	}
}
