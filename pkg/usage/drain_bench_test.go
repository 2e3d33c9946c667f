package usage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/chunked"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/usage"
)

// nopWriter takes every batch and keeps nothing.
type nopWriter struct{}

func (nopWriter) AddUsage(context.Context, map[store.UsageRow]int64) error { return nil }
func (nopWriter) DropUsageBefore(context.Context, time.Time) (int, error)  { return 0, nil }

// nopLedger is a nopWriter that keeps quota totals (the flush PostgreSQL
// takes).
type nopLedger struct{ nopWriter }

func (nopLedger) QuotaUsage(context.Context, time.Time) ([]authz.QuotaUse, error) { return nil, nil }
func (nopLedger) QuotaUsed(context.Context, string, authz.QuotaSubject, time.Time) (int64, error) {
	return 0, nil
}
func (nopLedger) AddUsageQuotas(context.Context, *chunked.List[store.UsageDelta], *chunked.List[store.QuotaDelta], string) ([]store.QuotaTotal, error) {
	return nil, nil
}
func (nopLedger) QuotaSnapshot(context.Context, time.Time) ([]authz.QuotaUse, uint64, error) {
	return nil, 0, nil
}
func (nopLedger) QuotaChanges(context.Context, uint64, string, time.Time) ([]authz.QuotaUse, uint64, error) {
	return nil, 0, nil
}
func (nopLedger) QuotaTotals(context.Context, []authz.QuotaUse) error             { return nil }
func (nopLedger) DropQuotaTotalsBefore(context.Context, time.Time) (int64, error) { return 0, nil }

// BenchmarkFlushDrain100k is a flush's work in keygate before the store:
// draining 100,000 keys' counts into the pending rows (a writer that keeps
// nothing).
func BenchmarkFlushDrain100k(b *testing.B) {
	keys := make([]*authz.Key, 100_000)
	for i := range keys {
		keys[i] = key(b, "acct", fmt.Sprintf("acct-key-%09d", i))
	}
	c := authz.NewUsageCounter(0)
	a := usage.New(c, nopLedger{}, usage.Options{Quotas: authz.NewQuotas()})
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		for _, k := range keys {
			c.Count(k, &read, authz.OK, t0)
		}
		b.StartTimer()
		if err := a.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
