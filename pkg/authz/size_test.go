package authz_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// largestSpec is a service key of the largest shape the Account API
// allows (SPEC §10, §9): a 4 KiB scope of 200 patterns, a 200-byte name,
// a 2,000-byte description, 100 IP filters, 20 response headers of 1 KiB.
func largestSpec(secret string) authz.KeySpec {
	s := serviceKey(secret)
	s.Name = strings.Repeat("n", 200)
	s.Description = strings.Repeat("d", 2000)
	patterns := make([]string, 200)
	for i := range patterns {
		patterns[i] = fmt.Sprintf("s%03d:query:o%07d", i, i) // 19 bytes and a space
	}
	s.Scope = strings.Join(patterns, " ")
	for i := range 100 {
		s.IPFilters = append(s.IPFilters, fmt.Sprintf("2001:db8:%x::/48", i))
	}
	for i := range authz.MaxResponseHeaders {
		s.ResponseHeaders = append(s.ResponseHeaders, authz.HeaderSpec{
			Name: fmt.Sprintf("x-h%02d-%s", i, strings.Repeat("a", 58)), Value: strings.Repeat("v", authz.MaxHeaderValueLen)})
	}
	return s
}

// TestSizeCountsWhatTheRecordHolds: Size is fixed at compile, grows with
// the content (scope, headers, filters), not the texts compiled away, and
// for the largest shape is between its raw bytes and five times them
// (the figure the cache charges, logged for the operator notes).
func TestSizeCountsWhatTheRecordHolds(t *testing.T) {
	small := mustCompile(t, serviceKey(mustGenerate(t, apikey.KindService)))
	spec := largestSpec(mustGenerate(t, apikey.KindService))
	if len(spec.Scope) > 4096 {
		t.Fatalf("scope is %d bytes, more than allowed", len(spec.Scope))
	}
	large := mustCompile(t, spec)
	raw := int64(len(spec.Scope) + len(spec.Name) + len(spec.Description) + 20*(64+1024) + 100*16)
	if s := large.Size(); s < raw || s > 5*raw {
		t.Errorf("largest shape: Size %d, want between %d and %d", s, raw, 5*raw)
	}
	if small.Size() >= large.Size()/20 {
		t.Errorf("small key Size %d, large %d: want the small one far smaller", small.Size(), large.Size())
	}
	// The record keeps no description (nor hash or filter texts): a longer
	// one costs nothing.
	spec.Description += strings.Repeat("d", 1000)
	if longer := mustCompile(t, spec); longer.Size() != large.Size() {
		t.Errorf("a longer description: Size %d → %d, want the same (the record keeps none)", large.Size(), longer.Size())
	}
	t.Logf("Size: small service key %d bytes; largest shape %d bytes (as the cache holds it)", small.Size(), large.Size())
}

// TestUnloadableIsDeniedStoreUnavailable: the record of a stored key that
// does not compile keeps its digests and ids, is denied store_unavailable
// by Check and Evaluate, and says which fields failed, never their values.
func TestUnloadableIsDeniedStoreUnavailable(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	spec := serviceKey(secret)
	spec.Scope, spec.IPFilters = "a:b:c:d", []string{"10.0.0.0/33"}
	_, cause := authz.Compile(spec, authz.CompileOptions{})
	if cause == nil {
		t.Fatal("bad spec compiled")
	}
	k, err := authz.Unloadable(spec, fmt.Errorf("wrapped: %w", cause))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.Unloadable(), "does not compile: ip_filters, scope"; got != want {
		t.Errorf("Unloadable() = %q, want %q", got, want)
	}
	if k.Spec.ID != spec.ID || k.Spec.AccountID != spec.AccountID || k.Spec.Scope != "" || k.Size() <= 0 {
		t.Errorf("record %+v (size %d): want ids only", k.Spec, k.Size())
	}
	e := &authz.Engine{Keys: &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}},
		Routes: &fakeRouter{target: emailRd}, Hasher: hasher}
	d := e.Check(t.Context(), &authz.Request{Key: secret, KeyCount: 1})
	if d.Reason != authz.StoreUnavailable || !errors.Is(d.Err, authz.ErrKeyUnloadable) {
		t.Errorf("Check: %s (%v), want store_unavailable", d.Reason, d.Err)
	}
	if d := e.Evaluate(t.Context(), k, &authz.Request{}, t0); d.Reason != authz.StoreUnavailable {
		t.Errorf("Evaluate: %s, want store_unavailable", d.Reason)
	}
	spec.Hash = "plain-secret-pasted-here"
	if _, err := authz.Unloadable(spec, cause); err == nil || strings.Contains(err.Error(), spec.Hash) {
		t.Errorf("Unloadable with a bad hash: %v; want an error without the hash", err)
	}
	if got := authz.BlamedFields(errors.New("panic")); got != "unknown fields" {
		t.Errorf("BlamedFields(no field) = %q", got)
	}
}
