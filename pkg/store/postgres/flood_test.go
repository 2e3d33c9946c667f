package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/cache"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
)

// TestFloodDoesNotDelayRevocation measures SPEC §10's target on two cache
// replicas over PostgreSQL: while account acct renames an app of 10,000
// keys 100 times as fast as it can, account other deactivates a key, and
// both replicas must deny it within a second of the commit.
func TestFloodDoesNotDelayRevocation(t *testing.T) {
	if testing.Short() {
		t.Skip("a flood of 10,000-key renames: not in -short")
	}
	e := newEnv(t)
	if _, err := e.store.CreateApp(e.ctx, e.actor, store.App{AccountID: "acct", ID: "big", Name: "big", Active: true}); err != nil {
		t.Fatal(err)
	}
	e.insertAppKeys("big", 10_000)
	if _, err := e.store.CreateAccount(e.ctx, e.actor, store.Account{ID: "other", Name: "Other"}); err != nil {
		t.Fatal(err)
	}
	const tries = 5
	victims := make([]store.Key, tries)
	for i := range victims {
		victims[i] = e.mustCreateKey(store.Key{Spec: authz.KeySpec{AccountID: "other", Name: fmt.Sprint("victim-", i),
			Type: authz.KeyTypeAccount, Hash: hashOf(fmt.Sprint("victim-", i)), Scope: authz.AccountAPIService, Active: true}})
	}
	start := time.Now()
	if keys, err := e.store.LookupKeysOfParent(e.ctx, "acct", store.ChangeApp, "big"); err != nil || len(keys) != 10_000 {
		t.Fatalf("LookupKeysOfParent: %d keys, %v", len(keys), err)
	}
	t.Logf("reading and compiling the app's 10,000 keys: %v", time.Since(start))
	replicas := []*cache.Cache{e.replica(), e.replica()}

	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 100 && ctx.Err() == nil; i++ {
			if _, err := e.store.UpdateApp(ctx, e.actor, "acct", "big", store.AppUpdate{Name: new(fmt.Sprint("big-", i))}); err != nil && ctx.Err() == nil {
				t.Errorf("rename %d: %v", i, err)
			}
		}
	})
	var took []time.Duration
	for i, v := range victims {
		time.Sleep(200 * time.Millisecond) // into the flood
		if _, err := e.store.UpdateKey(e.ctx, e.actor, "other", v.Spec.ID, store.KeyUpdate{Active: new(false)}); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		for _, c := range replicas {
			for {
				k, err := c.LookupKey(e.ctx, digestOf(fmt.Sprint("victim-", i)))
				if err == nil && !k.Spec.Active {
					break
				}
				if time.Since(committed) > 10*time.Second {
					t.Fatalf("revocation %d not applied after 10 s (%v, %v)", i, k, err)
				}
				time.Sleep(time.Millisecond)
			}
		}
		took = append(took, time.Since(committed))
	}
	cancel()
	wg.Wait()
	slices.Sort(took)
	t.Logf("revocation seen by both replicas during the flood: %v (max %v)", took, took[len(took)-1])
	if worst := took[len(took)-1]; worst > time.Second {
		t.Errorf("a revocation took %v to reach both replicas during the flood, want ≤ 1 s", worst)
	}
	for i, c := range replicas {
		st := c.Stats()
		t.Logf("replica %d: %d changes applied, lag %v, backlog %d", i, st.ChangesApplied, st.FeedLag, st.FeedBacklog)
	}
}

// replica is a warm cache on a pool of its own following the feed until
// the test ends.
func (e *env) replica() *cache.Cache {
	e.t.Helper()
	pool, err := pgxpool.New(e.ctx, e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(pool.Close)
	c, err := cache.New(postgres.New(e.ctx, pool, postgres.Options{Compile: reserved}), cache.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Warm(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done; c.Close() })
	return c
}
