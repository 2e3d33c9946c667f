package postgres

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/chunked"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/yield"
)

var _ store.QuotaLedger = (*Store)(nil)

// quotaUsageQuery sums the allowed requests of every tenant and key with a
// quota since its period began ($1 the month's start, $2 the day's), each
// through its partial index of usage_hourly (migration 0010). Counts kept
// per account past a replica's memory bound (an empty key_id) count toward no
// quota: docs/usage.md says so.
const quotaUsageQuery = `
	SELECT t.account_id, true, t.id, 'month', coalesce((SELECT sum(u.count) FROM usage_hourly u
		WHERE u.tenant_id = t.id AND u.account_id = t.account_id AND u.outcome = 'allowed' AND u.hour >= $1), 0)
	FROM tenants t WHERE t.quota IS NOT NULL
	UNION ALL
	SELECT k.account_id, false, k.id, split_part(k.quota, '/', 2), coalesce((SELECT sum(u.count) FROM usage_hourly u
		WHERE u.key_id = k.id AND u.account_id = k.account_id AND u.outcome = 'allowed'
			AND u.hour >= CASE split_part(k.quota, '/', 2) WHEN 'day' THEN $2 ELSE $1 END), 0)
	FROM keys k WHERE k.quota IS NOT NULL`

// QuotaUsage returns what the fleet admitted against every quota in the
// periods holding now.
func (s *Store) QuotaUsage(ctx context.Context, now time.Time) ([]authz.QuotaUse, error) {
	return quotaUsage(ctx, s.reads(), now)
}

