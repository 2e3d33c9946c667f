package account_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// countingQuotas is a store that keeps quota counts without a batch read:
// KeysQuotas falls back to one QuotaUsed per distinct quota.
type countingQuotas struct {
	*accounttest.Store
	used  map[authz.QuotaSubject]int64
	calls int
}

func (c *countingQuotas) QuotaUsage(context.Context, time.Time) ([]authz.QuotaUse, error) {
	return nil, nil
}

func (c *countingQuotas) QuotaUsed(_ context.Context, _ string, s authz.QuotaSubject, _ time.Time) (int64, error) {
	c.calls++
	return c.used[s], nil
}

// KeysQuotas reads each distinct quota of a page once (a tenant's shared
// by its keys), answers each key's in KeyQuotas' order, and leaves out
// keys bound by none; KeysDailyUsage sums each key's allowed requests
// per day, the oldest first.
func TestKeysQuotasAndDailyUsage(t *testing.T) {
	s := accounttest.Start(t)
	st := &countingQuotas{Store: s.Store}
	svc := account.NewService(st, s.Engine, s.Hasher, account.Options{
		Compile: accounttest.CompileOptions, Now: s.Clock.Now, Logger: slog.New(slog.DiscardHandler),
		RateLimits: accounttest.Unlimited,
	})
	ctx := context.Background()
	list, _ := account.OperationNamed("keys")
	c, err := svc.Authenticate(ctx, account.Credentials{Keys: []string{s.RootKey}}, list)
	if err != nil {
		t.Fatal(err)
	}
	tenant := authz.QuotaSubject{AccountID: s.AccountID, Tenant: true, ID: "acme", Period: authz.QuotaPeriodMonth}
	own := authz.QuotaSubject{AccountID: s.AccountID, ID: "k2", Period: authz.QuotaPeriodDay}
	st.used = map[authz.QuotaSubject]int64{tenant: 100, own: 3}
	key := func(id, tenant string, tq int64, q string) store.Key {
		k := store.Key{Spec: authz.KeySpec{ID: id, AccountID: "forged", TenantID: tenant, TenantQuota: tq}}
		if q != "" {
			if k.Spec.Quota, err = authz.ParseQuota(q); err != nil {
				t.Fatal(err)
			}
		}
		return k
	}
	keys := []store.Key{key("k1", "acme", 100, ""), key("k2", "acme", 100, "5/day"), key("k3", "", 0, ""), key("k4", "acme", 100, "")}
	got, err := svc.KeysQuotas(ctx, c, keys)
	if err != nil {
		t.Fatal(err)
	}
	if st.calls != 2 {
		t.Errorf("%d quota reads for 2 distinct quotas", st.calls)
	}
	if len(got) != 3 || len(got["k2"]) != 2 || got["k2"][0].Subject != tenant || got["k2"][1].Subject != own ||
		!got["k1"][0].Exceeded() || got["k2"][1].Exceeded() || got["k2"][1].Remaining() != 2 || got["k3"] != nil {
		t.Errorf("KeysQuotas = %+v", got)
	}

	now := s.Clock.Now().UTC()
	row := func(key, outcome string, daysAgo int) store.UsageRow {
		return store.UsageRow{AccountID: s.AccountID, KeyID: key, Service: "email-api", Operation: "send", Outcome: outcome,
			Hour: now.AddDate(0, 0, -daysAgo).Truncate(time.Hour)}
	}
	if err := s.Store.AddUsage(ctx, map[store.UsageRow]int64{
		row("k1", "allowed", 0): 4, row("k1", "allowed", 6): 1, row("k1", "scope_denied", 0): 9,
		row("k1", "allowed", 7): 50, // before the 7 days
		row("k2", "allowed", 2): 2, row("k9", "allowed", 0): 8,
	}); err != nil {
		t.Fatal(err)
	}
	usage, err := svc.KeysDailyUsage(ctx, c, []string{"k1", "k2", "k3"}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 0, 0, 0, 0, 0, 4}; !slices.Equal(usage["k1"], want) || !slices.Equal(usage["k2"], []int64{0, 0, 0, 0, 2, 0, 0}) ||
		usage["k3"] != nil || usage["k9"] != nil {
		t.Errorf("KeysDailyUsage = %v", usage)
	}
	for _, days := range []int{0, 32} {
		_, err := svc.KeysDailyUsage(ctx, c, []string{"k1"}, days)
		var e *account.Error
		if !errors.As(err, &e) || e.Code != account.InvalidArgument {
			t.Errorf("%d days: %v", days, err)
		}
	}
}
