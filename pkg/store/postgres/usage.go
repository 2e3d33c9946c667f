package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	refs := make([]store.KeyRef, 0, len(used))
	for r := range used {
		refs = append(refs, r)
	}
	// A fixed order: two replicas touching the same keys lock rows in the
	// same order and cannot deadlock.
	slices.SortFunc(refs, compareRefs)
	// As array text (arrayText): every key used in an interval, 100,000
	// rows a minute in a round robin.
	accounts, ids, ats := newArrayText(len(refs), 12), newArrayText(len(refs), 24), newArrayText(len(refs), 27)
	for _, r := range refs {
		accounts.Text(r.AccountID)
		ids.Text(r.ID)
		ats.Time(used[r])
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

// compareRefs orders key references by account, then id.
func compareRefs(a, b store.KeyRef) int {
	if c := strings.Compare(a.AccountID, b.AccountID); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
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
