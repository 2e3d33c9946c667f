package accounttest

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

var _ store.Replicas = (*Store)(nil)

// noteChange reports the feed head as the change number of a write made
// under store.WithChangeNumbers (see the PostgreSQL store's inTx).
func (s *Store) noteChange(ctx context.Context) {
	cn := store.ChangeNumbersFrom(ctx)
	if cn == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cn.Note(s.seq)
}

// SetFeedHead moves the fake change feed's head (for sync tests).
func (s *Store) SetFeedHead(seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq = seq
}

// Heartbeat records r as the PostgreSQL store does.
func (s *Store) Heartbeat(_ context.Context, r store.Replica) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	now := s.clock()
	for id, old := range s.replicas {
		if id != r.ID && old.HeartbeatAt.Before(now.Add(-store.ReplicaRetention)) {
			delete(s.replicas, id)
		}
	}
	r.HeartbeatAt, r.PendingSince = now, time.Time{}
	r.StartedAt = dbTime(r.StartedAt)
	if old, ok := s.replicas[r.ID]; ok && old.Applied == r.Applied {
		r.AppliedAt = old.AppliedAt
	} else {
		r.AppliedAt = now
	}
	s.replicas[r.ID] = r
	return nil
}

// SyncState returns the replicas in id order and the feed head. The fake
// feed keeps no commit times: PendingSince is the clock's reading.
func (s *Store) SyncState(_ context.Context) (store.SyncState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.SyncState{}, s.fail
	}
	st := store.SyncState{Now: s.clock(), Head: s.seq}
	for _, r := range s.replicas {
		if r.Applied < s.seq {
			r.PendingSince = st.Now
		}
		st.Replicas = append(st.Replicas, r)
	}
	slices.SortFunc(st.Replicas, func(a, b store.Replica) int { return strings.Compare(a.ID, b.ID) })
	return st, nil
}

// KeyChangeNumber returns the seq of the key's last change.
func (s *Store) KeyChangeNumber(_ context.Context, accountID, id string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	if _, err := s.getKeyLocked(accountID, id); err != nil {
		return 0, err
	}
	return s.keySeq[ref{accountID, id}], nil
}
