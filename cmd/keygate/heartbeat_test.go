package main

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

func TestReplicaFlagsValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		f    replicaFlags
		want string // "" valid
	}{
		{"defaults", replicaFlags{HeartbeatInterval: 5 * time.Second, ReplicaTimeout: 30 * time.Second}, ""},
		{"id", replicaFlags{ReplicaID: "pod-7.eu_1", HeartbeatInterval: time.Second, ReplicaTimeout: 3 * time.Second}, ""},
		{"zero interval", replicaFlags{ReplicaTimeout: time.Second}, "heartbeat-interval: 0s must be positive"},
		{"timeout not above interval", replicaFlags{HeartbeatInterval: 5 * time.Second, ReplicaTimeout: 5 * time.Second}, "replica-timeout: 5s must be longer than --heartbeat-interval"},
		{"space in id", replicaFlags{ReplicaID: "pod 7", HeartbeatInterval: time.Second, ReplicaTimeout: 3 * time.Second}, `replica-id: "pod 7" has a space or control character`},
		{"long id", replicaFlags{ReplicaID: strings.Repeat("x", 257), HeartbeatInterval: time.Second, ReplicaTimeout: 3 * time.Second}, "replica-id: at most 256 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.f.validate()
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("validate() = %v; want %q", err, c.want)
			}
		})
	}
	if id := (replicaFlags{}).replicaID(); !strings.Contains(id, "-") || id == (replicaFlags{}).replicaID() {
		t.Fatalf("default replica ids %q: want host-suffix, new each time", id)
	}
}

// TestHeartbeaterLastBeatStopped: heartbeats start once warm, report the
// applied seq, and the last one, at shutdown, marks the replica stopped.
func TestHeartbeaterLastBeatStopped(t *testing.T) {
	st := accounttest.NewStore(t, authz.CompileOptions{}, nil)
	var applied atomic.Int64
	applied.Store(7)
	h := &heartbeater{rs: st, applied: applied.Load, every: time.Hour, log: slog.New(slog.DiscardHandler),
		r: store.Replica{ID: "r1", Version: "v", StartedAt: time.Now()}}
	ctx, cancel := context.WithCancel(t.Context())
	warm := make(chan struct{})
	done := make(chan struct{})
	go func() { h.run(ctx, warm); close(done) }()
	state := func() []store.Replica {
		s, err := st.SyncState(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return s.Replicas
	}
	close(warm)
	for len(state()) == 0 {
		time.Sleep(time.Millisecond) // the first heartbeat is written at once
	}
	if r := state()[0]; r.Applied != 7 || r.Stopped {
		t.Fatalf("first heartbeat %+v; want applied 7, not stopped", r)
	}
	applied.Store(9)
	cancel()
	<-done
	if r := state()[0]; r.Applied != 9 || !r.Stopped {
		t.Fatalf("last heartbeat %+v; want applied 9, stopped", r)
	}
}
