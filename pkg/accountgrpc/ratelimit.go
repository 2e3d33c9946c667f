package accountgrpc

import (
	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
)

var rateUnitsProto = map[authz.RateUnit]accountv1.RateLimitUnit{
	authz.RateUnitSecond: accountv1.RateLimitUnit_RATE_LIMIT_UNIT_SECOND,
	authz.RateUnitMinute: accountv1.RateLimitUnit_RATE_LIMIT_UNIT_MINUTE,
	authz.RateUnitHour:   accountv1.RateLimitUnit_RATE_LIMIT_UNIT_HOUR,
	authz.RateUnitDay:    accountv1.RateLimitUnit_RATE_LIMIT_UNIT_DAY,
}

// rateLimitProto is a rate limit on the wire, nil for none.
func rateLimitProto(r authz.RateLimit) *accountv1.RateLimit {
	if r.IsZero() {
		return nil
	}
	return &accountv1.RateLimit{RequestsPerUnit: r.RequestsPerUnit, Unit: rateUnitsProto[r.Unit]}
}

// rateLimitOf converts a request's rate limit (nil: none); an unknown unit
// is a violation of field, never taken for none.
func rateLimitOf(v *account.Violations, field string, p *accountv1.RateLimit) authz.RateLimit {
	if p == nil {
		return authz.RateLimit{}
	}
	for u, pu := range rateUnitsProto {
		if pu == p.GetUnit() {
			return authz.RateLimit{RequestsPerUnit: p.GetRequestsPerUnit(), Unit: u}
		}
	}
	v.Add(field+".unit", "required: RATE_LIMIT_UNIT_SECOND, _MINUTE, _HOUR or _DAY")
	return authz.RateLimit{}
}

// rateLimitUpdate is an update's rate limit: nil to keep it, the zero
// value to clear it.
func rateLimitUpdate(v *account.Violations, p *accountv1.RateLimit, clear bool) *authz.RateLimit {
	switch {
	case p != nil && clear:
		v.Add("rate_limit", "set together with clear_rate_limit")
		return nil
	case p != nil:
		r := rateLimitOf(v, "rate_limit", p)
		return &r
	case clear:
		return &authz.RateLimit{}
	}
	return nil
}
