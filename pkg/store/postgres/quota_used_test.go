package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/chunked"
	"github.com/keygate/keygate/pkg/store"
)

// TestQuotaUsedFromTotals: QuotaUsed and QuotasUsed answer a subject's
// total in quota_counts where a flush began one (one row, not the month's
// hourly rows), and the sum of its allowed hourly rows of the period where
// none did; both the same count as the hourly rows hold.
func TestQuotaUsedFromTotals(t *testing.T) {
	t.Parallel()
	s, pool := newRollupStore(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 6, 15, 30, 0, 0, time.UTC)
	month := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	today := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	acme := authz.QuotaSubject{AccountID: "acc-1", Tenant: true, ID: "acme", Period: authz.QuotaPeriodMonth}
	globex := authz.QuotaSubject{AccountID: "acc-1", Tenant: true, ID: "globex", Period: authz.QuotaPeriodMonth}
	k1 := authz.QuotaSubject{AccountID: "acc-1", ID: "k-1", Period: authz.QuotaPeriodDay}
	k2 := authz.QuotaSubject{AccountID: "acc-1", ID: "k-2", Period: authz.QuotaPeriodMonth}
	row := func(tenant, key, outcome string, h time.Time) store.UsageRow {
		return store.UsageRow{AccountID: "acc-1", TenantID: tenant, KeyID: key, Operation: "read", Outcome: outcome, Hour: h}
	}
	// Before the flushes with totals: last month, earlier this month and
	// yesterday (none of today's key total), denied requests.
	if err := s.AddUsage(ctx, map[store.UsageRow]int64{
		row("acme", "k-1", "allowed", month.Add(-time.Hour)):                    50,
		row("acme", "k-1", "allowed", month.Add(30*time.Hour)):                  7,
		row("acme", "k-1", "allowed", today.Add(-time.Hour)):                    3,
		row("acme", "k-1", "rate_limited", today.Add(time.Hour)):                9,
		row("globex", "k-2", "allowed", month.Add(50*time.Hour)):                4,
		row("acme", "k-2", "allowed", today.Add(2*time.Hour)):                   2,
		{AccountID: "acc-2", TenantID: "acme", Outcome: "allowed", Hour: today}: 100,
	}); err != nil {
		t.Fatal(err)
	}
	// Flushes that add to acme's and k-1's totals (begun by the first).
	for _, n := range []int64{5, 6} {
		h := today.Add(time.Duration(n) * time.Hour)
		if _, err := s.AddUsageQuotas(ctx, chunked.Of(store.UsageDelta{Row: row("acme", "k-1", "allowed", h), Count: n}),
			chunked.Of(store.QuotaDelta{Subject: acme, Start: month, Delta: n, Expected: authz.QuotaTotalUnknown},
				store.QuotaDelta{Subject: k1, Start: today, Delta: n, Expected: authz.QuotaTotalUnknown}), "r1"); err != nil {
			t.Fatal(err)
		}
	}
	subjects := []authz.QuotaSubject{acme, globex, k1, k2}
	want := []int64{7 + 3 + 2 + 5 + 6, 4, 5 + 6, 4 + 2}
	check := func(want []int64) {
		t.Helper()
		got, err := s.QuotasUsed(ctx, "acc-1", subjects, now)
		if err != nil {
			t.Fatal(err)
		}
		for i, subj := range subjects {
			one, err := s.QuotaUsed(ctx, "acc-1", subj, now)
			if err != nil {
				t.Fatal(err)
			}
			if got[i] != want[i] || one != want[i] {
				t.Errorf("%s: QuotasUsed %d, QuotaUsed %d, want %d", subj, got[i], one, want[i])
			}
		}
	}
	check(want)
	// The totals are what is read: a total that (here, by hand) differs
	// from the hourly rows is the answer.
	if _, err := pool.Exec(ctx, `UPDATE quota_counts SET used = used + 1000 WHERE subject_id IN ('acme', 'k-1')`); err != nil {
		t.Fatal(err)
	}
	check([]int64{want[0] + 1000, want[1], want[2] + 1000, want[3]})
}

// TestQuotaTotalsBatches: a flush of more quota totals than one statement
// carries adds them all, begins the new ones from the flush's own usage
// rows, and answers each total it began or that differs from what the
// writer expected — each under its own index, from every chunk.
func TestQuotaTotalsBatches(t *testing.T) {
	t.Parallel()
	s, _ := newRollupStore(t)
	ctx := t.Context()
	today := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	const n = 12_000
	rows := make([]store.UsageDelta, n)
	deltas := make([]store.QuotaDelta, n)
	for i := range n {
		id := fmt.Sprintf("k-%05d", i)
		count := int64(1 + i%5)
		rows[i] = store.UsageDelta{Row: store.UsageRow{AccountID: "acc-1", KeyID: id, Operation: "read", Outcome: "allowed",
			Hour: today.Add(time.Duration(i%24) * time.Hour)}, Count: count}
		deltas[i] = store.QuotaDelta{Subject: authz.QuotaSubject{AccountID: "acc-1", ID: id, Period: authz.QuotaPeriodDay},
			Start: today, Delta: count, Expected: authz.QuotaTotalUnknown}
	}
	answered := func(totals []store.QuotaTotal) map[int]int64 {
		t.Helper()
		got := make(map[int]int64, len(totals))
		for _, tt := range totals {
			if _, dup := got[tt.Index]; dup || tt.Index < 0 || tt.Index >= n {
				t.Fatalf("total answered for index %d twice or out of range", tt.Index)
			}
			got[tt.Index] = tt.Used
		}
		return got
	}
	totals, err := s.AddUsageQuotas(ctx, chunked.Of(rows...), chunked.Of(deltas...), "r1")
	if err != nil {
		t.Fatal(err)
	}
	got := answered(totals)
	if len(got) != n {
		t.Fatalf("the first flush answered %d totals, want every one of %d (all begun)", len(got), n)
	}
	for i := range n {
		if got[i] != int64(1+i%5) {
			t.Fatalf("total %d begun at %d, want %d", i, got[i], 1+i%5)
		}
	}
	// A second flush of one more each: the writer expects the right total
	// for even indexes and a wrong one for odd ones, which are answered.
	for i := range deltas {
		deltas[i].Delta = 1
		deltas[i].Expected = int64(1+i%5) + 1
		if i%2 == 1 {
			deltas[i].Expected += 7
		}
		rows[i].Count = 1
	}
	if totals, err = s.AddUsageQuotas(ctx, chunked.Of(rows...), chunked.Of(deltas...), "r1"); err != nil {
		t.Fatal(err)
	}
	got = answered(totals)
	if len(got) != n/2 {
		t.Fatalf("the second flush answered %d totals, want the %d that differ", len(got), n/2)
	}
	for i, used := range got {
		if i%2 == 0 || used != int64(1+i%5)+1 {
			t.Fatalf("total %d answered as %d (expected %d by the writer)", i, used, deltas[i].Expected)
		}
	}
}
