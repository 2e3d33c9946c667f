package postgres

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/chunked"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/yield"
)

// usagePartitionLock serialises replicas creating or dropping usage_hourly
// partitions (pg_advisory_xact_lock).
const usagePartitionLock int64 = 7739274784134029685

// usageBatch is how many rows one INSERT carries.
const usageBatch = 5000

// AddUsage adds hourly deltas to usage_hourly in one transaction (all or
// none), creating the month partitions they need (and the next month's,
// ahead of time).
func (s *Store) AddUsage(ctx context.Context, deltas map[store.UsageRow]int64) error {
	rows := new(chunked.List[store.UsageDelta])
	for r, n := range deltas {
		rows.Append(store.UsageDelta{Row: r, Count: n})
	}
	_, err := s.AddUsageQuotas(ctx, rows, nil, "")
	return err
}

// AddUsageQuotas is AddUsage that also adds quotas to quota_counts in the
// same transaction (store.QuotaLedger).
func (s *Store) AddUsageQuotas(ctx context.Context, rows *chunked.List[store.UsageDelta], quotas *chunked.List[store.QuotaDelta], writer string) ([]store.QuotaTotal, error) {
	if rows.Len() == 0 && quotas.Len() == 0 {
		return nil, nil
	}
	months := map[time.Time]bool{}
	var last time.Time
	for i, r := range rows.All() {
		if h := r.Row.Hour; i == 0 || !h.Equal(last) {
			m := monthOf(h)
			months[m], months[m.AddDate(0, 1, 0)] = true, true
			last = h
		}
	}
	if err := s.ensureUsagePartitions(ctx, months); err != nil {
		return nil, err
	}
	// One order every replica shares (rowOrder). A row named twice is one
	// row (an INSERT may not change a row twice): its counts are summed
	// into the first.
	order := rowOrder(rows.Len(), func(i int) uint64 { return usageRowHash(&rows.At(i).Row) },
		func(a, b int) int { return compareUsageRows(&rows.At(a).Row, &rows.At(b).Row) })
	counts := make([]int64, rows.Len())
	merged := order[:0]
	for i, j := range order {
		yield.Every(i, 1024)
		if i > 0 && compareUsageRows(&rows.At(int(merged[len(merged)-1])).Row, &rows.At(int(j)).Row) == 0 {
			counts[merged[len(merged)-1]] += rows.At(int(j)).Count
			continue
		}
		merged = append(merged, j)
		counts[j] = rows.At(int(j)).Count
	}
	order = merged
	const sql = `INSERT INTO usage_hourly (account_id, hour, tenant_id, app_id, key_id, service, operation, outcome, count)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[])
		ON CONFLICT (account_id, hour, key_id, service, operation, outcome, tenant_id, app_id)
		DO UPDATE SET count = usage_hourly.count + excluded.count`
	var totals []store.QuotaTotal
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One set of columns for every chunk: each is sent before the
		// next is built.
		n := min(len(order), usageBatch)
		acc, tenant, app, key := newArrayText(n, 12), newArrayText(n, 12), newArrayText(n, 12), newArrayText(n, 24)
		svc, op, out := newArrayText(n, 12), newArrayText(n, 16), newArrayText(n, 10)
		hours, cs := newArrayText(n, 22), newArrayText(n, 2)
		cols := arrayColumns{acc, hours, tenant, app, key, svc, op, out, cs} // in the statement's order
		var params [][]byte
		for chunk := range slices.Chunk(order, usageBatch) {
			cols.reset()
			for i, j := range chunk {
				yield.Every(i, 1024)
				r := &rows.At(int(j)).Row
				acc.Text(r.AccountID)
				tenant.Text(r.TenantID)
				app.Text(r.AppID)
				key.Text(r.KeyID)
				svc.Text(r.Service)
				op.Text(r.Operation)
				out.Text(r.Outcome)
				hours.Time(r.Hour.Truncate(time.Hour))
				cs.Int(counts[j])
			}
			params = cols.params(params)
			if err := execArrays(ctx, tx.Conn(), sql, params...); err != nil {
				return err
			}
		}
		var err error
		if totals, err = addQuotaTotals(ctx, tx, quotas, writer); err != nil {
			return err
		}
		// Last: the rollup's rows are the ones every replica's flush
		// shares, so they are held for the shortest time.
		return addUsageDaily(ctx, tx, rows)
	})
	if err != nil {
		// A partition this replica believed in may have been dropped by
		// another's retention (rows that old only come after a long
		// outage): forget them all, so that the retry creates what it needs.
		s.usageParts.Clear()
		return nil, fmt.Errorf("postgres: add usage counts: %w", err)
	}
	return totals, nil
}

