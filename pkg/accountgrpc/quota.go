package accountgrpc

import (
	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
)

var quotaPeriodsProto = map[authz.QuotaPeriod]accountv1.QuotaPeriod{
	authz.QuotaPeriodDay:   accountv1.QuotaPeriod_QUOTA_PERIOD_DAY,
	authz.QuotaPeriodMonth: accountv1.QuotaPeriod_QUOTA_PERIOD_MONTH,
}

// quotaProto is a quota as the API says it; nil for none.
func quotaProto(q authz.Quota) *accountv1.Quota {
	if q.IsZero() {
		return nil
	}
	return &accountv1.Quota{Requests: q.Requests, Period: quotaPeriodsProto[q.Period]}
}

// tenantQuotaProto is a tenant's monthly quota of n requests; nil for none.
func tenantQuotaProto(n int64) *accountv1.Quota {
	if n == 0 {
		return nil
	}
	return quotaProto(authz.Quota{Requests: n, Period: authz.QuotaPeriodMonth})
}

// quotaOf converts a request's quota (nil: none); an unknown period is a
// violation of field, never taken for none. The numbers are checked by
// the account service.
func quotaOf(v *account.Violations, field string, p *accountv1.Quota) authz.Quota {
	if p == nil {
		return authz.Quota{}
	}
	for period, pp := range quotaPeriodsProto {
		if pp == p.GetPeriod() {
			return authz.Quota{Requests: p.GetRequests(), Period: period}
		}
	}
	v.Add(field+".period", "required: QUOTA_PERIOD_DAY or QUOTA_PERIOD_MONTH")
	return authz.Quota{}
}

// quotaUpdate is an update's quota: nil to keep it, the zero value to
// clear it.
func quotaUpdate(v *account.Violations, p *accountv1.Quota, clear bool) *authz.Quota {
	switch {
	case p != nil && clear:
		v.Add("quota", "set together with clear_quota")
		return nil
	case p != nil:
		q := quotaOf(v, "quota", p)
		return &q
	case clear:
		return &authz.Quota{}
	}
	return nil
}

// tenantQuotaOf converts a tenant's quota, which is monthly, to its count.
func tenantQuotaOf(v *account.Violations, p *accountv1.Quota) int64 {
	if p == nil {
		return 0
	}
	q := quotaOf(v, "quota", p)
	if !q.IsZero() && q.Period != authz.QuotaPeriodMonth {
		v.Add("quota.period", "a tenant's quota is monthly: QUOTA_PERIOD_MONTH")
	}
	if p.GetRequests() <= 0 {
		v.Add("quota.requests", "%d is not a positive number of requests (leave the quota out for none)", p.GetRequests())
	}
	return q.Requests
}

// tenantQuotaUpdate is an update's tenant quota: nil to keep it, 0 to
// clear it.
func tenantQuotaUpdate(v *account.Violations, p *accountv1.Quota, clear bool) *int64 {
	switch {
	case p != nil && clear:
		v.Add("quota", "set together with clear_quota")
		return nil
	case p != nil:
		n := tenantQuotaOf(v, p)
		return &n
	case clear:
		return new(int64)
	}
	return nil
}

func quotaStatusProto(q account.QuotaStatus) *accountv1.QuotaStatus {
	subject := "key"
	if q.Subject.Tenant {
		subject = "tenant"
	}
	return &accountv1.QuotaStatus{Subject: subject, Id: q.Subject.ID, Quota: quotaProto(q.Quota),
		Used: q.Used, Remaining: q.Remaining(), PeriodStartTime: ts(q.PeriodStart), ResetTime: ts(q.ResetsAt),
		Exceeded: q.Exceeded()}
}
