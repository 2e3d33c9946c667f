package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/authz"
)

// quotaStates describes the quotas that bind a key for row 10 of explain:
// what the fleet admitted in each one's period, as the usage table counts
// it (up to one usage flush behind serve's own counts).
func quotaStates(states []authz.QuotaState) string {
	if len(states) == 0 {
		return ""
	}
	parts := make([]string, len(states))
	for i, st := range states {
		parts[i] = fmt.Sprintf("%s %d of %s used, resets %s", subjectText(st.Subject), st.Used,
			authz.Quota{Requests: st.Limit, Period: st.Subject.Period}, st.ResetsAt.Format(time.RFC3339))
	}
	return ": " + strings.Join(parts, "; ")
}

func subjectText(s authz.QuotaSubject) string {
	if s.Tenant {
		return "tenant " + s.ID
	}
	return "key " + s.ID
}

// loadQuotas reads the fleet's counts of k's quotas into q, explain's own
// table: Check then decides row 10 as serve would (it counts the explained
// request in that table only). It returns the state before the request.
func loadQuotas(ctx context.Context, q *authz.Quotas, used func(context.Context, string, authz.QuotaSubject, time.Time) (int64, error), k *authz.Key, now time.Time) ([]authz.QuotaState, error) {
	states := q.State(k, now)
	var uses []authz.QuotaUse
	for i, st := range states {
		n, err := used(ctx, k.Spec.AccountID, st.Subject, now)
		if err != nil {
			return nil, err
		}
		start, _ := st.Subject.Period.Bounds(now)
		uses = append(uses, authz.QuotaUse{Subject: st.Subject, Start: start, Used: n})
		states[i].Used = n
	}
	q.Sync(uses, now)
	return states, nil
}

// remoteQuotas is row 10 for explain --key-id: the state GetKey answered,
// and the decision it makes (quota_exceeded when one is used up).
func remoteQuotas(d *authz.Decision, qs []*accountv1.QuotaStatus, now time.Time) []authz.QuotaState {
	var out []authz.QuotaState
	for _, q := range qs {
		quota := accountgrpc.QuotaFromProto(q.GetQuota())
		st := authz.QuotaState{Subject: authz.QuotaSubject{AccountID: remoteAccount, Tenant: q.GetSubject() == "tenant", ID: q.GetId(), Period: quota.Period},
			Limit: q.GetQuota().GetRequests(), Used: q.GetUsed(), ResetsAt: q.GetResetTime().AsTime()}
		out = append(out, st)
		if d.Reason == authz.OK && q.GetExceeded() {
			d.Reason = authz.QuotaExceeded
			d.RetryAfter = uint32(max(1, int64(st.ResetsAt.Sub(now)/time.Second)))
		}
	}
	return out
}
