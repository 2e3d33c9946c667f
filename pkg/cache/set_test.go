package cache

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// TestDigestSetAgainstAMap drives the set with random adds and removes
// (including duplicates and the two marker values) and compares it with a
// counting map after each step.
func TestDigestSetAgainstAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := newDigestSet()
	model := map[uint64]int{}
	total := 0
	// A small pool so that duplicates and removals of present values are
	// common; 0, 1, 2, 3 exercise the marker mapping.
	pool := []uint64{0, 1, 2, 3}
	for range 2000 {
		pool = append(pool, rng.Uint64())
	}
	var live []uint64
	for step := range 50_000 {
		p := pool[rng.IntN(len(pool))]
		if rng.IntN(3) > 0 || len(live) == 0 {
			s.add(p)
			model[p]++
			total++
			live = append(live, p)
		} else {
			i := rng.IntN(len(live))
			p = live[i]
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			s.remove(p)
			model[p]--
			total--
		}
		if s.len() != total {
			t.Fatalf("step %d: len %d, want %d", step, s.len(), total)
		}
		if step%1000 == 0 {
			for _, q := range pool {
				want := model[q] > 0
				// 0 and 2 share a slot value, as do 1 and 3: a false
				// positive for them is by design.
				if q < 4 {
					want = model[q&1]+model[q|2] > 0
				}
				if got := s.contains(q); got != want {
					t.Fatalf("step %d: contains(%#x) = %v, want %v", step, q, got, want)
				}
			}
		}
	}
	s.remove(12345) // absent: ignored
	if s.len() != total {
		t.Fatalf("removing an absent prefix changed len to %d", s.len())
	}
}

func TestDigestSetReplace(t *testing.T) {
	s := newDigestSet()
	s.add(7)
	s.replace([]uint64{1, 2, 3, 42})
	if s.contains(7) || !s.contains(42) || s.len() != 4 {
		t.Fatalf("after replace: contains(7)=%v contains(42)=%v len=%d", s.contains(7), s.contains(42), s.len())
	}
}

// TestDigestSetConcurrentReaders (run with -race): readers never miss a
// prefix that stays in the set while the writer churns through others and
// forces rebuilds.
func TestDigestSetConcurrentReaders(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := newDigestSet()
	stable := make([]uint64, 1000)
	for i := range stable {
		stable[i] = rng.Uint64()
	}
	s.replace(stable)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if p := stable[i%len(stable)]; !s.contains(p) {
					t.Errorf("stable prefix %#x missing", p)
					return
				}
			}
		})
	}
	var churn []uint64
	for range 30_000 {
		if len(churn) < 5000 {
			p := rng.Uint64()
			s.add(p)
			churn = append(churn, p)
		} else {
			for _, p := range churn {
				s.remove(p)
			}
			churn = churn[:0]
		}
	}
	close(stop)
	wg.Wait()
}

// TestDigestSetMemory measures the heap the set takes for 1,000,000
// digests (reported with -v), against a plain Go map for comparison.
func TestDigestSetMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a measurement: allocates ~30 MB, meaningless under -race")
	}
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(5, 6))
	ps := make([]uint64, n)
	for i := range ps {
		ps[i] = rng.Uint64()
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}

	before := heap()
	s := newDigestSet()
	s.replace(ps)
	built := heap()
	for i := range n / 10 { // 10% churn, enough to force a rebuild
		s.remove(ps[i])
		s.add(rng.Uint64())
	}
	churned := heap()
	runtime.KeepAlive(s)

	before2 := heap()
	m := make(map[uint64]struct{})
	for _, p := range ps {
		m[p] = struct{}{}
	}
	withMap := heap()
	runtime.KeepAlive(m)

	perKey := func(a, b uint64) float64 { return float64(int64(b)-int64(a)) / n }
	t.Logf("digest set: %.1f B/digest built, %.1f B/digest after 10%% churn; map[uint64]struct{}: %.1f B/digest",
		perKey(before, built), perKey(before, churned), perKey(before2, withMap))
	if got := perKey(before, built); got > 16 {
		t.Errorf("%.1f bytes per digest, want at most 16", got)
	}
}
