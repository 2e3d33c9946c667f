package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/store"
)

// testUsage is the contract of store.UsageCounts and store.UsageReader:
// deltas add up, queries filter, bucket and group, accounts stay apart,
// and dropping old buckets forgets them.
func testUsage(t *testing.T, open func(t *testing.T) store.Accounts) {
	s := open(t)
	w, ok := s.(store.UsageCounts)
	r, ok2 := s.(store.UsageReader)
	if !ok || !ok2 {
		t.Fatalf("%T does not implement store.UsageCounts and store.UsageReader", s)
	}
	ctx := t.Context()
	h0 := time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC)
	row := func(key, op, outcome string, h int) store.UsageRow {
		return store.UsageRow{AccountID: "acc-1", TenantID: "acme", AppID: "billing", KeyID: key,
			Service: "email-api", Operation: op, Outcome: outcome, Hour: h0.Add(time.Duration(h) * time.Hour)}
	}
	if err := w.AddUsage(ctx, map[store.UsageRow]int64{
		row("k-1", "read", "allowed", 0):      3,
		row("k-1", "read", "scope_denied", 0): 1,
		row("k-1", "send", "allowed", 1):      2,
		row("k-2", "read", "allowed", 3):      5, // the next day and month
		{AccountID: "acc-2", KeyID: "k-9", Service: "email-api", Operation: "read", Outcome: "allowed", Hour: h0}: 100,
	}); err != nil {
		t.Fatal(err)
	}
	// A second batch adds to the same buckets.
	if err := w.AddUsage(ctx, map[store.UsageRow]int64{row("k-1", "read", "allowed", 0): 4}); err != nil {
		t.Fatal(err)
	}
	pts := func(p ...any) []store.UsagePoint {
		var out []store.UsagePoint
		for i := 0; i < len(p); i += 2 {
			out = append(out, store.UsagePoint{Time: p[i].(time.Time), Count: int64(p[i+1].(int))})
		}
		return out
	}
	day0, day1 := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		q    store.UsageQuery
		want []store.UsageSeries
	}{
		{"total by day", store.UsageQuery{Granularity: store.Daily}, []store.UsageSeries{
			{Group: map[store.UsageField]string{}, Points: pts(day0, 10, day1, 5), Total: 15}}},
		{"by operation and outcome, hourly", store.UsageQuery{Granularity: store.Hourly,
			GroupBy: []store.UsageField{store.UsageOutcome, store.UsageOperation}}, []store.UsageSeries{
			{Group: map[store.UsageField]string{store.UsageOperation: "read", store.UsageOutcome: "allowed"},
				Points: pts(h0, 7, h0.Add(3*time.Hour), 5), Total: 12},
			{Group: map[store.UsageField]string{store.UsageOperation: "read", store.UsageOutcome: "scope_denied"},
				Points: pts(h0, 1), Total: 1},
			{Group: map[store.UsageField]string{store.UsageOperation: "send", store.UsageOutcome: "allowed"},
				Points: pts(h0.Add(time.Hour), 2), Total: 2},
		}},
		{"filter by key, monthly", store.UsageQuery{Granularity: store.Monthly,
			Filters: map[store.UsageField]string{store.UsageKey: "k-1"}, GroupBy: []store.UsageField{store.UsageKey}}, []store.UsageSeries{
			{Group: map[store.UsageField]string{store.UsageKey: "k-1"},
				Points: pts(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 10), Total: 10}}},
		{"range excludes the last bucket", store.UsageQuery{Granularity: store.Hourly, Until: h0.Add(3 * time.Hour)}, []store.UsageSeries{
			{Group: map[store.UsageField]string{}, Points: pts(h0, 8, h0.Add(time.Hour), 2), Total: 10}}},
		{"no match", store.UsageQuery{Granularity: store.Daily, Filters: map[store.UsageField]string{store.UsageOutcome: "expired_key"}}, nil},
		{"a page of keys, allowed, by day", store.UsageQuery{Granularity: store.Daily, KeyIDs: []string{"k-2", "k-1", "k-9", "k-8"},
			Filters: map[store.UsageField]string{store.UsageOutcome: "allowed"}, GroupBy: []store.UsageField{store.UsageKey}}, []store.UsageSeries{
			{Group: map[store.UsageField]string{store.UsageKey: "k-1"}, Points: pts(day0, 9), Total: 9},
			{Group: map[store.UsageField]string{store.UsageKey: "k-2"}, Points: pts(day1, 5), Total: 5}}},
		{"no keys", store.UsageQuery{Granularity: store.Daily, KeyIDs: []string{}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.AccountID = "acc-1"
			q.From = h0.Add(-24 * time.Hour)
			if q.Until.IsZero() {
				q.Until = h0.Add(48 * time.Hour)
			}
			got, err := r.QueryUsage(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("QueryUsage (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		_, err := r.QueryUsage(ctx, store.UsageQuery{AccountID: "acc-1", Granularity: store.Hourly,
			From: h0, Until: h0.Add(24 * time.Hour), GroupBy: store.UsageFields, MaxPoints: 2})
		if !errors.Is(err, store.ErrUsageTooLarge) {
			t.Fatalf("err %v, want ErrUsageTooLarge", err)
		}
	})
	t.Run("drop before", func(t *testing.T) {
		// Everything before April goes; April's bucket stays.
		if _, err := w.DropUsageBefore(ctx, day1); err != nil {
			t.Fatal(err)
		}
		got, err := r.QueryUsage(ctx, store.UsageQuery{AccountID: "acc-1", Granularity: store.Daily, From: day0, Until: day1.Add(48 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		want := []store.UsageSeries{{Group: map[store.UsageField]string{}, Points: pts(day1, 5), Total: 5}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("after DropUsageBefore (-want +got):\n%s", diff)
		}
	})
}
