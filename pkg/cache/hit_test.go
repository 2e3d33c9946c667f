package cache

import (
	"context"
	"errors"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

// TestLookupKeyHit checks what the cache reports to the engine (and so to
// the Check span): answered from memory, or by the store.
func TestLookupKeyHit(t *testing.T) {
	ctx := context.Background()
	k1, k2 := newKey(t, "k1", "s1"), newKey(t, "k2", "s2")
	src := newFakeSource(k1, k2)
	c := warmCache(t, src, Options{})
	c.Wait()
	src.forget("k2")
	evict(c, k2.Digest) // in the set, gone from memory and the store

	cases := []struct {
		name    string
		secret  string
		wantKey *authz.Key
		wantHit bool
		wantErr error
	}{
		{"record in memory", "s1", k1, true, nil},
		{"not in the key set", "unknown", nil, true, authz.ErrKeyNotFound},
		{"miss: asks the store", "s2", nil, false, authz.ErrKeyNotFound},
		{"negative entry", "s2", nil, true, authz.ErrKeyNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, hit, err := c.LookupKeyHit(ctx, digestOf(tc.secret))
			if k != tc.wantKey || hit != tc.wantHit || !errors.Is(err, tc.wantErr) {
				t.Errorf("got %v, hit %v, %v; want %v, hit %v, %v", k, hit, err, tc.wantKey, tc.wantHit, tc.wantErr)
			}
			c.Wait()
		})
	}
	if _, hit, err := newCache(t, src, Options{}).LookupKeyHit(ctx, digestOf("s1")); hit || !errors.Is(err, ErrNotWarm) {
		t.Errorf("cold cache: hit %v, %v", hit, err)
	}

	var e authz.Engine
	e.Keys = c
	if _, ok := e.Keys.(authz.HitReporter); !ok {
		t.Error("the cache is not an authz.HitReporter")
	}
	if !raceEnabled {
		d := digestOf("s1")
		if n := testing.AllocsPerRun(1000, func() { _, _, _ = c.LookupKeyHit(ctx, d) }); n != 0 {
			t.Errorf("LookupKeyHit on a hit: %v allocs/op, want 0", n)
		}
	}
}
