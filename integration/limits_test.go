package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// TestAccountLimits: the real binary and PostgreSQL. Quotas set by the
// operator's `keygate accounts limits` (keys, apps) and by serve's
// defaults (tenants) refuse the create at the limit with
// ResourceExhausted naming it; so does every size limit; no refusal
// writes anything (rows, counts, audit log); counts stay exact across
// cascading deletes; and 8 parallel creates at limit-1 leave exactly the
// limit.
func TestAccountLimits(t *testing.T) {
	env := newDBEnv(t) // account acct-test with its bootstrap key
	out := limitsCmd(t, env)
	wantLimitLine(t, out, "max_keys", "100000", "default", "1")
	out = limitsCmd(t, env, "--max-keys", "3", "--max-apps", "2")
	wantLimitLine(t, out, "max_keys", "3", "3", "1")
	wantLimitLine(t, out, "max_apps", "2", "2", "0")
	if _, err := cliRun(t, "", "accounts", "limits", "--database-url", env.url, "--account", "acct-test", "--max-keys", "-1"); err == nil {
		t.Fatal("accounts limits --max-keys -1 succeeded")
	}

	srv := env.serve(t, "--max-tenants-per-account", "2", "--account-mutations-per-second", "1000")
	waitReady(t, srv)
	c := env.client(t, srv)
	db, err := pgx.Connect(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })

	var ev string
	if err := db.QueryRow(t.Context(), `SELECT action || ' by ' || actor_key_name FROM audit_events
		WHERE action = 'account.limits' ORDER BY id DESC LIMIT 1`).Scan(&ev); err != nil || ev != "account.limits by operator" {
		t.Fatalf("audit of accounts limits: %q, %v", ev, err)
	}

	refused := func(what string, err error, wants ...string) {
		t.Helper()
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("%s: %v, want ResourceExhausted", what, err)
		}
		for _, w := range wants {
			if !strings.Contains(status.Convert(err).Message(), w) {
				t.Errorf("%s: message %q does not name %q", what, status.Convert(err).Message(), w)
			}
		}
	}
	unchanged := snapshot(t, db)

	// Sizes, while every quota has room: refused for the size alone.
	long := func(n int) string { return strings.Repeat("a", n) }
	_, err = c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Name: long(201)})
	refused("app name of 201 bytes", err, "name: longer than 200 bytes")
	_, err = c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Name: "x", Description: long(1025)})
	refused("app description of 1025 bytes", err, "description: longer than 1024 bytes")
	_, err = c.CreateTenant(c.ctx(t), &accountv1.CreateTenantRequest{Name: "x", Description: long(1025)})
	refused("tenant description of 1025 bytes", err, "description: longer than 1024 bytes")
	for _, tc := range []struct {
		name string
		req  *accountv1.GenerateAccountAccessKeyRequest
		want string
	}{
		{"scope of 4097 bytes", &accountv1.GenerateAccountAccessKeyRequest{Scope: long(4097)}, "scope: longer than 4096 bytes"},
		{"scope of 201 patterns", &accountv1.GenerateAccountAccessKeyRequest{Scope: strings.Repeat("account-api:q:g ", 201)}, "scope: 201 patterns, more than 200"},
		{"key name of 201 bytes", &accountv1.GenerateAccountAccessKeyRequest{Name: long(201), Scope: "account-api:query:*"}, "name: longer than 200 bytes"},
		{"key description of 1025 bytes", &accountv1.GenerateAccountAccessKeyRequest{Description: long(1025), Scope: "account-api:query:*"}, "description: longer than 1024 bytes"},
		{"21 response headers", &accountv1.GenerateAccountAccessKeyRequest{Scope: "account-api:query:*", ResponseHeaders: headers(21, 1)}, "response_headers: 21 headers, more than 20"},
		{"header value of 1025 bytes", &accountv1.GenerateAccountAccessKeyRequest{Scope: "account-api:query:*", ResponseHeaders: headers(1, 1025)}, "value longer than 1024 bytes"},
	} {
		_, err := c.GenerateAccountAccessKey(c.ctx(t), tc.req)
		refused(tc.name, err, tc.want)
	}
	unchanged.check(t, db, "after the size refusals")

	// Quotas: up to the limit, then refused.
	for _, id := range []string{"a1", "a2"} {
		_, err := c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Id: id, Name: id})
		mustOK(t, "CreateApp "+id, err)
	}
	for _, id := range []string{"t1", "t2"} {
		_, err := c.CreateTenant(c.ctx(t), &accountv1.CreateTenantRequest{Id: id, Name: id})
		mustOK(t, "CreateTenant "+id, err)
	}
	_, err = c.GenerateServiceAccessKey(c.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{Id: "k1", AppId: "a1", TenantId: "t1"})
	mustOK(t, "GenerateServiceAccessKey k1", err)
	_, err = c.GenerateAppAccessKey(c.ctx(t), &accountv1.GenerateAppAccessKeyRequest{Id: "k2", AppId: "a1"})
	mustOK(t, "GenerateAppAccessKey k2", err)
	full := snapshot(t, db)
	_, err = c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Name: "a3"})
	refused("third app", err, `account "acct-test" already has 2 apps`, "max_apps = 2", "keygate accounts limits")
	_, err = c.CreateTenant(c.ctx(t), &accountv1.CreateTenantRequest{Name: "t3"})
	refused("third tenant", err, `already has 2 tenants`, "max_tenants = 2")
	_, err = c.GenerateServiceAccessKey(c.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{AppId: "a2", TenantId: "t2"})
	refused("fourth key", err, `already has 3 keys`, "max_keys = 3")
	_, err = c.ImportKey(c.ctx(t), &accountv1.ImportKeyRequest{Type: accountv1.KeyType_KEY_TYPE_APP, AppId: "a2", PrivateKey: "Imported-Secret-0123456789-abcdef"})
	refused("imported fourth key", err, "max_keys = 3")
	full.check(t, db, "after the quota refusals")

	// Counts stay exact through a cascading delete (a1 takes k1 and k2).
	_, err = c.DeleteApp(c.ctx(t), &accountv1.DeleteAppRequest{Id: "a1", Cascade: true})
	mustOK(t, "DeleteApp a1", err)
	out = limitsCmd(t, env, "--max-keys", "5")
	wantLimitLine(t, out, "max_keys", "5", "5", "1")
	wantLimitLine(t, out, "max_apps", "2", "2", "1")
	snapshot(t, db) // counts against rows

	// 8 parallel creates at limit-1: exactly one passes.
	for i := range 3 {
		_, err := c.GenerateAppAccessKey(c.ctx(t), &accountv1.GenerateAppAccessKeyRequest{Id: fmt.Sprintf("f%d", i), AppId: "a2"})
		mustOK(t, "GenerateAppAccessKey", err)
	}
	var wg sync.WaitGroup
	codesSeen := make([]codes.Code, 8)
	for i := range codesSeen {
		wg.Go(func() {
			_, err := c.GenerateAppAccessKey(c.ctx(t), &accountv1.GenerateAppAccessKeyRequest{Id: fmt.Sprintf("race%d", i), AppId: "a2"})
			codesSeen[i] = status.Code(err)
		})
	}
	wg.Wait()
	ok := 0
	for _, code := range codesSeen {
		switch code {
		case codes.OK:
			ok++
		case codes.ResourceExhausted:
		default:
			t.Errorf("parallel create: %v, want OK or ResourceExhausted", code)
		}
	}
	if s := snapshot(t, db); ok != 1 || s.keys != 5 {
		t.Fatalf("8 parallel creates at limit-1: %d succeeded, %d keys stored; want 1 and 5", ok, s.keys)
	}
}

