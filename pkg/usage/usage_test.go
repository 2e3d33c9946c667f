package usage_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/usage"
)

// fakeWriter sums what it is given, or fails while down.
type fakeWriter struct {
	mu      sync.Mutex
	down    bool
	rows    map[store.UsageRow]int64
	dropped []time.Time
	ensured int
	// ensureFails fails that many EnsureUsagePartitions calls first.
	ensureFails int
	// reconciled are the times ReconcileUsageRollup was called with and
	// succeeded; reconcileFails fails that many calls first.
	reconciled     []time.Time
	reconcileFails int
}

func (w *fakeWriter) ReconcileUsageRollup(_ context.Context, now time.Time) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reconcileFails > 0 {
		w.reconcileFails--
		return 0, errors.New("database down")
	}
	w.reconciled = append(w.reconciled, now)
	return 1, nil
}

func (w *fakeWriter) AddUsage(_ context.Context, d map[store.UsageRow]int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.down {
		return errors.New("database down")
	}
	for r, n := range d {
		w.rows[r] += n
	}
	return nil
}

func (w *fakeWriter) DropUsageBefore(_ context.Context, before time.Time) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropped = append(w.dropped, before)
	return 0, nil
}

func (w *fakeWriter) EnsureUsagePartitions(context.Context, time.Time, int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ensureFails > 0 {
		w.ensureFails--
		return errors.New("no schema yet")
	}
	w.ensured++
	return nil
}

var (
	t0     = time.Date(2026, 6, 1, 12, 30, 0, 0, time.UTC)
	hour0  = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	hasher = apikey.NewHasher(nil)
	read   = authz.Target{Service: "email-api", Operation: "listEmails"}
	send   = authz.Target{Service: "email-api", Operation: "sendEmail"}
)

