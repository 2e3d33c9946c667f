package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TouchKeys records last-used times in one statement, keeping the later of
// the stored and the given time. Unknown (e.g. just deleted) keys are
// skipped. key_usage is apart from keys, so this never feeds the change
// feed nor bumps updated_at.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	// A fixed order: two replicas touching the same keys lock rows in the
	// same order and cannot deadlock.
	slices.Sort(ids)
	ats := make([]time.Time, len(ids))
	for i, id := range ids {
		ats[i] = used[id]
	}
	const sql = `INSERT INTO key_usage (key_id, last_used_at)
		SELECT u.id, u.at FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
		WHERE EXISTS (SELECT 1 FROM keys k WHERE k.id = u.id)
		ORDER BY u.id
		ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at
		WHERE key_usage.last_used_at < excluded.last_used_at`
	var err error
	// A key deleted between the EXISTS and the foreign-key check fails the
	// statement; the next attempt no longer sees it.
	for range 3 {
		if _, err = s.pool.Exec(ctx, sql, ids, ats); !isForeignKeyViolation(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: record last-used times: %w", err)
	}
	return nil
}

func isForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}