// usageRowHash is the hash rowOrder sorts usage rows by.
func usageRowHash(r *store.UsageRow) uint64 {
	h := fnvString(fnvOffset, r.AccountID)
	h = fnvUint64(h, uint64(r.Hour.Unix()))
	for _, s := range [...]string{r.KeyID, r.Service, r.Operation, r.Outcome, r.TenantID, r.AppID} {
		h = fnvString(h, s)
	}
	return h
}

func compareUsageRows(a, b *store.UsageRow) int {
	return cmp.Or(strings.Compare(a.AccountID, b.AccountID), a.Hour.Compare(b.Hour),
		strings.Compare(a.KeyID, b.KeyID), strings.Compare(a.Service, b.Service),
		strings.Compare(a.Operation, b.Operation), strings.Compare(a.Outcome, b.Outcome),
		strings.Compare(a.TenantID, b.TenantID), strings.Compare(a.AppID, b.AppID))
}

func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// usagePartitionName is the partition of the month starting at m.
func usagePartitionName(m time.Time) string {
	return fmt.Sprintf("usage_hourly_p%04d%02d", m.Year(), int(m.Month()))
}

var usagePartitionPattern = regexp.MustCompile(`^usage_hourly_p([0-9]{4})([0-9]{2})$`)

// EnsureUsagePartitions creates the partitions of the month of now and of
// the ahead months after it, when missing.
func (s *Store) EnsureUsagePartitions(ctx context.Context, now time.Time, ahead int) error {
	months := map[time.Time]bool{}
	m := monthOf(now)
	for i := 0; i <= ahead; i++ {
		months[m.AddDate(0, i, 0)] = true
	}
	return s.ensureUsagePartitions(ctx, months)
}

func (s *Store) ensureUsagePartitions(ctx context.Context, months map[time.Time]bool) error {
	var missing []time.Time
	for m := range months {
		if _, ok := s.usageParts.Load(m.Unix()); !ok {
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, usagePartitionLock); err != nil {
			return err
		}
		for _, m := range missing {
			// The name and bounds are built from integers: nothing of a
			// caller's reaches this statement. The fillfactor leaves each
			// page room for the flushes' updates of its rows' counts to
			// stay heap-only (migration 0018).
			sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF usage_hourly FOR VALUES FROM ('%s') TO ('%s') WITH (fillfactor = 45)`,
				usagePartitionName(m), m.Format(time.RFC3339), m.AddDate(0, 1, 0).Format(time.RFC3339))
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: create usage partitions: %w", err)
	}
	for _, m := range missing {
		s.usageParts.Store(m.Unix(), true)
	}
	return nil
}

// DropUsageBefore drops the usage_hourly partitions whose whole month is
// before before, and returns how many it dropped.
func (s *Store) DropUsageBefore(ctx context.Context, before time.Time) (int, error) {
	dropped := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, usagePartitionLock); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_inherits i
			JOIN pg_class c ON c.oid = i.inhrelid
			JOIN pg_class p ON p.oid = i.inhparent
			WHERE p.relname = 'usage_hourly' AND p.relnamespace = c.relnamespace
			  AND p.relnamespace = to_regnamespace(current_schema())::oid`)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, name := range names {
			m := usagePartitionPattern.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			y, _ := strconv.Atoi(m[1])
			mo, _ := strconv.Atoi(m[2])
			start := time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC)
			if start.AddDate(0, 1, 0).After(before) {
				continue
			}
			if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{name}.Sanitize()); err != nil {
				return err
			}
			s.usageParts.Delete(start.Unix())
			dropped++
		}
		return dropUsageDailyBefore(ctx, tx, before)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: drop old usage partitions: %w", err)
	}
	return dropped, nil
}

// usageColumns are the columns of the usage fields (a closed list: only
// these names reach a statement).
var usageColumns = map[store.UsageField]string{
	store.UsageTenant: "tenant_id", store.UsageApp: "app_id", store.UsageKey: "key_id",
	store.UsageService: "service", store.UsageOperation: "operation", store.UsageOutcome: "outcome",
}