func key(t testing.TB, account, id string) *authz.Key {
	t.Helper()
	secret, err := apikey.Generate(apikey.KindService)
	if err != nil {
		t.Fatal(err)
	}
	k, err := authz.Compile(authz.KeySpec{ID: id, Name: id, Type: authz.KeyTypeService, AccountID: account,
		AppID: "billing", TenantID: "acme", Hash: hasher.HashString(secret), Active: true}, authz.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func row(account, id, op, outcome string) store.UsageRow {
	return store.UsageRow{AccountID: account, TenantID: "acme", AppID: "billing", KeyID: id,
		Service: "email-api", Operation: op, Outcome: outcome, Hour: hour0}
}

// TestFlushKeepsCountsWhileDown: counts made while the store cannot be
// written stay aggregated and are all written once it can.
func TestFlushKeepsCountsWhileDown(t *testing.T) {
	c := authz.NewUsageCounter(0)
	w := &fakeWriter{rows: map[store.UsageRow]int64{}}
	a := usage.New(c, w, usage.Options{})
	k1, k2 := key(t, "acc", "k-1"), key(t, "acc", "k-2")
	count := func(k *authz.Key, tg authz.Target, r authz.Reason, n int) {
		for range n {
			c.Count(k, &tg, r, t0)
		}
	}
	ctx := context.Background()
	count(k1, read, authz.OK, 3)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.down = true
	count(k1, read, authz.OK, 2)
	count(k1, send, authz.ScopeDenied, 4)
	if err := a.Flush(ctx); err == nil {
		t.Fatal("flush while down: no error")
	}
	count(k2, read, authz.OK, 1)
	count(k1, read, authz.OK, 1)
	_ = a.Flush(ctx)
	if st := a.Stats(); st.Pending != 3 || st.WriteErrors != 2 {
		t.Errorf("stats while down %+v, want 3 rows pending and 2 write errors", st)
	}
	w.down = false
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[store.UsageRow]int64{
		row("acc", "k-1", "listEmails", "allowed"):     6,
		row("acc", "k-1", "sendEmail", "scope_denied"): 4,
		row("acc", "k-2", "listEmails", "allowed"):     1,
	}
	if len(w.rows) != len(want) {
		t.Errorf("rows %v, want %v", w.rows, want)
	}
	for r, n := range want {
		if w.rows[r] != n {
			t.Errorf("%+v: %d, want %d", r, w.rows[r], n)
		}
	}
	if st := a.Stats(); st.Pending != 0 || st.Counted != 11 {
		t.Errorf("stats %+v, want nothing pending, 11 counted", st)
	}
}

// TestFlushBoundKeepsOverflowPerAccount: past MaxPending rows, further
// combinations are kept per account and outcome, and nothing is lost.
func TestFlushBoundKeepsOverflowPerAccount(t *testing.T) {
	c := authz.NewUsageCounter(0)
	w := &fakeWriter{rows: map[store.UsageRow]int64{}, down: true}
	a := usage.New(c, w, usage.Options{MaxPending: 2})
	ctx := context.Background()
	var keys []*authz.Key
	for i := range 5 {
		keys = append(keys, key(t, "acc", "k-"+string(rune('a'+i))))
	}
	for _, k := range keys {
		c.Count(k, &read, authz.OK, t0)
		c.Count(k, &read, authz.OK, t0)
	}
	_ = a.Flush(ctx)
	if st := a.Stats(); st.Overflowed != 6 || st.Pending != 3 {
		t.Errorf("stats %+v, want 6 decisions overflowed, 3 rows pending", st)
	}
	w.down = false
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var total, perAccount int64
	for r, n := range w.rows {
		total += n
		if r.KeyID == "" {
			perAccount += n
			if r.AccountID != "acc" || r.Outcome != "allowed" || !r.Hour.Equal(hour0) {
				t.Errorf("overflow row %+v", r)
			}
		}
	}
	if total != 10 || perAccount != 6 {
		t.Errorf("written %d (%d per account), want 10 (6)", total, perAccount)
	}
}

// TestRunFlushesAtShutdown: Run writes what was counted when its context
// ends, and keeps partitions and retention when it starts.
func TestRunFlushesAtShutdown(t *testing.T) {
	c := authz.NewUsageCounter(0)
	w := &fakeWriter{rows: map[store.UsageRow]int64{}}
	a := usage.New(c, w, usage.Options{Interval: time.Hour, Retention: 24 * time.Hour, Now: func() time.Time { return t0 }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	k := key(t, "acc", "k-1")
	c.Count(k, &read, authz.AccessDenied, t0)
	go func() { a.Run(ctx); close(done) }()
	cancel()
	<-done
	if n := w.rows[row("acc", "k-1", "listEmails", "access_denied")]; n != 1 {
		t.Errorf("after shutdown %v, want the one count", w.rows)
	}
	if w.ensured != 1 || len(w.dropped) != 1 || !w.dropped[0].Equal(t0.Add(-24*time.Hour)) {
		t.Errorf("maintenance: ensured %d, dropped %v", w.ensured, w.dropped)
	}
}

// runUntil runs an aggregator over w, flushing every millisecond at t0,
// until done (called with w locked) holds, then stops it.
func runUntil(w *fakeWriter, done func() bool) {
	a := usage.New(authz.NewUsageCounter(0), w, usage.Options{Interval: time.Millisecond, Now: func() time.Time { return t0 }})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { a.Run(ctx); close(stopped) }()
	for {
		w.mu.Lock()
		ok := done()
		w.mu.Unlock()
		if ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-stopped
}

// TestMaintenanceRetried: partitions that could not be created at start
// are created at a later flush, not an hour later.
func TestMaintenanceRetried(t *testing.T) {
	w := &fakeWriter{rows: map[store.UsageRow]int64{}, ensureFails: 2}
	runUntil(w, func() bool { return w.ensured > 0 })
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ensured != 1 {
		t.Errorf("partitions ensured %d times after two failures, want once (then not again within the hour)", w.ensured)
	}
}

// TestMaintenanceReconcilesRollup: the hourly maintenance reconciles a
// writer's rollup with its counts (the daily rollup repairs itself after
// a rolling upgrade), and a failed reconcile is retried at the next flush.
func TestMaintenanceReconcilesRollup(t *testing.T) {
	w := &fakeWriter{rows: map[store.UsageRow]int64{}, reconcileFails: 1}
	runUntil(w, func() bool { return len(w.reconciled) > 0 })
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.reconciled) != 1 || !w.reconciled[0].Equal(t0) {
		t.Errorf("rollup reconciled at %v after one failure, want once at %v (then not again within the hour)", w.reconciled, t0)
	}
}
