//go:build race

package extauthz_test

// The race detector makes sync.Pool drop items at random, so pooled code
// allocates under -race and its allocation counts mean nothing there.
const raceEnabled = true
