package yield

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// On one P, a goroutine waiting to run gets the CPU at each yield: a loop
// of 4n iterations with Every(i, n) lets it in four times at most and at
// least once.
func TestEveryLetsOthersRun(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 64
	var ran atomic.Int32
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				ran.Add(1)
				runtime.Gosched()
			}
		}
	}()
	runtime.Gosched() // the other goroutine starts
	before := ran.Load()
	for i := range 4 * n {
		Every(i, n)
	}
	got := ran.Load() - before
	close(stop)
	<-done
	if got < 1 || got > 4 {
		t.Errorf("the other goroutine ran %d times during 4 runs of %d", got, n)
	}
}
