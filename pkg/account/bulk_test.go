package account_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/authz"
)

// TestUpdateKeysBound: one UpdateKeys changes at most MaxBulkKeys keys
// (more is ResourceExhausted naming the limit, nothing changed; a dry run
// counts any number) and costs one mutation per key it changes, the
// bucket going into debt, so that one account's bulk changes reach the
// change feed no faster than its single updates could (SPEC §10, issue
// 15). With 2 mutations/s (burst 4) the call itself takes one token; the
// retry-after of the next mutation says what the keys cost.
func TestUpdateKeysBound(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keys   int
		dryRun bool
		field  string        // the refused limit's name (the error's field), "" for none
		wait   time.Duration // the next mutation's retry-after, 0: allowed
	}{
		{name: "no key matches", keys: 0},
		{name: "one key", keys: 1},
		{name: "10 keys", keys: 10, wait: 3500 * time.Millisecond},        // 3 - 9 = -6 tokens: 7 to wait for
		{name: "1,000 keys", keys: 1000, wait: 498500 * time.Millisecond}, // 3 - 999 = -996
		{name: "1,001 keys", keys: 1001, field: "max_keys_per_update"},
		{name: "1,001 keys, dry run", keys: 1001, dryRun: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := accounttest.Start(t)
			ctx := context.Background()
			opts := account.Options{Compile: accounttest.CompileOptions, Now: s.Clock.Now, Logger: slog.New(slog.DiscardHandler)}
			setup := opts
			setup.RateLimits = accounttest.Unlimited
			admin := account.NewService(s.Store, s.Engine, s.Hasher, setup)
			opts.RateLimits = account.RateLimits{MutationsPerSecond: 2, ReadsPerSecond: 5}
			svc := account.NewService(s.Store, s.Engine, s.Hasher, opts)
			auth := func(svc *account.Service) (account.Caller, error) {
				op, _ := account.OperationNamed("updateKeys")
				return svc.Authenticate(ctx, account.Credentials{Keys: []string{s.RootKey}}, op)
			}
			ac, err := auth(admin)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := admin.CreateApp(ctx, ac, account.OwnerInput{ID: "app", Name: "App"}); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.CreateTenant(ctx, ac, account.OwnerInput{ID: "t", Name: "T"}); err != nil {
				t.Fatal(err)
			}
			for i := range tc.keys {
				s.AddKey(t, authz.KeySpec{AccountID: s.AccountID, ID: fmt.Sprintf("k%04d", i), Name: fmt.Sprintf("k%04d", i),
					Type: authz.KeyTypeService, AppID: "app", TenantID: "t", Group: "bulk", Active: true})
			}

			c, err := auth(svc)
			if err != nil {
				t.Fatal(err)
			}
			res, err := svc.UpdateKeys(ctx, c, account.BulkKeyUpdate{Filter: account.KeyFilter{Group: "bulk"},
				Update: account.KeyUpdate{Description: new("changed")}, DryRun: tc.dryRun})
			var e *account.Error
			switch {
			case tc.field != "":
				if !errors.As(err, &e) || e.Code != account.ResourceExhausted || e.Field != tc.field || e.RetryAfter != 0 {
					t.Fatalf("UpdateKeys: %v (%#v), want ResourceExhausted on %s without a retry-after", err, e, tc.field)
				}
				for _, part := range []string{"max_keys_per_update: 1001 keys match the filter", "at most 1000", "nothing was changed", "narrow the filter"} {
					if !strings.Contains(e.Message, part) {
						t.Errorf("message %q does not say %q", e.Message, part)
					}
				}
			case err != nil || res.Count != tc.keys:
				t.Fatalf("UpdateKeys: %+v, %v; want %d keys", res, err, tc.keys)
			}
			changed := 0
			for i := range tc.keys {
				if k, _ := s.Store.Key(s.AccountID, fmt.Sprintf("k%04d", i)); k.Spec.Description == "changed" {
					changed++
				}
			}
			if want := map[bool]int{true: tc.keys}[tc.field == "" && !tc.dryRun]; changed != want {
				t.Errorf("%d keys changed, want %d", changed, want)
			}

			_, err = auth(svc)
			switch {
			case tc.wait == 0 && err != nil:
				t.Errorf("next mutation: %v, want it allowed", err)
			case tc.wait > 0 && (!errors.As(err, &e) || e.Code != account.ResourceExhausted || e.RetryAfter != tc.wait):
				t.Errorf("next mutation: %v (%#v), want ResourceExhausted with retry-after %v", err, e, tc.wait)
			}
		})
	}
}
