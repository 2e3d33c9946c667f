package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// replicaFlags configure the heartbeats a database-mode replica writes
// for the sync status (SPEC §13).
type replicaFlags struct {
	ReplicaID         string        `name:"replica-id" env:"KEYGATE_REPLICA_ID" help:"This replica's id in keygate replicas and the sync status (default: the host name and a random suffix, new at every start)."`
	HeartbeatInterval time.Duration `name:"heartbeat-interval" env:"KEYGATE_HEARTBEAT_INTERVAL" default:"5s" help:"How often this replica records in PostgreSQL the change it has applied (its heartbeat)."`
	ReplicaTimeout    time.Duration `name:"replica-timeout" env:"KEYGATE_REPLICA_TIMEOUT" default:"30s" help:"Account API: a replica silent for longer is not live in the sync status and keygate replicas."`
	// HoldFeedFile is for tests: while the file exists this replica
	// applies no change of the feed (its heartbeats go on, truthfully
	// reporting what it has applied).
	HoldFeedFile string `name:"hold-feed-file" hidden:"" help:"Testing only: apply no change-feed entry while this file exists."`
}

func (f replicaFlags) validate() error {
	var errs []error
	if f.HeartbeatInterval <= 0 {
		errs = append(errs, fmt.Errorf("heartbeat-interval: %v must be positive", f.HeartbeatInterval))
	}
	if f.ReplicaTimeout <= f.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("replica-timeout: %v must be longer than --heartbeat-interval (%v), or every replica would flicker out of the live count", f.ReplicaTimeout, f.HeartbeatInterval))
	}
	if len(f.ReplicaID) > 256 {
		errs = append(errs, errors.New("replica-id: at most 256 bytes"))
	}
	for _, r := range f.ReplicaID {
		if r <= ' ' || r == 0x7f {
			errs = append(errs, fmt.Errorf("replica-id: %q has a space or control character; use letters, digits, - . _", f.ReplicaID))
			break
		}
	}
	return errors.Join(errs...)
}

// replicaID is --replica-id, or the host name and a random suffix.
func (f replicaFlags) replicaID() string {
	if f.ReplicaID != "" {
		return f.ReplicaID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "keygate"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// heartbeater writes this replica's heartbeats.
type heartbeater struct {
	rs      store.Replicas
	applied func() int64
	r       store.Replica
	every   time.Duration
	log     *slog.Logger
}

// run waits for the cache to be warm, then records a heartbeat at once
// and every interval until ctx is done, then a last one marking the
// replica stopped. A failed heartbeat is logged (a warning the first
// time) and the next one tried on schedule.
func (h *heartbeater) run(ctx context.Context, warm <-chan struct{}) {
	select {
	case <-ctx.Done():
		return
	case <-warm:
	}
	h.log.Info("replica heartbeats", "replica_id", h.r.ID, "interval", h.every)
	failing := false
	beat := func(ctx context.Context, stopped bool) {
		r := h.r
		r.Applied, r.Stopped = h.applied(), stopped
		err := h.rs.Heartbeat(ctx, r)
		switch {
		case err != nil && ctx.Err() != nil:
			// Cut short by shutdown: not a failure; the last heartbeat,
			// marking the replica stopped, follows.
		case err != nil && !failing:
			failing = true
			h.log.Warn("replica heartbeat failed; the sync status shows this replica behind until one succeeds", "replica_id", r.ID, "error", err)
		case err != nil:
			h.log.Debug("replica heartbeat failed", "replica_id", r.ID, "error", err)
		case failing:
			failing = false
			h.log.Info("replica heartbeat recorded again", "replica_id", r.ID)
		}
	}
	beat(ctx, false)
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			beat(last, true)
			cancel()
			return
		case <-t.C:
			beat(ctx, false)
		}
	}
}

// heldFeed is a store.Source whose change feed reads nothing while a file
// exists (--hold-feed-file, for tests of the sync status).
type heldFeed struct {
	store.Source
	path string
}

func (h heldFeed) held() bool {
	_, err := os.Stat(h.path)
	return err == nil
}

func (h heldFeed) ChangesSince(ctx context.Context, seq int64, limit int) ([]store.Change, error) {
	if h.held() {
		return nil, nil
	}
	return h.Source.ChangesSince(ctx, seq, limit)
}

func (h heldFeed) RevocationsSince(ctx context.Context, seq int64, limit int) ([]store.Change, error) {
	if h.held() {
		return nil, nil
	}
	return h.Source.RevocationsSince(ctx, seq, limit)
}

var _ store.Source = heldFeed{}
