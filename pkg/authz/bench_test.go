package authz_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// benchKey is a realistic key: a four-pattern scope, three IP filters, an
// expiry and a not-before.
func benchKey(b testing.TB) (*authz.Key, string) {
	secret := mustGenerate(b, apikey.KindService)
	spec := serviceKey(secret)
	spec.Scope = "email-api:query:* email-api:mutation:deleteEmail !email-api:query:secret* billing-api"
	spec.IPFilters = []string{"192.168.178.1/255.255.255.0", "2001:db8::/32", "10.0.0.0/8"}
	spec.NotBefore = t0.AddDate(-1, 0, 0)
	spec.ExpiresAt = t0.AddDate(1, 0, 0)
	return mustCompile(b, spec), secret
}

// BenchmarkEvaluate is rows 4 and 6–8 on a cache hit: expiry, key type, IP
// filters and scope. Target: <= 300 ns/op, 0 allocs/op.
func BenchmarkEvaluate(b *testing.B) {
	k, _ := benchKey(b)
	req := &authz.Request{ClientIP: netip.MustParseAddr("10.9.8.7")}
	b.ReportAllocs()
	for b.Loop() {
		if k.Status(t0) != authz.OK {
			b.Fatal("status")
		}
		if r, _ := k.Authorize(&emailRd, req); r != authz.OK {
			b.Fatal(r)
		}
	}
}

// BenchmarkEngineCheck is the whole decision with a map store: validate,
// hash, look up, evaluate.
func BenchmarkEngineCheck(b *testing.B) {
	k, secret := benchKey(b)
	e := &authz.Engine{Keys: &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}},
		Routes: &fakeRouter{target: emailRd}, Hasher: hasher, Counts: authz.NewUsageCounter(0)}
	req := &authz.Request{Key: secret, KeyCount: 1, ClientIP: netip.MustParseAddr("10.9.8.7")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Check(ctx, req); d.Reason != authz.OK {
			b.Fatal(d.Reason)
		}
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	k, _ := benchKey(t)
	req := &authz.Request{ClientIP: netip.MustParseAddr("2001:db8::1")}
	allocs := testing.AllocsPerRun(100, func() {
		_ = k.Status(t0)
		_, _ = k.Authorize(&emailRd, req)
	})
	if allocs != 0 {
		t.Fatalf("evaluation allocates %v times per check, want 0", allocs)
	}
}
