package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryFlags set the Go runtime's soft memory limit (GOMEMLIMIT) from the
// container's: a replica under a cgroup memory limit then collects harder
// as it nears the limit instead of being killed by the kernel, and runs
// paced by its GOGC (--gc-percent) well below it (docs/performance.md,
// "Collector settings").
type memoryFlags struct {
	MemoryLimitRatio float64 `name:"memory-limit-ratio" env:"KEYGATE_MEMORY_LIMIT_RATIO" default:"0.9" help:"Set GOMEMLIMIT to this share of the container's (cgroup) memory limit, re-read every minute; 0 turns it off. An explicit GOMEMLIMIT wins; without a cgroup limit nothing is set."`
	// GCPercent is below Go's default of 100: with 100 the heap peaks at
	// twice the live heap between collections, and the resident memory a
	// load leaves (pages the runtime keeps for the next peak, the
	// runtime's own) landed at 1.8–2.3x the live heap; at 75 the measured
	// round robin left 1.8x for a few percent more collector CPU
	// (docs/performance.md, "Collector settings").
	GCPercent int `name:"gc-percent" env:"KEYGATE_GC_PERCENT" default:"75" help:"The collector's GOGC: how far (in percent) the heap may grow past what the last collection found live before the next. Lower keeps resident memory closer to the live heap for more collector CPU; higher the reverse. -1 turns collection off until the memory limit. An explicit GOGC wins."`

	// provider is where the limit comes from; nil is the cgroup's (tests
	// give a fixed one).
	provider memlimit.Provider
}

func (f *memoryFlags) validate() error {
	if f.MemoryLimitRatio < 0 || f.MemoryLimitRatio > 1 || math.IsNaN(f.MemoryLimitRatio) {
		return fmt.Errorf("memory-limit-ratio: %v must be from 0 (off) to 1", f.MemoryLimitRatio)
	}
	if f.GCPercent != -1 && (f.GCPercent < 1 || f.GCPercent > 10000) {
		return fmt.Errorf("gc-percent: %d must be from 1 to 10000, or -1 (collect only at the memory limit)", f.GCPercent)
	}
	return nil
}

// apply sets the collector's percent and the memory limit and logs what
// was decided. It never stops serve: a limit it cannot read is only a
// warning.
func (f *memoryFlags) apply(ctx context.Context, log *slog.Logger) {
	if gogc := os.Getenv("GOGC"); gogc != "" {
		log.Info("collector percent from GOGC", "gogc", gogc)
	} else {
		debug.SetGCPercent(f.GCPercent)
		log.Info("collector percent set", "gc_percent", f.GCPercent)
	}
	switch {
	case os.Getenv("GOMEMLIMIT") != "":
		log.Info("memory limit from GOMEMLIMIT", "gomemlimit", os.Getenv("GOMEMLIMIT"))
		return
	case f.MemoryLimitRatio == 0:
		log.Info("memory limit off (--memory-limit-ratio 0)")
		return
	}
	provider := f.provider
	if provider == nil {
		provider = memlimit.FromCgroup
	}
	limit, err := memlimit.Set(memlimit.WithRatio(f.MemoryLimitRatio), memlimit.WithProvider(provider),
		memlimit.WithRefreshInterval(ctx, time.Minute), memlimit.WithLogger(log))
	switch {
	case err != nil:
		log.Info("no container memory limit found; GOMEMLIMIT not set", "reason", err.Error())
	case limit == math.MaxInt64:
		log.Info("no container memory limit; GOMEMLIMIT not set")
	default:
		log.Info("memory limit set from the container's", "gomemlimit_mib", limit>>20, "ratio", f.MemoryLimitRatio)
	}
}

// Bounds of the cache's byte bound by default (--cache-max-bytes 0): a
// share of the memory limit, never less than the fixed bound it replaced.
const (
	minCacheBytes   = 256 << 20
	cacheLimitShare = 0.4
)

// cacheMaxBytes is the cache's byte bound: the flag's value when given,
// else 40% of the Go memory limit (limit; math.MaxInt64 when there is
// none), at least 256 MiB. The rest of the limit is the digest set, the
// Account API's answers, gRPC's buffers and the collector's headroom: a
// replica of the shipped 1 GiB container (GOMEMLIMIT 0.9 GiB) gets 368 MiB,
// about 140,000 keys of the usual shape (160,000 of the smallest).
func cacheMaxBytes(flag, limit int64, log *slog.Logger) int64 {
	if flag != 0 {
		return flag // a negative one is refused by the cache, naming it
	}
	n := int64(minCacheBytes)
	if limit > 0 && limit < math.MaxInt64 {
		n = max(n, int64(float64(limit)*cacheLimitShare))
	}
	log.Info("cache byte bound", "cache_max_bytes_mib", n>>20, "from_memory_limit", limit > 0 && limit < math.MaxInt64)
	return n
}
