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

func quotaStatusProto(q account.QuotaStatus) *accountv1.QuotaStatus {
	subject := "key"
	if q.Subject.Tenant {
		subject = "tenant"
	}
	return &accountv1.QuotaStatus{Subject: subject, Id: q.Subject.ID, Quota: quotaProto(q.Quota),
		Used: q.Used, Remaining: q.Remaining(), PeriodStartTime: ts(q.PeriodStart), ResetTime: ts(q.ResetsAt),
		Exceeded: q.Exceeded()}
}

// QuotaFromProto is an API quota as authz holds it (nil or an unknown
// period: none), for clients that read keys back (explain --key-id).
func QuotaFromProto(p *accountv1.Quota) authz.Quota {
	var v account.Violations
	return quotaOf(&v, "quota", p)
}
