package extauthz_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/metrics"
	"github.com/keygate/keygate/pkg/route"
)

// fullStack is the in-process Check handler with the real parts `keygate
// serve` wires together: the demo routes table, a keys-file store (with
// extra YAML before its keys, and roles on its key), its denial index,
// the Prometheus observer. It returns the server, the key's secret and the
// store.
func fullStack(b testing.TB, extra, roles string) (*extauthz.Server, string, *keyfile.Store) {
	return fullStackQuotas(b, extra, roles, false)
}

// fullStackQuotas is fullStack; with quotas, the key's tenant has a
// monthly quota and the key a daily one (both far from used up), so that
// row 10 counts every allow in both.
func fullStackQuotas(b testing.TB, extra, roles string, quotas bool) (*extauthz.Server, string, *keyfile.Store) {
	tenantQuota, keyQuota := "", ""
	if quotas {
		tenantQuota = ", quota: {requests: 1000000000000, period: month}"
		keyQuota = "    quota: {requests: 1000000000000, period: day}\n"
	}
	routesYAML, err := os.ReadFile("../../examples/routes.yaml")
	if err != nil {
		b.Fatal(err)
	}
	table, _, err := route.Parse(routesYAML, "routes.yaml")
	if err != nil {
		b.Fatal(err)
	}
	secret, err := apikey.Generate(apikey.KindService)
	if err != nil {
		b.Fatal(err)
	}
	keysYAML := fmt.Sprintf(`apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME Corp%s}]
%skeys:
  - id: k-1
    name: acme-billing
    type: service
    app: billing
    tenant: acme
    hash: %q
    scope: "email-api:query:* email-api:mutation:deleteEmail !email-api:query:secret*"
    roles: [%s]
    ip_filters: ["10.0.0.0/8", "192.168.178.1/255.255.255.0", "2001:db8::/32"]
    expires_at: 2999-01-01T00:00:00Z
    response_headers:
      - {name: x-tier, value: gold}
      - {name: x-who, value: "${key.name}@${tenant.id}"}
%s`, tenantQuota, extra, hasher.HashString(secret), roles, keyQuota)
	cfg := extauthz.Config{}.WithDefaults()
	keysFile := filepath.Join(b.TempDir(), "keys.yaml")
	if err := os.WriteFile(keysFile, []byte(keysYAML), 0o600); err != nil {
		b.Fatal(err)
	}
	store, err := keyfile.Open(keysFile, keyfile.Options{
		Algorithm: hasher.Algorithm(), Compile: authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders()}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New("bench", nil)
	engine := &authz.Engine{Keys: store, Routes: route.NewRouter(table), Hasher: hasher, Denials: store.Denials(),
		Counts: authz.NewUsageCounter(0), Quotas: authz.NewQuotas(), WeakSecrets: ignoreWeakSecrets{}} // usage counting, quotas and the weak-secret check on, as serve runs them
	return extauthz.NewServer(engine, cfg, m, nil), secret, store
}

// rolesAndDenials is three roles and ten denials of the key's tenant and
// app, none of which covers listing the inbox.
func rolesAndDenials() (extra, roles string) {
	extra = `roles:
  - {id: r-1, name: readers, scope: "email-api:query:*", rate_limit: {requests_per_unit: 100, unit: second}}
  - {id: r-2, name: cleaners, scope: "email-api:mutation:deleteEmail !email-api:mutation:sendEmail", rate_limit: {requests_per_unit: 6000, unit: hour}}
  - {id: r-3, name: users, scope: "users-api:query:listUsers"}
denials:
`
	for i := range 10 {
		extra += fmt.Sprintf("  - {id: d-%d, tenant: acme, app: billing, scope: \"email-api:mutation:op%d users-api:query:x%d\", reason: \"blocked %d\"}\n", i, i, i, i)
	}
	return extra, "r-1, r-2, r-3"
}

// BenchmarkCheckFullStack is the in-process Check handler with the real
// parts `keygate serve` wires together: the demo routes table, a keys-file
// store, the Prometheus observer. CheckRequest in, CheckResponse out, on a
// cache hit. Target: <= 2 µs/op.
func BenchmarkCheckFullStack(b *testing.B) {
	srv, secret, _ := fullStack(b, "", "")
	benchAllow(b, srv, request("/email/inbox?page=2", secret, nil))
}

// BenchmarkCheckFullStackRolesDenials is BenchmarkCheckFullStack for a
// key with three roles (two with a rate limit, so the answer carries the
// rate_limit metadata) whose tenant holds ten denials (none covering the
// call): the hit path still allocates nothing.
func BenchmarkCheckFullStackRolesDenials(b *testing.B) {
	extra, roles := rolesAndDenials()
	srv, secret, _ := fullStack(b, extra, roles)
	benchAllow(b, srv, request("/email/inbox?page=2", secret, nil))
}

// BenchmarkCheckFullStackQuotas is BenchmarkCheckFullStackRolesDenials
// for a key whose tenant has a monthly quota and which has a daily one of
// its own: every allow is admitted against both (SPEC §12, row 10).
func BenchmarkCheckFullStackQuotas(b *testing.B) {
	extra, roles := rolesAndDenials()
	srv, secret, _ := fullStackQuotas(b, extra, roles, true)
	benchAllow(b, srv, request("/email/inbox?page=2", secret, nil))
}

// BenchmarkCheckFullStackAccessDenied is the deny of a denial on the same
// stack: its answer is built once and kept with the denial.
func BenchmarkCheckFullStackAccessDenied(b *testing.B) {
	extra, roles := rolesAndDenials()
	extra += "  - {id: d-inbox, tenant: acme, app: billing, scope: \"email-api:query:listEmails\", reason: \"Payment overdue\"}\n"
	srv, secret, _ := fullStack(b, extra, roles)
	req := request("/email/inbox?page=2", secret, nil)
	ctx := context.Background()
	if resp, _ := srv.Check(ctx, req); resp.GetDeniedResponse() == nil {
		b.Fatal("not denied")
	}
	b.ReportAllocs()
	for b.Loop() {
		if resp, _ := srv.Check(ctx, req); resp.GetDeniedResponse() == nil {
			b.Fatal("not denied")
		}
	}
}

func benchAllow(b *testing.B, srv *extauthz.Server, req *authv3.CheckRequest) {
	ctx := context.Background()
	// One Check first, as BenchmarkCheck does: the loop measures hits.
	if resp, err := srv.Check(ctx, req); err != nil || resp.GetOkResponse() == nil {
		b.Fatalf("not allowed: %v %v", resp, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := srv.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("not allowed: %v %v", resp, err)
		}
	}
}

// TestAccessDenied: through the real stack, a denial of the key's tenant
// and app answers 403 with its reason text as the body's error and its id
// in the dynamic metadata; a role allows what it allows; an allowed
// request with roles and denials allocates nothing.
func TestAccessDenied(t *testing.T) {
	extra, roles := rolesAndDenials()
	extra += "  - {id: d-send, tenant: acme, app: billing, scope: \"email-api:mutation:sendEmail email-api:query:getEmail\", reason: \"Payment overdue: \\\"invoice\\\" <42>\"}\n"
	srv, secret, _ := fullStack(t, extra, roles)
	resp := check(t, srv, request("/email/42", secret, nil))
	if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 403 {
		t.Fatalf("GET /email/42: %v, want the denial d-send", resp)
	}
	if got, want := resp.GetDeniedResponse().GetBody(), `{"error":"Payment overdue: \"invoice\" <42>","reason":"access_denied"}`; got != want {
		t.Fatalf("body %s, want %s", got, want)
	}
	md := resp.GetDynamicMetadata().GetFields()
	if md["denial_id"].GetStringValue() != "d-send" || md["reason"].GetStringValue() != "access_denied" || md["tenant_id"].GetStringValue() != "acme" {
		t.Fatalf("dynamic metadata %v", md)
	}
	if c := resp.GetStatus().GetCode(); c != 7 { // PERMISSION_DENIED
		t.Fatalf("status code %d", c)
	}
	// The same answer again (kept with the denial).
	if again := check(t, srv, request("/email/42", secret, nil)); again.GetDeniedResponse().GetBody() != resp.GetDeniedResponse().GetBody() {
		t.Fatal("second answer differs")
	}
	// Allowed by the own scope, untouched by ten denials of other operations.
	req := request("/email/inbox", secret, nil)
	if r := check(t, srv, req); r.GetOkResponse() == nil {
		t.Fatalf("inbox: %v", r)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = srv.Check(context.Background(), req) }); n != 0 {
		t.Fatalf("an allowed Check with roles and denials allocates %v times", n)
	}
}
