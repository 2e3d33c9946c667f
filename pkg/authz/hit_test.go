package authz_test

import (
	"context"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// hitStore is a fakeStore that says whether it answered from memory.
type hitStore struct {
	fakeStore
	hit bool
}

func (s *hitStore) LookupKeyHit(ctx context.Context, d apikey.Digest) (*authz.Key, bool, error) {
	k, err := s.LookupKey(ctx, d)
	return k, s.hit, err
}

func TestDecisionCacheHit(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	k := mustCompile(t, serviceKey(secret))
	keys := map[apikey.Digest]*authz.Key{k.Digest: k}
	cases := []struct {
		name   string
		store  authz.KeyStore
		secret string
		reason authz.Reason
		want   bool
	}{
		{"hit reporter, hit", &hitStore{fakeStore{keys: keys}, true}, secret, authz.OK, true},
		{"hit reporter, miss", &hitStore{fakeStore{keys: keys}, false}, secret, authz.OK, false},
		{"hit reporter, unknown key from memory", &hitStore{fakeStore{keys: keys}, true}, mustGenerate(t, apikey.KindService), authz.UnknownKey, true},
		{"plain store", &fakeStore{keys: keys}, secret, authz.OK, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &authz.Engine{Keys: tc.store, Routes: &fakeRouter{target: emailRd}, Hasher: hasher}
			d := e.Check(context.Background(), &authz.Request{Key: tc.secret, KeyCount: 1})
			if d.Reason != tc.reason || d.CacheHit != tc.want {
				t.Errorf("reason %v cache hit %v, want %v %v", d.Reason, d.CacheHit, tc.reason, tc.want)
			}
		})
	}
}
