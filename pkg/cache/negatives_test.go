package cache

import (
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
)

// TestNegativesBounded: negative answers past maxNegatives are not kept
// while the others live, and expired ones make room.
func TestNegativesBounded(t *testing.T) {
	var n negatives
	digest := func(i int) apikey.Digest {
		var d apikey.Digest
		d[0], d[1], d[2] = byte(i), byte(i>>8), byte(i>>16)
		return d
	}
	for i := range maxNegatives + 10 {
		d := digest(i)
		n.put(prefixOf(d), d, 100, 0)
	}
	if got := len(n.m); got != maxNegatives {
		t.Fatalf("%d negatives kept, want the bound %d", got, maxNegatives)
	}
	over := digest(maxNegatives + 5)
	if n.has(prefixOf(over), over, 1) {
		t.Fatal("a negative past the bound was kept")
	}
	if first := digest(0); !n.has(prefixOf(first), first, 1) || n.has(prefixOf(first), first, 100) {
		t.Fatal("a negative is not known until it expires, or known after")
	}
	// At 100 every entry has expired: the next one prunes them.
	n.put(prefixOf(over), over, 200, 100)
	if len(n.m) != 1 || !n.has(prefixOf(over), over, 150) {
		t.Fatalf("%d negatives after the expired ones were pruned, want 1", len(n.m))
	}
	other := over
	other[31] ^= 1 // same prefix, another digest
	if n.has(prefixOf(other), other, 150) {
		t.Fatal("a negative answered for another digest with its prefix")
	}
}
