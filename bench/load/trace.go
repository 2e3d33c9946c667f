package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// With -trace the harness takes an execution trace of keygate during an
// extra, unmeasured run of the first hit and round-robin scenarios, and
// reports what it says about the one CPU keygate runs on: how long the
// collector's background mark worker held it at a stretch. A worker in
// fractional or dedicated mode does not yield to requests: while it runs
// on the one P no request is served, so a stretch of 10 ms is 10 ms added
// to every request in flight, and with one P the round robin's p99 is
// made of these (docs/performance.md, "what the tail waits for"). A worker
// in idle mode runs only when nothing else can and yields as soon as
// something can, so its runs are counted apart: a long one means keygate
// had nothing to do (the client was the slow side), not that requests
// waited. The counts are steadier than the p99 itself and tell a change
// that shortens marking from the machine's noise.

// traceSummary is what one trace says about the collector.
type traceSummary struct {
	span time.Duration // the trace's length
	// markPhases and markWall are the concurrent mark phases that began
	// in the trace and the wall time they took (to the trace's end for
	// one still running).
	markPhases int
	markWall   time.Duration
	// workerRuns are the background mark workers' uninterrupted runs on a
	// CPU (from running to not running), longest last; holdingRuns those
	// in fractional or dedicated mode (requests wait), idleRuns those in
	// idle mode (nothing else was runnable), by the runtime's label of
	// the run.
	workerRuns, holdingRuns, idleRuns []time.Duration
	// unlabeledRuns are worker runs without a label (the runtime labels
	// a run as it starts in a mode): those already going when the trace
	// began, and a worker's wake-ups outside any mode, a few microseconds
	// each (parking again at once, or in gcMarkDone) — under -race, five
	// or more in a test's three collections.
	unlabeledRuns int
	// assists are the mark assists requests' goroutines paid, and
	// stopTheWorld the pauses.
	assists, stopTheWorld []time.Duration
	// otherRuns are the runs of other goroutines of otherRunMin or more,
	// by runKind of where each stopped: what else held the one CPU that
	// long. A run's wall time includes any time the kernel gave the CPU
	// to another process (PostgreSQL shares the machine).
	otherRuns map[string][]time.Duration
}

// otherRunMin is the shortest run of a goroutine other than the mark
// workers that the summary lists.
const otherRunMin = time.Millisecond

// runKind names what a goroutine was doing when its run ended, from its
// stack (innermost frame first): the database driver (a flush's writes),
// gRPC (serving requests: its workers run requests back to back), keygate
// (a background task, named by its outermost keygate frame), the runtime
// (its sweeper, scavenger, tracer: named by the outermost frame), or else
// the outermost frame. A run the runtime preempted may carry a stack cut
// short, named by an inner frame.
func runKind(st trace.Stack) string {
	var outer, outerKeygate string
	pgx, grpc := false, false
	for f := range st.Frames() {
		switch {
		case strings.HasPrefix(f.Func, "github.com/jackc/pgx/"):
			pgx = true
		case strings.HasPrefix(f.Func, "google.golang.org/grpc"):
			grpc = true
		case strings.HasPrefix(f.Func, "github.com/keygate/keygate/"):
			outerKeygate = strings.TrimPrefix(f.Func, "github.com/keygate/keygate/")
		}
		outer = f.Func
	}
	switch {
	case pgx:
		return "database driver (pgx)"
	case grpc:
		return "gRPC (requests)"
	case outerKeygate != "":
		return "keygate: " + outerKeygate
	case outer == "":
		return "no stack"
	}
	return outer
}

