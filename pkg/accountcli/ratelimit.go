package accountcli

import (
	"fmt"
	"strconv"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
)

var rateUnitsProto = map[authz.RateUnit]accountv1.RateLimitUnit{
	authz.RateUnitSecond: accountv1.RateLimitUnit_RATE_LIMIT_UNIT_SECOND,
	authz.RateUnitMinute: accountv1.RateLimitUnit_RATE_LIMIT_UNIT_MINUTE,
	authz.RateUnitHour:   accountv1.RateLimitUnit_RATE_LIMIT_UNIT_HOUR,
	authz.RateUnitDay:    accountv1.RateLimitUnit_RATE_LIMIT_UNIT_DAY,
}

// parseRateLimitFlag reads --rate-limit N/unit (5/s, 100/minute, 1000/h,
// 10/day); "" is none (nil).
func parseRateLimitFlag(flag, s string) (*accountv1.RateLimit, error) {
	if s == "" {
		return nil, nil
	}
	r, err := authz.ParseRateLimit(s)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return &accountv1.RateLimit{RequestsPerUnit: r.RequestsPerUnit, Unit: rateUnitsProto[r.Unit]}, nil
}

// rateLimitText is a rate limit as the tables show it: "5/second", "" for
// none.
func rateLimitText(r *accountv1.RateLimit) string {
	if r == nil {
		return ""
	}
	for u, pu := range rateUnitsProto {
		if pu == r.GetUnit() {
			return strconv.FormatUint(uint64(r.GetRequestsPerUnit()), 10) + "/" + u.String()
		}
	}
	return strconv.FormatUint(uint64(r.GetRequestsPerUnit()), 10) + "/" + r.GetUnit().String()
}
