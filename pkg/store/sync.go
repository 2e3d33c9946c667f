package store

import (
	"context"
	"sync"
	"time"
)

// Replica is one serving replica as its heartbeats record it (SPEC §13).
type Replica struct {
	ID        string
	Version   string
	StartedAt time.Time
	// Applied is the change-feed seq up to which the replica has applied
	// every change (its cache's watermark), and AppliedAt when it last
	// reported it.
	Applied   int64
	AppliedAt time.Time
	// HeartbeatAt is when the replica last reported, by the store's clock.
	HeartbeatAt time.Time
	// Stopped: its last heartbeat was the one it writes at shutdown.
	Stopped bool
	// PendingSince is when the oldest change after Applied was committed
	// (zero: the replica has applied the whole feed). Read only.
	PendingSince time.Time
}

// SyncState is what the sync status is computed from, read at one time.
type SyncState struct {
	// Now is the store's clock when the state was read.
	Now time.Time
	// Head is the highest committed change-feed seq.
	Head int64
	// Replicas are every replica recorded, in id order.
	Replicas []Replica
}

// ReplicaRetention is how long a silent replica's row is kept: any
// heartbeat deletes the rows older than this.
const ReplicaRetention = 24 * time.Hour

// Replicas is what serving replicas write and the Account API reads of
// their sync state.
type Replicas interface {
	// Heartbeat records r (its HeartbeatAt is the store's clock, its
	// AppliedAt too when Applied moved) and deletes rows silent for
	// longer than ReplicaRetention.
	Heartbeat(ctx context.Context, r Replica) error
	// SyncState returns every replica and the feed head.
	SyncState(ctx context.Context) (SyncState, error)
	// KeyChangeNumber is the seq of the key's last change on the feed;
	// when the feed no longer holds it (pruned), the seq pruning went
	// up to, which every replica that follows the feed has passed.
	// ErrNotFound when the key does not exist.
	KeyChangeNumber(ctx context.Context, accountID, id string) (int64, error)
}

// ChangeNumbers collects the change-feed seqs the writes of one call
// committed: see WithChangeNumbers.
type ChangeNumbers struct {
	mu  sync.Mutex
	max int64
	set bool
}

type changeNumbersKey struct{}

// WithChangeNumbers returns a context under which the store's writes
// report the change number they committed: the highest change-feed seq
// their transaction wrote, or the feed head when it wrote none.
func WithChangeNumbers(ctx context.Context) (context.Context, *ChangeNumbers) {
	cn := &ChangeNumbers{}
	return context.WithValue(ctx, changeNumbersKey{}, cn), cn
}

// ChangeNumbersFrom returns the collector of ctx, nil when none.
func ChangeNumbersFrom(ctx context.Context) *ChangeNumbers {
	cn, _ := ctx.Value(changeNumbersKey{}).(*ChangeNumbers)
	return cn
}

// Note records a committed change number.
func (c *ChangeNumbers) Note(seq int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set = true
	c.max = max(c.max, seq)
}

// Get returns the highest change number noted, and whether any was.
func (c *ChangeNumbers) Get() (int64, bool) {
	if c == nil {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max, c.set
}
