package authz

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// QuotaPeriod is the calendar period (UTC) a quota counts over (SPEC §12):
// a key's quota is daily or monthly, a tenant's monthly.
type QuotaPeriod uint8

// Quota periods. QuotaPeriodNone is the zero value: no quota.
const (
	QuotaPeriodNone QuotaPeriod = iota
	QuotaPeriodDay
	QuotaPeriodMonth
)

var quotaPeriodNames = [...]string{"", "day", "month"}

// String is the period's name ("day", "month"), "" for none.
func (p QuotaPeriod) String() string {
	if int(p) < len(quotaPeriodNames) {
		return quotaPeriodNames[p]
	}
	return "period(" + strconv.Itoa(int(p)) + ")"
}

// ParseQuotaPeriod reads day or month (any case; d, m, daily and monthly
// too).
func ParseQuotaPeriod(s string) (QuotaPeriod, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "day", "d", "daily":
		return QuotaPeriodDay, nil
	case "month", "m", "monthly":
		return QuotaPeriodMonth, nil
	}
	return QuotaPeriodNone, fmt.Errorf("period %q: want day or month", s)
}

// Bounds returns the period that holds t: its first instant and the first
// instant of the next one, in UTC.
func (p QuotaPeriod) Bounds(t time.Time) (start, end time.Time) {
	y, m, d := t.UTC().Date()
	switch p {
	case QuotaPeriodDay:
		start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	case QuotaPeriodMonth:
		start = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
	return time.Time{}, time.Time{}
}

// MaxQuotaRequests bounds a quota: far past any real one, and small enough
// that counts never come near overflow.
const MaxQuotaRequests = 1_000_000_000_000_000

// Quota is a number of allowed requests per calendar period (SPEC §12).
// The zero value is no quota.
type Quota struct {
	Requests int64
	Period   QuotaPeriod
}

// IsZero reports whether q is no quota.
func (q Quota) IsZero() bool { return q == Quota{} }

// String is "N/period" ("1000/day"), "" for no quota; ParseQuota reads it.
func (q Quota) String() string {
	if q.IsZero() {
		return ""
	}
	return strconv.FormatInt(q.Requests, 10) + "/" + q.Period.String()
}

// Check validates a quota: none, or a positive count of at most
// MaxQuotaRequests per day or month.
func (q Quota) Check() error {
	if q.IsZero() {
		return nil
	}
	if q.Period != QuotaPeriodDay && q.Period != QuotaPeriodMonth {
		return errors.New("period required: day or month")
	}
	if q.Requests <= 0 {
		return errors.New("requests must be positive (leave the quota out for none)")
	}
	if q.Requests > MaxQuotaRequests {
		return fmt.Errorf("requests %d is over the maximum %d", q.Requests, int64(MaxQuotaRequests))
	}
	return nil
}

// ParseQuota reads "N/period": 1000/day, 50000/month (1000/d, 1000/m). The
// result is checked; "" is an error.
func ParseQuota(s string) (Quota, error) {
	n, p, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Quota{}, fmt.Errorf("quota %q: want N/day or N/month, e.g. 1000/day", s)
	}
	count, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
	if err != nil || count <= 0 {
		return Quota{}, fmt.Errorf("quota %q: %q is not a positive whole number of requests", s, n)
	}
	period, err := ParseQuotaPeriod(p)
	if err != nil {
		return Quota{}, fmt.Errorf("quota %q: %w", s, err)
	}
	q := Quota{Requests: count, Period: period}
	if err := q.Check(); err != nil {
		return Quota{}, fmt.Errorf("quota %q: %w", s, err)
	}
	return q, nil
}

// Monthly is a tenant's quota of n requests a month; 0 is none.
func Monthly(n int64) Quota {
	if n == 0 {
		return Quota{}
	}
	return Quota{Requests: n, Period: QuotaPeriodMonth}
}

// BoundQuota is a quota that binds a key, and the subject it counts.
type BoundQuota struct {
	Subject QuotaSubject
	Quota   Quota
}

// BoundQuotas returns the quotas that bind a key of spec s, the first n of
// b: its tenant's monthly one (a key with a tenant that has one) first,
// then its own. The one rule every reader of quotas follows (row 10,
// explain, the Account API's quota state); an array, so that row 10
// allocates nothing.
func (s *KeySpec) BoundQuotas() (b [2]BoundQuota, n int) {
	return boundQuotas(s.AccountID, s.TenantID, s.TenantQuota, s.ID, s.Quota)
}

// BoundQuotas is KeySpec.BoundQuotas for a compiled record's KeyInfo.
func (s *KeyInfo) BoundQuotas() (b [2]BoundQuota, n int) {
	return boundQuotas(s.AccountID, s.TenantID, s.TenantQuota, s.ID, s.Quota)
}

func boundQuotas(accountID, tenantID string, tenantQuota int64, keyID string, quota Quota) (b [2]BoundQuota, n int) {
	if tenantID != "" && tenantQuota > 0 {
		b[n] = BoundQuota{QuotaSubject{AccountID: accountID, Tenant: true, ID: tenantID, Period: QuotaPeriodMonth}, Monthly(tenantQuota)}
		n++
	}
	if !quota.IsZero() {
		b[n] = BoundQuota{QuotaSubject{AccountID: accountID, ID: keyID, Period: quota.Period}, quota}
		n++
	}
	return b, n
}

// HasQuota reports whether a quota binds k (its own or its tenant's).
func (k *Key) HasQuota() bool { return k.hasQuota }

// QuotaSubject names what a quota counts: a tenant (monthly) or a key of
// an account, in one period. Tenant and key ids are unique only within an
// account: two accounts' "acme" are two subjects.
type QuotaSubject struct {
	AccountID string
	Tenant    bool // a tenant's quota; else a key's
	ID        string
	Period    QuotaPeriod
}

func (s QuotaSubject) String() string {
	kind := "key"
	if s.Tenant {
		kind = "tenant"
	}
	return kind + " " + s.ID + " (" + s.Period.String() + ")"
}
