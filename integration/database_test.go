package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// dbEnv is one migrated database with a bootstrapped account key.
type dbEnv struct {
	url        string
	accountKey string
	routesFile string
}

// newDBEnv creates a database, bootstraps an account with the real CLI and
// writes a routes file.
func newDBEnv(t testing.TB) *dbEnv {
	t.Helper()
	return bootstrapEnv(t, pgtest.NewDatabase(t))
}

// bootstrapEnv bootstraps an account with the real CLI in the database at
// url (migrating it) and writes a routes file.
func bootstrapEnv(t testing.TB, url string) *dbEnv {
	t.Helper()
	env := &dbEnv{url: url, routesFile: filepath.Join(t.TempDir(), "routes.yaml")}
	writeFile(t, env.routesFile, routesYAML)
	out, err := cliRun(t, "", "bootstrap", "--database-url", env.url, "--account", "acct-test")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	env.accountKey = lines[len(lines)-1]
	if !strings.HasPrefix(env.accountKey, "kg_aak_") {
		t.Fatalf("bootstrap's last line is not an account key: %q", out)
	}
	return env
}

// serve starts a replica on the database.
func (e *dbEnv) serve(t testing.TB, extra ...string) *server {
	t.Helper()
	return startServe(t, []string{"authz", "admin", "account"},
		append([]string{"--database-url", e.url, "--routes-file", e.routesFile}, extra...)...)
}

// accountClient is the Account API client with the account key attached.
type accountClient struct {
	accountv1.AccountServiceClient
	key string
}

func (e *dbEnv) client(t testing.TB, s *server) *accountClient {
	return &accountClient{accountv1.NewAccountServiceClient(dial(t, s.accountAddr)), e.accountKey}
}

func (c *accountClient) ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "x-api-key", c.key)
}

// waitReady polls /readyz until the cache is warm.
func waitReady(t testing.TB, s *server) {
	t.Helper()
	eventually(t, "/readyz", func() bool {
		code, _ := httpGet(t, "http://"+s.adminAddr+"/readyz")
		return code == 200
	})
}

// seed creates the app, the tenant and one key per decision row through
// the Account API, returning the secrets by key name.
func seed(t testing.TB, c *accountClient) map[string]string {
	t.Helper()
	if _, err := c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Id: "billing", Name: "Billing"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTenant(c.ctx(t), &accountv1.CreateTenantRequest{Id: "acme", Name: "ACME Corp"}); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	svc := func(name string, edit func(*accountv1.GenerateServiceAccessKeyRequest)) {
		req := &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Name: name, Id: "k-" + name}
		if edit != nil {
			edit(req)
		}
		resp, err := c.GenerateServiceAccessKey(c.ctx(t), req)
		if err != nil {
			t.Fatalf("generate %s: %v", name, err)
		}
		secrets[name] = resp.GetPrivateKey()
	}
	svc("svc", func(r *accountv1.GenerateServiceAccessKeyRequest) {
		r.ResponseHeaders = []*accountv1.ResponseHeader{{Name: "x-tier", Value: "gold"}}
	})
	svc("ro", func(r *accountv1.GenerateServiceAccessKeyRequest) {
		r.Scope = "email-api !email-api:mutation:sendEmail"
	})
	// A new key with a past expiry is refused; an update may expire one.
	svc("expired", nil)
	if _, err := c.UpdateKey(c.ctx(t), &accountv1.UpdateKeyRequest{Id: "k-expired", ExpiresAt: timestamppb.New(time.Now().Add(-time.Hour))}); err != nil {
		t.Fatal(err)
	}
	inactive := false
	svc("inactive", func(r *accountv1.GenerateServiceAccessKeyRequest) { r.Active = &inactive })
	svc("future", func(r *accountv1.GenerateServiceAccessKeyRequest) {
		r.NotBefore = timestamppb.New(time.Now().Add(24 * time.Hour))
	})
	svc("office", func(r *accountv1.GenerateServiceAccessKeyRequest) { r.IpFilters = []string{"10.0.0.0/8"} })
	app, err := c.GenerateAppAccessKey(c.ctx(t), &accountv1.GenerateAppAccessKeyRequest{AppId: "billing", Name: "app", Id: "k-app"})
	if err != nil {
		t.Fatal(err)
	}
	secrets["app"] = app.GetPrivateKey()
	return secrets
}

