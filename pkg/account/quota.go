package account

import (
	"context"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// QuotaStatus is a quota's state as the usage table counts it (SPEC §12):
// what the fleet admitted in the current period, as written by the
// replicas' usage flushes (up to one flush interval behind).
type QuotaStatus struct {
	Subject     authz.QuotaSubject
	Quota       authz.Quota
	Used        int64
	PeriodStart time.Time
	ResetsAt    time.Time
}

// Remaining is what the quota still admits, at least 0.
func (q QuotaStatus) Remaining() int64 { return max(0, q.Quota.Requests-q.Used) }

// Exceeded reports whether the quota is used up until ResetsAt.
func (q QuotaStatus) Exceeded() bool { return q.Used >= q.Quota.Requests }

// KeyQuotas returns the state of the quotas that bind k, a key the caller
// has read (GetKey): its tenant's first, then its own. A store that keeps
// no counts answers none.
func (s *Service) KeyQuotas(ctx context.Context, c Caller, k store.Key) ([]QuotaStatus, error) {
	spec := k.Spec
	spec.AccountID = c.AccountID // the caller's: GetKey confined it there
	b, n := spec.BoundQuotas()
	var out []QuotaStatus
	for _, bq := range b[:n] {
		st, err := s.quotaStatus(ctx, c, bq.Subject, bq.Quota)
		if err != nil || st == nil {
			return nil, err
		}
		out = append(out, *st)
	}
	return out, nil
}

// TenantQuota returns the state of t's monthly quota, a tenant the caller
// has read (GetTenant); nil when it has none or the store keeps no counts.
func (s *Service) TenantQuota(ctx context.Context, c Caller, t store.Tenant) (*QuotaStatus, error) {
	if t.Quota <= 0 {
		return nil, nil
	}
	return s.quotaStatus(ctx, c, authz.QuotaSubject{AccountID: c.AccountID, Tenant: true, ID: t.ID, Period: authz.QuotaPeriodMonth},
		authz.Monthly(t.Quota))
}

func (s *Service) quotaStatus(ctx context.Context, c Caller, subj authz.QuotaSubject, q authz.Quota) (*QuotaStatus, error) {
	qc, ok := s.store.(store.QuotaCounts)
	if !ok {
		return nil, nil
	}
	now := s.now()
	used, err := qc.QuotaUsed(ctx, c.AccountID, subj, now)
	if err != nil {
		return nil, s.storeError(ctx, "QuotaUsed", subj.String(), err)
	}
	start, end := subj.Period.Bounds(now)
	return &QuotaStatus{Subject: subj, Quota: q, Used: used, PeriodStart: start, ResetsAt: end}, nil
}
