package pgtest

import (
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
)

// TestSeedSecretsAreNotWeak: seeded keys answer to secrets keygate takes
// for a fleet's own, so that measuring them measures no warning per key.
func TestSeedSecretsAreNotWeak(t *testing.T) {
	for _, acc := range []string{"a", "acct", "bench"} {
		for _, i := range []int{0, 7, 123456789} {
			if s := SeedSecret(acc, i); apikey.WeakCustomSecret(s) {
				t.Errorf("SeedSecret(%q, %d) = %q is a weak custom secret", acc, i, s)
			}
		}
	}
}
