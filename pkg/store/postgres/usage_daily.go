package postgres

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/chunked"
	"github.com/keygate/keygate/pkg/store"
)

// usage_daily_owner (migration 0017) is the daily rollup of usage_hourly
// by account, tenant, app and outcome: a flush adds its rows to it, summed
// in memory, in its transaction, and the queries that need no other field
// read it instead of the hourly rows.

// dailyRow is a row of usage_daily_owner; day is its UTC day's start in
// Unix seconds.
type dailyRow struct {
	account, tenant, app, outcome string
	day                           int64
}

const secondsPerDay = 24 * 60 * 60

// dayOf is the start of t's UTC day in Unix seconds (a UTC day is 86,400
// of them: Unix time has no leap seconds).
func dayOf(t time.Time) int64 {
	s := t.Unix()
	return s - ((s%secondsPerDay)+secondsPerDay)%secondsPerDay
}

func compareDailyRows(a, b *dailyRow) int {
	return cmp.Or(strings.Compare(a.account, b.account), cmp.Compare(a.day, b.day),
		strings.Compare(a.tenant, b.tenant), strings.Compare(a.app, b.app), strings.Compare(a.outcome, b.outcome))
}

// addUsageDaily adds rows to usage_daily_owner in tx: one row per account,
// day, tenant, app and outcome, in one order every replica shares (they
// are few: sorted by their values), last in every flush (after the hourly
// rows and the quota totals), so that replicas lock rows of the three
// tables in the same order.
func addUsageDaily(ctx context.Context, tx pgx.Tx, rows *chunked.List[store.UsageDelta]) error {
	keys, sums := dailySums(rows)
	const sql = `INSERT INTO usage_daily_owner (account_id, day, tenant_id, app_id, outcome, count)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::bigint[])
		ON CONFLICT (account_id, day, tenant_id, app_id, outcome)
		DO UPDATE SET count = usage_daily_owner.count + excluded.count`
	n := min(len(keys), usageBatch)
	acc, tenant, app, out := newArrayText(n, 12), newArrayText(n, 12), newArrayText(n, 12), newArrayText(n, 10)
	days, counts := newArrayText(n, 22), newArrayText(n, 4)
	cols := arrayColumns{acc, days, tenant, app, out, counts} // in the statement's order
	var params [][]byte
	for chunk := range slices.Chunk(keys, usageBatch) {
		cols.reset()
		for i := range chunk {
			k := &chunk[i]
			acc.Text(k.account)
			tenant.Text(k.tenant)
			app.Text(k.app)
			out.Text(k.outcome)
			days.Time(time.Unix(k.day, 0))
			counts.Int(sums[*k])
		}
		params = cols.params(params)
		if err := execArrays(ctx, tx.Conn(), sql, params...); err != nil {
			return err
		}
	}
	return nil
}

// dailySums sums rows by rollup row, and returns the rollup rows sorted.
func dailySums(rows *chunked.List[store.UsageDelta]) ([]dailyRow, map[dailyRow]int64) {
	sums := map[dailyRow]int64{}
	var (
		lastHour time.Time
		lastDay  int64
	)
	for i, d := range rows.All() {
		r := &d.Row
		if i == 0 || !r.Hour.Equal(lastHour) {
			lastHour, lastDay = r.Hour, dayOf(r.Hour)
		}
		sums[dailyRow{account: r.AccountID, tenant: r.TenantID, app: r.AppID, outcome: r.Outcome, day: lastDay}] += d.Count
	}
	keys := make([]dailyRow, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b dailyRow) int { return compareDailyRows(&a, &b) })
	return keys, sums
}

// dropUsageDailyBefore deletes the rollup's rows of the months whose
// usage_hourly partitions DropUsageBefore(before) drops: those before
// before's month.
func dropUsageDailyBefore(ctx context.Context, tx pgx.Tx, before time.Time) error {
	_, err := tx.Exec(ctx, `DELETE FROM usage_daily_owner WHERE day < $1`, monthOf(before))
	return err
}

// usageDailyAnswers reports whether q can be answered from the rollup: by
// day or month, filtered and grouped by its fields only, all keys.
func usageDailyAnswers(q store.UsageQuery) bool {
	if q.Granularity != store.Daily && q.Granularity != store.Monthly || q.KeyIDs != nil {
		return false
	}
	rolled := func(f store.UsageField) bool {
		return f == store.UsageTenant || f == store.UsageApp || f == store.UsageOutcome
	}
	for f := range q.Filters {
		if !rolled(f) {
			return false
		}
	}
	for _, f := range q.GroupBy {
		if !rolled(f) {
			return false
		}
	}
	return true
}

// usageDailyFrom is QueryUsage's FROM for a query usageDailyAnswers: the
// rollup's days that overlap [$2, $3), less the hourly rows of those days
// outside it (none when the range is whole days; a range up to now has
// only the hours after now, normally none). where holds the filters
// (columns of both tables); lo and hi are the numbers of the parameters
// holding the start of $2's day and the end of $3's.
func usageDailyFrom(cols, where string, lo, hi int) string {
	sel := "SELECT " + cols
	if cols != "" {
		sel += ", "
	}
	return `(` + sel + `day AS hour, count FROM usage_daily_owner
			WHERE account_id = $1 AND day >= $` + strconv.Itoa(lo) + ` AND day < $3` + where + `
		UNION ALL ` + sel + `hour, -count FROM usage_hourly
			WHERE account_id = $1 AND ((hour >= $` + strconv.Itoa(lo) + ` AND hour < $2) OR (hour >= $3 AND hour < $` + strconv.Itoa(hi) + `))` + where + `
	) AS u`
}

// dayBounds are the start of from's UTC day and the end of until's last
// instant's.
func dayBounds(from, until time.Time) (lo, hi time.Time) {
	lo = time.Unix(dayOf(from), 0).UTC()
	hi = time.Unix(dayOf(until.Add(-time.Microsecond))+secondsPerDay, 0).UTC()
	return lo, hi
}
