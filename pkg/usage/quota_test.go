package usage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/usage"
)

// quotaWriter is a fakeWriter that also answers the quota counts: the
// allowed rows of tenant acme it holds, plus what other replicas wrote.
type quotaWriter struct {
	*fakeWriter
	others int64
}

func (w *quotaWriter) QuotaUsage(context.Context, time.Time) ([]authz.QuotaUse, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.down {
		return nil, errors.New("database down")
	}
	n := w.others
	for r, c := range w.rows {
		if r.TenantID == "acme" && r.Outcome == store.UsageOutcomeAllowed {
			n += c
		}
	}
	start, _ := authz.QuotaPeriodMonth.Bounds(t0)
	return []authz.QuotaUse{{Subject: authz.QuotaSubject{AccountID: "a", Tenant: true, ID: "acme", Period: authz.QuotaPeriodMonth}, Start: start, Used: n}}, nil
}

func (w *quotaWriter) QuotaUsed(context.Context, string, authz.QuotaSubject, time.Time) (int64, error) {
	return 0, nil
}

// TestQuotaSyncAfterFlush: what this replica admitted and wrote is not
// counted twice after a sync; what others wrote binds; a failed write
// keeps this replica's admissions counted (they are not in the store), and
// once written they are counted once.
func TestQuotaSyncAfterFlush(t *testing.T) {
	secret, err := apikey.Generate(apikey.KindService)
	if err != nil {
		t.Fatal(err)
	}
	k, err := authz.Compile(authz.KeySpec{ID: "k", Name: "k", Type: authz.KeyTypeService, AccountID: "a",
		AppID: "billing", TenantID: "acme", Hash: hasher.HashString(secret), Active: true, TenantQuota: 10}, authz.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	counter, quotas := authz.NewUsageCounter(0), authz.NewQuotas()
	w := &quotaWriter{fakeWriter: &fakeWriter{rows: map[store.UsageRow]int64{}}}
	agg := usage.New(counter, w, usage.Options{Now: func() time.Time { return t0 }, Quotas: quotas})
	admit := func(n int) int {
		ok := 0
		for range n {
			if a, _ := quotas.Admit(k, t0); a {
				counter.Count(k, &read, authz.OK, t0)
				ok++
			}
		}
		return ok
	}
	ctx := context.Background()
	if got := admit(4); got != 4 {
		t.Fatalf("admitted %d of 4", got)
	}
	if err := agg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.others = 3 // another replica wrote 3
	if err := agg.SyncQuotas(ctx); err != nil {
		t.Fatal(err)
	}
	// 4 own (written) + 3 others: 3 left.
	if got := admit(5); got != 3 {
		t.Fatalf("after the sync admitted %d, want 3 (4 own and 3 others' of 10)", got)
	}
	// The write fails: the 3 stay own and unwritten; a sync still counts
	// them (own) beside what the store holds.
	w.down = true
	if err := agg.Flush(ctx); err == nil {
		t.Fatal("flush succeeded while down")
	}
	w.down = false
	if err := agg.SyncQuotas(ctx); err != nil {
		t.Fatal(err)
	}
	if got := admit(1); got != 0 {
		t.Fatalf("admitted %d over a used-up quota after a failed write", got)
	}
	// Written at last: counted once, still used up; raising the others'
	// count does not free anything.
	if err := agg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := agg.SyncQuotas(ctx); err != nil {
		t.Fatal(err)
	}
	st := quotas.State(k, t0)
	if len(st) != 1 || st[0].Used != 10 {
		t.Fatalf("state %+v, want 10 used (7 own, 3 others)", st)
	}
	if s := agg.Stats(); s.QuotaSyncs != 3 || s.QuotaErrors != 0 {
		t.Errorf("stats %+v", s)
	}
}
