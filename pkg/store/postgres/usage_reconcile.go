package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// The daily rollup (usage_daily_owner) is written by keygate's flush in
// the transaction of its hourly rows, so the two agree in any snapshot.
// Hourly rows written any other way are not in it: a replica of an
// earlier version still flushing during a rolling upgrade after the
// migration, rows loaded by hand. ReconcileUsageRollup finds the days of
// the last two whose totals differ, per account, in one statement (one
// snapshot: a flush is in both or in neither), and rebuilds each such day
// of that account from its hourly rows, so that a fleet's charts heal by
// themselves within the hour (the aggregator's maintenance) after the last
// older replica stopped.

// usageReconcileLock makes one replica at a time reconcile
// (pg_try_advisory_xact_lock: the others skip it).
const usageReconcileLock int64 = 7739274784134029686

// reconcileDays is how many days, back from today (UTC), are compared.
const reconcileDays = 2

// ReconcileUsageRollup compares, for every account, the totals of the
// last two days (UTC, now's included) of usage_hourly and of the rollup,
// and rebuilds the rollup of each account's day that differs; it returns
// how many it rebuilt. Another replica reconciling at the same time makes
// it return 0 at once.
func (s *Store) ReconcileUsageRollup(ctx context.Context, now time.Time) (int, error) {
	to := time.Unix(dayOf(now), 0).UTC().Add(24 * time.Hour)
	from := to.Add(-reconcileDays * 24 * time.Hour)
	type accountDay struct {
		account string
		day     time.Time
	}
	var differ []accountDay
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, usageReconcileLock).Scan(&mine); err != nil || !mine {
			return err
		}
		// Each account's hourly rows through the primary key's
		// (account_id, hour, …) range, not a scan of the month.
		rows, err := tx.Query(ctx, `
			SELECT a.id, d.day FROM (
				SELECT id FROM accounts
				UNION SELECT DISTINCT account_id FROM usage_daily_owner WHERE day >= $1 AND day < $2
			) a, LATERAL (
				SELECT coalesce(h.day, r.day) AS day FROM
					(SELECT date_trunc('day', hour, 'UTC') AS day, sum(count) AS n FROM usage_hourly
						WHERE account_id = a.id AND hour >= $1 AND hour < $2 GROUP BY 1) h
					FULL JOIN
					(SELECT day, sum(count) AS n FROM usage_daily_owner
						WHERE account_id = a.id AND day >= $1 AND day < $2 GROUP BY 1) r
					ON h.day = r.day
				WHERE coalesce(h.n, 0) <> coalesce(r.n, 0)
			) d
			ORDER BY 1, 2`, from, to)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d accountDay
			if err := rows.Scan(&d.account, &d.day); err != nil {
				return err
			}
			differ = append(differ, d)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, err
	}
	for i, d := range differ {
		if err := s.rebuildUsageDay(ctx, d.account, d.day); err != nil {
			return i, err
		}
	}
	return len(differ), nil
}

// rebuildUsageDay recomputes one account's day of the rollup from its
// hourly rows with keygate_usage_daily_rebuild (migration 0017), which
// holds off the flushes meanwhile.
func (s *Store) rebuildUsageDay(ctx context.Context, account string, day time.Time) error {
	_, err := s.pool.Exec(ctx, `SELECT keygate_usage_daily_rebuild($1, $2, $3)`, day, day.Add(24*time.Hour), account)
	return err
}
