package console

import (
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

// The rate limit and quota fields: a number and a unit or period, none
// for none; what does not read is an error naming the field (the
// service's name for it) and what to do.
func TestKeyLimitsFields(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		rateN, rateUnit           string
		quotaN, quotaPeriod       string
		wantRate                  authz.RateLimit
		wantQuota                 authz.Quota
		wantRateErr, wantQuotaErr string
	}{
		{name: "none", rateUnit: "none", quotaPeriod: "none"},
		{name: "fields absent: none"},
		{name: "both", rateN: "100", rateUnit: "minute", quotaN: "50000", quotaPeriod: "month",
			wantRate: authz.RateLimit{RequestsPerUnit: 100, Unit: authz.RateUnitMinute}, wantQuota: authz.Quota{Requests: 50000, Period: authz.QuotaPeriodMonth}},
		{name: "thousands separators", rateN: "1,000", rateUnit: "hour", quotaN: "1 000 000", quotaPeriod: "day",
			wantRate: authz.RateLimit{RequestsPerUnit: 1000, Unit: authz.RateUnitHour}, wantQuota: authz.Quota{Requests: 1_000_000, Period: authz.QuotaPeriodDay}},
		{name: "short unit names", rateN: "5", rateUnit: "s", quotaN: "7", quotaPeriod: "d",
			wantRate: authz.RateLimit{RequestsPerUnit: 5, Unit: authz.RateUnitSecond}, wantQuota: authz.Quota{Requests: 7, Period: authz.QuotaPeriodDay}},
		{name: "a number without a unit", rateN: "100", rateUnit: "none", quotaN: "5", quotaPeriod: "",
			wantRateErr: "rate_limit: \"100\" requests per what? Choose second", wantQuotaErr: "quota: \"5\" requests per what? Choose day or month"},
		{name: "a unit without a number", rateUnit: "second", quotaPeriod: "month",
			wantRateErr: "rate_limit: type how many requests per second", wantQuotaErr: "quota: type how many requests per month"},
		{name: "zero", rateN: "0", rateUnit: "second", quotaN: "0", quotaPeriod: "day",
			wantRateErr: "rate_limit: \"0\" is not a positive whole number", wantQuotaErr: "quota: \"0\" is not a positive whole number"},
		{name: "not numbers", rateN: "lots", rateUnit: "second", quotaN: "-3", quotaPeriod: "day",
			wantRateErr: "rate_limit: \"lots\" is not a positive whole number", wantQuotaErr: "quota: \"-3\" is not a positive whole number"},
		{name: "past the types", rateN: "4294967296", rateUnit: "second", quotaN: "9223372036854775808", quotaPeriod: "day",
			wantRateErr: "rate_limit: \"4294967296\" is not", wantQuotaErr: "quota: \"9223372036854775808\" is not"},
		{name: "unknown unit and period", rateN: "5", rateUnit: "fortnight", quotaN: "5", quotaPeriod: "year",
			wantRateErr: "rate_limit: unit \"fortnight\": want second, minute, hour or day", wantQuotaErr: "quota: period \"year\": want day or month"},
		// Past the service's bounds: the console passes them on, and the
		// service's error lands beside the field (TestKeyLimitsForm).
		{name: "over the service's maximum", rateN: "2000000000", rateUnit: "day", quotaN: "2000000000000000", quotaPeriod: "month",
			wantRate: authz.RateLimit{RequestsPerUnit: 2_000_000_000, Unit: authz.RateUnitDay}, wantQuota: authz.Quota{Requests: 2_000_000_000_000_000, Period: authz.QuotaPeriodMonth}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{}
			for k, v := range map[string]string{"rate_limit_requests": tc.rateN, "rate_limit_unit": tc.rateUnit, "quota_requests": tc.quotaN, "quota_period": tc.quotaPeriod} {
				if v != "" {
					form.Set(k, " "+v+" ")
				}
			}
			errs := map[string]string{}
			rl, q := readLimits(form).limits(errs)
			if rl != tc.wantRate || q != tc.wantQuota {
				t.Errorf("read %+v, %+v; want %+v, %+v", rl, q, tc.wantRate, tc.wantQuota)
			}
			for field, want := range map[string]string{"rate_limit": tc.wantRateErr, "quota": tc.wantQuotaErr} {
				got := errs[field]
				if (want == "") != (got == "") || !strings.HasPrefix(got, want) {
					t.Errorf("%s error %q, want one starting %q", field, got, want)
				}
			}
			if len(errs) > 2 {
				t.Errorf("errors beyond the two fields: %v", errs)
			}
		})
	}
}

// A stored key's limits come back in the form as they read in.
func TestKeyLimitsFormRoundTrip(t *testing.T) {
	for _, c := range []struct {
		rl authz.RateLimit
		q  authz.Quota
	}{
		{},
		{authz.RateLimit{RequestsPerUnit: 5, Unit: authz.RateUnitSecond}, authz.Quota{}},
		{authz.RateLimit{}, authz.Quota{Requests: 1000, Period: authz.QuotaPeriodDay}},
		{authz.RateLimit{RequestsPerUnit: 1_000_000_000, Unit: authz.RateUnitDay}, authz.Quota{Requests: authz.MaxQuotaRequests, Period: authz.QuotaPeriodMonth}},
	} {
		f := limitsOf(c.rl, c.q)
		form := url.Values{"rate_limit_requests": {f.RateRequests}, "rate_limit_unit": {f.RateUnit}, "quota_requests": {f.QuotaRequests}, "quota_period": {f.QuotaPeriod}}
		errs := map[string]string{}
		rl, q := readLimits(form).limits(errs)
		if rl != c.rl || q != c.q || len(errs) != 0 {
			t.Errorf("%+v, %+v: form %+v read back as %+v, %+v, %v", c.rl, c.q, f, rl, q, errs)
		}
	}
}
