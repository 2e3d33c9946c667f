package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// TestAccountAPI drives every method of keygate.account.v1.AccountService
// against the real server and PostgreSQL, then every error code, and checks
// that the refused calls left the stored data as it was.
func TestAccountAPI(t *testing.T) {
	env := newDBEnv(t)
	// A short usage interval so that last-used times (ListKeys unused_since)
	// reach the database within the test.
	srv := env.serve(t, "--usage-interval", "200ms")
	waitReady(t, srv)
	f := &apiFixture{
		env:   env,
		api:   env.client(t, srv),
		authz: authv3.NewAuthorizationClient(dial(t, srv.authzAddr)),
	}
	f.secrets = []string{env.accountKey}
	t.Run("methods", func(t *testing.T) { testAccountMethods(t, f) })
	t.Run("errors", func(t *testing.T) { testAccountErrors(t, f) })
}

// apiFixture is what the subtests share: one server, one database.
type apiFixture struct {
	env     *dbEnv
	api     *accountClient
	authz   authv3.AuthorizationClient
	secrets []string // every secret handed out, for the no-secret checks
}

// asKey is a context carrying key in x-api-key; with send false there is no
// x-api-key metadata at all.
func asKey(t testing.TB, key string, send bool) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if !send {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "x-api-key", key)
}

func mustOK(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantCode(t testing.TB, what string, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, code)
	}
}

// listKeyIDs pages through ListKeys with req's filters and returns the ids,
// sorted.
func listKeyIDs(t testing.TB, c *accountClient, req *accountv1.ListKeysRequest) []string {
	t.Helper()
	req = proto.Clone(req).(*accountv1.ListKeysRequest)
	var ids []string
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatal("ListKeys: more than 100 pages")
		}
		resp, err := c.ListKeys(c.ctx(t), req)
		mustOK(t, "ListKeys", err)
		for _, k := range resp.GetKeys() {
			ids = append(ids, k.GetId())
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	slices.Sort(ids)
	return ids
}

// noSecretIn fails when text carries a secret or a key hash.
func (f *apiFixture) noSecretIn(t testing.TB, what, text string) {
	t.Helper()
	if strings.Contains(text, "sha256:") {
		t.Errorf("%s carries a key hash: %s", what, text)
	}
	for _, s := range f.secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s carries a secret (%.10s…)", what, s)
		}
	}
}

func keyJSON(k proto.Message) string {
	b, _ := protojson.Marshal(k)
	return string(b)
}

// keyDiff compares two views of a key, ignoring the times an update or a
// use moves.
func keyDiff(want, got *accountv1.Key) string {
	return cmp.Diff(want, got, protocmp.Transform(),
		protocmp.IgnoreFields(&accountv1.Key{}, "update_time", "last_used_time"))
}

