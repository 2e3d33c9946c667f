package accounttest

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// AddUsage adds hourly deltas (store.UsageCounts).
func (s *Store) AddUsage(_ context.Context, deltas map[store.UsageRow]int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if s.usage == nil {
		s.usage = map[store.UsageRow]int64{}
	}
	for r, n := range deltas {
		r.Hour = r.Hour.UTC().Truncate(time.Hour)
		s.usage[r] += n
	}
	return nil
}

// DropUsageBefore drops the buckets of every month that ends at or before
// before, as PostgreSQL drops whole monthly partitions.
func (s *Store) DropUsageBefore(_ context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	months := map[time.Time]bool{}
	for r := range s.usage {
		m := store.Monthly.Truncate(r.Hour)
		if !m.AddDate(0, 1, 0).After(before) {
			months[m] = true
			delete(s.usage, r)
		}
	}
	return len(months), nil
}

// QueryUsage sums an account's buckets by period and group
// (store.UsageReader).
func (s *Store) QueryUsage(_ context.Context, q store.UsageQuery) ([]store.UsageSeries, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	type gk struct{ group, t string }
	type point struct {
		group map[store.UsageField]string
		t     time.Time
	}
	sums := map[gk]int64{}
	points := map[gk]point{}
	for r, n := range s.usage {
		if r.AccountID != q.AccountID || r.Hour.Before(q.From) || !r.Hour.Before(q.Until) {
			continue
		}
		vals := usageValues(r)
		match := true
		for f, v := range q.Filters {
			if vals[f] != v {
				match = false
			}
		}
		if !match || q.KeyIDs != nil && !slices.Contains(q.KeyIDs, r.KeyID) {
			continue
		}
		g := map[store.UsageField]string{}
		var key []string
		for _, f := range store.UsageFields {
			if slices.Contains(q.GroupBy, f) {
				g[f] = vals[f]
				key = append(key, vals[f])
			}
		}
		t := q.Granularity.Truncate(r.Hour)
		k := gk{strings.Join(key, "\x00"), t.Format(time.RFC3339)}
		sums[k] += n
		points[k] = point{g, t}
	}
	if q.MaxPoints > 0 && len(sums) > q.MaxPoints {
		return nil, store.ErrUsageTooLarge
	}
	keys := slices.SortedFunc(maps.Keys(sums), func(a, b gk) int {
		return cmp.Or(strings.Compare(a.group, b.group), strings.Compare(a.t, b.t))
	})
	var out []store.UsageSeries
	for i, k := range keys {
		if i == 0 || keys[i-1].group != k.group {
			out = append(out, store.UsageSeries{Group: points[k].group})
		}
		last := &out[len(out)-1]
		last.Points = append(last.Points, store.UsagePoint{Time: points[k].t, Count: sums[k]})
		last.Total += sums[k]
	}
	return out, nil
}

func usageValues(r store.UsageRow) map[store.UsageField]string {
	return map[store.UsageField]string{
		store.UsageTenant: r.TenantID, store.UsageApp: r.AppID, store.UsageKey: r.KeyID,
		store.UsageService: r.Service, store.UsageOperation: r.Operation, store.UsageOutcome: r.Outcome,
	}
}
