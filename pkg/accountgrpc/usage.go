package accountgrpc

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/store"
)

// GetUsage returns the account's usage series.
func (s *Server) GetUsage(ctx context.Context, r *accountv1.GetUsageRequest) (*accountv1.GetUsageResponse, error) {
	in := account.UsageInput{Filters: map[store.UsageField]string{}, Granularity: store.Granularity(r.GetGranularity())}
	var v account.Violations
	for _, t := range []struct {
		field string
		ts    *timestamppb.Timestamp
		dst   *time.Time
	}{{"since", r.GetSince(), &in.Since}, {"until", r.GetUntil(), &in.Until}} {
		if t.ts == nil {
			continue
		}
		if err := t.ts.CheckValid(); err != nil {
			v.Add(t.field, "not a valid time")
			continue
		}
		*t.dst = t.ts.AsTime()
	}
	if err := v.Err(); err != nil {
		return nil, grpcError(err)
	}
	for _, f := range []struct {
		field store.UsageField
		val   *string
	}{{store.UsageTenant, r.TenantId}, {store.UsageApp, r.AppId}, {store.UsageKey, r.KeyId},
		{store.UsageService, r.Service}, {store.UsageOperation, r.Operation}, {store.UsageOutcome, r.Outcome}} {
		if f.val != nil {
			in.Filters[f.field] = *f.val
		}
	}
	for _, g := range r.GetGroupBy() {
		in.GroupBy = append(in.GroupBy, store.UsageField(g))
	}
	series, q, err := s.svc.GetUsageQuery(ctx, callerFrom(ctx), in)
	if err != nil {
		return nil, grpcError(err)
	}
	out := &accountv1.GetUsageResponse{Granularity: string(q.Granularity), Since: timestamppb.New(q.From),
		Until: timestamppb.New(q.Until), Series: make([]*accountv1.UsageSeries, len(series))}
	for i, sr := range series {
		ps := &accountv1.UsageSeries{Group: map[string]string{}, Total: sr.Total, Points: make([]*accountv1.UsagePoint, len(sr.Points))}
		for f, val := range sr.Group {
			ps.Group[string(f)] = val
		}
		for j, p := range sr.Points {
			ps.Points[j] = &accountv1.UsagePoint{Time: timestamppb.New(p.Time), Count: p.Count}
		}
		out.Series[i] = ps
	}
	return out, nil
}