func testAccountMethods(t *testing.T, f *apiFixture) {
	c := f.api
	var (
		genAppID, genTenantID string
		svcSecret, svcOld     string
		importSecret          = "imported-Custom-secret-0123456789"
		importNew             string
		inboxReq              = func(key string) *authv3.CheckRequest { return checkReq("GET", "/email/inbox", key, nil) }
	)
	f.secrets = append(f.secrets, importSecret)
	got := func(t *testing.T, req *authv3.CheckRequest) outcome {
		o, _ := call(t, f.authz, req)
		return o
	}

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		// Apps.
		{"CreateApp with a caller-chosen id", func(t *testing.T) {
			resp, err := c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Id: "billing", Name: "Billing", Description: "invoices"})
			mustOK(t, "CreateApp", err)
			a := resp.GetApp()
			if a.GetId() != "billing" || a.GetName() != "Billing" || a.GetDescription() != "invoices" || !a.GetActive() ||
				a.GetCreateTime() == nil || a.GetUpdateTime() == nil {
				t.Fatalf("created app: %v", a)
			}
			_, err = c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Id: "crm", Name: "CRM"})
			mustOK(t, "CreateApp crm", err)
		}},
		{"CreateApp with a generated id", func(t *testing.T) {
			resp, err := c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Name: "Generated App"})
			mustOK(t, "CreateApp", err)
			genAppID = resp.GetApp().GetId()
			if genAppID == "" || resp.GetApp().GetName() != "Generated App" || !resp.GetApp().GetActive() {
				t.Fatalf("created app: %v", resp.GetApp())
			}
		}},
		{"GetApp", func(t *testing.T) {
			resp, err := c.GetApp(c.ctx(t), &accountv1.GetAppRequest{Id: "billing"})
			mustOK(t, "GetApp", err)
			if a := resp.GetApp(); a.GetId() != "billing" || a.GetName() != "Billing" || a.GetDescription() != "invoices" {
				t.Fatalf("GetApp: %v", a)
			}
			resp, err = c.GetApp(c.ctx(t), &accountv1.GetAppRequest{Id: genAppID})
			mustOK(t, "GetApp generated", err)
			if resp.GetApp().GetName() != "Generated App" {
				t.Fatalf("GetApp generated: %v", resp.GetApp())
			}
		}},
		{"ListApps", func(t *testing.T) {
			resp, err := c.ListApps(c.ctx(t), &accountv1.ListAppsRequest{})
			mustOK(t, "ListApps", err)
			var ids []string
			for _, a := range resp.GetApps() {
				ids = append(ids, a.GetId())
			}
			slices.Sort(ids)
			want := []string{"billing", "crm", genAppID}
			slices.Sort(want)
			if !slices.Equal(ids, want) || resp.GetNextPageToken() != "" {
				t.Fatalf("ListApps: %v (next %q), want %v", ids, resp.GetNextPageToken(), want)
			}
			// Pages of one: each app once, then no token.
			seen := map[string]int{}
			req := &accountv1.ListAppsRequest{PageSize: 1}
			for i := 0; i < 10; i++ {
				resp, err := c.ListApps(c.ctx(t), req)
				mustOK(t, "ListApps page", err)
				for _, a := range resp.GetApps() {
					seen[a.GetId()]++
				}
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
			if len(seen) != 3 || seen["billing"] != 1 || seen["crm"] != 1 || seen[genAppID] != 1 || req.PageToken != "" {
				t.Fatalf("ListApps by pages of 1: %v", seen)
			}
		}},
		{"UpdateApp changes only the fields present", func(t *testing.T) {
			resp, err := c.UpdateApp(c.ctx(t), &accountv1.UpdateAppRequest{Id: "billing", Description: proto.String("invoices and receipts")})
			mustOK(t, "UpdateApp", err)
			if a := resp.GetApp(); a.GetName() != "Billing" || a.GetDescription() != "invoices and receipts" || !a.GetActive() {
				t.Fatalf("UpdateApp description: %v", a)
			}
			resp, err = c.UpdateApp(c.ctx(t), &accountv1.UpdateAppRequest{Id: genAppID, Name: proto.String("Renamed App"), Active: proto.Bool(false)})
			mustOK(t, "UpdateApp", err)
			if a := resp.GetApp(); a.GetName() != "Renamed App" || a.GetActive() {
				t.Fatalf("UpdateApp name/active: %v", a)
			}
			g, err := c.GetApp(c.ctx(t), &accountv1.GetAppRequest{Id: "billing"})
			mustOK(t, "GetApp", err)
			if g.GetApp().GetDescription() != "invoices and receipts" || g.GetApp().GetName() != "Billing" {
				t.Fatalf("GetApp after UpdateApp: %v", g.GetApp())
			}
		}},

		// Tenants.
		{"CreateTenant with a caller-chosen id", func(t *testing.T) {
			resp, err := c.CreateTenant(c.ctx(t), &accountv1.CreateTenantRequest{Id: "acme", Name: "ACME Corp", Description: "first customer"})
			mustOK(t, "CreateTenant", err)
			if tn := resp.GetTenant(); tn.GetId() != "acme" || tn.GetName() != "ACME Corp" || !tn.GetActive() || tn.GetCreateTime() == nil {
				t.Fatalf("created tenant: %v", tn)
			}
			_, err = c.CreateTenant(c.ctx(t), &accountv1.CreateTenantRequest{Id: "globex", Name: "Globex"})
			mustOK(t, "CreateTenant globex", err)
		}},
		{"CreateTenant with a generated id", func(t *testing.T) {
			resp, err := c.CreateTenant(c.ctx(t), &accountv1.CreateTenantRequest{Name: "Generated Tenant"})
			mustOK(t, "CreateTenant", err)
			genTenantID = resp.GetTenant().GetId()
			if genTenantID == "" || resp.GetTenant().GetName() != "Generated Tenant" {
				t.Fatalf("created tenant: %v", resp.GetTenant())
			}
		}},
		{"GetTenant", func(t *testing.T) {
			resp, err := c.GetTenant(c.ctx(t), &accountv1.GetTenantRequest{Id: "acme"})
			mustOK(t, "GetTenant", err)
			if tn := resp.GetTenant(); tn.GetId() != "acme" || tn.GetName() != "ACME Corp" || tn.GetDescription() != "first customer" {
				t.Fatalf("GetTenant: %v", tn)
			}
		}},
		{"ListTenants", func(t *testing.T) {
			resp, err := c.ListTenants(c.ctx(t), &accountv1.ListTenantsRequest{})
			mustOK(t, "ListTenants", err)
			var ids []string
			for _, tn := range resp.GetTenants() {
				ids = append(ids, tn.GetId())
			}
			slices.Sort(ids)
			want := []string{"acme", "globex", genTenantID}
			slices.Sort(want)
			if !slices.Equal(ids, want) || resp.GetNextPageToken() != "" {
				t.Fatalf("ListTenants: %v (next %q), want %v", ids, resp.GetNextPageToken(), want)
			}
		}},
		{"UpdateTenant changes only the fields present", func(t *testing.T) {
			resp, err := c.UpdateTenant(c.ctx(t), &accountv1.UpdateTenantRequest{Id: "acme", Description: proto.String("biggest customer")})
			mustOK(t, "UpdateTenant", err)
			if tn := resp.GetTenant(); tn.GetName() != "ACME Corp" || tn.GetDescription() != "biggest customer" || !tn.GetActive() {
				t.Fatalf("UpdateTenant: %v", tn)
			}
			resp, err = c.UpdateTenant(c.ctx(t), &accountv1.UpdateTenantRequest{Id: genTenantID, Name: proto.String("Renamed Tenant")})
			mustOK(t, "UpdateTenant", err)
			if tn := resp.GetTenant(); tn.GetName() != "Renamed Tenant" || !tn.GetActive() {
				t.Fatalf("UpdateTenant name: %v", tn)
			}
		}},

		// Keys.
		{"GenerateServiceAccessKey", func(t *testing.T) {
			exp := time.Now().Add(48 * time.Hour).Truncate(time.Second)
			resp, err := c.GenerateServiceAccessKey(c.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{
				Id: "k-svc", Name: "svc-key", AppId: "billing", TenantId: "acme", Description: "original",
				Scope: "email-api", Group: "ops", ExpiresAt: timestamppb.New(exp), IpFilters: []string{"127.0.0.0/8"},
				ResponseHeaders: []*accountv1.ResponseHeader{{Name: "x-tenant", Value: "${tenant.name}"}},
			})
			mustOK(t, "GenerateServiceAccessKey", err)
			svcSecret = resp.GetPrivateKey()
			f.secrets = append(f.secrets, svcSecret)
			k := resp.GetKey()
			if !strings.HasPrefix(svcSecret, "kg_sak_") {
				t.Fatalf("private_key %.10s… is not a service key", svcSecret)
			}
			if k.GetId() != "k-svc" || k.GetName() != "svc-key" || k.GetType() != accountv1.KeyType_KEY_TYPE_SERVICE ||
				k.GetAppId() != "billing" || k.GetTenantId() != "acme" || k.GetAppName() != "Billing" || k.GetTenantName() != "ACME Corp" ||
				k.GetScope() != "email-api" || k.GetGroup() != "ops" || !k.GetActive() || k.GetOrigin() != accountv1.KeyOrigin_KEY_ORIGIN_GENERATED ||
				!k.GetExpiresAt().AsTime().Equal(exp) || !slices.Equal(k.GetIpFilters(), []string{"127.0.0.0/8"}) ||
				len(k.GetResponseHeaders()) != 1 || k.GetCreateTime() == nil {
				t.Fatalf("generated key: %v", k)
			}
			f.noSecretIn(t, "the key message", keyJSON(k))
			waitOutcome(t, f.authz, inboxReq(svcSecret), 200, 10*time.Second)
		}},
		{"GenerateAppAccessKey", func(t *testing.T) {
			resp, err := c.GenerateAppAccessKey(c.ctx(t), &accountv1.GenerateAppAccessKeyRequest{Id: "k-app", Name: "app-key", AppId: "billing"})
			mustOK(t, "GenerateAppAccessKey", err)
			f.secrets = append(f.secrets, resp.GetPrivateKey())
			k := resp.GetKey()
			if !strings.HasPrefix(resp.GetPrivateKey(), "kg_alsak_") || k.GetType() != accountv1.KeyType_KEY_TYPE_APP ||
				k.GetAppId() != "billing" || k.GetTenantId() != "" || !k.GetActive() {
				t.Fatalf("app key %.10s…: %v", resp.GetPrivateKey(), k)
			}
			f.noSecretIn(t, "the key message", keyJSON(k))
			// A key with a generated id, named by it.
			resp, err = c.GenerateAppAccessKey(c.ctx(t), &accountv1.GenerateAppAccessKeyRequest{AppId: "crm"})
			mustOK(t, "GenerateAppAccessKey crm", err)
			f.secrets = append(f.secrets, resp.GetPrivateKey())
			if id := resp.GetKey().GetId(); id == "" || resp.GetKey().GetName() != id {
				t.Fatalf("key with a generated id: %v", resp.GetKey())
			}
			_, err = c.UpdateKey(c.ctx(t), &accountv1.UpdateKeyRequest{Id: resp.GetKey().GetId(), Group: proto.String("crm")})
			mustOK(t, "UpdateKey group", err)
		}},
		{"GenerateAccountAccessKey", func(t *testing.T) {
			resp, err := c.GenerateAccountAccessKey(c.ctx(t), &accountv1.GenerateAccountAccessKeyRequest{
				Id: "k-acct-ro", Name: "read-only", Scope: "account-api:query:*",
			})
			mustOK(t, "GenerateAccountAccessKey", err)
			ro := resp.GetPrivateKey()
			f.secrets = append(f.secrets, ro)
			k := resp.GetKey()
			if !strings.HasPrefix(ro, "kg_aak_") || k.GetType() != accountv1.KeyType_KEY_TYPE_ACCOUNT || k.GetAppId() != "" ||
				k.GetTenantId() != "" || k.GetScope() != "account-api:query:*" {
				t.Fatalf("account key %.10s…: %v", ro, k)
			}
			f.noSecretIn(t, "the key message", keyJSON(k))
			// The new key works on the Account API, for queries.
			roClient := &accountClient{c.AccountServiceClient, ro}
			eventually(t, "the new account key to list apps", func() bool {
				_, err := roClient.ListApps(roClient.ctx(t), &accountv1.ListAppsRequest{})
				return err == nil
			})
		}},
		{"ImportKey with a custom secret", func(t *testing.T) {
			resp, err := c.ImportKey(c.ctx(t), &accountv1.ImportKeyRequest{
				Type: accountv1.KeyType_KEY_TYPE_SERVICE, AppId: "billing", TenantId: "globex", PrivateKey: importSecret,
				Id: "k-imported", Name: "imported-key", Group: "imported",
			})
			mustOK(t, "ImportKey", err)
			k := resp.GetKey()
			if k.GetId() != "k-imported" || k.GetOrigin() != accountv1.KeyOrigin_KEY_ORIGIN_CUSTOM || k.GetTenantId() != "globex" ||
				k.GetTenantName() != "Globex" {
				t.Fatalf("imported key: %v", k)
			}
			f.noSecretIn(t, "the key message", keyJSON(k))
			waitOutcome(t, f.authz, inboxReq(importSecret), 200, 10*time.Second)
		}},
		{"GetKey", func(t *testing.T) {
			resp, err := c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-svc"})
			mustOK(t, "GetKey", err)
			k := resp.GetKey()
			if k.GetId() != "k-svc" || k.GetName() != "svc-key" || k.GetDescription() != "original" || k.GetScope() != "email-api" ||
				k.GetTenantName() != "ACME Corp" || k.GetExpiresAt() == nil {
				t.Fatalf("GetKey: %v", k)
			}
			f.noSecretIn(t, "GetKey", keyJSON(k))
		}},
		{"ListKeys filters", func(t *testing.T) {
			inactive := false
			for _, r := range []struct {
				id   string
				edit func(*accountv1.GenerateServiceAccessKeyRequest)
			}{
				{"k-inactive", func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Active = &inactive; r.Group = "ops" }},
				{"k-expiring", func(r *accountv1.GenerateServiceAccessKeyRequest) {
					r.ExpiresAt = timestamppb.New(time.Now().Add(time.Hour))
				}},
			} {
				req := &accountv1.GenerateServiceAccessKeyRequest{Id: r.id, Name: r.id, AppId: "billing", TenantId: "acme"}
				r.edit(req)
				resp, err := c.GenerateServiceAccessKey(c.ctx(t), req)
				mustOK(t, "GenerateServiceAccessKey "+r.id, err)
				f.secrets = append(f.secrets, resp.GetPrivateKey())
			}
			all := listKeyIDs(t, c, &accountv1.ListKeysRequest{})
			crmKeys := listKeyIDs(t, c, &accountv1.ListKeysRequest{Group: "crm"})
			if len(crmKeys) != 1 {
				t.Fatalf("group crm: %v", crmKeys)
			}
			for _, fc := range []struct {
				name string
				req  *accountv1.ListKeysRequest
				want []string
			}{
				{"app", &accountv1.ListKeysRequest{AppId: "crm"}, crmKeys},
				{"tenant", &accountv1.ListKeysRequest{TenantId: "globex"}, []string{"k-imported"}},
				{"group", &accountv1.ListKeysRequest{Group: "ops"}, []string{"k-inactive", "k-svc"}},
				{"type app", &accountv1.ListKeysRequest{Type: accountv1.KeyType_KEY_TYPE_APP}, append([]string{"k-app"}, crmKeys...)},
				{"type service", &accountv1.ListKeysRequest{Type: accountv1.KeyType_KEY_TYPE_SERVICE},
					[]string{"k-expiring", "k-imported", "k-inactive", "k-svc"}},
				{"active false", &accountv1.ListKeysRequest{Active: proto.Bool(false)}, []string{"k-inactive"}},
				{"expiring before", &accountv1.ListKeysRequest{ExpiringBefore: timestamppb.New(time.Now().Add(2 * time.Hour))}, []string{"k-expiring"}},
				{"expiring before, later", &accountv1.ListKeysRequest{ExpiringBefore: timestamppb.New(time.Now().Add(72 * time.Hour))},
					[]string{"k-expiring", "k-svc"}},
				{"combined app and tenant", &accountv1.ListKeysRequest{AppId: "billing", TenantId: "acme", Active: proto.Bool(true)},
					[]string{"k-expiring", "k-svc"}},
			} {
				slices.Sort(fc.want)
				if got := listKeyIDs(t, c, fc.req); !slices.Equal(got, fc.want) {
					t.Errorf("ListKeys %s: %v, want %v", fc.name, got, fc.want)
				}
			}
			// type account: the bootstrap key and k-acct-ro, nothing else.
			acct := listKeyIDs(t, c, &accountv1.ListKeysRequest{Type: accountv1.KeyType_KEY_TYPE_ACCOUNT})
			if len(acct) != 2 || !slices.Contains(acct, "k-acct-ro") {
				t.Errorf("ListKeys type account: %v", acct)
			}
			// active true is everything but k-inactive.
			act := listKeyIDs(t, c, &accountv1.ListKeysRequest{Active: proto.Bool(true)})
			if len(act) != len(all)-1 || slices.Contains(act, "k-inactive") {
				t.Errorf("ListKeys active true: %v (all %v)", act, all)
			}
		}},
		{"ListKeys unused since", func(t *testing.T) {
			var used string
			for _, id := range []string{"k-used", "k-unused"} {
				resp, err := c.GenerateServiceAccessKey(c.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{
					Id: id, Name: id, AppId: "billing", TenantId: "acme", Group: "usage",
				})
				mustOK(t, "GenerateServiceAccessKey "+id, err)
				f.secrets = append(f.secrets, resp.GetPrivateKey())
				if id == "k-used" {
					used = resp.GetPrivateKey()
				}
			}
			waitOutcome(t, f.authz, inboxReq(used), 200, 10*time.Second)
			var lastUsed time.Time
			eventually(t, "last_used_time of k-used", func() bool {
				resp, err := c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-used"})
				mustOK(t, "GetKey", err)
				if lu := resp.GetKey().GetLastUsedTime(); lu != nil {
					lastUsed = lu.AsTime()
					return true
				}
				return false
			})
			if d := time.Since(lastUsed); d < -time.Second || d > time.Minute {
				t.Errorf("last_used_time %v is %v from now", lastUsed, d)
			}
			g, err := c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-unused"})
			mustOK(t, "GetKey", err)
			if g.GetKey().GetLastUsedTime() != nil {
				t.Errorf("never used key has last_used_time %v", g.GetKey().GetLastUsedTime())
			}
			// Unused since a second before the use: only the never-used key.
			got := listKeyIDs(t, c, &accountv1.ListKeysRequest{Group: "usage", UnusedSince: timestamppb.New(lastUsed.Add(-time.Second))})
			if !slices.Equal(got, []string{"k-unused"}) {
				t.Errorf("unused since before the use: %v, want [k-unused]", got)
			}
			// Unused since a second after it: both.
			got = listKeyIDs(t, c, &accountv1.ListKeysRequest{Group: "usage", UnusedSince: timestamppb.New(lastUsed.Add(time.Second))})
			if !slices.Equal(got, []string{"k-unused", "k-used"}) {
				t.Errorf("unused since after the use: %v, want [k-unused k-used]", got)
			}
		}},
		{"ListKeys pagination", func(t *testing.T) {
			var want []string
			for i := range 5 {
				id := fmt.Sprintf("k-page-%d", i)
				resp, err := c.GenerateServiceAccessKey(c.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{
					Id: id, Name: id, AppId: "billing", TenantId: "acme", Group: "page",
				})
				mustOK(t, "GenerateServiceAccessKey "+id, err)
				f.secrets = append(f.secrets, resp.GetPrivateKey())
				want = append(want, id)
			}
			seen := map[string]int{}
			req := &accountv1.ListKeysRequest{Group: "page", PageSize: 2}
			var sizes []int
			for len(sizes) < 10 {
				resp, err := c.ListKeys(c.ctx(t), req)
				mustOK(t, "ListKeys", err)
				sizes = append(sizes, len(resp.GetKeys()))
				for _, k := range resp.GetKeys() {
					seen[k.GetId()]++
					f.noSecretIn(t, "ListKeys", keyJSON(k))
				}
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
			if req.PageToken != "" {
				t.Fatalf("still a next_page_token after %d pages", len(sizes))
			}
			for _, id := range want {
				if seen[id] != 1 {
					t.Errorf("%s seen %d times over pages %v", id, seen[id], sizes)
				}
			}
			if len(seen) != 5 || !slices.Equal(sizes, []int{2, 2, 1}) {
				t.Errorf("pages of 2 over 5 keys: sizes %v, seen %v", sizes, seen)
			}
		}},
		{"name with SQL metacharacters is stored verbatim", func(t *testing.T) {
			const name = "x'; DROP TABLE keys;--"
			resp, err := c.GenerateAppAccessKey(c.ctx(t), &accountv1.GenerateAppAccessKeyRequest{Id: "k-sql", Name: name, AppId: "billing",
				Description: `"); DELETE FROM apps; --`})
			mustOK(t, "GenerateAppAccessKey", err)
			f.secrets = append(f.secrets, resp.GetPrivateKey())
			if resp.GetKey().GetName() != name {
				t.Fatalf("name %q, want %q", resp.GetKey().GetName(), name)
			}
			g, err := c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-sql"})
			mustOK(t, "GetKey", err)
			if g.GetKey().GetName() != name || g.GetKey().GetDescription() != `"); DELETE FROM apps; --` {
				t.Fatalf("stored key: %v", g.GetKey())
			}
			conn, err := pgx.Connect(context.Background(), f.env.url)
			mustOK(t, "connect", err)
			defer conn.Close(context.Background())
			var stored string
			mustOK(t, "select", conn.QueryRow(context.Background(), "SELECT name FROM keys WHERE id = 'k-sql'").Scan(&stored))
			if stored != name {
				t.Fatalf("keys.name %q, want %q", stored, name)
			}
			var apps int
			mustOK(t, "count apps", conn.QueryRow(context.Background(), "SELECT count(*) FROM apps").Scan(&apps))
			if apps < 3 {
				t.Fatalf("apps table has %d rows", apps)
			}
			if ids := listKeyIDs(t, c, &accountv1.ListKeysRequest{Group: "ops"}); len(ids) != 2 {
				t.Fatalf("keys after the metacharacter name: %v", ids)
			}
		}},
		{"UpdateKey changes only the fields present", func(t *testing.T) {
			before, err := c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-svc"})
			mustOK(t, "GetKey", err)
			resp, err := c.UpdateKey(c.ctx(t), &accountv1.UpdateKeyRequest{Id: "k-svc", Description: proto.String("changed")})
			mustOK(t, "UpdateKey", err)
			want := proto.Clone(before.GetKey()).(*accountv1.Key)
			want.Description = "changed"
			if d := keyDiff(want, resp.GetKey()); d != "" {
				t.Errorf("UpdateKey description changed more (-want +got):\n%s", d)
			}
			after, err := c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-svc"})
			mustOK(t, "GetKey", err)
			if d := keyDiff(want, after.GetKey()); d != "" {
				t.Errorf("GetKey after UpdateKey description (-want +got):\n%s", d)
			}
			if !after.GetKey().GetUpdateTime().AsTime().After(before.GetKey().GetUpdateTime().AsTime()) {
				t.Errorf("update_time did not move: %v → %v", before.GetKey().GetUpdateTime(), after.GetKey().GetUpdateTime())
			}
			// An update without ip_filters kept them: the key still works
			// from 127.0.0.1.
			waitOutcome(t, f.authz, inboxReq(svcSecret), 200, 10*time.Second)
		}},
		{"UpdateKey clear_expires_at", func(t *testing.T) {
			before, err := c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-svc"})
			mustOK(t, "GetKey", err)
			if before.GetKey().GetExpiresAt() == nil {
				t.Fatal("k-svc has no expiry to clear")
			}
			resp, err := c.UpdateKey(c.ctx(t), &accountv1.UpdateKeyRequest{Id: "k-svc", ClearExpiresAt: true})
			mustOK(t, "UpdateKey", err)
			want := proto.Clone(before.GetKey()).(*accountv1.Key)
			want.ExpiresAt = nil
			if d := keyDiff(want, resp.GetKey()); d != "" {
				t.Errorf("UpdateKey clear_expires_at (-want +got):\n%s", d)
			}
			if got := listKeyIDs(t, c, &accountv1.ListKeysRequest{ExpiringBefore: timestamppb.New(time.Now().Add(72 * time.Hour))}); !slices.Equal(got, []string{"k-expiring"}) {
				t.Errorf("expiring before after clearing k-svc's expiry: %v", got)
			}
		}},
		{"UpdateKey ip_filters replace and clear", func(t *testing.T) {
			filters := []string{"10.0.0.0/8", "192.168.1.1"}
			resp, err := c.UpdateKey(c.ctx(t), &accountv1.UpdateKeyRequest{Id: "k-svc", IpFilters: &accountv1.IPFilters{Filters: filters}})
			mustOK(t, "UpdateKey", err)
			if !slices.Equal(resp.GetKey().GetIpFilters(), filters) || resp.GetKey().GetDescription() != "changed" {
				t.Fatalf("UpdateKey ip_filters: %v", resp.GetKey())
			}
			var o outcome
			eventually(t, "ip_not_allowed from 127.0.0.1", func() bool {
				o = got(t, inboxReq(svcSecret))
				return o == outcome{403, "ip_not_allowed"}
			})
			from10 := inboxReq(svcSecret)
			from10.Attributes.Source.Address.GetSocketAddress().Address = "10.9.8.7"
			if o := got(t, from10); o.status != 200 {
				t.Errorf("from 10.9.8.7 with filter 10.0.0.0/8: %+v", o)
			}
			resp, err = c.UpdateKey(c.ctx(t), &accountv1.UpdateKeyRequest{Id: "k-svc", IpFilters: &accountv1.IPFilters{}})
			mustOK(t, "UpdateKey clear", err)
			if len(resp.GetKey().GetIpFilters()) != 0 {
				t.Fatalf("UpdateKey clear ip_filters: %v", resp.GetKey().GetIpFilters())
			}
			g, err := c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-svc"})
			mustOK(t, "GetKey", err)
			if len(g.GetKey().GetIpFilters()) != 0 || g.GetKey().GetScope() != "email-api" || g.GetKey().GetGroup() != "ops" {
				t.Fatalf("GetKey after clearing ip_filters: %v", g.GetKey())
			}
			waitOutcome(t, f.authz, inboxReq(svcSecret), 200, 10*time.Second)
		}},
		{"RegenerateKey with a grace period", func(t *testing.T) {
			start := time.Now()
			resp, err := c.RegenerateKey(c.ctx(t), &accountv1.RegenerateKeyRequest{Id: "k-svc", GracePeriod: durationpb.New(time.Minute)})
			mustOK(t, "RegenerateKey", err)
			svcOld, svcSecret = svcSecret, resp.GetPrivateKey()
			f.secrets = append(f.secrets, svcSecret)
			if svcSecret == svcOld || !strings.HasPrefix(svcSecret, "kg_sak_") {
				t.Fatalf("regenerated secret %.10s…", svcSecret)
			}
			pe := resp.GetKey().GetPreviousSecretExpireTime()
			if pe == nil || pe.AsTime().Before(start.Add(50*time.Second)) || pe.AsTime().After(time.Now().Add(70*time.Second)) {
				t.Errorf("previous_secret_expire_time %v, want about a minute from now", pe)
			}
			f.noSecretIn(t, "RegenerateKey's key", keyJSON(resp.GetKey()))
			waitOutcome(t, f.authz, inboxReq(svcSecret), 200, 10*time.Second)
			for i := 0; i < 3; i++ {
				if o := got(t, inboxReq(svcOld)); o.status != 200 {
					t.Fatalf("old secret during the grace period: %+v", o)
				}
				if o := got(t, inboxReq(svcSecret)); o.status != 200 {
					t.Fatalf("new secret during the grace period: %+v", o)
				}
			}
		}},
		{"RegenerateKey without a grace period", func(t *testing.T) {
			resp, err := c.RegenerateKey(c.ctx(t), &accountv1.RegenerateKeyRequest{Id: "k-imported"})
			mustOK(t, "RegenerateKey", err)
			importNew = resp.GetPrivateKey()
			f.secrets = append(f.secrets, importNew)
			if !strings.HasPrefix(importNew, "kg_sak_") || resp.GetKey().GetPreviousSecretExpireTime() != nil {
				t.Fatalf("regenerated imported key %.10s…: %v", importNew, resp.GetKey())
			}
			waitOutcome(t, f.authz, inboxReq(importNew), 200, 10*time.Second)
			waitOutcome(t, f.authz, inboxReq(importSecret), 401, 10*time.Second)
			if o := got(t, inboxReq(importSecret)); o != (outcome{401, "unknown_key"}) {
				t.Errorf("old secret after regeneration without grace: %+v", o)
			}
		}},
		{"DeleteKey", func(t *testing.T) {
			_, err := c.DeleteKey(c.ctx(t), &accountv1.DeleteKeyRequest{Id: "k-svc"})
			mustOK(t, "DeleteKey", err)
			_, err = c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-svc"})
			wantCode(t, "GetKey after DeleteKey", err, codes.NotFound)
			waitOutcome(t, f.authz, inboxReq(svcSecret), 401, 10*time.Second)
			if o := got(t, inboxReq(svcOld)); o.status != 401 {
				t.Errorf("grace secret of a deleted key: %+v", o)
			}
			if ids := listKeyIDs(t, c, &accountv1.ListKeysRequest{Group: "ops"}); !slices.Equal(ids, []string{"k-inactive"}) {
				t.Errorf("ListKeys group ops after DeleteKey: %v", ids)
			}
		}},
		{"DeleteApp with cascade removes the app and its keys", func(t *testing.T) {
			kr, err := c.GenerateAppAccessKey(c.ctx(t), &accountv1.GenerateAppAccessKeyRequest{Id: "k-gen-app", AppId: genAppID})
			mustOK(t, "GenerateAppAccessKey", err)
			f.secrets = append(f.secrets, kr.GetPrivateKey())
			_, err = c.DeleteApp(c.ctx(t), &accountv1.DeleteAppRequest{Id: genAppID})
			wantCode(t, "DeleteApp of an app with a key", err, codes.FailedPrecondition)
			_, err = c.DeleteApp(c.ctx(t), &accountv1.DeleteAppRequest{Id: genAppID, Cascade: true})
			mustOK(t, "DeleteApp", err)
			_, err = c.GetApp(c.ctx(t), &accountv1.GetAppRequest{Id: genAppID})
			wantCode(t, "GetApp after DeleteApp", err, codes.NotFound)
			_, err = c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-gen-app"})
			wantCode(t, "GetKey of the deleted app's key", err, codes.NotFound)
		}},
		{"DeleteTenant with cascade removes the tenant and its keys", func(t *testing.T) {
			kr, err := c.GenerateServiceAccessKey(c.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{Id: "k-gen-tenant", AppId: "billing", TenantId: genTenantID})
			mustOK(t, "GenerateServiceAccessKey", err)
			f.secrets = append(f.secrets, kr.GetPrivateKey())
			_, err = c.DeleteTenant(c.ctx(t), &accountv1.DeleteTenantRequest{Id: genTenantID, Cascade: true})
			mustOK(t, "DeleteTenant", err)
			_, err = c.GetTenant(c.ctx(t), &accountv1.GetTenantRequest{Id: genTenantID})
			wantCode(t, "GetTenant after DeleteTenant", err, codes.NotFound)
			_, err = c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "k-gen-tenant"})
			wantCode(t, "GetKey of the deleted tenant's key", err, codes.NotFound)
			waitOutcome(t, f.authz, inboxReq(kr.GetPrivateKey()), 401, 10*time.Second)
		}},
		{"ListAuditEvents", func(t *testing.T) {
			var events []*accountv1.AuditEvent
			req := &accountv1.ListAuditEventsRequest{PageSize: 20}
			for page := 0; ; page++ {
				if page > 50 {
					t.Fatal("ListAuditEvents: more than 50 pages")
				}
				resp, err := c.ListAuditEvents(c.ctx(t), req)
				mustOK(t, "ListAuditEvents", err)
				events = append(events, resp.GetEvents()...)
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
			if len(events) == 0 {
				t.Fatal("no audit events")
			}
			// Newest first: the last change made is the DeleteTenant, which
			// audits the tenant and then each key it took with it.
			if len(events) < 2 {
				t.Fatalf("%d audit events", len(events))
			}
			if e := events[0]; e.GetAction() != "key.delete" || e.GetObjectId() != "k-gen-tenant" {
				t.Errorf("newest event: %v, want key.delete of k-gen-tenant", e)
			}
			if e := events[1]; e.GetAction() != "tenant.delete" || e.GetObjectId() != genTenantID {
				t.Errorf("second newest event: %v, want tenant.delete of %s", e, genTenantID)
			}
			for i := 1; i < len(events); i++ {
				if events[i].GetId() >= events[i-1].GetId() || events[i].GetTime().AsTime().After(events[i-1].GetTime().AsTime()) {
					t.Errorf("events %d and %d out of order: %v then %v", i-1, i, events[i-1], events[i])
				}
			}
			type act struct{ action, object string }
			found := map[act]*accountv1.AuditEvent{}
			for _, e := range events {
				found[act{e.GetAction(), e.GetObjectId()}] = e
				b, _ := protojson.Marshal(e)
				f.noSecretIn(t, "audit event "+e.GetAction(), string(b))
				for _, s := range []map[string]any{e.GetBefore().AsMap(), e.GetAfter().AsMap()} {
					for field := range s {
						if strings.Contains(field, "hash") || strings.Contains(field, "secret") || field == "private_key" {
							t.Errorf("audit event %d %s carries field %q", e.GetId(), e.GetAction(), field)
						}
					}
				}
			}
			for _, w := range []act{
				{"app.create", "billing"}, {"app.create", genAppID}, {"app.update", "billing"}, {"app.delete", genAppID},
				{"tenant.create", "acme"}, {"tenant.update", "acme"}, {"tenant.delete", genTenantID},
				{"key.create", "k-svc"}, {"key.create", "k-acct-ro"}, {"key.create", "k-imported"}, {"key.create", "k-sql"},
				{"key.update", "k-svc"}, {"key.regenerate", "k-svc"}, {"key.regenerate", "k-imported"}, {"key.delete", "k-svc"},
				{"key.delete", "k-gen-app"}, {"key.delete", "k-gen-tenant"},
			} {
				e := found[w]
				if e == nil {
					t.Errorf("no audit event %s %s", w.action, w.object)
					continue
				}
				if e.GetActorKeyId() == "" || e.GetTime() == nil {
					t.Errorf("audit event %s %s without actor or time: %v", w.action, w.object, e)
				}
				switch {
				case strings.HasSuffix(w.action, ".create") && (e.GetBefore() != nil || e.GetAfter() == nil):
					t.Errorf("create event %s: before %v, after %v", w.object, e.GetBefore(), e.GetAfter())
				case strings.HasSuffix(w.action, ".delete") && (e.GetBefore() == nil || e.GetAfter() != nil):
					t.Errorf("delete event %s: before %v, after %v", w.object, e.GetBefore(), e.GetAfter())
				case strings.HasSuffix(w.action, ".update") && (e.GetBefore() == nil || e.GetAfter() == nil):
					t.Errorf("update event %s: before %v, after %v", w.object, e.GetBefore(), e.GetAfter())
				}
			}
			if e := found[act{"app.update", "billing"}]; e != nil {
				if b, a := e.GetBefore().AsMap()["description"], e.GetAfter().AsMap()["description"]; b != "invoices" || a != "invoices and receipts" {
					t.Errorf("app.update before/after description: %v → %v", b, a)
				}
			}
		}},
	}
	for _, s := range steps {
		t.Run(s.name, s.run)
	}
}

