package accountgrpc

import (
	"context"

	"google.golang.org/protobuf/types/known/durationpb"

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

// replicaProto converts a replica's status; a time it did not report is
// unset, as GraphQL answers null (not 0001-01-01).
func replicaProto(r account.ReplicaStatus) *accountv1.Replica {
	return &accountv1.Replica{
		Id: r.ID, Version: r.Version,
		StartedAt:     ts(r.StartedAt),
		AppliedChange: r.Applied,
		AppliedAt:     ts(r.AppliedAt),
		HeartbeatAt:   ts(r.HeartbeatAt),
		Live:          r.Live,
		Stopped:       r.Stopped,
		ChangesBehind: r.ChangesBehind,
		Lag:           durationpb.New(r.Lag),
	}
}

// ListServices lists the services a key of the caller's account can be
// scoped to.
func (s *Server) ListServices(ctx context.Context, _ *accountv1.ListServicesRequest) (*accountv1.ListServicesResponse, error) {
	svcs, err := s.svc.Services(ctx, callerFrom(ctx))
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.ListServicesResponse{Services: make([]*accountv1.ServiceInfo, len(svcs))}
	for i, sv := range svcs {
		p := &accountv1.ServiceInfo{Name: sv.Name, KeyTypes: sv.KeyTypes, AnyKind: sv.AnyKind}
		for _, k := range sv.Kinds {
			p.Kinds = append(p.Kinds, &accountv1.ServiceKind{Name: k.Name, Operations: k.Operations, AnyOperation: k.AnyOperation})
		}
		out.Services[i] = p
	}
	return out, nil
}

// GetAccount returns the caller's account and key.
func (s *Server) GetAccount(ctx context.Context, _ *accountv1.GetAccountRequest) (*accountv1.GetAccountResponse, error) {
	a, err := s.svc.Account(ctx, callerFrom(ctx))
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.GetAccountResponse{AccountId: a.ID, AccountName: a.Name, KeyId: a.KeyID, KeyName: a.KeyName, Scope: a.Scope}
	for _, op := range a.Operations {
		out.Operations = append(out.Operations, &accountv1.AccountOperation{Name: op.Name, Kind: op.Kind})
	}
	return out, nil
}
