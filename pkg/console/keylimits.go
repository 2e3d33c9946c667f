// A key's own rate limit and quota in the key form: a number and a unit
// (or period) each, "none" to have none.

package console

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/keygate/keygate/pkg/authz"
)

// limitsForm is the form's rate limit and quota as entered: the number
// of requests as typed, the unit ("second" … "day") or period ("day",
// "month"), "none" (or "") for none.
type limitsForm struct {
	RateRequests, RateUnit     string
	QuotaRequests, QuotaPeriod string
}

// rateUnits and quotaPeriods are the selects' options.
var (
	rateUnits    = []string{"second", "minute", "hour", "day"}
	quotaPeriods = []string{"day", "month"}
)

// RateUnits and QuotaPeriods are the selects' options, for the template.
func (limitsForm) RateUnits() []string    { return rateUnits }
func (limitsForm) QuotaPeriods() []string { return quotaPeriods }

func limitsOf(rl authz.RateLimit, q authz.Quota) limitsForm {
	f := limitsForm{RateUnit: "none", QuotaPeriod: "none"}
	if !rl.IsZero() {
		f.RateRequests, f.RateUnit = strconv.FormatUint(uint64(rl.RequestsPerUnit), 10), rl.Unit.String()
	}
	if !q.IsZero() {
		f.QuotaRequests, f.QuotaPeriod = strconv.FormatInt(q.Requests, 10), q.Period.String()
	}
	return f
}

func readLimits(pf url.Values) limitsForm {
	return limitsForm{
		RateRequests: strings.TrimSpace(pf.Get("rate_limit_requests")), RateUnit: strings.TrimSpace(pf.Get("rate_limit_unit")),
		QuotaRequests: strings.TrimSpace(pf.Get("quota_requests")), QuotaPeriod: strings.TrimSpace(pf.Get("quota_period")),
	}
}

// requestCount reads a number of requests as typed ("1,000" and "1 000" too):
// ok false when it is not a positive whole number that fits bits.
func requestCount(s string, bits int) (uint64, bool) {
	s = strings.NewReplacer(",", "", "_", "", " ", "").Replace(s)
	n, err := strconv.ParseUint(s, 10, bits)
	return n, err == nil && n > 0
}

func isNone(s string) bool { return s == "" || strings.EqualFold(s, "none") }

// limits reads the rate limit and the quota. A field that does not read
// is an error beside it, in the service's field names (rate_limit,
// quota); the bounds are the service's to check, and its errors land
// beside the same fields.
func (f limitsForm) limits(errs map[string]string) (authz.RateLimit, authz.Quota) {
	var rl authz.RateLimit
	var unit authz.RateUnit
	if n, ok := readLimit(errs, "rate_limit", "rate limit", f.RateRequests, f.RateUnit, "second, minute, hour or day", 32,
		func(s string) (err error) { unit, err = authz.ParseRateUnit(s); return err }); ok {
		rl = authz.RateLimit{RequestsPerUnit: uint32(n), Unit: unit}
	}
	var q authz.Quota
	var period authz.QuotaPeriod
	if n, ok := readLimit(errs, "quota", "quota", f.QuotaRequests, f.QuotaPeriod, "day or month", 63,
		func(s string) (err error) { period, err = authz.ParseQuotaPeriod(s); return err }); ok {
		q = authz.Quota{Requests: int64(n), Period: period}
	}
	return rl, q
}

// readLimit reads one limit as typed, a number of requests (fitting bits)
// and a unit that parseUnit reads: ok false for none, or when it does
// not read, which is then an error in errs[field] naming what to do
// (choices: the units offered; noun: the limit's name).
func readLimit(errs map[string]string, field, noun, requests, unit, choices string, bits int, parseUnit func(string) error) (n uint64, ok bool) {
	switch {
	case isNone(unit) && requests != "":
		errs[field] = field + ": " + strconv.Quote(requests) + " requests per what? Choose " + choices + ", or empty the number for no " + noun
	case isNone(unit):
	case requests == "":
		errs[field] = field + ": type how many requests per " + unit + ", or choose none for no " + noun
	default:
		n, counted := requestCount(requests, bits)
		switch err := parseUnit(unit); {
		case err != nil:
			errs[field] = field + ": " + err.Error()
		case !counted:
			errs[field] = field + ": " + strconv.Quote(requests) + " is not a positive whole number of requests (choose none for no " + noun + ")"
		default:
			return n, true
		}
	}
	return 0, false
}

// rateText and keyQuotaText are a key's own limits as its page shows
// them.
func rateText(rl authz.RateLimit) string {
	if rl.IsZero() {
		return "none of its own (its roles' strictest applies, if any)"
	}
	return strconv.FormatUint(uint64(rl.RequestsPerUnit), 10) + " requests per " + rl.Unit.String()
}

func keyQuotaText(q authz.Quota) string {
	if q.IsZero() {
		return "none of its own (its tenant's binds it, if any)"
	}
	return strconv.FormatInt(q.Requests, 10) + " requests per calendar " + q.Period.String() + " (UTC)"
}
