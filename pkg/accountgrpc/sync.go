package accountgrpc

import (
	"context"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
)

// GetSyncStatus says how many live replicas have applied a change or a
// key's last change.
func (s *Server) GetSyncStatus(ctx context.Context, r *accountv1.GetSyncStatusRequest) (*accountv1.GetSyncStatusResponse, error) {
	st, err := s.svc.GetSyncStatus(ctx, callerFrom(ctx), account.SyncInput{ChangeNumber: r.GetChangeNumber(), KeyID: r.GetKeyId()})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.GetSyncStatusResponse{
		ChangeNumber: st.ChangeNumber, Head: st.Head,
		Live: int32(st.Live), Synced: int32(st.Synced),
	}
	for _, b := range st.Behind {
		out.Behind = append(out.Behind, replicaProto(b))
	}
	return out, nil
}

// ListReplicas lists the replicas, live or not.
func (s *Server) ListReplicas(ctx context.Context, _ *accountv1.ListReplicasRequest) (*accountv1.ListReplicasResponse, error) {
	rs, head, err := s.svc.ListReplicas(ctx, callerFrom(ctx))
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.ListReplicasResponse{Head: head, Replicas: make([]*accountv1.Replica, len(rs))}
	for i, r := range rs {
		out.Replicas[i] = replicaProto(r)
	}
	return out, nil
}

func replicaProto(r account.ReplicaStatus) *accountv1.Replica {
	return &accountv1.Replica{
		Id: r.ID, Version: r.Version,
		StartedAt:     timestamppb.New(r.StartedAt),
		AppliedChange: r.Applied,
		AppliedAt:     timestamppb.New(r.AppliedAt),
		HeartbeatAt:   timestamppb.New(r.HeartbeatAt),
		Live:          r.Live,
		Stopped:       r.Stopped,
		ChangesBehind: r.ChangesBehind,
		Lag:           durationpb.New(r.Lag),
	}
}
