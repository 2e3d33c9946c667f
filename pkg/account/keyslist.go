package account

import (
	"context"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// KeysQuotas is KeyQuotas for a page of keys the caller has listed
// (ListKeys), read in one store query where the store can (else one per
// quota): each key's quota states by key id, keys bound by none absent.
func (s *Service) KeysQuotas(ctx context.Context, c Caller, keys []store.Key) (map[string][]QuotaStatus, error) {
	if err := s.check(c); err != nil {
		return nil, err
	}
	if _, ok := s.store.(store.QuotaCounts); !ok {
		return nil, nil
	}
	type bound struct {
		key string
		q   authz.BoundQuota
	}
	var (
		all   []bound
		subjs []authz.QuotaSubject
		index = map[authz.QuotaSubject]int{}
	)
	for _, k := range keys {
		spec := k.Spec
		spec.AccountID = c.AccountID // the caller's: ListKeys confined it there
		b, n := spec.BoundQuotas()
		for _, bq := range b[:n] {
			all = append(all, bound{k.Spec.ID, bq})
			if _, ok := index[bq.Subject]; !ok {
				index[bq.Subject] = len(subjs)
				subjs = append(subjs, bq.Subject)
			}
		}
	}
	if len(subjs) == 0 {
		return nil, nil
	}
	now := s.now()
	var used []int64
	if bc, ok := s.store.(store.QuotaBatchCounts); ok {
		var err error
		if used, err = bc.QuotasUsed(ctx, c.AccountID, subjs, now); err != nil {
			return nil, s.storeError(ctx, "QuotasUsed", "quotas", err)
		}
	} else {
		qc := s.store.(store.QuotaCounts)
		for _, subj := range subjs {
			n, err := qc.QuotaUsed(ctx, c.AccountID, subj, now)
			if err != nil {
				return nil, s.storeError(ctx, "QuotaUsed", subj.String(), err)
			}
			used = append(used, n)
		}
	}
	out := map[string][]QuotaStatus{}
	for _, b := range all {
		start, end := b.q.Subject.Period.Bounds(now)
		out[b.key] = append(out[b.key], QuotaStatus{Subject: b.q.Subject, Quota: b.q.Quota,
			Used: used[index[b.q.Subject]], PeriodStart: start, ResetsAt: end})
	}
	return out, nil
}

// KeysDailyUsage returns the allowed requests of each of the caller's
// keys ids (a page of ListKeys) on each of the last days days (UTC, the
// oldest first, today last), read in one usage query: by key id, keys
// without any absent. Like GetUsage, it is the usage operation's.
func (s *Service) KeysDailyUsage(ctx context.Context, c Caller, ids []string, days int) (map[string][]int64, error) {
	if err := s.check(c); err != nil {
		return nil, err
	}
	r, ok := s.store.(store.UsageReader)
	if !ok {
		return nil, errorf(FailedPrecondition, "usage is recorded in database mode only: this server reads a keys file")
	}
	var v Violations
	if len(ids) > MaxBulkIDs {
		v.add("ids", "more than %d ids", MaxBulkIDs)
	}
	if days < 1 || days > 31 {
		v.add("days", "give 1 to 31 days")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	now := s.now().UTC()
	from := store.Daily.Truncate(now).AddDate(0, 0, 1-days)
	series, err := r.QueryUsage(ctx, store.UsageQuery{AccountID: c.AccountID, From: from, Until: now.Add(time.Hour),
		Granularity: store.Daily, GroupBy: []store.UsageField{store.UsageKey}, KeyIDs: ids,
		Filters:   map[store.UsageField]string{store.UsageOutcome: store.UsageOutcomeAllowed},
		MaxPoints: len(ids) * days})
	if err != nil {
		return nil, s.storeError(ctx, "KeysDailyUsage", "usage", err)
	}
	out := map[string][]int64{}
	for _, se := range series {
		counts := make([]int64, days)
		for _, p := range se.Points {
			if d := int(p.Time.Sub(from) / (24 * time.Hour)); d >= 0 && d < days {
				counts[d] += p.Count
			}
		}
		out[se.Group[store.UsageKey]] = counts
	}
	return out, nil
}
