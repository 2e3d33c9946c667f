package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store"
)

// TouchKeys records last-used times in one statement, keeping the later of
// the stored and the given time. Unknown (e.g. just deleted) keys are
// skipped. key_usage is apart from keys, so this never feeds the change
// feed nor bumps updated_at.
func (s *Store) TouchKeys(ctx context.Context, used map[store.KeyRef]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	// As array text (arrayText): every key used in an interval, 100,000
	// rows a minute in a round robin, in the map's order. The statement's
	// ORDER BY is the order rows are locked in, the same for every
	// replica, so that two touching the same keys cannot deadlock (sorting
	// them here as well held the CPU for tens of milliseconds without a
	// yield, requests waiting).
	accounts, ids, ats := newArrayText(len(used), 12), newArrayText(len(used), 24), newArrayText(len(used), 27)
	i := 0
	for r, at := range used {
		accounts.Text(r.AccountID)
		ids.Text(r.ID)
		ats.Time(at)
		yieldEvery(i)
		i++
	}
	const sql = `INSERT INTO key_usage (account_id, key_id, last_used_at)
		SELECT u.account_id, u.id, u.at
		FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(account_id, id, at)
		WHERE EXISTS (SELECT 1 FROM keys k WHERE k.account_id = u.account_id AND k.id = u.id)
		ORDER BY u.account_id, u.id
		ON CONFLICT (account_id, key_id) DO UPDATE SET last_used_at = excluded.last_used_at
		WHERE key_usage.last_used_at < excluded.last_used_at`
	params := [][]byte{accounts.Bytes(), ids.Bytes(), ats.Bytes()}
	err := s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		var err error
		// A key deleted between the EXISTS and the foreign-key check fails
		// the statement; the next attempt no longer sees it.
		for range 3 {
			if err = execArrays(ctx, c.Conn(), sql, params...); !isForeignKeyViolation(err) {
				break
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: record last-used times: %w", err)
	}
	return nil
}

// refColumns splits key references into the two arrays a statement
// unnests.
func refColumns(refs []store.KeyRef) (accounts, ids []string) {
	accounts, ids = make([]string, len(refs)), make([]string, len(refs))
	for i, r := range refs {
		accounts[i], ids[i] = r.AccountID, r.ID
	}
	return accounts, ids
}

func isForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}