func quotaUsage(ctx context.Context, q querier, now time.Time) ([]authz.QuotaUse, error) {
	month, _ := authz.QuotaPeriodMonth.Bounds(now)
	day, _ := authz.QuotaPeriodDay.Bounds(now)
	rows, err := q.Query(ctx, quotaUsageQuery, month, day)
	if err != nil {
		return nil, fmt.Errorf("postgres: read quota counts: %w", err)
	}
	defer rows.Close()
	var out []authz.QuotaUse
	for rows.Next() {
		var (
			u      authz.QuotaUse
			period string
		)
		if err := rows.Scan(&u.Subject.AccountID, &u.Subject.Tenant, &u.Subject.ID, &period, &u.Used); err != nil {
			return nil, fmt.Errorf("postgres: read quota counts: %w", err)
		}
		if u.Subject.Period, err = authz.ParseQuotaPeriod(period); err != nil {
			return nil, fmt.Errorf("postgres: read quota counts: %s: %w", u.Subject, err)
		}
		u.Start = month
		if u.Subject.Period == authz.QuotaPeriodDay {
			u.Start = day
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read quota counts: %w", err)
	}
	return out, nil
}

// QuotaUsed returns what the fleet admitted against one quota of an
// account in the period holding now: its total in quota_counts, which the
// flushes keep (one row), or where no flush began one, the sum of its
// allowed usage rows (QuotaTotals).
func (s *Store) QuotaUsed(ctx context.Context, accountID string, subj authz.QuotaSubject, now time.Time) (int64, error) {
	n, err := s.QuotasUsed(ctx, accountID, []authz.QuotaSubject{subj}, now)
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

// QuotasUsed is QuotaUsed for many subjects of an account in one
// statement.
func (s *Store) QuotasUsed(ctx context.Context, accountID string, subjects []authz.QuotaSubject, now time.Time) ([]int64, error) {
	if len(subjects) == 0 {
		return nil, nil
	}
	uses := make([]authz.QuotaUse, len(subjects))
	for i, subj := range subjects {
		subj.AccountID = accountID
		uses[i].Subject = subj
		uses[i].Start, _ = subj.Period.Bounds(now)
	}
	if err := s.QuotaTotals(ctx, uses); err != nil {
		return nil, err
	}
	out := make([]int64, len(uses))
	for i := range uses {
		out[i] = uses[i].Used
	}
	return out, nil
}

// usageSum is a scalar subquery: the allowed requests of usage_hourly of
// the subject in the row of alias (columns account_id, tenant, subject_id,
// period_start, period_end), each side through its partial index.
func usageSum(alias string) string {
	sum := func(col string) string {
		return `(SELECT coalesce(sum(u.count), 0) FROM usage_hourly u WHERE u.` + col + ` = ` + alias + `.subject_id
			AND u.account_id = ` + alias + `.account_id AND u.outcome = 'allowed'
			AND u.hour >= ` + alias + `.period_start AND u.hour < ` + alias + `.period_end)`
	}
	return `CASE WHEN ` + alias + `.tenant THEN ` + sum("tenant_id") + ` ELSE ` + sum("key_id") + ` END::bigint`
}

// quotaAddSQL adds a flush's deltas to their totals in the order given (a
// fixed order: no deadlock between replicas), a total not there yet
// beginning with the delta, and answers the totals begun and those that
// differ from what the writer expected (-2: never).
const quotaAddSQL = `
WITH d AS MATERIALIZED (
	SELECT * FROM unnest($1::text[], $2::bool[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[], $7::bigint[])
		WITH ORDINALITY AS d(account_id, tenant, subject_id, period, period_start, delta, expected, n)),
w AS (
	INSERT INTO quota_counts AS q (account_id, tenant, subject_id, period, period_start, used, writer)
	SELECT account_id, tenant, subject_id, period, period_start, delta, $8 FROM d ORDER BY n
	ON CONFLICT (period_start, period, account_id, tenant, subject_id) DO UPDATE
		SET used = q.used + excluded.used, writer = excluded.writer, xid = pg_current_xact_id()
	RETURNING account_id, tenant, subject_id, period, period_start, used, xmax = 0 AS begun)
SELECT d.n, w.used, w.begun FROM w JOIN d USING (account_id, tenant, subject_id, period, period_start)
WHERE w.begun OR (d.expected <> -2 AND w.used <> d.expected)`

// quotaBeginSQL makes the totals a flush began the subjects' allowed
// usage rows of the period: this transaction's rows, and those committed
// before it. A writer that committed the subject's rows without a total
// (its record had no quota yet) is counted here; one whose transaction
// also adds to the total cannot have committed (it waits on this row).
var quotaBeginSQL = `
UPDATE quota_counts q SET used = ` + usageSum("i") + `
FROM unnest($1::text[], $2::bool[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::bigint[])
	AS i(account_id, tenant, subject_id, period, period_start, period_end, n)
WHERE q.account_id = i.account_id AND q.tenant = i.tenant AND q.subject_id = i.subject_id
	AND q.period = i.period AND q.period_start = i.period_start
RETURNING i.n, q.used`

// quotaColumns are the subject columns of quota rows, for unnest, in
// their text form (arrayText).
type quotaColumns struct {
	acc, ids, periods, tenant, starts, ends *arrayText
}

func newQuotaColumns(n int) quotaColumns {
	return quotaColumns{acc: newArrayText(n, 12), ids: newArrayText(n, 24), periods: newArrayText(n, 7),
		tenant: newArrayText(n, 1), starts: newArrayText(n, 22), ends: newArrayText(n, 22)}
}

// add appends a subject and period; with ends, the period's end too.
func (c *quotaColumns) add(s authz.QuotaSubject, start time.Time, ends bool) {
	c.acc.Text(s.AccountID)
	c.tenant.Bool(s.Tenant)
	c.ids.Text(s.ID)
	c.periods.Text(s.Period.String())
	c.starts.Time(start)
	if ends {
		_, end := s.Period.Bounds(start)
		c.ends.Time(end)
	}
}

// reset empties the columns for the next chunk, keeping their buffers.
func (c *quotaColumns) reset() {
	arrayColumns{c.acc, c.ids, c.periods, c.tenant, c.starts, c.ends}.reset()
}

// params are the columns as statement parameters (arrayColumns.params):
// account, tenant, subject, period, start, and with ends, the end.
func (c *quotaColumns) params(ends bool) [][]byte {
	cols := arrayColumns{c.acc, c.tenant, c.ids, c.periods, c.starts}
	if ends {
		cols = append(cols, c.ends)
	}
	return cols.params(nil)
}

// compareQuotaSubjects orders subjects as quota_counts' key does after
// the period's start (deltas are sorted by start first).
// quotaRowHash is the hash rowOrder sorts quota totals by.
func quotaRowHash(start int64, s *authz.QuotaSubject) uint64 {
	h := fnvUint64(fnvOffset, uint64(start))
	h = fnvUint64(h, uint64(s.Period))
	h = fnvString(h, s.AccountID)
	if s.Tenant {
		h = fnvUint64(h, 1)
	}
	return fnvString(h, s.ID)
}

func compareQuotaSubjects(a, b *authz.QuotaSubject) int {
	return cmp.Or(cmp.Compare(a.Period, b.Period), strings.Compare(a.AccountID, b.AccountID),
		compareBool(a.Tenant, b.Tenant), strings.Compare(a.ID, b.ID))
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// addQuotaTotals adds quotas to quota_counts in tx, as writer, and
// answers the totals begun or unexpected (store.QuotaLedger).
func addQuotaTotals(ctx context.Context, tx pgx.Tx, quotas *chunked.List[store.QuotaDelta], writer string) ([]store.QuotaTotal, error) {
	if quotas.Len() == 0 {
		return nil, nil
	}
	starts := make([]int64, quotas.Len())
	for i, q := range quotas.All() {
		starts[i] = q.Start.Unix()
	}
	same := func(a, b int32) int {
		if c := cmp.Compare(starts[a], starts[b]); c != 0 {
			return c
		}
		return compareQuotaSubjects(&quotas.At(int(a)).Subject, &quotas.At(int(b)).Subject)
	}
	// One order every replica shares (rowOrder), equal subjects together.
	order := rowOrder(quotas.Len(), func(i int) uint64 { return quotaRowHash(starts[i], &quotas.At(i).Subject) },
		func(a, b int) int { return same(int32(a), int32(b)) })
	// Deltas of one subject and period are summed into one row (an
	// INSERT may not change a row twice): the first answers for them, and
	// is answered whenever they expected differently.
	deltas, expected := make([]int64, 0, len(order)), make([]int64, 0, len(order))
	reps := order[:0]
	for i, j := range order {
		yield.Every(i, 1024)
		q := quotas.At(int(j))
		if i > 0 && same(reps[len(reps)-1], j) == 0 {
			last := len(reps) - 1
			deltas[last] += q.Delta
			if expected[last] != q.Expected {
				expected[last] = authz.QuotaTotalUnknown
			}
			continue
		}
		reps, deltas, expected = append(reps, j), append(deltas, q.Delta), append(expected, q.Expected)
	}
	var (
		out   []store.QuotaTotal
		begun = newQuotaColumns(0)
		beg   = newArrayText(0, 6) // the begun rows' indexes in quotas
	)
	// One set of columns for every chunk: each is sent before the next is
	// built.
	size := min(len(reps), usageBatch)
	c, ds, es := newQuotaColumns(size), newArrayText(size, 2), newArrayText(size, 2)
	for from := 0; from < len(reps); from += usageBatch {
		chunk := reps[from:min(from+usageBatch, len(reps))]
		c.reset()
		ds.Reset()
		es.Reset()
		for _, j := range chunk {
			q := quotas.At(int(j))
			c.add(q.Subject, q.Start, false)
		}
		for i := from; i < from+len(chunk); i++ {
			ds.Int(deltas[i])
			es.Int(expected[i])
		}
		err := queryArrays(ctx, tx.Conn(), quotaAddSQL, func(row [][]byte) error {
			if len(row) != 3 {
				return fmt.Errorf("quota totals: %d columns, want 3", len(row))
			}
			var n, used int64
			if err := textInts(row[:2], &n, &used); err != nil {
				return fmt.Errorf("quota totals: %w", err)
			}
			isBegun, err := textBool(row[2])
			if err != nil {
				return err
			}
			if n < 1 || n > int64(len(chunk)) {
				return fmt.Errorf("quota totals: row %d of %d", n, len(chunk))
			}
			j := int(chunk[n-1])
			if isBegun {
				q := quotas.At(j)
				begun.add(q.Subject, q.Start, true)
				beg.Int(int64(j))
				return nil
			}
			out = append(out, store.QuotaTotal{Index: j, Used: used})
			return nil
		}, append(c.params(false), ds.Bytes(), es.Bytes(), []byte(writer))...)
		if err != nil {
			return nil, err
		}
	}
	// The writer wrote: other writers' syncs look (quotaChangesSQL).
	if _, err := tx.Exec(ctx, `INSERT INTO quota_writers (writer) VALUES ($1)
		ON CONFLICT (writer) DO UPDATE SET xid = pg_current_xact_id(), written_at = now()`, writer); err != nil {
		return nil, err
	}
	if beg.Len() == 0 {
		return out, nil
	}
	err := queryArrays(ctx, tx.Conn(), quotaBeginSQL, func(row [][]byte) error {
		var j, used int64
		if err := textInts(row, &j, &used); err != nil {
			return fmt.Errorf("begun quota totals: %w", err)
		}
		if j < 0 || j >= int64(quotas.Len()) {
			return fmt.Errorf("begun quota totals: row %d of %d", j, quotas.Len())
		}
		if quotas.At(int(j)).Expected != authz.QuotaTotalUnwanted {
			out = append(out, store.QuotaTotal{Index: int(j), Used: used})
		}
		return nil
	}, append(begun.params(true), beg.Bytes())...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// QuotaSnapshot is QuotaUsage with the watermark of its snapshot: the
// oldest transaction it could not see (store.QuotaLedger).
func (s *Store) QuotaSnapshot(ctx context.Context, now time.Time) ([]authz.QuotaUse, uint64, error) {
	var (
		uses []authz.QuotaUse
		mark uint64
	)
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The first statement takes the snapshot both read.
		var err error
		if mark, err = snapshotXmin(ctx, tx); err != nil {
			return err
		}
		uses, err = quotaUsage(ctx, tx, now)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: read quota counts: %w", unavailable(err))
	}
	return uses, mark, nil
}

func snapshotXmin(ctx context.Context, q querier) (uint64, error) {
	var x string
	if err := q.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&x); err != nil {
		return 0, err
	}
	return strconv.ParseUint(x, 10, 64)
}

// quotaChangesSQL reads the totals of the current periods ($3 the day's
// start, $4 the month's) that writers other than $2 changed in or after
// transaction $1, and the watermark of its own snapshot (one row with it
// alone when nothing changed). The current periods' rows are read (a
// range of the key) only when another writer wrote since $1 at all: the
// EXISTS is a one-time filter.
const quotaChangesSQL = `
WITH w AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS next),
c AS (SELECT q.account_id, q.tenant, q.subject_id, q.period, q.period_start, q.used FROM quota_counts q
	WHERE EXISTS (SELECT 1 FROM quota_writers x WHERE x.writer <> $2 AND x.xid >= $1::text::xid8)
		AND ((q.period = 'day' AND q.period_start = $3) OR (q.period = 'month' AND q.period_start = $4))
		AND q.xid >= $1::text::xid8 AND q.writer <> $2)
SELECT w.next, c.account_id, c.tenant, c.subject_id, c.period, c.period_start, c.used FROM w LEFT JOIN c ON true`

// QuotaChanges returns the totals, in the periods holding now, that
// writers other than writer changed since the watermark since, and the
// next watermark (store.QuotaLedger).
func (s *Store) QuotaChanges(ctx context.Context, since uint64, writer string, now time.Time) ([]authz.QuotaUse, uint64, error) {
	day, _ := authz.QuotaPeriodDay.Bounds(now)
	month, _ := authz.QuotaPeriodMonth.Bounds(now)
	// Planned for this watermark each time: a generic plan cannot tell
	// that few rows are past it, and reads the whole table.
	rows, err := s.reads().Query(ctx, quotaChangesSQL, pgx.QueryExecModeExec, strconv.FormatUint(since, 10), writer, day, month)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: read quota changes: %w", err)
	}
	defer rows.Close()
	var (
		out  []authz.QuotaUse
		next string
	)
	for rows.Next() {
		var (
			acc, id, period *string
			tenant          *bool
			start           *time.Time
			used            *int64
		)
		if err := rows.Scan(&next, &acc, &tenant, &id, &period, &start, &used); err != nil {
			return nil, 0, fmt.Errorf("postgres: read quota changes: %w", err)
		}
		if acc == nil {
			continue // nothing changed
		}
		u := authz.QuotaUse{Subject: authz.QuotaSubject{AccountID: *acc, Tenant: *tenant, ID: *id}, Start: start.UTC(), Used: *used}
		if u.Subject.Period, err = authz.ParseQuotaPeriod(*period); err != nil {
			return nil, 0, fmt.Errorf("postgres: read quota changes: %s: %w", u.Subject, err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("postgres: read quota changes: %w", err)
	}
	mark, err := strconv.ParseUint(next, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: read quota changes: watermark %q: %w", next, err)
	}
	return out, mark, nil
}

// QuotaTotals fills in each use's total in the period that began at its
// Start: quota_counts' row, or where no flush began one yet, the allowed
// usage rows (store.QuotaLedger).
func (s *Store) QuotaTotals(ctx context.Context, uses []authz.QuotaUse) error {
	if len(uses) == 0 {
		return nil
	}
	c := newQuotaColumns(len(uses))
	for _, u := range uses {
		c.add(u.Subject, u.Start, true)
	}
	sql := `SELECT coalesce((SELECT q.used FROM quota_counts q WHERE q.account_id = s.account_id
			AND q.tenant = s.tenant AND q.subject_id = s.subject_id AND q.period = s.period AND q.period_start = s.period_start),
			` + usageSum("s") + `)
		FROM unnest($1::text[], $2::bool[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
			WITH ORDINALITY AS s(account_id, tenant, subject_id, period, period_start, period_end, n)
		ORDER BY s.n`
	totals := make([]int64, 0, len(uses))
	err := s.pool.AcquireFunc(ctx, func(conn *pgxpool.Conn) error {
		return queryArrays(ctx, conn.Conn(), sql, func(row [][]byte) error {
			var used int64
			if err := textInts(row, &used); err != nil {
				return err
			}
			totals = append(totals, used)
			return nil
		}, c.params(true)...)
	})
	if err == nil && len(totals) != len(uses) {
		err = fmt.Errorf("%d totals for %d subjects", len(totals), len(uses))
	}
	if err != nil {
		return fmt.Errorf("postgres: read quota totals: %w", unavailable(err))
	}
	for i := range uses {
		uses[i].Used = totals[i]
	}
	return nil
}

// DropQuotaTotalsBefore deletes the totals of periods that began before
// before, and returns how many (store.QuotaLedger); and the writers silent
// for a day (replicas gone: a live one's watermark is far past their
// last write).
func (s *Store) DropQuotaTotalsBefore(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.reads().Exec(ctx, `DELETE FROM quota_counts WHERE period_start < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: drop old quota totals: %w", err)
	}
	if _, err := s.reads().Exec(ctx, `DELETE FROM quota_writers WHERE written_at < now() - interval '1 day'`); err != nil {
		return 0, fmt.Errorf("postgres: drop old quota writers: %w", err)
	}
	return tag.RowsAffected(), nil
}
