package metrics

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"

	"github.com/keygate/keygate/pkg/usage"
)

// Usage metrics (SPEC §12): what this replica's usage aggregator wrote,
// holds and had to keep per account.
const (
	nameUsagePending     = "keygate.usage.pending_rows" // keygate_usage_pending_rows
	nameUsageWritten     = "keygate.usage.written_rows" // keygate_usage_written_rows_total
	nameUsageCounted     = "keygate.usage.counted"      // keygate_usage_counted_total
	nameUsageOverflowed  = "keygate.usage.overflowed"   // keygate_usage_overflowed_total
	nameUsageWriteErrors = "keygate.usage.write_errors" // keygate_usage_write_errors_total
	nameQuotaSyncs       = "keygate.usage.quota_syncs"  // keygate_usage_quota_syncs_total
	nameQuotaSyncErrors  = "keygate.usage.quota_sync_errors"
	nameQuotaRows        = "keygate.usage.quota_rows_read"    // keygate_usage_quota_rows_read_total
	nameQuotaFlushTotals = "keygate.usage.quota_flush_totals" // keygate_usage_quota_flush_totals_total
)

// ObserveUsage exports the usage aggregator's counters, read at scrape
// time from stats. Only the first call registers.
func (m *Metrics) ObserveUsage(stats func() usage.Stats) {
	m.usageOnce.Do(func() {
		if err := m.observeUsage(stats); err != nil {
			panic(fmt.Sprintf("metrics: %v", err)) // a programming error, as in New
		}
	})
}

func (m *Metrics) observeUsage(stats func() usage.Stats) error {
	var errs []error
	counter := func(name, desc string) metric.Int64ObservableCounter {
		c, err := m.meter.Int64ObservableCounter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	written := counter(nameUsageWritten, "Usage rows (hourly buckets' deltas) written to the database.")
	counted := counter(nameUsageCounted, "Decisions about known keys written to the usage table.")
	overflowed := counter(nameUsageOverflowed, "Decisions counted per account only (no key, service or operation) because --usage-max-pending or the in-memory cell bound was reached.")
	writeErrs := counter(nameUsageWriteErrors, "Failed usage writes (the counts stay in memory and are retried).")
	quotaSyncs := counter(nameQuotaSyncs, "Reads of the fleet's quota counts (one after every flush).")
	quotaErrs := counter(nameQuotaSyncErrors, "Failed reads of the quota counts (quotas count this replica's admissions only until the next).")
	quotaRows := counter(nameQuotaRows, "Quota totals the quota syncs read: every subject's at start, then those other replicas changed and those this replica did not know.")
	quotaFlushTotals := counter(nameQuotaFlushTotals, "Quota totals usage flushes answered: another replica had counted the subject too, or the flush began its total.")
	pending, err := m.meter.Int64ObservableGauge(nameUsagePending,
		metric.WithDescription("Usage rows held in memory, waiting to be written."))
	if err := errors.Join(append(errs, err)...); err != nil {
		return err
	}
	_, err = m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(written, int64(s.Written))
		o.ObserveInt64(counted, int64(s.Counted))
		o.ObserveInt64(overflowed, int64(s.Overflowed))
		o.ObserveInt64(writeErrs, int64(s.WriteErrors))
		o.ObserveInt64(pending, int64(s.Pending))
		o.ObserveInt64(quotaSyncs, int64(s.QuotaSyncs))
		o.ObserveInt64(quotaErrs, int64(s.QuotaErrors))
		o.ObserveInt64(quotaRows, int64(s.QuotaRows))
		o.ObserveInt64(quotaFlushTotals, int64(s.QuotaFlushTotals))
		return nil
	}, written, counted, overflowed, writeErrs, pending, quotaSyncs, quotaErrs, quotaRows, quotaFlushTotals)
	return err
}