// TestDatabaseDecisionTable runs the SPEC §5 table through keys created with
// the Account API and served from PostgreSQL through the cache.
func TestDatabaseDecisionTable(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	secrets := seed(t, env.client(t, srv))
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	unknown, _ := newKey(t, "service")
	cases := []struct {
		name string
		req  *authv3.CheckRequest
		want outcome
	}{
		{"allow", checkReq("GET", "/email/inbox", secrets["svc"], nil), outcome{status: 200}},
		{"allow app key over gRPC", checkReq("POST", "/users.v1.UserService/GetUser", secrets["app"], map[string]string{"content-type": "application/grpc"}), outcome{status: 200}},
		{"missing_key", checkReq("GET", "/email/inbox", "", nil), outcome{401, "missing_key"}},
		{"malformed_key", checkReq("GET", "/email/inbox", secrets["svc"]+"x", nil), outcome{401, "malformed_key"}},
		{"unknown_key", checkReq("GET", "/email/inbox", unknown, nil), outcome{401, "unknown_key"}},
		{"inactive_key", checkReq("GET", "/email/inbox", secrets["inactive"], nil), outcome{401, "inactive_key"}},
		{"not_yet_valid", checkReq("GET", "/email/inbox", secrets["future"], nil), outcome{401, "not_yet_valid"}},
		{"expired_key", checkReq("GET", "/email/inbox", secrets["expired"], nil), outcome{401, "expired_key"}},
		{"unknown_route", checkReq("GET", "/nowhere", secrets["svc"], nil), outcome{403, "unknown_route"}},
		{"wrong_key_type", checkReq("GET", "/email/inbox", secrets["app"], nil), outcome{403, "wrong_key_type"}},
		{"wrong_key_type: account key on the data plane", checkReq("GET", "/email/inbox", env.accountKey, nil), outcome{403, "wrong_key_type"}},
		{"ip_not_allowed", checkReq("GET", "/email/inbox", secrets["office"], nil), outcome{403, "ip_not_allowed"}},
		{"scope_denied", checkReq("POST", "/email/send", secrets["ro"], nil), outcome{403, "scope_denied"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Keys created after the warm load arrive through the change feed.
			var got outcome
			eventually(t, tc.name, func() bool {
				got, _ = call(t, authz, tc.req)
				return got == tc.want
			})
		})
	}
}

// TestPropagation revokes keys through one replica's Account API and
// measures how long until another replica denies them.
func TestPropagation(t *testing.T) {
	env := newDBEnv(t)
	a, b := env.serve(t), env.serve(t)
	waitReady(t, a)
	waitReady(t, b)
	api := env.client(t, a)
	seed(t, api)
	checkB := authv3.NewAuthorizationClient(dial(t, b.authzAddr))
	lags := measurePropagation(t, api, checkB, 20)
	t.Logf("revocation reached the other replica: p50 %v, p99 %v, max %v over %d revocations",
		lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1], len(lags))
}

