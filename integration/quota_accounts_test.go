package integration

import (
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// TestQuotaPerAccount: tenant and key ids are unique only within an
// account. Two accounts each with tenant "acme" and key "k-1" and a
// quota of 3: one account using up its quota through the real server
// leaves the other's untouched (a shared count would let one account's
// traffic deny another's callers).
func TestQuotaPerAccount(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t, "--usage-flush-interval", "100ms")
	waitReady(t, srv)
	a := env.client(t, srv)
	b := &accountClient{a.AccountServiceClient, bootstrapAccount(t, env.url, "acct-b")}
	eventually(t, "account b's key to reach the replica", func() bool {
		_, err := b.ListApps(b.ctx(t), &accountv1.ListAppsRequest{})
		return err == nil
	})
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	secrets := map[*accountClient]string{}
	for _, c := range []*accountClient{a, b} {
		if _, err := c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Id: "billing", Name: "Billing"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateTenant(c.ctx(t), &accountv1.CreateTenantRequest{Id: "acme", Name: "ACME",
			Quota: &accountv1.Quota{Requests: 3, Period: accountv1.QuotaPeriod_QUOTA_PERIOD_MONTH}}); err != nil {
			t.Fatal(err)
		}
		r, err := c.GenerateServiceAccessKey(c.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{Id: "k-1", Name: "one", AppId: "billing", TenantId: "acme",
			Quota: &accountv1.Quota{Requests: 3, Period: accountv1.QuotaPeriod_QUOTA_PERIOD_DAY}})
		if err != nil {
			t.Fatal(err)
		}
		secrets[c] = r.GetPrivateKey()
	}
	inbox := func(c *accountClient) *authv3.CheckRequest { return checkReq("GET", "/email/inbox", secrets[c], nil) }
	// Account a's key: the wait admits the first, then two more, then 429.
	waitOutcome(t, authz, inbox(a), 200, 10*time.Second)
	for range 2 {
		if got, _ := call(t, authz, inbox(a)); got.status != 200 {
			t.Fatalf("account a within its quota: %+v", got)
		}
	}
	if got, _ := call(t, authz, inbox(a)); got.status != 429 || got.reason != "quota_exceeded" {
		t.Fatalf("account a over its quota: %+v, want 429 quota_exceeded", got)
	}
	// Account b's key of the same ids: its own three.
	waitOutcome(t, authz, inbox(b), 200, 10*time.Second)
	for range 2 {
		if got, _ := call(t, authz, inbox(b)); got.status != 200 {
			t.Fatalf("account b's key denied after account a used up a quota of the same ids: %+v", got)
		}
	}
	if got, _ := call(t, authz, inbox(b)); got.status != 429 {
		t.Fatalf("account b over its own quota: %+v, want 429", got)
	}
}