// summarizeTrace reads an execution trace (runtime/trace's format, as
// /debug/pprof/trace serves it).
func summarizeTrace(r io.Reader) (*traceSummary, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	var (
		s          = traceSummary{otherRuns: map[string][]time.Duration{}}
		first      trace.Time
		last       trace.Time
		worker     = map[trace.GoID]bool{}       // goroutines seen running gcBgMarkWorker
		running    = map[trace.GoID]trace.Time{} // since when each goroutine runs
		rangeStart = map[string]trace.Time{}     // open ranges by name and scope
		label      = map[trace.GoID]string{}     // each goroutine's latest label
	)
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if first == 0 {
			first = ev.Time()
		}
		last = ev.Time()
		switch ev.Kind() {
		case trace.EventLabel:
			// The runtime labels a mark worker's every run with its
			// mode: "GC (dedicated)", "GC (fractional)", "GC (idle)".
			if l := ev.Label(); l.Resource.Kind == trace.ResourceGoroutine {
				label[l.Resource.Goroutine()] = l.Label
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			id := st.Resource.Goroutine()
			if !worker[id] && isMarkWorker(st.Stack) {
				worker[id] = true
			}
			from, to := st.Goroutine()
			switch {
			case to == trace.GoRunning:
				running[id] = ev.Time()
				delete(label, id) // the run's own label follows

			case from == trace.GoRunning:
				if start, ok := running[id]; ok && worker[id] {
					d := time.Duration(ev.Time() - start)
					s.workerRuns = append(s.workerRuns, d)
					switch label[id] {
					case "GC (fractional)", "GC (dedicated)":
						s.holdingRuns = append(s.holdingRuns, d)
					case "GC (idle)":
						s.idleRuns = append(s.idleRuns, d)
					default:
						s.unlabeledRuns++
					}
				} else if ok && time.Duration(ev.Time()-start) >= otherRunMin {
					k := runKind(st.Stack)
					s.otherRuns[k] = append(s.otherRuns[k], time.Duration(ev.Time()-start))
				}
				delete(running, id)
			}
		case trace.EventRangeBegin, trace.EventRangeActive:
			rg := ev.Range()
			rangeStart[rg.Name+"\x00"+rg.Scope.String()] = ev.Time()
			if ev.Kind() == trace.EventRangeBegin && rg.Name == "GC concurrent mark phase" {
				s.markPhases++
			}
		case trace.EventRangeEnd:
			rg := ev.Range()
			key := rg.Name + "\x00" + rg.Scope.String()
			start, ok := rangeStart[key]
			if !ok {
				continue
			}
			delete(rangeStart, key)
			d := time.Duration(ev.Time() - start)
			switch {
			case rg.Name == "GC concurrent mark phase":
				s.markWall += d
			case rg.Name == "GC mark assist":
				s.assists = append(s.assists, d)
			case strings.HasPrefix(rg.Name, "stop-the-world"):
				s.stopTheWorld = append(s.stopTheWorld, d)
			}
		}
	}
	for key, start := range rangeStart {
		if strings.HasPrefix(key, "GC concurrent mark phase\x00") {
			s.markWall += time.Duration(last - start)
		}
	}
	s.span = time.Duration(last - first)
	slices.Sort(s.workerRuns)
	slices.Sort(s.holdingRuns)
	slices.Sort(s.idleRuns)
	slices.Sort(s.assists)
	slices.Sort(s.stopTheWorld)
	for _, ds := range s.otherRuns {
		slices.Sort(ds)
	}
	return &s, nil
}

// isMarkWorker reports whether a stack is a background mark worker's.
func isMarkWorker(st trace.Stack) bool {
	for f := range st.Frames() {
		if f.Func == "runtime.gcBgMarkWorker" {
			return true
		}
	}
	return false
}