// measurePropagation creates n keys, waits until replica b allows each,
// revokes it through api and times until b denies it. Sorted lags.
func measurePropagation(t testing.TB, api *accountClient, b authv3.AuthorizationClient, n int) []time.Duration {
	var lags []time.Duration
	ctx := func() context.Context { return api.ctx(t) }
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("prop-%d-%d", time.Now().UnixNano(), i)
		resp, err := api.GenerateServiceAccessKey(ctx(), &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		req := checkReq("GET", "/email/inbox", resp.GetPrivateKey(), nil)
		waitOutcome(t, b, req, 200, 10*time.Second)
		off := false
		start := time.Now()
		if _, err := api.UpdateKey(ctx(), &accountv1.UpdateKeyRequest{Id: resp.GetKey().GetId(), Active: &off}); err != nil {
			t.Fatal(err)
		}
		waitOutcome(t, b, req, 401, 10*time.Second)
		lags = append(lags, time.Since(start))
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	return lags
}

// waitOutcome polls Check every millisecond until it answers status.
func waitOutcome(t testing.TB, c authv3.AuthorizationClient, req *authv3.CheckRequest, status int, bound time.Duration) {
	t.Helper()
	if err := awaitOutcome(c, req, status, bound); err != nil {
		t.Fatal(err)
	}
}

// awaitOutcome is waitOutcome for goroutines other than the test's: it
// returns an error instead of failing the test.
func awaitOutcome(c authv3.AuthorizationClient, req *authv3.CheckRequest, status int, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := c.Check(ctx, req)
		cancel()
		if err == nil {
			got := 200
			if d := resp.GetDeniedResponse(); d != nil {
				got = int(d.GetStatus().GetCode())
			}
			if got == status {
				return nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("no %d within %v", status, bound)
}

// BenchmarkPropagation reports the distribution of revocation lag between
// two replicas (go test -run=NONE -bench=Propagation ./integration).
func BenchmarkPropagation(b *testing.B) {
	env := newDBEnv(b)
	a, r := env.serve(b), env.serve(b)
	waitReady(b, a)
	waitReady(b, r)
	api := env.client(b, a)
	seed(b, api)
	check := authv3.NewAuthorizationClient(dial(b, r.authzAddr))
	b.ResetTimer()
	lags := measurePropagation(b, api, check, b.N)
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lags[len(lags)/2]), "p50-ms")
	b.ReportMetric(ms(lags[len(lags)*99/100]), "p99-ms")
	b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
}

// TestOutage cuts keygate off its database: cached keys keep deciding, a key
// revoked during the outage is denied once the database is back, and no
// goroutines are left behind.
func TestOutage(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t, "--degraded-after", "500ms")
	waitReady(t, srv)
	secrets := seed(t, env.client(t, srv))
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	keep := checkReq("GET", "/email/inbox", secrets["svc"], nil)
	revoke := checkReq("GET", "/email/inbox", secrets["office"], map[string]string{})
	revoke.Attributes.Source.Address.GetSocketAddress().Address = "10.1.2.3"
	waitOutcome(t, authz, keep, 200, 10*time.Second)
	waitOutcome(t, authz, revoke, 200, 10*time.Second)
	before := goroutines(t, srv)

	// Two connections opened before the outage: one to the server's own
	// database to switch connections off and on, one to keygate's database
	// to revoke a key while keygate cannot connect.
	admin, err := pgx.Connect(context.Background(), pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	db, err := pgx.Connect(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	dbName := pgx.Identifier{db.Config().Database}.Sanitize()
	exec := func(conn *pgx.Conn, sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// Outage: no new connections, every existing one of keygate's ended.
	exec(admin, "ALTER DATABASE "+dbName+" WITH ALLOW_CONNECTIONS false")
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "ALTER DATABASE "+dbName+" WITH ALLOW_CONNECTIONS true")
	})
	exec(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2",
		db.Config().Database, db.PgConn().PID())

	eventually(t, "/readyz to report degraded", func() bool {
		code, body := httpGet(t, "http://"+srv.adminAddr+"/readyz")
		return code == 200 && strings.Contains(body, "degraded")
	})
	allowed := 0
	for i := 0; i < 50; i++ {
		if got, _ := call(t, authz, keep); got.status == 200 {
			allowed++
		}
	}
	if allowed != 50 {
		t.Fatalf("during the outage a cached key was allowed %d/50 times", allowed)
	}
	// Revoked while keygate cannot hear about it.
	exec(db, "UPDATE keys SET active = false WHERE id = 'k-office'")
	if got, _ := call(t, authz, revoke); got.status != 200 {
		t.Logf("revoked key already denied during the outage: %+v", got)
	}

	exec(admin, "ALTER DATABASE "+dbName+" WITH ALLOW_CONNECTIONS true")
	back := time.Now()
	waitOutcome(t, authz, revoke, 401, 10*time.Second)
	t.Logf("key revoked during the outage denied %v after the database returned", time.Since(back))
	waitReady(t, srv)
	if got, _ := call(t, authz, keep); got.status != 200 {
		t.Fatalf("after recovery: %+v", got)
	}
	eventually(t, "goroutines to settle", func() bool { return goroutines(t, srv) <= before+3 })
}

var goroutineLine = regexp.MustCompile(`(?m)^go_goroutines (\d+)`)

