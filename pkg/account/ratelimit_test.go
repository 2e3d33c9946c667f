package account_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/authz"
)

// TestRateLimits: each account key has its own buckets per kind, a burst
// of twice the rate, refilled with time; past them a call is
// ResourceExhausted with how long to wait (SPEC §10).
func TestRateLimits(t *testing.T) {
	s := accounttest.Start(t)
	svc := account.NewService(s.Store, s.Engine, s.Hasher, account.Options{
		Compile: accounttest.CompileOptions, Now: s.Clock.Now, Logger: slog.New(slog.DiscardHandler),
		RateLimits: account.RateLimits{MutationsPerSecond: 2, ReadsPerSecond: 5},
	})
	other := s.AddKey(t, authz.KeySpec{ID: "second", Name: "second", Type: authz.KeyTypeAccount, AccountID: s.AccountID, Active: true})
	ctx := context.Background()
	create, _ := account.OperationNamed("createApp")
	list, _ := account.OperationNamed("apps")
	call := func(key string, op account.Operation) error {
		_, err := svc.Authenticate(ctx, account.Credentials{Keys: []string{key}}, op)
		return err
	}
	for i := range 4 { // burst: twice 2 per second
		if err := call(s.RootKey, create); err != nil {
			t.Fatalf("mutation %d within the burst: %v", i, err)
		}
	}
	err := call(s.RootKey, create)
	var e *account.Error
	if !errors.As(err, &e) || e.Code != account.ResourceExhausted || e.RetryAfter <= 0 || e.RetryAfter > time.Second {
		t.Fatalf("fifth mutation: %v (%#v), want ResourceExhausted with a retry-after up to 1s", err, e)
	}
	// Reads have their own bucket, and so has every other key.
	if err := call(s.RootKey, list); err != nil {
		t.Fatalf("a read after the mutations ran out: %v", err)
	}
	if err := call(other, create); err != nil {
		t.Fatalf("another key's mutation: %v", err)
	}
	// Half a second later the bucket holds one more call.
	s.Clock.Add(e.RetryAfter)
	if err := call(s.RootKey, create); err != nil {
		t.Fatalf("after the retry-after: %v", err)
	}
	if err := call(s.RootKey, create); err == nil {
		t.Fatal("a second mutation right after the refill was allowed")
	}
	// A refused key is not charged: failed authentication never reaches a bucket.
	for range 10 {
		if err := call("kg_aak_nope", create); err == nil {
			t.Fatal("an unknown key was accepted")
		}
	}
}
