package main

import (
	"bytes"
	"runtime"
	"runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"
)

// goTrace is an execution trace of this process while it collects a
// heap of many small pointer-holding objects a few times: a real trace,
// as /debug/pprof/trace serves keygate's, with mark phases, mark worker
// runs and stop-the-world pauses in it.
func goTrace(t testing.TB) []byte {
	t.Helper()
	type node struct {
		next *node
		name string
	}
	var head *node
	for i := range 200_000 {
		head = &node{next: head, name: strconv.Itoa(i)}
	}
	runtime.GC() // none in progress when the trace starts
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("an execution trace is already running: %v", err)
	}
	// First a goroutine that holds its CPU for 5 ms (before the
	// collections, whose pauses would cut its run short; sysmon preempts
	// at 10 ms), then the collections.
	spun, done := make(chan struct{}), make(chan struct{})
	go spin(5*time.Millisecond, spun, done)
	<-spun
	for range 3 {
		runtime.GC()
	}
	trace.Stop()
	close(done)
	runtime.KeepAlive(head)
	return buf.Bytes()
}

// spin holds a CPU for d in one run, as a background task that does not
// yield would, then says so and waits for done.
//
//go:noinline
func spin(d time.Duration, spun, done chan struct{}) {
	for start := time.Now(); time.Since(start) < d; {
	}
	spun <- struct{}{}
	<-done
}

func TestSummarizeTraceSeesTheCollector(t *testing.T) {
	s, err := summarizeTrace(bytes.NewReader(goTrace(t)))
	if err != nil {
		t.Fatal(err)
	}
	if s.markPhases < 3 {
		t.Errorf("mark phases: %d, want at least the 3 collections run", s.markPhases)
	}
	if s.markWall <= 0 || s.markWall > s.span {
		t.Errorf("mark wall time %v, trace %v", s.markWall, s.span)
	}
	if len(s.workerRuns) == 0 || s.workerRuns[len(s.workerRuns)-1] <= 0 {
		t.Errorf("no mark worker runs: %v", s.workerRuns)
	}
	// Every run is counted once: in its mode's kind, or unlabeled (one
	// already going when the trace began, or a wake-up of a few
	// microseconds outside any mode: their number varies, 5 of 20 runs
	// in some -race runs); the collections' marking is labelled.
	if n := len(s.holdingRuns) + len(s.idleRuns) + s.unlabeledRuns; n != len(s.workerRuns) || len(s.holdingRuns) == 0 {
		t.Errorf("%d worker runs, %d holding, %d idle and %d unlabeled", len(s.workerRuns), len(s.holdingRuns), len(s.idleRuns), s.unlabeledRuns)
	}
	if len(s.stopTheWorld) < 3 {
		t.Errorf("stop-the-world pauses: %d, want at least one per collection", len(s.stopTheWorld))
	}
	// The goroutine that spun for 5 ms is listed, by its outermost frame
	// when its run ended where it blocked (a run the runtime cut short
	// has the stack it was cut at), and no mark worker's run is counted
	// with the others.
	var others time.Duration
	for _, runs := range s.otherRuns {
		others += sum(runs)
	}
	if others < 3*time.Millisecond {
		t.Errorf("the 5 ms spin: %v", s.otherRuns)
	}
	if _, ok := s.otherRuns["runtime.gcBgMarkWorker"]; ok {
		t.Errorf("mark worker runs counted as others: %v", s.otherRuns)
	}
	out := s.String()
	for _, want := range []string{"mark phases", "mark worker runs", "longest", "fractional or dedicated", "idle", "other goroutines' runs"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestSummarizeTraceRefusesWhatIsNotATrace(t *testing.T) {
	for _, in := range []string{"", "not a trace", "go 1.19 trace\x00\x00\x00"} {
		if _, err := summarizeTrace(strings.NewReader(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	// A header and nothing else is a trace of nothing: traceKeygate
	// refuses it, the summary says so.
	s, err := summarizeTrace(strings.NewReader("go 1.26 trace\x00\x00\x00"))
	if err != nil || s.span != 0 || s.String() != "empty trace" {
		t.Errorf("header alone: %v, %+v", err, s)
	}
}

func TestRunStatistics(t *testing.T) {
	ms := time.Millisecond
	ds := []time.Duration{ms / 2, ms, 2 * ms, 5 * ms, 12 * ms}
	for _, c := range []struct {
		d    time.Duration
		want int
	}{{0, 5}, {ms, 4}, {3 * ms, 2}, {5 * ms, 2}, {13 * ms, 0}} {
		if got := atLeast(ds, c.d); got != c.want {
			t.Errorf("atLeast(%v) = %d, want %d", c.d, got, c.want)
		}
	}
	if got := percentile(ds, 1); got != 12*ms {
		t.Errorf("longest: %v", got)
	}
	if got := percentile(ds, 0.5); got != 2*ms {
		t.Errorf("median: %v", got)
	}
	if got := percentile(nil, 0.99); got != 0 {
		t.Errorf("percentile of nothing: %v", got)
	}
	if got := (&traceSummary{}).String(); got != "empty trace" {
		t.Errorf("empty summary: %q", got)
	}
}

// FuzzSummarizeTrace: whatever the bytes, a summary or an error, never a
// panic (the parser is golang.org/x/exp/trace's; what is fuzzed is that
// the summary survives what it yields).
func FuzzSummarizeTrace(f *testing.F) {
	tr := goTrace(f)
	f.Add(tr[:min(len(tr), 4096)])
	f.Add([]byte("go 1.26 trace\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := summarizeTrace(bytes.NewReader(b)); err == nil {
			_ = s.String()
		}
	})
}
