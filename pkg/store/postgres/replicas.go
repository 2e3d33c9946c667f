package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/store"
)

var _ store.Replicas = (*Store)(nil)

// Heartbeat upserts the replica's row and deletes rows silent for longer
// than store.ReplicaRetention, in one statement.
func (s *Store) Heartbeat(ctx context.Context, r store.Replica) error {
	_, err := s.reads().Exec(ctx, `
WITH gone AS (
    DELETE FROM replicas WHERE heartbeat_at < clock_timestamp() - make_interval(secs => $6) AND id <> $1)
INSERT INTO replicas (id, version, started_at, applied_seq, applied_at, heartbeat_at, stopped)
VALUES ($1, $2, $3, $4, clock_timestamp(), clock_timestamp(), $5)
ON CONFLICT (id) DO UPDATE SET
    version = excluded.version,
    started_at = excluded.started_at,
    applied_at = CASE WHEN replicas.applied_seq = excluded.applied_seq THEN replicas.applied_at ELSE excluded.applied_at END,
    applied_seq = excluded.applied_seq,
    heartbeat_at = excluded.heartbeat_at,
    stopped = excluded.stopped`,
		r.ID, r.Version, r.StartedAt, r.Applied, r.Stopped, store.ReplicaRetention.Seconds())
	if err != nil {
		return fmt.Errorf("postgres: record the heartbeat of replica %q: %w", r.ID, err)
	}
	return nil
}

// SyncState reads the replicas, the feed head and the clock in one
// statement (one snapshot).
func (s *Store) SyncState(ctx context.Context) (store.SyncState, error) {
	var st store.SyncState
	err := s.reads().QueryRow(ctx, `SELECT clock_timestamp(), coalesce((SELECT max(seq) FROM key_changes), 0)`).Scan(&st.Now, &st.Head)
	if err != nil {
		return st, fmt.Errorf("postgres: read the feed head: %w", err)
	}
	rows, err := s.reads().Query(ctx, `
SELECT r.id, r.version, r.started_at, r.applied_seq, r.applied_at, r.heartbeat_at, r.stopped,
       (SELECT c.at FROM key_changes c WHERE c.seq > r.applied_seq ORDER BY c.seq LIMIT 1)
FROM replicas r ORDER BY r.id`)
	if err != nil {
		return st, fmt.Errorf("postgres: list replicas: %w", err)
	}
	st.Replicas, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Replica, error) {
		var r store.Replica
		var pending *time.Time
		err := row.Scan(&r.ID, &r.Version, &r.StartedAt, &r.Applied, &r.AppliedAt, &r.HeartbeatAt, &r.Stopped, &pending)
		if pending != nil {
			r.PendingSince = pending.UTC()
		}
		r.StartedAt, r.AppliedAt, r.HeartbeatAt = r.StartedAt.UTC(), r.AppliedAt.UTC(), r.HeartbeatAt.UTC()
		return r, err
	})
	if err != nil {
		return st, unavailable(fmt.Errorf("postgres: list replicas: %w", err))
	}
	st.Now = st.Now.UTC()
	return st, nil
}

// KeyChangeNumber reads the key's last feed change through
// key_changes_key_idx, or the seq pruning reached when it is gone.
func (s *Store) KeyChangeNumber(ctx context.Context, accountID, id string) (int64, error) {
	var seq int64
	err := s.reads().QueryRow(ctx, `
SELECT coalesce(
    (SELECT max(c.seq) FROM key_changes c WHERE c.account_id = k.account_id AND c.object_id = k.id AND c.kind = 'key'),
    (SELECT through_seq FROM key_changes_pruned), 0)
FROM keys k WHERE k.account_id = $1 AND k.id = $2`, accountID, id).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound("key %q not found", id)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: read the last change of key %q: %w", id, err)
	}
	return seq, nil
}
