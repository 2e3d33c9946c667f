package accountgrpc_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

func TestGetUsage(t *testing.T) {
	s := accounttest.Start(t)
	ctx := s.Root(t.Context())
	h := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	row := func(key, op, outcome string, hour int) store.UsageRow {
		return store.UsageRow{AccountID: s.AccountID, TenantID: "acme", AppID: "billing", KeyID: key, Service: "email-api",
			Operation: op, Outcome: outcome, Hour: h.Add(time.Duration(hour) * time.Hour)}
	}
	if err := s.Store.AddUsage(ctx, map[store.UsageRow]int64{
		row("k-1", "read", "allowed", 0):                                5,
		row("k-1", "read", "scope_denied", 1):                           2,
		row("k-2", "send", "allowed", 25):                               7,
		{AccountID: "other", KeyID: "k-9", Outcome: "allowed", Hour: h}: 1000,
	}); err != nil {
		t.Fatal(err)
	}
	since, until := timestamppb.New(h.Add(-time.Hour)), timestamppb.New(h.Add(48*time.Hour))
	got, err := s.Client.GetUsage(ctx, &accountv1.GetUsageRequest{Since: since, Until: until,
		GroupBy: []string{"outcome", "key"}, Service: ptr("email-api")})
	if err != nil {
		t.Fatal(err)
	}
	day := func(d int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2026, 5, 1+d, 0, 0, 0, 0, time.UTC))
	}
	want := &accountv1.GetUsageResponse{Granularity: "day", Since: since, Until: until, Series: []*accountv1.UsageSeries{
		{Group: map[string]string{"key": "k-1", "outcome": "allowed"}, Points: []*accountv1.UsagePoint{{Time: day(0), Count: 5}}, Total: 5},
		{Group: map[string]string{"key": "k-1", "outcome": "scope_denied"}, Points: []*accountv1.UsagePoint{{Time: day(0), Count: 2}}, Total: 2},
		{Group: map[string]string{"key": "k-2", "outcome": "allowed"}, Points: []*accountv1.UsagePoint{{Time: day(1), Count: 7}}, Total: 7},
	}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("GetUsage (-want +got):\n%s", diff)
	}
	// An empty filter value matches requests that did not route: none here.
	got, err = s.Client.GetUsage(ctx, &accountv1.GetUsageRequest{Since: since, Until: until, Operation: ptr("")})
	if err != nil || len(got.GetSeries()) != 0 {
		t.Errorf("operation \"\": %v, %v", got, err)
	}

	for _, tc := range []struct {
		name  string
		req   *accountv1.GetUsageRequest
		parts []string
	}{
		{"no since", &accountv1.GetUsageRequest{}, []string{"since", "required"}},
		{"range too long", &accountv1.GetUsageRequest{Since: timestamppb.New(h.AddDate(-2, 0, 0)), Until: until}, []string{"since", "400 days"}},
		{"since after until", &accountv1.GetUsageRequest{Since: until, Until: since}, []string{"since", "before until"}},
		{"bad granularity", &accountv1.GetUsageRequest{Since: since, Until: until, Granularity: "week"}, []string{"granularity", "hour, day or month"}},
		{"bad group", &accountv1.GetUsageRequest{Since: since, Until: until, GroupBy: []string{"colour"}}, []string{"group_by", "tenant, app, key, service, operation, outcome"}},
		{"bad outcome", &accountv1.GetUsageRequest{Since: since, Until: until, Outcome: ptr("denied")}, []string{"outcome", "allowed or a deny reason"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Client.GetUsage(ctx, tc.req)
			wantCode(t, err, codes.InvalidArgument, tc.parts...)
		})
	}

	t.Run("needs the usage query scope", func(t *testing.T) {
		key := s.AddKey(t, authz.KeySpec{ID: "reader", Name: "reader", Type: authz.KeyTypeAccount, AccountID: s.AccountID,
			Active: true, Scope: "account-api:query:keys"})
		_, err := s.Client.GetUsage(accounttest.Ctx(t.Context(), key), &accountv1.GetUsageRequest{Since: since, Until: until})
		wantCode(t, err, codes.PermissionDenied)
	})
}