// QueryUsage sums an account's buckets by period and group: from the
// daily rollup when it holds what q asks (usageDailyAnswers), else from
// the hourly rows.
func (s *Store) QueryUsage(ctx context.Context, q store.UsageQuery) ([]store.UsageSeries, error) {
	return s.queryUsage(ctx, q, usageDailyAnswers(q))
}

func (s *Store) queryUsage(ctx context.Context, q store.UsageQuery, daily bool) ([]store.UsageSeries, error) {
	gran := string(q.Granularity)
	switch q.Granularity {
	case store.Hourly, store.Daily, store.Monthly:
	default:
		return nil, fmt.Errorf("postgres: usage granularity %q", gran)
	}
	// As PostgreSQL holds them, so that the rollup's day bounds agree.
	q.From, q.Until = q.From.Truncate(time.Microsecond), q.Until.Truncate(time.Microsecond)
	args := []any{q.AccountID, q.From, q.Until, gran}
	var where strings.Builder
	for _, f := range store.UsageFields {
		v, ok := q.Filters[f]
		if !ok {
			continue
		}
		args = append(args, v)
		fmt.Fprintf(&where, " AND %s = $%d", usageColumns[f], len(args))
	}
	if q.KeyIDs != nil {
		args = append(args, q.KeyIDs)
		fmt.Fprintf(&where, " AND key_id = ANY($%d)", len(args))
	}
	var group []string
	for _, f := range store.UsageFields {
		if slices.Contains(q.GroupBy, f) {
			group = append(group, usageColumns[f])
		}
	}
	sel := strings.Join(append(slices.Clone(group), "date_trunc($4, hour, 'UTC') AS t", "sum(count)::bigint"), ", ")
	by := strings.Join(append(slices.Clone(group), "t"), ", ")
	order := make([]string, 0, len(group)+1)
	for _, c := range group {
		order = append(order, c+` COLLATE "C"`) // byte order, as Go sorts
	}
	sql := `SELECT ` + sel + ` FROM usage_hourly WHERE account_id = $1 AND hour >= $2 AND hour < $3` + where.String() +
		` GROUP BY ` + by + ` ORDER BY ` + strings.Join(append(order, "t"), ", ")
	if daily {
		lo, hi := dayBounds(q.From, q.Until)
		args = append(args, lo, hi)
		// Points whose hours in the range counted nothing (the rows of
		// their days are all outside it) are none, as on the hourly path.
		sql = `SELECT ` + sel + ` FROM ` + usageDailyFrom(strings.Join(group, ", "), where.String(), len(args)-1, len(args)) +
			` GROUP BY ` + by + ` HAVING sum(count) <> 0 ORDER BY ` + strings.Join(append(order, "t"), ", ")
	}
	if q.MaxPoints > 0 {
		sql += ` LIMIT ` + strconv.Itoa(q.MaxPoints+1)
	}
	if q.KeyIDs != nil {
		// Planned for these values each time: a cached statement's
		// generic plan (from the sixth run on) reads every partition's
		// rows of the range (8 to 15 times slower for a page of keys).
		args = append([]any{pgx.QueryExecModeExec}, args...)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: query usage: %w", err)
	}
	defer rows.Close()
	var (
		out    []store.UsageSeries
		points int
	)
	vals := make([]string, len(group))
	dest := make([]any, 0, len(group)+2)
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	var (
		t time.Time
		n int64
	)
	dest = append(dest, &t, &n)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("postgres: query usage: %w", err)
		}
		if points++; q.MaxPoints > 0 && points > q.MaxPoints {
			return nil, store.ErrUsageTooLarge
		}
		if len(out) == 0 || !sameGroup(out[len(out)-1].Group, group, vals) {
			g := map[store.UsageField]string{}
			i := 0
			for _, f := range store.UsageFields {
				if slices.Contains(q.GroupBy, f) {
					g[f] = vals[i]
					i++
				}
			}
			out = append(out, store.UsageSeries{Group: g})
		}
		last := &out[len(out)-1]
		last.Points = append(last.Points, store.UsagePoint{Time: t.UTC(), Count: n})
		last.Total += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: query usage: %w", err)
	}
	return out, nil
}

// sameGroup reports whether a series' group holds vals (in column order).
func sameGroup(g map[store.UsageField]string, cols []string, vals []string) bool {
	i := 0
	for _, f := range store.UsageFields {
		if _, ok := g[f]; ok {
			if g[f] != vals[i] {
				return false
			}
			i++
		}
	}
	return i == len(cols)
}
