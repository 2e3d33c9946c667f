package accountcli

import (
	"fmt"
	"strconv"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
)

var quotaPeriodsProto = map[authz.QuotaPeriod]accountv1.QuotaPeriod{
	authz.QuotaPeriodDay:   accountv1.QuotaPeriod_QUOTA_PERIOD_DAY,
	authz.QuotaPeriodMonth: accountv1.QuotaPeriod_QUOTA_PERIOD_MONTH,
}

// parseQuotaFlag reads a key's --quota N/day or N/month; "" is none (nil).
func parseQuotaFlag(flag, s string) (*accountv1.Quota, error) {
	if s == "" {
		return nil, nil
	}
	q, err := authz.ParseQuota(s)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return &accountv1.Quota{Requests: q.Requests, Period: quotaPeriodsProto[q.Period]}, nil
}

// tenantQuotaFlag is a tenant's --quota N (requests a month); 0 is none.
func tenantQuotaFlag(n int64) (*accountv1.Quota, error) {
	switch {
	case n == 0:
		return nil, nil
	case n < 0 || n > authz.MaxQuotaRequests:
		return nil, fmt.Errorf("--quota: %d requests a month is not between 1 and %d", n, int64(authz.MaxQuotaRequests))
	}
	return &accountv1.Quota{Requests: n, Period: accountv1.QuotaPeriod_QUOTA_PERIOD_MONTH}, nil
}

// quotaText is a quota as the tables show it: "1000/month", "" for none.
func quotaText(q *accountv1.Quota) string {
	if q == nil {
		return ""
	}
	for p, pp := range quotaPeriodsProto {
		if pp == q.GetPeriod() {
			return strconv.FormatInt(q.GetRequests(), 10) + "/" + p.String()
		}
	}
	return strconv.FormatInt(q.GetRequests(), 10) + "/" + q.GetPeriod().String()
}

// quotaStatusText is a quota's state in one line: "tenant acme: 950 of
// 1000/month used, resets 2027-01-01T00:00:00Z", with "(used up)" when it
// is.
func quotaStatusText(q *accountv1.QuotaStatus) string {
	s := fmt.Sprintf("%s %s: %d of %s used, resets %s", q.GetSubject(), q.GetId(), q.GetUsed(), quotaText(q.GetQuota()), fmtTime(q.GetResetTime()))
	if q.GetExceeded() {
		s += " (used up: denied quota_exceeded until then)"
	}
	return s
}

// keyQuotaRows are the QUOTA USED rows of `keys get`: the state of each
// quota that binds the key, as GetKey answers it (none when the caller
// may not read it).
func keyQuotaRows(cl *client, id string) [][2]string {
	r, err := call(cl, cl.api.GetKey, &accountv1.GetKeyRequest{Id: id})
	if err != nil {
		return nil
	}
	var rows [][2]string
	for _, q := range r.GetQuotaStatus() {
		rows = append(rows, [2]string{"QUOTA USED", quotaStatusText(q)})
	}
	return rows
}
