package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// secondAccount bootstraps account id in env's database with the real CLI
// and waits until the replica srv knows its account key.
func secondAccount(t *testing.T, env *dbEnv, srv *server, id string) *accountClient {
	t.Helper()
	c := &accountClient{env.client(t, srv).AccountServiceClient, bootstrapAccount(t, env.url, id)}
	eventually(t, "account "+id+"'s key to reach the replica", func() bool {
		_, err := c.ListApps(c.ctx(t), &accountv1.ListAppsRequest{})
		return err == nil
	})
	return c
}

// TestBypassAccountsShareAppAndTenantIDs is issue 13's finding 7 sent as
// the attack: app, tenant and key ids are unique only within an account,
// so two accounts on one keygate serve both have app billing, tenant t1,
// service key k-1 and app key k-app. Each key's allow names its own
// account — x-keygate-account-id and dynamic_metadata account_id over
// gRPC, X-Keygate-Account-Id in HTTP mode (SPEC §9 "Identity across
// accounts") — and never the other's, so the rate-limit descriptors
// envoy/envoy-ratelimit.yaml builds from the metadata differ: one account
// cannot spend the other's budget.
func TestBypassAccountsShareAppAndTenantIDs(t *testing.T) {
	env := newDBEnv(t)
	srv := startServe(t, []string{"authz", "admin", "account", "http"},
		"--database-url", env.url, "--routes-file", env.routesFile, "--http-authz-addr", "127.0.0.1:0")
	waitReady(t, srv)
	accounts := map[string]*accountClient{"acct-test": env.client(t, srv), "acct-b": secondAccount(t, env, srv, "acct-b")}
	svcKeys, appKeys := map[string]string{}, map[string]string{}
	for id, api := range accounts {
		_, err := api.CreateApp(api.ctx(t), &accountv1.CreateAppRequest{Id: "billing", Name: "Billing"})
		mustOK(t, id+": create app billing", err)
		_, err = api.CreateTenant(api.ctx(t), &accountv1.CreateTenantRequest{Id: "t1", Name: "T1"})
		mustOK(t, id+": create tenant t1", err)
		svc, err := api.GenerateServiceAccessKey(api.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{
			Id: "k-1", Name: "one", AppId: "billing", TenantId: "t1"})
		mustOK(t, id+": generate service key k-1", err)
		app, err := api.GenerateAppAccessKey(api.ctx(t), &accountv1.GenerateAppAccessKeyRequest{Id: "k-app", Name: "app", AppId: "billing"})
		mustOK(t, id+": generate app key k-app", err)
		svcKeys[id], appKeys[id] = svc.GetPrivateKey(), app.GetPrivateKey()
	}
	c := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	httpAddr := listenerAddr(t, srv, "http")
	keyDescriptors, tenantDescriptors := map[string]string{}, map[string]string{}
	for account := range accounts {
		other := map[string]string{"acct-test": "acct-b", "acct-b": "acct-test"}[account]
		t.Run(account, func(t *testing.T) {
			for _, k := range []struct {
				name   string
				req    *authv3.CheckRequest
				header map[string]string // identity headers the allow sets besides the account
			}{
				{"service key", checkReq("GET", "/email/inbox", svcKeys[account], nil),
					map[string]string{"x-keygate-key-id": "k-1", "x-keygate-app-id": "billing", "x-keygate-tenant-id": "t1"}},
				{"app key", grpcCheckReq(appKeys[account], nil), map[string]string{"x-keygate-key-id": "k-app", "x-keygate-app-id": "billing"}},
			} {
				waitOutcome(t, c, k.req, 200, 10*time.Second)
				_, resp := call(t, c, k.req)
				wantAccount(t, k.name, resp, account)
				got := upstreamHeaders(resp)
				for name, want := range k.header {
					if got[name] != want {
						t.Errorf("%s: %s = %q, want %q", k.name, name, got[name], want)
					}
				}
				for name, v := range got {
					if strings.Contains(v, other) {
						t.Errorf("%s: upstream header %s = %q names the other account", k.name, name, v)
					}
				}
				for name, v := range resp.GetDynamicMetadata().GetFields() {
					if strings.Contains(v.GetStringValue(), other) {
						t.Errorf("%s: dynamic_metadata %s = %q names the other account", k.name, name, v.GetStringValue())
					}
				}
				if k.name == "service key" {
					md := resp.GetDynamicMetadata()
					keyDescriptors[account] = descriptorText(envoyDescriptor(t, md))
					tenantDescriptors[account] = md.GetFields()["account_id"].GetStringValue() + "/" + md.GetFields()["tenant_id"].GetStringValue()
				}
			}
			// The HTTP mode names the account in the response headers.
			h := http.Header{"X-Api-Key": {svcKeys[account]}}
			got, header := httpModeCheck(t, httpAddr, "GET", "/email/inbox", h)
			if got.status != 200 || header.Get("X-Keygate-Account-Id") != account || header.Get("X-Keygate-Tenant-Id") != "t1" ||
				header.Get("X-Keygate-Key-Id") != "k-1" {
				t.Errorf("HTTP mode: %+v %v, want 200 naming account %s, tenant t1, key k-1", got, header, account)
			}
		})
	}
	// envoy-ratelimit.yaml's per-key descriptor (account_id, tenant_id,
	// key_id) and per-tenant one (account_id, tenant_id): the same ids in
	// two accounts are two counters.
	if keyDescriptors["acct-test"] == "" || keyDescriptors["acct-test"] == keyDescriptors["acct-b"] {
		t.Errorf("per-key descriptors %q and %q, want two different ones", keyDescriptors["acct-test"], keyDescriptors["acct-b"])
	}
	if tenantDescriptors["acct-test"] != "acct-test/t1" || tenantDescriptors["acct-b"] != "acct-b/t1" {
		t.Errorf("per-tenant descriptors %v, want acct-test/t1 and acct-b/t1", tenantDescriptors)
	}
}

// descriptorText is a rate-limit descriptor's entries as key=value pairs.
func descriptorText(d *commonrlv3.RateLimitDescriptor) string {
	var parts []string
	for _, e := range d.GetEntries() {
		parts = append(parts, e.GetKey()+"="+e.GetValue())
	}
	return strings.Join(parts, ",")
}
