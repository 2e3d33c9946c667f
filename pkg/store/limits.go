package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Object kinds an account's quotas count (SPEC §10).
const (
	QuotaKeys    = "keys"
	QuotaApps    = "apps"
	QuotaTenants = "tenants"
	QuotaRoles   = "roles"
	QuotaDenials = "denials"
)

// QuotaKinds are the kinds in the order commands and audit records list
// them.
var QuotaKinds = []string{QuotaKeys, QuotaApps, QuotaTenants, QuotaRoles, QuotaDenials}

// LimitName is the name of a kind's limit as operators set it: max_keys,
// max_apps, …
func LimitName(kind string) string { return "max_" + kind }

// Limits are the most objects of each kind an account may hold; a store
// refuses a create past them.
type Limits struct {
	Keys, Apps, Tenants, Roles, Denials int64
}

// DefaultLimits are SPEC §10's defaults, what serve uses unless its
// --max-*-per-account flags say otherwise.
var DefaultLimits = Limits{Keys: 100_000, Apps: 10_000, Tenants: 10_000, Roles: 1_000, Denials: 10_000}

// WithDefaults is l with every field that is not positive set to
// DefaultLimits'.
func (l Limits) WithDefaults() Limits {
	for _, k := range QuotaKinds {
		if *l.field(k) <= 0 {
			*l.field(k) = *DefaultLimits.field(k)
		}
	}
	return l
}

// Get is the limit of kind.
func (l Limits) Get(kind string) int64 { return *l.field(kind) }

func (l *Limits) field(kind string) *int64 {
	switch kind {
	case QuotaKeys:
		return &l.Keys
	case QuotaApps:
		return &l.Apps
	case QuotaTenants:
		return &l.Tenants
	case QuotaRoles:
		return &l.Roles
	case QuotaDenials:
		return &l.Denials
	}
	panic("store: unknown quota kind " + kind)
}

// LimitOverrides are an account's own limits, set by an operator; a nil
// field is the store's default.
type LimitOverrides struct {
	Keys, Apps, Tenants, Roles, Denials *int64
}

// Get is the override of kind, nil when there is none.
func (o LimitOverrides) Get(kind string) *int64 { return *o.field(kind) }

func (o *LimitOverrides) field(kind string) **int64 {
	switch kind {
	case QuotaKeys:
		return &o.Keys
	case QuotaApps:
		return &o.Apps
	case QuotaTenants:
		return &o.Tenants
	case QuotaRoles:
		return &o.Roles
	case QuotaDenials:
		return &o.Denials
	}
	panic("store: unknown quota kind " + kind)
}

// Effective is the limits that hold: each override, else the default's.
func (o LimitOverrides) Effective(defaults Limits) Limits {
	out := defaults
	for _, k := range QuotaKinds {
		if v := o.Get(k); v != nil {
			*out.field(k) = *v
		}
	}
	return out
}

// LimitsUpdate changes an account's overrides: for each kind it names,
// Set (a nil *int64 clears the override back to the default).
type LimitsUpdate map[string]*int64

// Apply is o with u's changes.
func (u LimitsUpdate) Apply(o LimitOverrides) LimitOverrides {
	for kind, v := range u {
		*o.field(kind) = v
	}
	return o
}

// Usage counts what an account holds, kind by kind.
type Usage struct {
	Keys, Apps, Tenants, Roles, Denials int64
}

// AccountLimits is what an operator sees of an account's quotas.
type AccountLimits struct {
	AccountID string
	Overrides LimitOverrides
	Effective Limits
	Usage     Usage
}

// ErrQuotaExceeded is what a create past an account's quota wraps
// (*QuotaError says which).
var ErrQuotaExceeded = errors.New("quota exceeded")

// QuotaError is a create refused because the account already holds as
// many objects of Kind as its limit allows.
type QuotaError struct {
	AccountID string
	Kind      string // QuotaKeys, …
	Count     int64  // what the account holds
	Max       int64  // its limit
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("account %q already has %d %s, the most it may have (%s = %d)",
		e.AccountID, e.Count, e.Kind, LimitName(e.Kind), e.Max)
}

func (e *QuotaError) Unwrap() error { return ErrQuotaExceeded }

// CheckQuota is the one rule of every store: an account holding count
// objects of kind may create one more only while count < max.
func CheckQuota(accountID, kind string, count, max int64) error {
	if count >= max {
		return &QuotaError{AccountID: accountID, Kind: kind, Count: count, Max: max}
	}
	return nil
}

// LimitsAudit is the audit record of an account's limit overrides (action
// "account.limits"): the overrides only, null for the default.
type LimitsAudit struct {
	MaxKeys    *int64 `json:"max_keys"`
	MaxApps    *int64 `json:"max_apps"`
	MaxTenants *int64 `json:"max_tenants"`
	MaxRoles   *int64 `json:"max_roles"`
	MaxDenials *int64 `json:"max_denials"`
}

// LimitsAuditOf is the audit record of o.
func LimitsAuditOf(o LimitOverrides) *LimitsAudit {
	return &LimitsAudit{MaxKeys: o.Keys, MaxApps: o.Apps, MaxTenants: o.Tenants, MaxRoles: o.Roles, MaxDenials: o.Denials}
}

// Quotas is what an operator's command (keygate accounts limits) and the
// contract suite need of a store beyond Accounts: an account's limits and
// counts, and changing its overrides (audited as "account.limits").
type Quotas interface {
	AccountLimits(ctx context.Context, accountID string) (AccountLimits, error)
	SetAccountLimits(ctx context.Context, actor Actor, accountID string, u LimitsUpdate) (AccountLimits, error)
}

// Get is the count of kind.
func (u Usage) Get(kind string) int64 { return Limits(u).Get(kind) }

// CheckLimitsUpdate refuses an update naming an unknown kind or a negative
// limit.
func CheckLimitsUpdate(u LimitsUpdate) error {
	for kind, v := range u {
		if !slices.Contains(QuotaKinds, kind) {
			return fmt.Errorf("unknown limit %s", LimitName(kind))
		}
		if v != nil && *v < 0 {
			return fmt.Errorf("%s: %d must not be negative", LimitName(kind), *v)
		}
	}
	return nil
}