// goroutines reads keygate's goroutine count from its /metrics.
func goroutines(t testing.TB, s *server) int {
	t.Helper()
	_, body := httpGet(t, "http://"+s.adminAddr+"/metrics")
	m := goroutineLine.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no go_goroutines in /metrics")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestNoSecretAtRest runs a whole key life (generate, use, rotate, delete)
// and then scans every table and the logs for the secrets.
func TestNoSecretAtRest(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	api := env.client(t, srv)
	secrets := seed(t, api)
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", secrets["svc"], nil), 200, 10*time.Second)
	rot, err := api.RegenerateKey(api.ctx(t), &accountv1.RegenerateKeyRequest{Id: "k-svc", GracePeriod: durationpb.New(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	secrets["rotated"] = rot.GetPrivateKey()
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", rot.GetPrivateKey(), nil), 200, 10*time.Second)
	// Both secrets work during the grace period.
	if got, _ := call(t, authz, checkReq("GET", "/email/inbox", secrets["svc"], nil)); got.status != 200 {
		t.Fatalf("old secret during grace: %+v", got)
	}
	if _, err := api.DeleteKey(api.ctx(t), &accountv1.DeleteKeyRequest{Id: "k-svc"}); err != nil {
		t.Fatal(err)
	}
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", rot.GetPrivateKey(), nil), 401, 10*time.Second)
	secrets["account"] = env.accountKey

	conn, err := pgx.Connect(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var dump strings.Builder
	for _, table := range tables {
		rows, err := conn.Query(context.Background(), fmt.Sprintf("SELECT row_to_json(t)::text FROM %s t", pgx.Identifier{table}.Sanitize()))
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		dump.WriteString(strings.Join(lines, "\n"))
	}
	if !strings.Contains(dump.String(), "key.regenerate") && !strings.Contains(dump.String(), "regenerate") {
		t.Logf("audit dump:\n%s", dump.String())
	}
	logs := srv.Logs()
	for name, s := range secrets {
		if strings.Contains(dump.String(), s) {
			t.Errorf("secret of %s found in the database", name)
		}
		if strings.Contains(logs, s) {
			t.Errorf("secret of %s found in the logs", name)
		}
	}
	if strings.Contains(logs, "sha256:") {
		t.Error("a key hash appears in the logs")
	}
}

// TestCLIEndToEnd manages an app, a tenant and a key with the keygate CLI
// against a running server, and checks each step through ext_authz.
func TestCLIEndToEnd(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	// Without --pepper-file, database mode says at start and on /readyz
	// that its hashes can be checked offline (issue 15).
	if code, body := httpGet(t, "http://"+srv.adminAddr+"/readyz"); code != 200 || !strings.Contains(body, "no --pepper-file") ||
		!strings.Contains(srv.Logs(), "no --pepper-file") {
		t.Errorf("/readyz without a pepper: %d %q", code, body)
	}
	vars := []string{"KEYGATE_ACCOUNT_ADDR=" + srv.accountAddr, "KEYGATE_ACCOUNT_KEY=" + env.accountKey}
	cli := func(args ...string) string {
		t.Helper()
		out, err := cliRunEnv(t, vars, "", args...)
		if err != nil {
			t.Fatalf("keygate %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	cli("apps", "create", "--id", "billing", "--name", "Billing")
	cli("tenants", "create", "--id", "acme", "--name", "ACME Corp")
	if out := cli("apps", "list"); !strings.Contains(out, "billing") || !strings.Contains(out, "Billing") {
		t.Fatalf("apps list:\n%s", out)
	}
	out := cli("keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme",
		"--name", "cli-key", "--id", "k-cli", "--scope", "email-api:query:*")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	if !strings.HasPrefix(secret, "kg_sak_") || strings.Count(out, secret) != 1 {
		t.Fatalf("keys generate must print the secret once, on the last line:\n%s", out)
	}
	check := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	waitOutcome(t, check, checkReq("GET", "/email/inbox", secret, nil), 200, 10*time.Second)
	if got, _ := call(t, check, checkReq("POST", "/email/send", secret, nil)); got.reason != "scope_denied" {
		t.Fatalf("mutation with a query-only scope: %+v", got)
	}

	if out := cli("keys", "list", "-o", "json"); !strings.Contains(out, `"k-cli"`) || strings.Contains(out, secret) {
		t.Fatalf("keys list -o json:\n%s", out)
	}
	cli("keys", "update", "k-cli", "--scope", "email-api")
	waitOutcome(t, check, checkReq("POST", "/email/send", secret, nil), 200, 10*time.Second)
	// explain by key id, through the Account API (rows 4-8).
	if out := cli("explain", "--key-id", "k-cli", "--routes-file", env.routesFile, "--method", "DELETE", "--path", "/email/42"); !strings.Contains(out, "decision: ALLOW") {
		t.Fatalf("explain --key-id:\n%s", out)
	}
	// explain --database-url reads a stored key, whose filters' text the
	// store drops once compiled: it must still show the filters checked.
	cli("keys", "update", "k-cli", "--ip-filter", "10.0.0.0/8")
	explained, err := cliRunEnv(t, nil, secret+"\n", "explain", "--database-url", env.url, "--routes-file", env.routesFile,
		"--path", "/email/inbox", "--client-ip", "192.0.2.7")
	if err != nil || !strings.Contains(explained, "filters 10.0.0.0/8") || !strings.Contains(explained, "FAIL ip_not_allowed") {
		t.Fatalf("explain --database-url of a key with IP filters: %v\n%s", err, explained)
	}
	cli("keys", "update", "k-cli", "--clear-ip-filters")
	cli("keys", "update", "k-cli", "--no-active")
	waitOutcome(t, check, checkReq("GET", "/email/inbox", secret, nil), 401, 10*time.Second)
	cli("keys", "update", "k-cli", "--active")
	out = cli("keys", "regenerate", "k-cli")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	fresh := lines[len(lines)-1]
	waitOutcome(t, check, checkReq("GET", "/email/inbox", fresh, nil), 200, 10*time.Second)
	waitOutcome(t, check, checkReq("GET", "/email/inbox", secret, nil), 401, 10*time.Second)
	cli("keys", "delete", "k-cli")
	waitOutcome(t, check, checkReq("GET", "/email/inbox", fresh, nil), 401, 10*time.Second)

	audit := cli("audit", "-o", "json")
	for _, action := range []string{"app.create", "tenant.create", "key.create", "key.update", "key.regenerate", "key.delete"} {
		if !strings.Contains(audit, action) {
			t.Errorf("audit lacks %s", action)
		}
	}
	for _, s := range []string{secret, fresh, env.accountKey} {
		if strings.Contains(audit, s) || strings.Contains(srv.Logs(), s) {
			t.Fatal("a secret reached the audit log or the server logs")
		}
	}
	// Without a key the CLI is refused.
	if _, err := cliRunEnv(t, []string{"KEYGATE_ACCOUNT_ADDR=" + srv.accountAddr}, "", "apps", "list"); err == nil ||
		!strings.Contains(err.Error(), "Unauthenticated") && !strings.Contains(strings.ToLower(err.Error()), "key") {
		t.Fatalf("apps list without a key: %v", err)
	}
}

// TestAccountRateLimits: one account key past its Account API budget is
// refused ResourceExhausted with retry-after, while another key of the
// same account is served (issue 15, SPEC §10).
func TestAccountRateLimits(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t, "--account-mutations-per-second", "2", "--account-reads-per-second", "1000")
	waitReady(t, srv)
	api := env.client(t, srv)
	second, err := api.GenerateAccountAccessKey(api.ctx(t), &accountv1.GenerateAccountAccessKeyRequest{Name: "second"})
	mustOK(t, "GenerateAccountAccessKey", err)
	var refused error
	var header metadata.MD
	for i := range 10 {
		_, err := api.CreateApp(api.ctx(t), &accountv1.CreateAppRequest{Id: fmt.Sprintf("app-%d", i), Name: fmt.Sprintf("App %d", i)},
			grpc.Header(&header))
		if err != nil {
			refused = err
			break
		}
	}
	if st := status.Convert(refused); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "rate_limited") {
		t.Fatalf("ten quick mutations with a limit of 2/s: %v", refused)
	}
	if ra := header.Get("retry-after"); len(ra) != 1 || ra[0] != "1" {
		t.Errorf("retry-after %q, want 1", ra)
	}
	// Reads are their own budget; another key is its own.
	if _, err := api.ListApps(api.ctx(t), &accountv1.ListAppsRequest{}); err != nil {
		t.Errorf("a read after the mutations ran out: %v", err)
	}
	other := &accountClient{AccountServiceClient: api.AccountServiceClient, key: second.GetPrivateKey()}
	eventually(t, "the new key to reach the cache", func() bool {
		_, err := other.ListApps(other.ctx(t), &accountv1.ListAppsRequest{})
		return err == nil
	})
	if _, err := other.CreateApp(other.ctx(t), &accountv1.CreateAppRequest{Id: "other-app", Name: "Other"}); err != nil {
		t.Errorf("another key's mutation: %v", err)
	}
}

// TestAccountAPIOff: a replica that only decides runs without the Account
// API (--account-listen-addr ""), so that the data plane can be deployed
// apart from it (issue 15).
func TestAccountAPIOff(t *testing.T) {
	env := newDBEnv(t)
	srv := startServe(t, []string{"authz", "admin"},
		"--database-url", env.url, "--routes-file", env.routesFile, "--account-listen-addr", "")
	waitReady(t, srv)
	c := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	// The bootstrap key is known (so the database decides) but is an
	// account key, which email-api does not accept.
	if got, _ := call(t, c, checkReq("GET", "/email/inbox", env.accountKey, nil)); got != (outcome{403, "wrong_key_type"}) {
		t.Fatalf("check with the account key: %+v", got)
	}
	logs := srv.Logs()
	if !strings.Contains(logs, "Account API off") || strings.Contains(logs, `"listener":"account"`) {
		t.Fatalf("the Account API still listens:\n%s", logs)
	}
}
