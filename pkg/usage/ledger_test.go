package usage_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
	"github.com/keygate/keygate/pkg/usage"
)

// ledger is a database of seeded keys (pgtest.SeedKeys: the service keys
// under one tenant) and a clock the replicas share.
type ledger struct {
	t    *testing.T
	pool *pgxpool.Pool
	st   *postgres.Store
	mu   sync.Mutex
	now  time.Time
}

func newLedger(t *testing.T, keys int) *ledger {
	t.Helper()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgtest.SeedKeys(ctx, pool, "acct", keys); err != nil {
		t.Fatal(err)
	}
	return &ledger{t: t, pool: pool, st: postgres.New(ctx, pool, postgres.Options{}), now: t0}
}

func (l *ledger) clock() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.now
}

func (l *ledger) set(t time.Time) {
	l.mu.Lock()
	l.now = t
	l.mu.Unlock()
}

func (l *ledger) exec(sql string, args ...any) {
	l.t.Helper()
	if _, err := l.pool.Exec(l.t.Context(), sql, args...); err != nil {
		l.t.Fatal(err)
	}
}

// quotas gives the tenant a monthly quota and every service key a daily
// one.
func (l *ledger) quotas(tenant int64, key string) {
	l.exec(`UPDATE tenants SET quota = $1 WHERE account_id = 'acct'`, tenant)
	l.exec(`UPDATE keys SET quota = $1 WHERE account_id = 'acct' AND type = 'service'`, key)
}

// services loads the service keys' records, by id.
func (l *ledger) services() map[string]*authz.Key {
	l.t.Helper()
	out := map[string]*authz.Key{}
	if _, err := l.st.LoadAll(l.t.Context(), func(k *authz.Key) error {
		if k.Spec.Type == authz.KeyTypeService {
			out[k.Spec.ID] = k
		}
		return nil
	}); err != nil {
		l.t.Fatal(err)
	}
	return out
}

// consistent checks every total against the allowed usage rows it counts.
func (l *ledger) consistent() {
	l.t.Helper()
	rows, err := l.pool.Query(l.t.Context(), `SELECT q.tenant, q.subject_id, q.period, q.period_start, q.used,
		(SELECT coalesce(sum(u.count), 0) FROM usage_hourly u WHERE u.account_id = q.account_id AND u.outcome = 'allowed'
			AND (CASE WHEN q.tenant THEN u.tenant_id ELSE u.key_id END) = q.subject_id AND u.hour >= q.period_start
			AND u.hour < q.period_start + CASE q.period WHEN 'day' THEN interval '1 day' ELSE interval '1 month' END)
		FROM quota_counts q`)
	if err != nil {
		l.t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			tenant          bool
			id, period      string
			start           time.Time
			used, usageSums int64
		)
		if err := rows.Scan(&tenant, &id, &period, &start, &used, &usageSums); err != nil {
			l.t.Fatal(err)
		}
		if used != usageSums {
			l.t.Errorf("total of %s (tenant %v, %s from %s): %d, usage rows %d", id, tenant, period, start, used, usageSums)
		}
		n++
	}
	if n == 0 {
		l.t.Error("no totals")
	}
}

// replica is one keygate's quota table, usage counter and aggregator.
type replica struct {
	t       *testing.T
	id      string
	quotas  *authz.Quotas
	counter *authz.UsageCounter
	agg     *usage.Aggregator
	l       *ledger
}

func (l *ledger) replica(id string) *replica {
	r := &replica{t: l.t, id: id, quotas: authz.NewQuotas(), counter: authz.NewUsageCounter(0), l: l}
	r.agg = usage.New(r.counter, l.st, usage.Options{Quotas: r.quotas, Replica: id, Now: l.clock})
	if err := r.agg.SyncQuotas(l.t.Context()); err != nil { // serve's startup read
		l.t.Fatal(err)
	}
	return r
}