// atLeast counts the durations of sorted ds that are d or longer.
func atLeast(ds []time.Duration, d time.Duration) int {
	i, _ := slices.BinarySearch(ds, d)
	return len(ds) - i
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// String is the summary as the report shows it.
func (s *traceSummary) String() string {
	secs := s.span.Seconds()
	if secs <= 0 {
		return "empty trace"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trace of %.1f s: %d mark phases, %.0f%% of the wall time in marking (%v)\n",
		secs, s.markPhases, 100*s.markWall.Seconds()/secs, s.markWall.Round(time.Millisecond))
	fmt.Fprintf(&b, "mark worker runs: %d, %.1f%% of the time; >= 1 ms: %d (%.1f/s), >= 5 ms: %d (%.1f/s), p99 %v, longest %v\n",
		len(s.workerRuns), 100*sum(s.workerRuns).Seconds()/secs,
		atLeast(s.workerRuns, time.Millisecond), float64(atLeast(s.workerRuns, time.Millisecond))/secs,
		atLeast(s.workerRuns, 5*time.Millisecond), float64(atLeast(s.workerRuns, 5*time.Millisecond))/secs,
		percentile(s.workerRuns, 0.99).Round(10*time.Microsecond), percentile(s.workerRuns, 1).Round(10*time.Microsecond))
	fmt.Fprintf(&b, "  of which fractional or dedicated (requests wait): %d; >= 1 ms: %d (%.1f/s), >= 5 ms: %d (%.1f/s), longest %v\n",
		len(s.holdingRuns), atLeast(s.holdingRuns, time.Millisecond), float64(atLeast(s.holdingRuns, time.Millisecond))/secs,
		atLeast(s.holdingRuns, 5*time.Millisecond), float64(atLeast(s.holdingRuns, 5*time.Millisecond))/secs,
		percentile(s.holdingRuns, 1).Round(10*time.Microsecond))
	fmt.Fprintf(&b, "  idle (nothing else to run; yields to requests): %d; >= 5 ms: %d, longest %v\n",
		len(s.idleRuns), atLeast(s.idleRuns, 5*time.Millisecond), percentile(s.idleRuns, 1).Round(10*time.Microsecond))
	fmt.Fprintf(&b, "mark assists: %d, %v in all, longest %v; stop-the-world pauses: %d, longest %v\n",
		len(s.assists), sum(s.assists).Round(10*time.Microsecond), percentile(s.assists, 1).Round(10*time.Microsecond),
		len(s.stopTheWorld), percentile(s.stopTheWorld, 1).Round(10*time.Microsecond))
	kinds := slices.Collect(maps.Keys(s.otherRuns))
	slices.SortFunc(kinds, func(a, b string) int {
		return cmp.Or(cmp.Compare(sum(s.otherRuns[b]), sum(s.otherRuns[a])), cmp.Compare(a, b))
	})
	fmt.Fprintf(&b, "other goroutines' runs >= %v (gRPC's are requests; the others hold the requests up):\n", otherRunMin)
	for _, k := range kinds {
		ds := s.otherRuns[k]
		fmt.Fprintf(&b, "  %s: %d (%.1f/s), %v in all, longest %v\n", k, len(ds), float64(len(ds))/secs,
			sum(ds).Round(10*time.Microsecond), percentile(ds, 1).Round(10*time.Microsecond))
	}
	return b.String()
}

// traceKeygate runs keygate alone on the scenario once more (not
// measured) and takes an execution trace of -trace-time from
// /debug/pprof/trace.
func (h *harness) traceKeygate(ctx context.Context, ph phase, sc *scenario, kg *server) error {
	secs := max(1, int(h.cfg.traceTime.Seconds()))
	h.logf("   tracing keygate for %ds (%s, %s)", secs, ph.name, sc.kind)
	path := filepath.Join(h.out, "keygate-"+strings.ReplaceAll(ph.name, " ", "-")+"-"+string(sc.kind)+".trace")
	clientDone := make(chan error, 1)
	go func() {
		_, err := h.runClient(ctx, kg, sc.file(0), time.Duration(secs+4)*time.Second, filepath.Join(h.out, "ghz-trace.json"))
		clientDone <- err
	}()
	// The client needs a moment to start; the trace then covers steady load.
	time.Sleep(2 * time.Second)
	code, body, err := httpGetFor(ctx, fmt.Sprintf("http://%s/debug/pprof/trace?seconds=%d", kg.admin, secs), time.Duration(secs)*time.Second)
	if err == nil && code != 200 {
		err = fmt.Errorf("/debug/pprof/trace: %d %s", code, body)
	}
	if cerr := <-clientDone; err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return err
	}
	summary, err := summarizeTrace(bytes.NewReader(body))
	if err == nil && summary.span <= 0 {
		err = errors.New("no events")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	h.traces = append(h.traces, traceResult{title: ph.name + ", " + string(sc.kind), file: path, summary: summary})
	return nil
}

// traceResult is one trace as the report shows it.
type traceResult struct {
	title, file string
	summary     *traceSummary
}
