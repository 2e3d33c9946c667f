package postgres_test

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// TestTouchKeysManyStatements: a minute's last-used times for more keys
// than one statement carries (usageBatch, 5,000) are all written, by two
// replicas at once touching the same keys in their maps' own orders
// (each statement locks its rows in its ORDER BY's order and commits
// alone, so neither waits for the other forever), and the later time wins
// for every key.
func TestTouchKeysManyStatements(t *testing.T) {
	e := newEnv(t)
	const n = 12_001
	if err := pgtest.SeedKeys(e.ctx, e.pool, "acct", n); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	batch := func(at time.Time) map[store.KeyRef]time.Time {
		m := map[store.KeyRef]time.Time{{AccountID: "acct", ID: "ghost"}: at}
		for i := range n {
			m[store.KeyRef{AccountID: "acct", ID: pgtest.SeedKeyID("acct", i)}] = at
		}
		return m
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for r := range 2 {
		wg.Go(func() { errs[r] = e.store.TouchKeys(e.ctx, batch(t0.Add(time.Duration(r)*time.Minute))) })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", r, err)
		}
	}
	if got := e.count(`SELECT count(*) FROM key_usage WHERE account_id = 'acct' AND last_used_at = $1`, t0.Add(time.Minute)); got != n {
		t.Fatalf("%d of %d keys at the later time (%d rows in all)", got, n, e.count(`SELECT count(*) FROM key_usage`))
	}
	// An older batch, again over several statements, changes nothing.
	if err := e.store.TouchKeys(e.ctx, batch(t0)); err != nil {
		t.Fatal(err)
	}
	if got := e.count(`SELECT count(*) FROM key_usage WHERE last_used_at = $1`, t0.Add(time.Minute)); got != n {
		t.Fatalf("after an older batch: %d of %d keys at the later time", got, n)
	}
}
