package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/store"
)

var _ store.Sessions = (*Store)(nil)

// CreateSession stores s and sweeps ended sessions in one statement. A
// session of a key that is gone is NotFound (the foreign key).
func (s *Store) CreateSession(ctx context.Context, ss store.Session, staleBefore, idleBefore time.Time) error {
	_, err := s.reads().Exec(ctx, `
WITH gone AS (
    DELETE FROM console_sessions WHERE created_at < $7 OR last_seen_at < $8)
INSERT INTO console_sessions (id, secret_hash, account_id, key_id, created_at, last_seen_at)
VALUES ($1, $2, $3, $4, $5, $6)`,
		ss.ID, ss.SecretHash, ss.AccountID, ss.KeyID, ss.CreatedAt, ss.LastSeenAt, staleBefore, idleBefore)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return err
		}
		return mapError(err, subject{AccountID: ss.AccountID, ID: ss.KeyID})
	}
	return nil
}

// GetSession reads one session.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	var ss store.Session
	err := s.reads().QueryRow(ctx, `
SELECT id, secret_hash, account_id, key_id, created_at, last_seen_at FROM console_sessions WHERE id = $1`, id).
		Scan(&ss.ID, &ss.SecretHash, &ss.AccountID, &ss.KeyID, &ss.CreatedAt, &ss.LastSeenAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ss, notFound("session not found")
	case err != nil:
		return ss, fmt.Errorf("postgres: read a session: %w", err)
	}
	ss.CreatedAt, ss.LastSeenAt = ss.CreatedAt.UTC(), ss.LastSeenAt.UTC()
	return ss, nil
}

// TouchSession moves a session's last request forward (never back: two
// replicas serving the same session at once may finish out of order).
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	_, err := s.reads().Exec(ctx, `UPDATE console_sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2`, id, at)
	if err != nil {
		return fmt.Errorf("postgres: record a session's request: %w", err)
	}
	return nil
}

// DeleteSession deletes a session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.reads().Exec(ctx, `DELETE FROM console_sessions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: delete a session: %w", err)
	}
	return nil
}
