package account

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// UsageInput asks for the caller's account's usage (SPEC §12): decisions
// about its keys in [Since, Until), per Granularity period, one series per
// distinct value of the GroupBy fields, among those matching Filters.
type UsageInput struct {
	Filters     map[store.UsageField]string
	Since       time.Time // required
	Until       time.Time // zero: now
	Granularity store.Granularity
	GroupBy     []store.UsageField
}

// Bounds of a usage query.
const (
	// MaxUsageRange is the longest range one query may cover.
	MaxUsageRange = 400 * 24 * time.Hour
	// MaxUsagePoints bounds one answer's points (all series together).
	MaxUsagePoints = 100_000
	maxUsageValue  = 256
)

// UsageOutcomes are the outcomes usage is counted by: allowed, then every
// reason a decision about a known key can deny with.
func UsageOutcomes() []string {
	out := []string{store.UsageOutcomeAllowed}
	for _, r := range authz.Reasons() {
		if r != authz.OK {
			out = append(out, r.String())
		}
	}
	return out
}

// GetUsage returns the caller's account's usage as series.
func (s *Service) GetUsage(ctx context.Context, c Caller, in UsageInput) ([]store.UsageSeries, error) {
	series, _, err := s.GetUsageQuery(ctx, c, in)
	return series, err
}

// GetUsageQuery is GetUsage that also returns the query it ran (the range
// and granularity with their defaults), for answers that echo them.
func (s *Service) GetUsageQuery(ctx context.Context, c Caller, in UsageInput) ([]store.UsageSeries, store.UsageQuery, error) {
	if err := s.check(c); err != nil {
		return nil, store.UsageQuery{}, err
	}
	r, ok := s.store.(store.UsageReader)
	if !ok {
		return nil, store.UsageQuery{}, errorf(FailedPrecondition, "usage is recorded in database mode only: this server reads a keys file")
	}
	q, err := s.usageQuery(c.AccountID, in)
	if err != nil {
		return nil, store.UsageQuery{}, err
	}
	series, err := r.QueryUsage(ctx, q)
	if errors.Is(err, store.ErrUsageTooLarge) {
		return nil, q, errorf(ResourceExhausted, "the answer would hold more than %d points: narrow the range (since, until), use a coarser granularity or group by fewer fields", MaxUsagePoints)
	}
	if err != nil {
		return nil, q, s.storeError(ctx, "GetUsage", "usage", err)
	}
	return series, q, nil
}

// usageQuery checks in and returns the store's query.
func (s *Service) usageQuery(accountID string, in UsageInput) (store.UsageQuery, error) {
	var v Violations
	q := store.UsageQuery{AccountID: accountID, Filters: map[store.UsageField]string{},
		Granularity: in.Granularity, MaxPoints: MaxUsagePoints}
	for f, val := range in.Filters {
		switch {
		case !slices.Contains(store.UsageFields, f):
			v.add(string(f), "is not a usage field: filter by %s", usageFieldList())
		case len(val) > maxUsageValue:
			v.add(string(f), "longer than %d bytes", maxUsageValue)
		case f == store.UsageOutcome && !slices.Contains(UsageOutcomes(), val):
			v.add("outcome", "%q is not an outcome: give allowed or a deny reason such as scope_denied", val)
		default:
			q.Filters[f] = val
		}
	}
	for _, f := range in.GroupBy {
		switch {
		case !slices.Contains(store.UsageFields, f):
			v.add("group_by", "%q is not a usage field: group by %s", f, usageFieldList())
		case !slices.Contains(q.GroupBy, f):
			q.GroupBy = append(q.GroupBy, f)
		}
	}
	switch q.Granularity {
	case "":
		q.Granularity = store.Daily
	case store.Hourly, store.Daily, store.Monthly:
	default:
		v.add("granularity", "%q is not a granularity: give hour, day or month", in.Granularity)
	}
	q.From, q.Until = in.Since.UTC(), in.Until.UTC()
	if in.Until.IsZero() {
		q.Until = s.now().UTC()
	}
	switch {
	case in.Since.IsZero():
		v.add("since", "required: the start of the range (at most %d days before until)", int(MaxUsageRange/(24*time.Hour)))
	case !q.From.Before(q.Until):
		v.add("since", "must be before until (%s is not before %s)", q.From.Format(time.RFC3339), q.Until.Format(time.RFC3339))
	case q.Until.Sub(q.From) > MaxUsageRange:
		v.add("since", "the range is longer than %d days: narrow it", int(MaxUsageRange/(24*time.Hour)))
	}
	if err := v.err(); err != nil {
		return store.UsageQuery{}, err
	}
	return q, nil
}

func usageFieldList() string {
	names := make([]string, len(store.UsageFields))
	for i, f := range store.UsageFields {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}
