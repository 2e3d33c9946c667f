//go:build race

package cache

// The race detector makes sync.Pool drop items at random (ristretto pools
// its read buffers), so allocation counts mean nothing there.
const raceEnabled = true
