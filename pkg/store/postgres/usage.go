package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/yield"
)

// TouchKeys records last-used times, keeping the later of the stored and
// the given time. Unknown (e.g. just deleted) keys are skipped. key_usage
// is apart from keys, so this never feeds the change feed nor bumps
// updated_at.
//
// The times go in statements of usageBatch rows, each committed on its
// own: every key used in a minute, 100,000 rows in a round robin, sent in
// one statement were 6.6 MB of array text allocated and written at once
// beside the requests. A statement holds its row locks only until it
// commits and takes them in its ORDER BY's order, the same for every
// replica, so two replicas touching the same keys cannot deadlock; a batch
// cut short is written again whole (requeued by the cache), which changes
// nothing for the rows already written (a time only moves forward).
func (s *Store) TouchKeys(ctx context.Context, used map[store.KeyRef]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	const sql = `INSERT INTO key_usage (account_id, key_id, last_used_at)
		SELECT u.account_id, u.id, u.at
		FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(account_id, id, at)
		WHERE EXISTS (SELECT 1 FROM keys k WHERE k.account_id = u.account_id AND k.id = u.id)
		ORDER BY u.account_id, u.id
		ON CONFLICT (account_id, key_id) DO UPDATE SET last_used_at = excluded.last_used_at
		WHERE key_usage.last_used_at < excluded.last_used_at`
	n := min(len(used), usageBatch)
	accounts, ids, ats := newArrayText(n, 12), newArrayText(n, 24), newArrayText(n, 27)
	err := s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		send := func() error {
			params := [][]byte{accounts.Bytes(), ids.Bytes(), ats.Bytes()}
			var err error
			// A key deleted between the EXISTS and the foreign-key check
			// fails the statement; the next attempt no longer sees it.
			for range 3 {
				if err = execArrays(ctx, c.Conn(), sql, params...); !isForeignKeyViolation(err) {
					break
				}
			}
			accounts.Reset()
			ids.Reset()
			ats.Reset()
			return err
		}
		i := 0
		for r, at := range used {
			accounts.Text(r.AccountID)
			ids.Text(r.ID)
			ats.Time(at)
			yield.Every(i, 1024)
			if i++; i%usageBatch == 0 {
				if err := send(); err != nil {
					return err
				}
			}
		}
		if i%usageBatch == 0 {
			return nil
		}
		return send()
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
