package integration

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// propagationBound only catches a change that never propagates: it is
// not a latency assertion (the figures are logged).
const propagationBound = 5 * time.Second

// rolesDBEnv is two replicas on one database, an app, a tenant, a role
// "reader" and a service key holding it (own scope empty: the role
// decides).
type rolesDBEnv struct {
	env      *dbEnv
	a        *server
	api      *accountClient
	replicas map[string]authv3.AuthorizationClient
	secret   string
}

func newRolesDBEnv(t *testing.T) *rolesDBEnv {
	t.Helper()
	env := newDBEnv(t)
	a, b := env.serve(t), env.serve(t)
	waitReady(t, a)
	waitReady(t, b)
	api := env.client(t, a)
	if _, err := api.CreateApp(api.ctx(t), &accountv1.CreateAppRequest{Id: "billing", Name: "Billing"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateTenant(api.ctx(t), &accountv1.CreateTenantRequest{Id: "acme", Name: "ACME Corp"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateServiceAccessRole(api.ctx(t), &accountv1.CreateServiceAccessRoleRequest{
		Id: "reader", Name: "Reader", Scope: "email-api:query:*"}); err != nil {
		t.Fatal(err)
	}
	resp, err := api.GenerateServiceAccessKey(api.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{
		AppId: "billing", TenantId: "acme", Name: "holder", Id: "k-holder", RoleIds: []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	return &rolesDBEnv{env: env, a: a, api: api, secret: resp.GetPrivateKey(), replicas: map[string]authv3.AuthorizationClient{
		"a": authv3.NewAuthorizationClient(dial(t, a.authzAddr)),
		"b": authv3.NewAuthorizationClient(dial(t, b.authzAddr)),
	}}
}

var (
	inboxReq = func(secret string) *authv3.CheckRequest { return checkReq("GET", "/email/inbox", secret, nil) }
	sendReq  = func(secret string) *authv3.CheckRequest { return checkReq("POST", "/email/send", secret, nil) }
)

// want waits until both replicas answer req with want (the key and
// changes arrive through the change feed), then checks the deny body.
func (e *rolesDBEnv) want(t *testing.T, what string, req *authv3.CheckRequest, want outcome, bodyError string) {
	t.Helper()
	for _, name := range []string{"a", "b"} {
		c := e.replicas[name]
		var got outcome
		var resp *authv3.CheckResponse
		eventually(t, fmt.Sprintf("%s on replica %s: %v", what, name, want), func() bool {
			got, resp = call(t, c, req)
			return got == want
		})
		if bodyError == "" {
			continue
		}
		var body struct{ Error, Reason string }
		if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body); err != nil {
			t.Fatal(err)
		}
		if body.Error != bodyError || body.Reason != want.reason {
			t.Errorf("%s on replica %s: body %+v, want error %q reason %s", what, name, body, bodyError, want.reason)
		}
		if id := resp.GetDynamicMetadata().GetFields()["denial_id"].GetStringValue(); id == "" {
			t.Errorf("%s on replica %s: no denial_id in the dynamic metadata", what, name)
		}
	}
}

func (e *rolesDBEnv) setRoleScope(t *testing.T, scope string) {
	t.Helper()
	if _, err := e.api.UpdateServiceAccessRole(e.api.ctx(t), &accountv1.UpdateServiceAccessRoleRequest{Id: "reader", Scope: &scope}); err != nil {
		t.Fatal(err)
	}
}

// TestRolesAndDenialsTwoReplicas (issue 18): through the real server and
// PostgreSQL, on two replicas of one database: editing a role widens and
// narrows its key's access on both; a denial denies with its reason text
// on both and deleting it restores access; a held role's delete without
// force is refused with the count.
func TestRolesAndDenialsTwoReplicas(t *testing.T) {
	e := newRolesDBEnv(t)
	ok, scopeDenied := outcome{status: 200}, outcome{403, "scope_denied"}

	// The role decides: queries yes, sending no.
	e.want(t, "inbox with role reader", inboxReq(e.secret), ok, "")
	e.want(t, "send with role reader", sendReq(e.secret), scopeDenied, "")

	// Widen the role, then narrow it.
	e.setRoleScope(t, "email-api")
	e.want(t, "send after widening", sendReq(e.secret), ok, "")
	e.want(t, "inbox after widening", inboxReq(e.secret), ok, "")
	e.setRoleScope(t, "email-api:mutation:sendEmail")
	e.want(t, "inbox after narrowing", inboxReq(e.secret), scopeDenied, "")
	e.want(t, "send after narrowing", sendReq(e.secret), ok, "")
	// The CLI edits the role as well.
	cli := cliAgainst(t, e.env, e.a)
	if out, err := cli("roles", "update", "reader", "--scope", "email-api"); err != nil {
		t.Fatalf("keygate roles update: %v\n%s", err, out)
	}
	e.want(t, "inbox after widening again", inboxReq(e.secret), ok, "")

	// A denial of sending for acme on billing.
	const reason = "Sending is suspended: invoice 42 is overdue"
	if _, err := e.api.CreateServiceAccessDenial(e.api.ctx(t), &accountv1.CreateServiceAccessDenialRequest{
		Id: "unpaid", TenantId: "acme", AppId: "billing", Scope: "email-api:mutation:sendEmail", Reason: reason}); err != nil {
		t.Fatal(err)
	}
	e.want(t, "send with the denial", sendReq(e.secret), outcome{403, "access_denied"}, reason)
	e.want(t, "inbox with the denial", inboxReq(e.secret), ok, "")

	// explain in database mode, by secret (the store) and by key id (the
	// Account API): the roles, the effective scope and the denial.
	for _, how := range []struct {
		name string
		run  func(args ...string) (string, error)
	}{
		{"--database-url", func(args ...string) (string, error) {
			return cliRunEnv(t, nil, e.secret+"\n", append([]string{"explain", "--database-url", e.env.url}, args...)...)
		}},
		{"--key-id", func(args ...string) (string, error) {
			return cli(append([]string{"explain", "--key-id", "k-holder"}, args...)...)
		}},
	} {
		out, err := how.run("--routes-file", e.env.routesFile, "--method", "POST", "--path", "/email/send")
		for _, want := range []string{`effective scope "email-api"`, `role reader (Reader) "email-api"`,
			`FAIL access_denied (403): denial unpaid (tenant acme, app billing, scope "email-api:mutation:sendEmail")`,
			`reason "` + reason + `"`, "decision: DENY 403"} {
			if !strings.Contains(out, want) {
				t.Errorf("explain %s of a denied send: no %q in:\n%s (%v)", how.name, want, out, err)
			}
		}
		out, err = how.run("--routes-file", e.env.routesFile, "--path", "/email/inbox")
		if !strings.Contains(out, "1 denials of tenant acme, app billing; none covers it") || !strings.Contains(out, "decision: ALLOW") {
			t.Errorf("explain %s of an allowed read:\n%s (%v)", how.name, out, err)
		}
	}
	if _, err := e.api.DeleteServiceAccessDenial(e.api.ctx(t), &accountv1.DeleteServiceAccessDenialRequest{Id: "unpaid"}); err != nil {
		t.Fatal(err)
	}
	e.want(t, "send after the denial's delete", sendReq(e.secret), ok, "")

	// A held role is not deleted without force.
	_, err := e.api.DeleteServiceAccessRole(e.api.ctx(t), &accountv1.DeleteServiceAccessRoleRequest{Id: "reader"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "1 key holds it") {
		t.Fatalf("deleting a held role without force: %v; want FailedPrecondition naming 1 key", err)
	}
	e.want(t, "send after the refused delete", sendReq(e.secret), ok, "")

	// Forced: the key loses the role; its own scope is empty, which
	// without roles allows everything (SPEC §3), so it keeps working.
	if _, err := e.api.DeleteServiceAccessRole(e.api.ctx(t), &accountv1.DeleteServiceAccessRoleRequest{Id: "reader", Force: true}); err != nil {
		t.Fatal(err)
	}
	e.want(t, "send after the forced delete", sendReq(e.secret), ok, "")
}

// TestRoleAndDenialPropagation measures, over 20 tries each, the time
// from the Account API call returning on replica a to replica b answering
// the new decision: a role edit (narrowing and widening in turn), a
// denial create and its delete. The bound only catches a change that never
// arrives.
func TestRoleAndDenialPropagation(t *testing.T) {
	e := newRolesDBEnv(t)
	b := e.replicas["b"]
	const n = 20
	e.setRoleScope(t, "email-api")
	waitOutcome(t, b, sendReq(e.secret), 200, 10*time.Second)

	var roleLags []time.Duration
	for i := range n {
		scope, want := "email-api:query:*", 403 // narrowing: sending refused
		if i%2 == 1 {
			scope, want = "email-api", 200
		}
		start := time.Now()
		e.setRoleScope(t, scope)
		waitOutcome(t, b, sendReq(e.secret), want, propagationBound)
		roleLags = append(roleLags, time.Since(start))
	}

	e.setRoleScope(t, "email-api")
	waitOutcome(t, b, sendReq(e.secret), 200, 10*time.Second)
	var denialLags, liftLags []time.Duration
	for i := range n {
		id := fmt.Sprintf("d-%d", i)
		start := time.Now()
		if _, err := e.api.CreateServiceAccessDenial(e.api.ctx(t), &accountv1.CreateServiceAccessDenialRequest{
			Id: id, TenantId: "acme", AppId: "billing", Scope: "email-api:mutation:sendEmail", Reason: "suspended " + id}); err != nil {
			t.Fatal(err)
		}
		waitOutcome(t, b, sendReq(e.secret), 403, propagationBound)
		denialLags = append(denialLags, time.Since(start))
		start = time.Now()
		if _, err := e.api.DeleteServiceAccessDenial(e.api.ctx(t), &accountv1.DeleteServiceAccessDenialRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
		waitOutcome(t, b, sendReq(e.secret), 200, propagationBound)
		liftLags = append(liftLags, time.Since(start))
	}
	for _, m := range []struct {
		what string
		lags []time.Duration
	}{{"role edit", roleLags}, {"denial create", denialLags}, {"denial delete", liftLags}} {
		sort.Slice(m.lags, func(i, j int) bool { return m.lags[i] < m.lags[j] })
		t.Logf("%s reached the other replica: p50 %v, p99 %v, max %v over %d tries",
			m.what, m.lags[len(m.lags)/2], m.lags[len(m.lags)*99/100], m.lags[len(m.lags)-1], len(m.lags))
	}
}
