// Package yield lets a long loop that runs beside the requests give the
// CPU up now and then. A replica often has one CPU, and Go preempts a
// goroutine that runs on only after 10 ms: a background loop over 100,000
// keys (a usage flush, a drain, a last-used batch) that never yields holds
// every request in flight that long (docs/performance.md). A yield with
// nothing else to run costs about 100 ns.
package yield

import "runtime"

// Every yields the CPU when i is the last index of a run of n, n a power
// of two: once every n iterations of a loop counting i from 0.
func Every(i, n int) {
	if i&(n-1) == n-1 {
		runtime.Gosched()
	}
}
