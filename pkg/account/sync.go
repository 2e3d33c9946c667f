package account

import (
	"context"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// DefaultReplicaTimeout is how long a replica may stay silent and still
// count as live (SPEC §13).
const DefaultReplicaTimeout = 30 * time.Second

// ReplicaStatus is one replica as the sync status reports it.
type ReplicaStatus struct {
	store.Replica
	// Live: it has not stopped and its last heartbeat is at most the
	// replica timeout old.
	Live bool
	// ChangesBehind is how many change numbers separate what it applied
	// from the feed head (ListReplicas) or from the change asked about
	// (GetSyncStatus); LagBehind how long the oldest change it has not
	// applied has waited. Both zero when it is caught up.
	ChangesBehind int64
	Lag           time.Duration
}

// SyncStatus says how many live replicas have applied a change.
type SyncStatus struct {
	ChangeNumber int64
	Head         int64
	Live         int
	Synced       int
	// Behind are the live replicas that have not applied it, in id order.
	Behind []ReplicaStatus
}

// SyncInput names what GetSyncStatus is asked about: a change number, or
// a key of the caller's account (its last change). Exactly one.
type SyncInput struct {
	ChangeNumber int64
	KeyID        string
}

// replicas is the store's sync side; a store without one (file mode) has
// no sync status.
func (s *Service) replicas() (store.Replicas, error) {
	r, ok := s.store.(store.Replicas)
	if !ok {
		return nil, errorf(FailedPrecondition, "sync status needs database mode: this keygate keeps no replica heartbeats")
	}
	return r, nil
}

func (s *Service) replicaStatus(st store.SyncState, r store.Replica, target int64) ReplicaStatus {
	out := ReplicaStatus{Replica: r}
	out.Live = !r.Stopped && st.Now.Sub(r.HeartbeatAt) <= s.replicaTimeout
	if r.Applied < target {
		out.ChangesBehind = target - r.Applied
		if !r.PendingSince.IsZero() {
			out.Lag = max(st.Now.Sub(r.PendingSince), 0)
		}
	}
	return out
}

// ListReplicas returns every replica recorded, live or not, with its lag
// behind the feed head.
func (s *Service) ListReplicas(ctx context.Context, c Caller) ([]ReplicaStatus, int64, error) {
	if err := s.check(c); err != nil {
		return nil, 0, err
	}
	rs, err := s.replicas()
	if err != nil {
		return nil, 0, err
	}
	st, err := rs.SyncState(ctx)
	if err != nil {
		return nil, 0, s.storeError(ctx, "ListReplicas", "replicas", err)
	}
	out := make([]ReplicaStatus, len(st.Replicas))
	for i, r := range st.Replicas {
		out[i] = s.replicaStatus(st, r, st.Head)
	}
	return out, st.Head, nil
}

// GetSyncStatus says how many live replicas have applied a change (or a
// key's last change), and how far behind the others are.
func (s *Service) GetSyncStatus(ctx context.Context, c Caller, in SyncInput) (SyncStatus, error) {
	if err := s.check(c); err != nil {
		return SyncStatus{}, err
	}
	switch {
	case in.KeyID != "" && in.ChangeNumber != 0:
		return SyncStatus{}, errorf(InvalidArgument, "change_number and key_id: give one of them, not both")
	case in.KeyID == "" && in.ChangeNumber <= 0:
		return SyncStatus{}, fieldError(InvalidArgument, "change_number", "change_number: a change number (> 0, as a change returned it) or key_id is required")
	}
	if in.KeyID != "" {
		if err := refError("key_id", in.KeyID); err != nil {
			return SyncStatus{}, err
		}
	}
	rs, err := s.replicas()
	if err != nil {
		return SyncStatus{}, err
	}
	target := in.ChangeNumber
	if in.KeyID != "" {
		if target, err = rs.KeyChangeNumber(ctx, c.AccountID, in.KeyID); err != nil {
			return SyncStatus{}, s.storeError(ctx, "GetSyncStatus", quoted("key", in.KeyID), err)
		}
	}
	st, err := rs.SyncState(ctx)
	if err != nil {
		return SyncStatus{}, s.storeError(ctx, "GetSyncStatus", "replicas", err)
	}
	if target > st.Head {
		return SyncStatus{}, fieldError(InvalidArgument, "change_number", "change_number: change %d is not on the change feed (its head is %d)", target, st.Head)
	}
	out := SyncStatus{ChangeNumber: target, Head: st.Head}
	for _, r := range st.Replicas {
		rs := s.replicaStatus(st, r, target)
		if !rs.Live {
			continue
		}
		out.Live++
		if r.Applied >= target {
			out.Synced++
		} else {
			out.Behind = append(out.Behind, rs)
		}
	}
	return out, nil
}
