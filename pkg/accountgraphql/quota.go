package accountgraphql

import (
	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

var quotaPeriods = map[authz.QuotaPeriod]QuotaPeriod{
	authz.QuotaPeriodDay:   QuotaPeriodDay,
	authz.QuotaPeriodMonth: QuotaPeriodMonth,
}

// quotaOf is a quota as the schema says it; nil for none.
func quotaOf(q authz.Quota) *Quota {
	if q.IsZero() {
		return nil
	}
	return &Quota{Requests: q.Requests, Period: quotaPeriods[q.Period]}
}

// quotaFrom converts a quota input (nil: none); the numbers are checked by
// the account service.
func quotaFrom(in *QuotaInput) authz.Quota {
	if in == nil {
		return authz.Quota{}
	}
	for p, gp := range quotaPeriods {
		if gp == in.Period {
			return authz.Quota{Requests: in.Requests, Period: p}
		}
	}
	return authz.Quota{Requests: in.Requests} // gqlgen validated the enum
}

// quotaUpdate is a key update's quota: nil unchanged, the zero value
// cleared.
func quotaUpdate(v *account.Violations, in *QuotaInput, clear *bool) *authz.Quota {
	switch {
	case in != nil && isTrue(clear):
		v.Add("quota", "set together with clearQuota")
		return nil
	case in != nil:
		q := quotaFrom(in)
		return &q
	case isTrue(clear):
		return &authz.Quota{}
	}
	return nil
}

func quotaStatusOf(q account.QuotaStatus) *QuotaStatus {
	subject := "key"
	if q.Subject.Tenant {
		subject = "tenant"
	}
	return &QuotaStatus{Subject: subject, ID: q.Subject.ID, Quota: quotaOf(q.Quota), Used: q.Used, Remaining: q.Remaining(),
		PeriodStart: timeOf(q.PeriodStart), ResetsAt: timeOf(q.ResetsAt), Exceeded: q.Exceeded()}
}
