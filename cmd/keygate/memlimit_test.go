package main

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// TestMemoryLimitFromContainer: with a container limit of 1 GiB and the
// default ratio, GOMEMLIMIT becomes 90% of it; a ratio of 0 leaves it
// alone; a ratio outside [0, 1] is refused.
func TestMemoryLimitFromContainer(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("AUTOMEMLIMIT", "") // restored after the test…
	os.Unsetenv("AUTOMEMLIMIT")  // …and unset during it: empty is not a ratio
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	f := memoryFlags{MemoryLimitRatio: 0.9, GCPercent: 100, provider: memlimit.Limit(1 << 30)}
	f.apply(ctx, log)
	if got, want := debug.SetMemoryLimit(-1), int64(966367641); got != want {
		t.Errorf("GOMEMLIMIT %d, want %d", got, want)
	}
	if !strings.Contains(logs.String(), "gomemlimit_mib=921") {
		t.Errorf("log does not say the limit:\n%s", logs.String())
	}

	debug.SetMemoryLimit(math.MaxInt64)
	(&memoryFlags{MemoryLimitRatio: 0, GCPercent: 100, provider: memlimit.Limit(1 << 30)}).apply(ctx, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("ratio 0 set GOMEMLIMIT %d", got)
	}
	for _, r := range []float64{-0.1, 1.5, math.NaN()} {
		if err := (&memoryFlags{MemoryLimitRatio: r, GCPercent: 100}).validate(); err == nil {
			t.Errorf("ratio %v accepted", r)
		}
	}
}

func TestCacheMaxBytes(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		name        string
		flag, limit int64
		want        int64
	}{
		{"given", 100 << 20, 8 << 30, 100 << 20},
		{"no limit", 0, math.MaxInt64, 256 << 20},
		{"the shipped container (1 GiB, ratio 0.9)", 0, 966367641, 368 << 20},
		{"a small limit keeps the floor", 0, 300 << 20, 256 << 20},
		{"8 GiB", 0, 8 << 30, 3276 << 20},
	} {
		if got := cacheMaxBytes(tt.flag, tt.limit, log); got>>20 != tt.want>>20 {
			t.Errorf("%s: %d MiB, want %d MiB", tt.name, got>>20, tt.want>>20)
		}
	}
}

// TestGCPercent: serve sets the collector's percent from --gc-percent
// unless GOGC is set, which wins; values outside 1–10000 (other than -1)
// are refused, naming the flag.
func TestGCPercent(t *testing.T) {
	t.Setenv("GOGC", "") // restored after the test…
	os.Unsetenv("GOGC")  // …and unset during it
	t.Setenv("GOMEMLIMIT", "1GiB")
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	current := func() int {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()

	(&memoryFlags{GCPercent: 75}).apply(ctx, log)
	if got := current(); got != 75 {
		t.Errorf("GOGC %d after --gc-percent 75", got)
	}
	if !strings.Contains(logs.String(), "gc_percent=75") {
		t.Errorf("log does not say the percent:\n%s", logs.String())
	}

	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150) // as the runtime read it at start
	(&memoryFlags{GCPercent: 75}).apply(ctx, log)
	if got := current(); got != 150 {
		t.Errorf("GOGC %d, want the environment's 150", got)
	}
	if !strings.Contains(logs.String(), "gogc=150") {
		t.Errorf("log does not say GOGC won:\n%s", logs.String())
	}

	for _, p := range []int{0, -2, 10001} {
		err := (&memoryFlags{MemoryLimitRatio: 0.9, GCPercent: p}).validate()
		if err == nil || !strings.Contains(err.Error(), "gc-percent") {
			t.Errorf("--gc-percent %d: %v", p, err)
		}
	}
	for _, p := range []int{-1, 1, 75, 10000} {
		if err := (&memoryFlags{MemoryLimitRatio: 0.9, GCPercent: p}).validate(); err != nil {
			t.Errorf("--gc-percent %d refused: %v", p, err)
		}
	}
}
