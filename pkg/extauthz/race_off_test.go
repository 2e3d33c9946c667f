//go:build !race

package extauthz_test

const raceEnabled = false
