package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/authz"
)

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
	month, _ := authz.QuotaPeriodMonth.Bounds(now)
	day, _ := authz.QuotaPeriodDay.Bounds(now)
	rows, err := s.reads().Query(ctx, quotaUsageQuery, month, day)
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
// account in the period holding now.
func (s *Store) QuotaUsed(ctx context.Context, accountID string, subj authz.QuotaSubject, now time.Time) (int64, error) {
	start, _ := subj.Period.Bounds(now)
	col := "key_id"
	if subj.Tenant {
		col = "tenant_id"
	}
	var n int64
	err := s.reads().QueryRow(ctx, `SELECT coalesce(sum(count), 0) FROM usage_hourly
		WHERE `+col+` = $1 AND account_id = $2 AND outcome = 'allowed' AND hour >= $3`, subj.ID, accountID, start).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: read the count of %s: %w", subj, err)
	}
	return n, nil
}

// QuotasUsed is QuotaUsed for many subjects of an account in one
// statement, each count through its partial index of usage_hourly.
func (s *Store) QuotasUsed(ctx context.Context, accountID string, subjects []authz.QuotaSubject, now time.Time) ([]int64, error) {
	if len(subjects) == 0 {
		return nil, nil
	}
	tenant := make([]bool, len(subjects))
	ids := make([]string, len(subjects))
	starts := make([]time.Time, len(subjects))
	for i, subj := range subjects {
		tenant[i], ids[i] = subj.Tenant, subj.ID
		starts[i], _ = subj.Period.Bounds(now)
	}
	rows, err := s.reads().Query(ctx, `SELECT CASE WHEN s.tenant
			THEN (SELECT coalesce(sum(u.count), 0) FROM usage_hourly u WHERE u.tenant_id = s.id AND u.account_id = $1
				AND u.outcome = 'allowed' AND u.hour >= s.start)
			ELSE (SELECT coalesce(sum(u.count), 0) FROM usage_hourly u WHERE u.key_id = s.id AND u.account_id = $1
				AND u.outcome = 'allowed' AND u.hour >= s.start) END::bigint
		FROM unnest($2::bool[], $3::text[], $4::timestamptz[]) WITH ORDINALITY AS s(tenant, id, start, n)
		ORDER BY s.n`, accountID, tenant, ids, starts)
	if err != nil {
		return nil, fmt.Errorf("postgres: read quota counts: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("postgres: read quota counts: %w", err)
	}
	return out, nil
}
