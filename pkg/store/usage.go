package store

import (
	"context"
	"errors"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/chunked"
)

// UsageRow is one hourly bucket of decisions (SPEC §12): who, what, which
// outcome ("allowed" or the deny reason) and the hour (UTC, truncated).
// Counts kept per account when a replica's bound was reached have every
// field but AccountID, Outcome and Hour empty (KeyID "" marks them).
type UsageRow struct {
	AccountID string
	TenantID  string
	AppID     string
	KeyID     string
	Service   string
	Operation string
	Outcome   string
	Hour      time.Time
}

// UsageOutcomeAllowed is the outcome of an allowed request; a deny's is
// its reason code.
const UsageOutcomeAllowed = "allowed"

// UsageWriter's sibling for counts: UsageCounts adds hourly deltas.
// AddUsage adds every delta or none, and must neither keep nor modify the
// map (a failed batch is retried). DropUsageBefore removes the buckets
// older than before (whole partitions where the store has them) and says
// how many partitions or rows went.
type UsageCounts interface {
	AddUsage(ctx context.Context, deltas map[UsageRow]int64) error
	DropUsageBefore(ctx context.Context, before time.Time) (int, error)
}

// UsageField is a dimension usage is filtered and grouped by.
type UsageField string

const (
	UsageTenant    UsageField = "tenant"
	UsageApp       UsageField = "app"
	UsageKey       UsageField = "key"
	UsageService   UsageField = "service"
	UsageOperation UsageField = "operation"
	UsageOutcome   UsageField = "outcome"
)

// UsageFields lists every field, in the order series are sorted by.
var UsageFields = []UsageField{UsageTenant, UsageApp, UsageKey, UsageService, UsageOperation, UsageOutcome}

// Granularity is the width of a usage point.
type Granularity string

const (
	Hourly  Granularity = "hour"
	Daily   Granularity = "day"
	Monthly Granularity = "month"
)

// Truncate returns the start (UTC) of the period t falls in.
func (g Granularity) Truncate(t time.Time) time.Time {
	t = t.UTC()
	switch g {
	case Daily:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	case Monthly:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return t.Truncate(time.Hour)
}

// UsageQuery asks for an account's usage in [From, Until), bucketed by
// Granularity, one series per distinct value of the GroupBy fields.
// Filters holds the fields to match exactly (absent: any).
type UsageQuery struct {
	AccountID   string
	Filters     map[UsageField]string
	From, Until time.Time
	Granularity Granularity
	GroupBy     []UsageField
	// KeyIDs, when not nil, keeps the buckets of these keys only (one
	// query for a page of keys' usage).
	KeyIDs []string
	// MaxPoints bounds the answer (0: no bound): more is ErrUsageTooLarge.
	MaxPoints int
}

// UsagePoint is one period's count; Time is the period's start (UTC).
type UsagePoint struct {
	Time  time.Time
	Count int64
}

// UsageSeries is the usage of one group: Group holds the value of each
// GroupBy field; Points are in time order and omit periods without a
// count.
type UsageSeries struct {
	Group  map[UsageField]string
	Points []UsagePoint
	Total  int64
}

// UsageReader answers usage queries. Series are sorted by their group
// values in UsageFields order.
type UsageReader interface {
	QueryUsage(ctx context.Context, q UsageQuery) ([]UsageSeries, error)
}

// ErrUsageTooLarge is returned by QueryUsage when the answer would hold
// more than the query's MaxPoints points.
var ErrUsageTooLarge = errors.New("the usage answer is too large")

// QuotaCounts is where replicas read what the fleet admitted against each
// quota (SPEC §12): the allowed requests of usage_hourly since the period
// began. QuotaUsage answers for every tenant and key with a quota, in the
// periods holding now; QuotaUsed for one subject of an account.
type QuotaCounts interface {
	QuotaUsage(ctx context.Context, now time.Time) ([]authz.QuotaUse, error)
	QuotaUsed(ctx context.Context, accountID string, s authz.QuotaSubject, now time.Time) (int64, error)
}

// QuotaBatchCounts is QuotaUsed for many subjects of an account in one
// read (a page of keys' quota states), the counts in subjects' order.
type QuotaBatchCounts interface {
	QuotasUsed(ctx context.Context, accountID string, subjects []authz.QuotaSubject, now time.Time) ([]int64, error)
}

// UsageDelta is a count to add to a usage row. A batch may name a row
// more than once: the counts are summed.
type UsageDelta struct {
	Row   UsageRow
	Count int64
}

// QuotaDelta is what a flush adds to a quota subject's total in the
// period that began at Start: the allowed requests of its usage rows.
// Expected is the total the writer believes the store will hold once
// Delta is added, or authz.QuotaTotalUnknown (answer it whatever it is),
// or authz.QuotaTotalUnwanted (never answer it).
type QuotaDelta struct {
	Subject  authz.QuotaSubject
	Start    time.Time
	Delta    int64
	Expected int64
}

// QuotaTotal is a subject's total after a flush: the quota delta at Index
// of the flush's, and the total it made.
type QuotaTotal struct {
	Index int
	Used  int64
}

// QuotaLedger is a QuotaCounts store that keeps each quota subject's total
// per period beside the usage rows (SPEC §12), so that a replica's
// periodic sync reads only the totals other replicas changed.
//
// AddUsageQuotas is AddUsage (of rows, which may name a row more than
// once) that also adds quotas to their subjects' totals, in the same
// transaction, as writer; a total the flush begins is
// the subject's allowed usage rows of the period, this flush's included.
// It answers the totals that differ from what the writer expected (there
// another writer counted too), and those it began, unless unwanted.
//
// QuotaSnapshot is QuotaUsage (every subject with a quota, at start) with
// the watermark of its read; QuotaChanges returns the totals, in the
// periods holding now, that writers other than writer changed since the
// watermark since, and the next watermark: a change in progress at a read
// is returned by the next one (again, maybe: totals are absolute).
// QuotaTotals fills in each use's Used: its subject's total in the period
// that began at Start. DropQuotaTotalsBefore deletes the totals of
// periods that began before before.
type QuotaLedger interface {
	QuotaCounts
	AddUsageQuotas(ctx context.Context, rows *chunked.List[UsageDelta], quotas *chunked.List[QuotaDelta], writer string) ([]QuotaTotal, error)
	QuotaSnapshot(ctx context.Context, now time.Time) ([]authz.QuotaUse, uint64, error)
	QuotaChanges(ctx context.Context, since uint64, writer string, now time.Time) ([]authz.QuotaUse, uint64, error)
	QuotaTotals(ctx context.Context, uses []authz.QuotaUse) error
	DropQuotaTotalsBefore(ctx context.Context, before time.Time) (int64, error)
}