// dumpTables is every row of the tables, as JSON, sorted.
func dumpTables(t testing.TB, url string, tables ...string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	mustOK(t, "connect", err)
	defer conn.Close(ctx)
	out := map[string][]string{}
	for _, table := range tables {
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT row_to_json(t)::text FROM %s t ORDER BY 1", pgx.Identifier{table}.Sanitize()))
		mustOK(t, "dump "+table, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		mustOK(t, "dump "+table, err)
		out[table] = lines
	}
	return out
}

func testAccountErrors(t *testing.T, f *apiFixture) {
	c := f.api
	// Objects of its own, so that this subtest stands alone.
	_, err := c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Id: "err-app", Name: "Err App"})
	mustOK(t, "CreateApp", err)
	_, err = c.CreateTenant(c.ctx(t), &accountv1.CreateTenantRequest{Id: "err-tenant", Name: "Err Tenant"})
	mustOK(t, "CreateTenant", err)
	svc, err := c.GenerateServiceAccessKey(c.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{
		Id: "err-svc", Name: "err-svc-name", AppId: "err-app", TenantId: "err-tenant", Scope: "email-api", Group: "errs",
	})
	mustOK(t, "GenerateServiceAccessKey", err)
	ro, err := c.GenerateAccountAccessKey(c.ctx(t), &accountv1.GenerateAccountAccessKeyRequest{
		Id: "err-ro", Name: "err-read-only", Scope: "account-api:query:*",
	})
	mustOK(t, "GenerateAccountAccessKey", err)
	svcKey, roKey := svc.GetPrivateKey(), ro.GetPrivateKey()
	f.secrets = append(f.secrets, svcKey, roKey)
	unknown, _ := newKey(t, "account")
	// Wait until both new keys reached the cache the Account API decides
	// with: the read-only key can query, the service key is refused for its
	// type (not as unknown).
	eventually(t, "the read-only account key", func() bool {
		_, err := c.ListApps(asKey(t, roKey, true), &accountv1.ListAppsRequest{})
		return err == nil
	})
	eventually(t, "the service key to be known", func() bool {
		_, err := c.ListApps(asKey(t, svcKey, true), &accountv1.ListAppsRequest{})
		return status.Code(err) == codes.PermissionDenied
	})

	const shortSecret = "short-Secret-9"
	type errCase struct {
		name string
		call func(ctx context.Context) error
		// key is the caller's x-api-key; noKey sends none.
		key   string
		noKey bool
		code  codes.Code
		// field is what the message must start with; contains are more
		// strings it must hold, absent strings it must not.
		field    string
		contains []string
		absent   []string
	}
	svcReq := func(edit func(*accountv1.GenerateServiceAccessKeyRequest)) *accountv1.GenerateServiceAccessKeyRequest {
		r := &accountv1.GenerateServiceAccessKeyRequest{AppId: "err-app", TenantId: "err-tenant", Name: "err-new"}
		edit(r)
		return r
	}
	genSvc := func(edit func(*accountv1.GenerateServiceAccessKeyRequest)) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.GenerateServiceAccessKey(ctx, svcReq(edit))
			return err
		}
	}
	listApps := func(ctx context.Context) error {
		_, err := c.ListApps(ctx, &accountv1.ListAppsRequest{})
		return err
	}
	createApp := func(ctx context.Context) error {
		_, err := c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "refused-app", Name: "Refused App"})
		return err
	}
	cases := []errCase{
		// InvalidArgument.
		{name: "InvalidArgument: bad scope", code: codes.InvalidArgument, field: "scope",
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Scope = "email-api::x" })},
		{name: "InvalidArgument: CIDR with a /33 prefix", code: codes.InvalidArgument, field: "ip_filters",
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.IpFilters = []string{"10.0.0.0/33"} })},
		{name: "InvalidArgument: unknown template variable in a response header", code: codes.InvalidArgument, field: "response_headers",
			contains: []string{"key.secret"},
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) {
				r.ResponseHeaders = []*accountv1.ResponseHeader{{Name: "x-leak", Value: "${key.secret}"}}
			})},
		{name: "InvalidArgument: not_before after expires_at", code: codes.InvalidArgument, field: "not_before",
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) {
				r.ExpiresAt = timestamppb.New(time.Now().Add(time.Hour))
				r.NotBefore = timestamppb.New(time.Now().Add(2 * time.Hour))
			})},
		{name: "InvalidArgument: ImportKey with a short custom secret", code: codes.InvalidArgument, field: "private_key",
			absent: []string{shortSecret},
			call: func(ctx context.Context) error {
				_, err := c.ImportKey(ctx, &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_SERVICE,
					AppId: "err-app", TenantId: "err-tenant", PrivateKey: shortSecret, Name: "err-short"})
				return err
			}},
		{name: "InvalidArgument: service key without app_id", code: codes.InvalidArgument, field: "app_id",
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.AppId = "" })},
		{name: "ResourceExhausted: name of 300 characters", code: codes.ResourceExhausted, field: "name",
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Name = strings.Repeat("n", 300) })},
		{name: "InvalidArgument: CreateApp without a name", code: codes.InvalidArgument, field: "name",
			call: func(ctx context.Context) error {
				_, err := c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "nameless"})
				return err
			}},
		{name: "InvalidArgument: UpdateKey with a bad CIDR writes nothing", code: codes.InvalidArgument, field: "ip_filters",
			call: func(ctx context.Context) error {
				_, err := c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "err-svc", Description: proto.String("must not be written"),
					IpFilters: &accountv1.IPFilters{Filters: []string{"10.0.0.0/33"}}})
				return err
			}},
		{name: "InvalidArgument: UpdateKey with expires_at and clear_expires_at", code: codes.InvalidArgument, field: "expires_at",
			call: func(ctx context.Context) error {
				_, err := c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "err-svc", ExpiresAt: timestamppb.Now(), ClearExpiresAt: true})
				return err
			}},
		{name: "InvalidArgument: UpdateKey with a bad scope", code: codes.InvalidArgument, field: "scope",
			call: func(ctx context.Context) error {
				_, err := c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "err-svc", Scope: proto.String("email-api::x")})
				return err
			}},
		{name: "InvalidArgument: RegenerateKey with a grace period over 30 days", code: codes.InvalidArgument, field: "grace_period",
			call: func(ctx context.Context) error {
				_, err := c.RegenerateKey(ctx, &accountv1.RegenerateKeyRequest{Id: "err-svc", GracePeriod: durationpb.New(31 * 24 * time.Hour)})
				return err
			}},
		{name: "InvalidArgument: ListKeys page_size over 1000", code: codes.InvalidArgument, field: "page_size",
			call: func(ctx context.Context) error {
				_, err := c.ListKeys(ctx, &accountv1.ListKeysRequest{PageSize: 5000})
				return err
			}},

		// NotFound.
		{name: "NotFound: GetApp of a missing id", code: codes.NotFound, contains: []string{"no-such-app"},
			call: func(ctx context.Context) error {
				_, err := c.GetApp(ctx, &accountv1.GetAppRequest{Id: "no-such-app"})
				return err
			}},
		{name: "NotFound: service key for a missing tenant", code: codes.NotFound, field: "tenant_id", contains: []string{"no-such-tenant"},
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.TenantId = "no-such-tenant" })},
		{name: "NotFound: app key for a missing app", code: codes.NotFound, field: "app_id", contains: []string{"no-such-app"},
			call: func(ctx context.Context) error {
				_, err := c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{AppId: "no-such-app", Name: "err-orphan"})
				return err
			}},
		{name: "NotFound: UpdateKey of a missing key", code: codes.NotFound, contains: []string{"no-such-key"},
			call: func(ctx context.Context) error {
				_, err := c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "no-such-key", Description: proto.String("x")})
				return err
			}},
		{name: "NotFound: DeleteKey of a missing key", code: codes.NotFound, contains: []string{"no-such-key"},
			call: func(ctx context.Context) error {
				_, err := c.DeleteKey(ctx, &accountv1.DeleteKeyRequest{Id: "no-such-key"})
				return err
			}},

		// AlreadyExists.
		{name: "AlreadyExists: CreateApp with a duplicate id", code: codes.AlreadyExists, contains: []string{"id", `"err-app"`},
			call: func(ctx context.Context) error {
				_, err := c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: "err-app", Name: "Another Name"})
				return err
			}},
		{name: "AlreadyExists: CreateTenant with a duplicate id", code: codes.AlreadyExists, contains: []string{"id", `"err-tenant"`},
			call: func(ctx context.Context) error {
				_, err := c.CreateTenant(ctx, &accountv1.CreateTenantRequest{Id: "err-tenant", Name: "Another Tenant"})
				return err
			}},
		{name: "AlreadyExists: a second key with the same name", code: codes.AlreadyExists, field: "name", contains: []string{`"err-svc-name"`},
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Id = "err-dup"; r.Name = "err-svc-name" })},
		{name: "AlreadyExists: a key with a duplicate id", code: codes.AlreadyExists, contains: []string{`"err-svc"`},
			call: genSvc(func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Id = "err-svc"; r.Name = "err-other-name" })},

		// Unauthenticated.
		{name: "Unauthenticated: no x-api-key", noKey: true, code: codes.Unauthenticated, contains: []string{"missing_key"}, call: listApps},
		{name: "Unauthenticated: no x-api-key on a mutation", noKey: true, code: codes.Unauthenticated, contains: []string{"missing_key"}, call: createApp},
		{name: "Unauthenticated: unknown well-formed key", key: unknown, code: codes.Unauthenticated, contains: []string{"unknown_key"}, call: createApp},
		{name: "Unauthenticated: malformed key", key: f.env.accountKey + "x", code: codes.Unauthenticated, contains: []string{"malformed_key"}, call: createApp},

		// PermissionDenied.
		{name: "PermissionDenied: service key on the Account API", key: svcKey, code: codes.PermissionDenied, contains: []string{"wrong_key_type"}, call: listApps},
		{name: "PermissionDenied: query-only account key calling CreateApp", key: roKey, code: codes.PermissionDenied,
			contains: []string{"scope_denied", "account-api:mutation:createApp"}, call: createApp},
		{name: "PermissionDenied: query-only account key calling DeleteKey", key: roKey, code: codes.PermissionDenied,
			contains: []string{"scope_denied", "deleteKey"},
			call: func(ctx context.Context) error {
				_, err := c.DeleteKey(ctx, &accountv1.DeleteKeyRequest{Id: "err-svc"})
				return err
			}},
	}

	tables := []string{"keys", "apps", "tenants", "audit_events"}
	before := dumpTables(t, f.env.url, tables...)
	for _, table := range tables {
		if len(before[table]) == 0 {
			t.Fatalf("table %s is empty before the refused calls", table)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == "" {
				key = f.env.accountKey
			}
			msg := wantRefusal(t, tc.call(asKey(t, key, !tc.noKey)), refusal{
				code: tc.code, prefix: tc.field, contains: tc.contains, absent: tc.absent})
			f.noSecretIn(t, "error message", msg)
		})
	}
	// The one success among the odd inputs is covered by the methods
	// subtest (a name with SQL metacharacters stored verbatim).

	after := dumpTables(t, f.env.url, tables...)
	for _, table := range tables {
		if d := cmp.Diff(before[table], after[table]); d != "" {
			t.Errorf("refused calls changed table %s (-before +after):\n%s", table, d)
		}
	}
	// The data is still whole: the key survived the refused DeleteKey and
	// the refused updates.
	g, err := c.GetKey(c.ctx(t), &accountv1.GetKeyRequest{Id: "err-svc"})
	mustOK(t, "GetKey err-svc", err)
	if k := g.GetKey(); k.GetDescription() != "" || len(k.GetIpFilters()) != 0 || k.GetScope() != "email-api" || k.GetExpiresAt() != nil {
		t.Errorf("err-svc after refused updates: %v", k)
	}
	var names []string
	for _, r := range before["keys"] {
		var row struct{ Name string }
		if json.Unmarshal([]byte(r), &row) == nil && strings.HasPrefix(row.Name, "err-") {
			names = append(names, row.Name)
		}
	}
	slices.Sort(names)
	if want := []string{"err-read-only", "err-svc-name"}; !slices.Equal(names, want) {
		t.Errorf("keys named err-* in the database: %v, want %v", names, want)
	}
}

// refusal is what an Account API call's error must be: its code, the start
// of its message (the field it names; "" for any), and what the message
// must and must not say.
type refusal struct {
	code             codes.Code
	prefix           string
	contains, absent []string
}

// wantRefusal checks err against want and returns its message.
func wantRefusal(t *testing.T, err error, want refusal) string {
	t.Helper()
	if got := status.Code(err); got != want.code {
		t.Fatalf("got %v (%.300v), want %v", got, err, want.code)
	}
	msg := status.Convert(err).Message()
	t.Logf("%v: %.300s", want.code, msg)
	if !strings.HasPrefix(msg, want.prefix) {
		t.Errorf("message %.300q does not start with %q", msg, want.prefix)
	}
	for _, s := range want.contains {
		if !strings.Contains(msg, s) {
			t.Errorf("message %.300q does not name %q", msg, s)
		}
	}
	for _, s := range want.absent {
		if strings.Contains(msg, s) {
			t.Errorf("message %.300q echoes %.20q", msg, s)
		}
	}
	return msg
}
