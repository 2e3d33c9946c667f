package usage_test

import (
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// stallProbe measures what a flush does to the requests served beside
// it: on one P (a replica in a one-CPU container), a goroutine that
// wakes every probeTick stands for a request arriving, and how late it
// runs is how long a request would wait behind the flush's CPU work.
// Go preempts a goroutine that runs on after 10 ms, so a flush that never
// yields delays requests by up to that much each time.
type stallProbe struct {
	stop  chan struct{}
	done  sync.WaitGroup
	lates []time.Duration
}

const probeTick = 200 * time.Microsecond

func startStallProbe() *stallProbe {
	p := &stallProbe{stop: make(chan struct{})}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			t := time.Now()
			time.Sleep(probeTick)
			p.lates = append(p.lates, time.Since(t)-probeTick)
		}
	}()
	return p
}

// end stops the probe and returns its lateness at the 99th percentile and
// its largest.
func (p *stallProbe) end() (p99, largest time.Duration) {
	close(p.stop)
	p.done.Wait()
	if len(p.lates) == 0 {
		return 0, 0
	}
	slices.Sort(p.lates)
	return p.lates[len(p.lates)*99/100], p.lates[len(p.lates)-1]
}

// measureStall runs step after prepare b.N times on one P with the probe
// beside it, reporting the probe's lateness (the worst run's).
func measureStall(b *testing.B, prepare func(), step func() error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var worst99, worst time.Duration
	for b.Loop() {
		b.StopTimer()
		prepare()
		b.StartTimer()
		p := startStallProbe()
		err := step()
		p99, largest := p.end()
		if err != nil {
			b.Fatal(err)
		}
		worst99, worst = max(worst99, p99), max(worst, largest)
	}
	b.ReportMetric(float64(worst99.Microseconds())/1000, "stall-p99-ms")
	b.ReportMetric(float64(worst.Microseconds())/1000, "stall-max-ms")
}
