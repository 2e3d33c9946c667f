package accountcli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// ReplicasCmd is `keygate replicas`.
type ReplicasCmd struct {
	ClientFlags
}

func (c *ReplicasCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		r, err := call(cl, cl.api.ListReplicas, &accountv1.ListReplicasRequest{})
		if err != nil {
			return err
		}
		msgs := make([]proto.Message, len(r.GetReplicas()))
		rows := make([][]string, len(r.GetReplicas()))
		for i, rp := range r.GetReplicas() {
			msgs[i] = rp
			state := "live"
			switch {
			case rp.GetStopped():
				state = "stopped"
			case !rp.GetLive():
				state = "silent"
			}
			rows[i] = []string{rp.GetId(), state, rp.GetVersion(), fmtTime(rp.GetStartedAt()),
				strconv.FormatInt(rp.GetAppliedChange(), 10), fmtTime(rp.GetHeartbeatAt()), lagText(rp)}
		}
		if err := cl.out.list(msgs, []string{"ID", "STATE", "VERSION", "STARTED", "APPLIED", "HEARTBEAT", "LAG"}, rows); err != nil {
			return err
		}
		if len(rows) == 0 {
			return cl.out.line("no replica has recorded a heartbeat (replicas record them in database mode only)")
		}
		return nil
	})
}

// lagText is how far a replica is behind: "-" when caught up.
func lagText(r *accountv1.Replica) string {
	if r.GetChangesBehind() == 0 {
		return "-"
	}
	s := changes(r.GetChangesBehind())
	if d := r.GetLag().AsDuration(); d > 0 {
		s += ", " + d.Round(time.Millisecond).String()
	}
	return s
}

func changes(n int64) string {
	if n == 1 {
		return "1 change"
	}
	return strconv.FormatInt(n, 10) + " changes"
}

// SyncStatusCmd is `keygate sync-status`.
type SyncStatusCmd struct {
	ClientFlags
	Change int64  `name:"change" help:"A change number, as a change printed it (change N)."`
	Key    string `name:"key" help:"A key id or name: its last change."`
}

func (c *SyncStatusCmd) Run(e *Env) error {
	if (c.Change == 0) == (c.Key == "") {
		return errors.New("give one of --change N (a change number a change printed) or --key KEY")
	}
	if c.Change < 0 {
		return fmt.Errorf("--change: %d is not a change number (they are positive)", c.Change)
	}
	return run(&c.ClientFlags, e, func(cl *client) error {
		req := &accountv1.GetSyncStatusRequest{ChangeNumber: c.Change}
		if c.Key != "" {
			k, err := resolveKey(cl, c.Key)
			if err != nil {
				return err
			}
			req.KeyId = k.GetId()
		}
		st, err := call(cl, cl.api.GetSyncStatus, req)
		if err != nil {
			return err
		}
		rows := [][2]string{{"CHANGE", strconv.FormatInt(st.GetChangeNumber(), 10)}, {"SYNC", SyncText(st)}}
		for _, b := range st.GetBehind() {
			rows = append(rows, [2]string{"BEHIND", b.GetId() + ": " + lagText(b) + ", applied " + strconv.FormatInt(b.GetAppliedChange(), 10)})
		}
		return cl.out.object(st, rows)
	})
}

// SyncText is a sync status in one line: "synced 2/2", or "synced 1/2:
// replica-b 3 changes behind (1.2s)".
func SyncText(st *accountv1.GetSyncStatusResponse) string {
	s := fmt.Sprintf("synced %d/%d", st.GetSynced(), st.GetLive())
	if st.GetLive() == 0 {
		return s + ": no live replica"
	}
	var behind []string
	for _, b := range st.GetBehind() {
		t := b.GetId() + " " + changes(b.GetChangesBehind()) + " behind"
		if d := b.GetLag().AsDuration(); d > 0 {
			t += " (" + d.Round(time.Millisecond).String() + ")"
		}
		behind = append(behind, t)
	}
	if len(behind) > 0 {
		s += ": " + strings.Join(behind, ", ")
	}
	return s
}

// keySyncRow is the SYNC row of keys get: the sync status of the key's
// last change, or why it is unknown (the get itself does not fail).
func keySyncRow(cl *client, id string) [2]string {
	ctx, cancel := cl.ctx()
	defer cancel()
	st, err := cl.api.GetSyncStatus(ctx, &accountv1.GetSyncStatusRequest{KeyId: id})
	if err == nil {
		return [2]string{"SYNC", SyncText(st)}
	}
	s, _ := status.FromError(err)
	switch s.Code() {
	case codes.FailedPrecondition, codes.Unimplemented:
		return [2]string{"SYNC", "- (no replica heartbeats: file mode)"}
	case codes.PermissionDenied:
		return [2]string{"SYNC", "unknown: this account key may not call syncStatus (account-api:query:syncStatus)"}
	}
	return [2]string{"SYNC", "unknown: " + s.Code().String()}
}

// printChange tells on stderr, in table mode, the change number a
// mutation's response carries: what `keygate sync-status --change N`
// takes.
func printChange(cl *client, resp any) {
	m, ok := resp.(proto.Message)
	if !ok || cl.out.json {
		return
	}
	r := m.ProtoReflect()
	f := r.Descriptor().Fields().ByName("change_number")
	if f == nil || f.Kind() != protoreflect.Int64Kind {
		return
	}
	if n := r.Get(f).Int(); n > 0 {
		fmt.Fprintf(cl.env.Stderr, "change %d (keygate sync-status --change %d)\n", n, n)
	}
}