// admit checks n requests of k as serve does (row 10, then the count),
// and returns how many were admitted.
func (r *replica) admit(k *authz.Key, n int) int {
	ok := 0
	now := r.l.clock()
	for range n {
		reason := authz.OK
		if a, _ := r.quotas.Admit(k, now); !a {
			reason = authz.QuotaExceeded
		} else {
			ok++
		}
		r.counter.Count(k, &read, reason, now)
	}
	return ok
}

func (r *replica) flush() {
	r.t.Helper()
	if err := r.agg.Flush(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *replica) sync() {
	r.t.Helper()
	if err := r.agg.SyncQuotas(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
}

// used is what r knows of k's quotas: the tenant's and the key's count.
func (r *replica) used(k *authz.Key) [2]int64 {
	var out [2]int64
	for i, st := range r.quotas.State(k, r.l.clock()) {
		out[i] = st.Used
	}
	return out
}

func (r *replica) want(k *authz.Key, tenant, key int64, why string) {
	r.t.Helper()
	if got := r.used(k); got != [2]int64{tenant, key} {
		r.t.Errorf("%s: replica %s knows %s at %v (tenant, key), want [%d %d]", why, r.id, k.Spec.ID, got, tenant, key)
	}
}

func one(keys map[string]*authz.Key) (a, b *authz.Key) {
	for _, k := range keys {
		if a == nil {
			a = k
		} else if b == nil && k != a {
			b = k
		}
	}
	return a, b
}

// TestQuotaReplicasShareTotals: two replicas on one database learn each
// other's admissions, at a flush (another replica added to a total this
// flush also added to) or at a sync (the totals other replicas changed),
// and the fleet's admissions stop at the quota once both know.
func TestQuotaReplicasShareTotals(t *testing.T) {
	l := newLedger(t, 6) // keys 0 and 3: service keys of the tenant
	l.quotas(1000, "20/day")
	k, k2 := one(l.services())
	a, b := l.replica("a"), l.replica("b")
	a.admit(k, 5)
	a.flush() // begins the totals: 5
	a.sync()
	b.admit(k, 3)
	b.admit(k2, 2)
	b.flush() // adds to a's: its flush answers 8 (it did not know the total)
	b.want(k, 10, 8, "after b's flush")
	a.sync() // b changed them
	a.want(k, 10, 8, "after a's sync")
	a.want(k2, 10, 2, "after a's sync (a key a never admitted)")
	// Both admit again; each flush finds the other's count in the total.
	a.admit(k, 4)
	b.admit(k, 1)
	a.flush()
	b.flush()
	a.want(k, 14, 12, "after both flushed (a first: b's 1 not seen yet)")
	b.want(k, 15, 13, "after both flushed (b last: its flush answered)")
	a.sync()
	b.sync()
	a.want(k, 15, 13, "after the syncs")
	// The key's quota: 7 left in the fleet; a admits them all, b none once
	// it learns.
	if got := a.admit(k, 10); got != 7 {
		t.Errorf("a admitted %d, want the 7 left", got)
	}
	a.flush()
	b.sync()
	if got := b.admit(k, 1); got != 0 {
		t.Errorf("b admitted %d over a used-up quota", got)
	}
	if s := a.agg.Stats(); s.QuotaFlushTotals == 0 || s.QuotaErrors != 0 {
		t.Errorf("a's stats %+v", s)
	}
	l.consistent()
}

// TestQuotaSingleReplicaSyncReadsNothing: alone, a replica's periodic sync
// reads no total: it wrote every change itself, and its flushes learned
// the totals they began.
func TestQuotaSingleReplicaSyncReadsNothing(t *testing.T) {
	l := newLedger(t, 30)
	l.quotas(1_000_000, "1000/day")
	keys := l.services()
	a := l.replica("solo")
	for round := range 5 {
		for _, k := range keys {
			a.admit(k, round+1)
		}
		before := a.agg.Stats().QuotaRows
		a.flush()
		a.sync()
		if s := a.agg.Stats(); s.QuotaRows != before {
			t.Errorf("round %d: the sync read %d totals, want 0", round, s.QuotaRows-before)
		}
	}
	for _, k := range keys {
		a.want(k, 15*int64(len(keys)), 15, "after 5 rounds")
		break
	}
	// Its flushes answered only the totals they began (one per subject).
	if s := a.agg.Stats(); s.QuotaFlushTotals != uint64(len(keys)+1) {
		t.Errorf("flushes answered %d totals, want %d (each begun once)", s.QuotaFlushTotals, len(keys)+1)
	}
	l.consistent()
}

// TestQuotaSetMidPeriod: a quota set mid-period counts the allowed
// requests before it: the total a flush begins is the usage rows'.
func TestQuotaSetMidPeriod(t *testing.T) {
	l := newLedger(t, 3)
	k, _ := one(l.services()) // no quota yet
	a := l.replica("a")
	a.admit(k, 6)
	a.flush()
	l.quotas(100, "10/day")
	k, _ = one(l.services())
	a.admit(k, 1)
	a.flush()
	a.want(k, 7, 7, "after the first flush with the quota")
	if got := a.admit(k, 5); got != 3 {
		t.Errorf("admitted %d, want the 3 left of 10", got)
	}
	l.consistent()
}

// TestQuotaNewSubjectLearnsFleetTotal: a subject first admitted on a
// replica takes the fleet's total at its next sync: the totals another
// replica changed (TestQuotaReplicasShareTotals), or, where no flush began
// a total yet (a quota set since the replica started, over requests
// counted before it), the usage rows'.
func TestQuotaNewSubjectLearnsFleetTotal(t *testing.T) {
	l := newLedger(t, 3)
	k, _ := one(l.services())
	a, b := l.replica("a"), l.replica("b")
	a.admit(k, 5) // no quota yet
	a.flush()
	l.quotas(100, "10/day")
	k, _ = one(l.services())
	b.admit(k, 1)
	b.want(k, 1, 1, "before b's sync")
	rows := b.agg.Stats().QuotaRows
	b.sync()
	b.want(k, 6, 6, "after b's sync")
	if got := b.agg.Stats().QuotaRows - rows; got != 2 {
		t.Errorf("b's sync read %d totals, want 2 (its cells' unknown totals)", got)
	}
	b.flush()
	a.admit(k, 1)
	a.sync()
	a.want(k, 7, 7, "after a's sync")
	l.consistent()
}

// TestQuotaPeriodRollover: a day's quota starts afresh the next day on
// every replica; late rows of the day that ended go to its total, not the
// new day's; each replica learns the new day's total.
func TestQuotaPeriodRollover(t *testing.T) {
	l := newLedger(t, 3)
	l.quotas(1000, "10/day")
	k, _ := one(l.services())
	a, b := l.replica("a"), l.replica("b")
	day := time.Date(2026, 6, 1, 23, 59, 0, 0, time.UTC)
	l.set(day)
	a.admit(k, 6)
	a.flush()
	b.admit(k, 4) // flushed after midnight: late rows
	l.set(day.Add(2 * time.Minute))
	if got := a.admit(k, 3); got != 3 {
		t.Errorf("a admitted %d the next day, want 3", got)
	}
	b.flush()
	b.admit(k, 2)
	a.flush()
	b.flush()
	a.sync()
	b.sync()
	a.want(k, 15, 5, "a in the new day")
	b.want(k, 15, 5, "b in the new day")
	var prev, next int64
	if err := l.pool.QueryRow(t.Context(), `SELECT
		(SELECT used FROM quota_counts WHERE NOT tenant AND period_start = $1),
		(SELECT used FROM quota_counts WHERE NOT tenant AND period_start = $2)`,
		time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)).Scan(&prev, &next); err != nil {
		t.Fatal(err)
	}
	if prev != 10 || next != 5 {
		t.Errorf("the key's totals: %d the first day, %d the second; want 10 and 5", prev, next)
	}
	l.consistent()
	// A month later both periods ended: the cells go at maintenance, and
	// the totals two months on.
	if n, err := l.st.DropQuotaTotalsBefore(t.Context(), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 3 {
		t.Errorf("dropped %d totals, %v; want 3 (two days and the month)", n, err)
	}
}

// TestQuotaRestartStartsFromTotals: a replica started on a database that
// counted admissions (by itself before a restart, or others) knows them
// before it admits anything.
func TestQuotaRestartStartsFromTotals(t *testing.T) {
	l := newLedger(t, 3)
	l.quotas(100, "10/day")
	k, _ := one(l.services())
	a := l.replica("a")
	a.admit(k, 7)
	a.flush()
	for _, id := range []string{"a", "c"} { // the same id (--replica-id), a new one
		r := l.replica(id)
		r.want(k, 7, 7, "after the startup read")
		if got := r.admit(k, 5); got != 3 {
			t.Errorf("restarted as %s: admitted %d, want the 3 left", id, got)
		}
	}
}

// TestQuotaConcurrentFlushes: replicas flushing the same new totals at
// once (READ COMMITTED: each begins or adds, never both, never neither)
// leave every total equal to the usage rows it counts.
func TestQuotaConcurrentFlushes(t *testing.T) {
	l := newLedger(t, 30)
	l.quotas(1_000_000, "1000000/day")
	keys := l.services()
	rs := []*replica{l.replica("a"), l.replica("b"), l.replica("c")}
	for day := range 4 {
		l.set(time.Date(2026, 6, 1+day, 12, 0, 0, 0, time.UTC))
		for round := range 3 {
			var wg sync.WaitGroup
			for i, r := range rs {
				wg.Go(func() {
					for _, k := range keys {
						r.admit(k, 1+(i+round)%3)
					}
					if err := r.agg.Flush(context.Background()); err != nil {
						t.Error(err)
					}
					if err := r.agg.SyncQuotas(context.Background()); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		}
	}
	l.consistent()
	// Once each has synced after the last flush, every replica knows the
	// fleet's totals.
	for _, r := range rs {
		r.sync()
	}
	for _, k := range keys {
		for _, r := range rs {
			r.want(k, 4*18*int64(len(keys)), 18, fmt.Sprintf("after the last day (key %s)", k.Spec.ID))
		}
		break
	}
}

// TestQuotaSyncSeesTransactionInProgress: a change another replica's
// transaction had not committed at a sync is read by a later one, however
// many transactions committed after it began.
func TestQuotaSyncSeesTransactionInProgress(t *testing.T) {
	l := newLedger(t, 6)
	l.quotas(100, "10/day")
	k, k2 := one(l.services())
	a, b := l.replica("a"), l.replica("b")
	ctx := t.Context()
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	day, _ := authz.QuotaPeriodDay.Bounds(t0)
	if _, err := tx.Exec(ctx, `INSERT INTO quota_counts (account_id, tenant, subject_id, period, period_start, used, writer)
		VALUES ('acct', false, $1, 'day', $2, 4, 'x')`, k2.Spec.ID, day); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO quota_writers (writer) VALUES ('x')`); err != nil {
		t.Fatal(err)
	}
	b.admit(k, 2)
	b.flush() // begins and commits after x began
	a.sync()
	a.want(k2, 2, 0, "before x commits")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a.sync()
	a.want(k2, 2, 4, "after x committed")
}

// TestQuotaFlushRecordReplaced: a key counted through two records (its
// record replaced between two drains, as a change does) is one usage row
// and one total, summed.
func TestQuotaFlushRecordReplaced(t *testing.T) {
	l := newLedger(t, 3)
	l.quotas(100, "10/day")
	k, _ := one(l.services())
	k2, _ := one(l.services()) // a new record of the same key
	if k == k2 || k.Spec.ID != k2.Spec.ID {
		t.Fatal("want two records of one key")
	}
	a := l.replica("a")
	a.admit(k, 2)
	a.admit(k2, 3)
	a.flush()
	var n int64
	if err := l.pool.QueryRow(t.Context(), `SELECT count FROM usage_hourly WHERE key_id = $1 AND outcome = 'allowed'`, k.Spec.ID).Scan(&n); err != nil || n != 5 {
		t.Fatalf("usage row %d, %v; want one row of 5", n, err)
	}
	a.want(k2, 5, 5, "after the flush")
	l.consistent()
}