// limitsCmd runs keygate accounts limits on env's account.
func limitsCmd(t *testing.T, env *dbEnv, args ...string) string {
	t.Helper()
	out, err := cliRun(t, "", append([]string{"accounts", "limits", "--database-url", env.url, "--account", "acct-test"}, args...)...)
	if err != nil {
		t.Fatalf("accounts limits %v: %v\n%s", args, err, out)
	}
	return out
}

// wantLimitLine fails unless out has the line of limit with these values.
func wantLimitLine(t *testing.T, out, limit string, values ...string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + limit + `\s+` + strings.Join(values, `\s+`) + `\s*$`)
	if !re.MatchString(out) {
		t.Errorf("accounts limits: no line %s %v in\n%s", limit, values, out)
	}
}

func headers(n, valueLen int) []*accountv1.ResponseHeader {
	hs := make([]*accountv1.ResponseHeader, n)
	for i := range hs {
		hs[i] = &accountv1.ResponseHeader{Name: fmt.Sprintf("x-h%d", i), Value: strings.Repeat("v", valueLen)}
	}
	return hs
}

// dbState is what a refused call must leave as it was.
type dbState struct {
	keys, apps, tenants, events int64
}

// snapshot reads the account's rows and audit events, and fails when the
// trigger-kept counts disagree with the rows.
func snapshot(t *testing.T, db *pgx.Conn) dbState {
	t.Helper()
	var s dbState
	var ck, ca, ct int64
	err := db.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM keys WHERE account_id = 'acct-test'),
		(SELECT count(*) FROM apps WHERE account_id = 'acct-test'),
		(SELECT count(*) FROM tenants WHERE account_id = 'acct-test'),
		(SELECT count(*) FROM audit_events WHERE account_id = 'acct-test'),
		l.keys, l.apps, l.tenants
		FROM account_limits l WHERE l.account_id = 'acct-test'`).Scan(&s.keys, &s.apps, &s.tenants, &s.events, &ck, &ca, &ct)
	if err != nil {
		t.Fatal(err)
	}
	if ck != s.keys || ca != s.apps || ct != s.tenants {
		t.Errorf("counts (keys %d, apps %d, tenants %d) differ from the rows %+v", ck, ca, ct, s)
	}
	return s
}

func (s dbState) check(t *testing.T, db *pgx.Conn, when string) {
	t.Helper()
	if got := snapshot(t, db); got != s {
		t.Errorf("%s: stored %+v, want %+v as before", when, got, s)
	}
}
