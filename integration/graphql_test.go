package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountgraphql/gqltest"
)

// serveGraphQL starts a replica on the database and waits for the console
// listener too (/graphql).
func (e *dbEnv) serveGraphQL(t testing.TB, extra ...string) *server {
	t.Helper()
	srv := startServe(t, []string{"authz", "admin", "account", "console"},
		append([]string{"--database-url", e.url, "--routes-file", e.routesFile}, extra...)...)
	waitReady(t, srv)
	return srv
}

func gqlURL(srv *server) string { return "http://" + srv.consoleAddr + "/graphql" }

func gqlPost(t testing.TB, srv *server, key, query string, vars map[string]any) *gqltest.Answer {
	t.Helper()
	return gqltest.Post(t, gqlURL(srv), key, query, vars)
}

func gqlOK(t testing.TB, srv *server, key, query string, vars map[string]any) *gqltest.Answer {
	t.Helper()
	return gqltest.OK(t, gqlURL(srv), key, query, vars)
}

// TestGraphQLAccountAPI runs, against the real server and PostgreSQL,
// seed 001's generate_sak mutation with its variables (Check then accepts
// the privateKey it returns) and every query and mutation of the schema
// once; the root fields run are every operation of the catalogue.
func TestGraphQLAccountAPI(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serveGraphQL(t)
	key := env.accountKey
	ran := map[string]bool{}
	run := func(query string, vars map[string]any) *gqltest.Answer {
		t.Helper()
		a := gqlOK(t, srv, key, query, vars)
		for f := range a.Data {
			ran[f] = true
		}
		return a
	}

	run(`mutation { createApp(input: {id: "billing", name: "Billing"}) { app { id } changeNumber } }`, nil)
	run(`mutation { createTenant(input: {id: "acme", name: "ACME Corp"}) { tenant { id } changeNumber } }`, nil)
	a := run(gqltest.SeedGenerateSAK, map[string]any{"appId": "billing", "tenantId": "acme", "description": "", "scope": ""})
	var sak struct{ PrivateKey string }
	a.Field(t, "generateServiceAccessKey", &sak)
	if !strings.HasPrefix(sak.PrivateKey, "kg_sak_") {
		t.Fatalf("privateKey %q", sak.PrivateKey)
	}
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", sak.PrivateKey, nil), 200, 10*time.Second)

	a = run(`mutation { generateAccountAccessKey(input: {id: "reader", name: "reader", scope: "account-api:query:*", description: "reads"}) {
		publicKey privateKey scope description } }`, nil)
	var aak struct{ PublicKey, PrivateKey, Scope, Description string }
	a.Field(t, "generateAccountAccessKey", &aak)
	if aak.PublicKey != "reader" || !strings.HasPrefix(aak.PrivateKey, "kg_aak_") || aak.Scope != "account-api:query:*" || aak.Description != "reads" {
		t.Fatalf("generateAccountAccessKey: %+v", aak)
	}
	run(`mutation { updateApp(id: "billing", input: {description: "bills"}) { app { description } } }`, nil)
	run(`mutation { updateTenant(id: "acme", input: {description: "customer"}) { tenant { description } } }`, nil)
	run(`mutation { generateAppAccessKey(input: {id: "alsak", appId: "billing", group: "ci"}) { privateKey key { id type } } }`, nil)
	run(`mutation($k: String!) { importKey(input: {type: APP, id: "custom", appId: "billing", privateKey: $k}) { key { id origin } } }`,
		map[string]any{"k": "custom-secret-0123456789abcdef"})
	run(`mutation { updateKey(id: "alsak", input: {description: "deploys", ipFilters: ["10.0.0.0/8"], expiresAt: "2031-01-01T00:00:00Z"}) { key { ipFilters expiresAt } warnings changeNumber } }`, nil)
	a = run(`mutation { regenerateKey(id: "alsak", input: {gracePeriod: "1h"}) { privateKey key { previousSecretExpiresAt } } }`, nil)
	var regen struct{ PrivateKey string }
	a.Field(t, "regenerateKey", &regen)
	if !strings.HasPrefix(regen.PrivateKey, "kg_alsak_") {
		t.Fatalf("regenerateKey: %+v", regen)
	}
	run(`mutation { updateKeys(input: {filter: {appId: "billing"}, group: "all", dryRun: true}) { count keyIds dryRun } }`, nil)
	run(`mutation { createServiceAccessRole(input: {id: "reader-role", name: "reader", scope: "email-api:query:*"}) { role { id } } }`, nil)
	run(`mutation { updateServiceAccessRole(id: "reader-role", input: {description: "read email"}) { role { description } } }`, nil)
	run(`mutation { createServiceAccessDenial(input: {id: "unpaid", tenantId: "acme", appId: "billing", scope: "email-api:mutation:*", reason: "unpaid"}) { denial { id } } }`, nil)
	run(`mutation { updateServiceAccessDenial(id: "unpaid", input: {reason: "invoice overdue"}) { denial { reason } } }`, nil)

	a = run(`{ account { id name keyId scope operations { name kind } } services { name keyTypes kinds { name operations anyOperation } } }`, nil)
	var acct struct {
		ID         string
		Operations []struct{ Name string }
	}
	a.Field(t, "account", &acct)
	if acct.ID != "acct-test" || len(acct.Operations) != len(account.Operations) {
		t.Errorf("account: %+v", acct)
	}
	var services []struct{ Name string }
	a.Field(t, "services", &services)
	if len(services) < 2 || services[0].Name != "account-api" || services[1].Name != "email-api" {
		t.Errorf("services: %+v", services)
	}
	run(`{ apps { nodes { id } pageInfo { hasNextPage endCursor } } app(id: "billing") { description } }`, nil)
	run(`{ tenants { nodes { id } } tenant(id: "acme") { description } }`, nil)
	// Keys, a page at a time: first and after, with ListKeys' filters.
	var ids []string
	after := ""
	for range 10 {
		a = run(`query($after: String) { keys(filter: {appId: "billing"}, first: 1, after: $after) {
			edges { cursor node { id } } nodes { id } pageInfo { hasNextPage endCursor } } }`,
			map[string]any{"after": after})
		var page struct {
			Edges []struct {
				Cursor string
				Node   struct{ ID string }
			}
			Nodes    []struct{ ID string }
			PageInfo struct {
				HasNextPage bool
				EndCursor   *string
			}
		}
		a.Field(t, "keys", &page)
		for _, n := range page.Nodes {
			ids = append(ids, n.ID)
		}
		// An edge's cursor is the store's page token of its key.
		if page.PageInfo.HasNextPage && (len(page.Edges) != 1 || page.Edges[0].Cursor != *page.PageInfo.EndCursor) {
			t.Fatalf("keys page: %+v", page)
		}
		if !page.PageInfo.HasNextPage {
			break
		}
		after = *page.PageInfo.EndCursor
	}
	if len(ids) != 3 || !slices.Contains(ids, "alsak") || !slices.Contains(ids, "custom") {
		t.Errorf("keys of billing, a page at a time: %v, want the seed's, alsak and custom", ids)
	}
	run(`{ key(id: "alsak") { id group } serviceAccessRoles { nodes { id } } serviceAccessRole(id: "reader-role") { scope } }`, nil)
	run(`{ serviceAccessDenials(tenantId: "acme") { nodes { id } } serviceAccessDenial(id: "unpaid") { reason } }`, nil)
	run(`query($since: Time!) { usage(input: {since: $since, groupBy: ["outcome"]}) { granularity series { total } } replicas { head replicas { id live } }
		syncStatus(keyId: "alsak") { live synced } auditEvents(filter: {action: "key.create"}, first: 5) { nodes { action objectId } } }`,
		map[string]any{"since": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)})

	run(`mutation { deleteServiceAccessDenial(id: "unpaid") { changeNumber } deleteServiceAccessRole(id: "reader-role") { changeNumber } }`, nil)
	run(`mutation { deleteKey(id: "custom") { key { id } } }`, nil)
	run(`mutation { deleteTenant(id: "acme", cascade: true) { tenant { id } } deleteApp(id: "billing", cascade: true) { app { id } } }`, nil)
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", sak.PrivateKey, nil), 401, 10*time.Second)

	var missing []string
	for _, op := range account.Operations {
		if !ran[op.Name] {
			missing = append(missing, op.Name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("operations never run over GraphQL: %v", missing)
	}
	// Secrets only in the generate and regenerate payloads: not in the
	// server's logs.
	for _, s := range []string{sak.PrivateKey, aak.PrivateKey, regen.PrivateKey, "custom-secret-0123456789abcdef"} {
		if strings.Contains(srv.Logs(), s) {
			t.Error("a secret reached the server's log")
		}
	}
}

// TestGraphQLOneScopeBothTransports: a key scoped account-api:query:apps
// runs apps on GraphQL and ListApps on gRPC, and nothing else on either;
// a document mixing it with a refused root field gets the allowed one
// answered and PERMISSION_DENIED for the other.
func TestGraphQLOneScopeBothTransports(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serveGraphQL(t)
	api := env.client(t, srv)
	gen, err := api.GenerateAccountAccessKey(api.ctx(t), &accountv1.GenerateAccountAccessKeyRequest{Id: "apps-only", Scope: "account-api:query:apps"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateApp(api.ctx(t), &accountv1.CreateAppRequest{Id: "billing", Name: "Billing"}); err != nil {
		t.Fatal(err)
	}
	key := gen.GetPrivateKey()

	// A new key reaches the replica's cache through the change feed:
	// unknown_key until then.
	eventually(t, "the new account key to be known", func() bool {
		return gqlPost(t, srv, key, `{ apps { nodes { id } } }`, nil).Status == 200
	})
	gqlOK(t, srv, key, `{ apps { nodes { id } } }`, nil)
	for _, doc := range []string{
		`{ app(id: "billing") { id } }`, `{ tenants { nodes { id } } }`, `{ keys { nodes { id } } }`, `{ services { name } }`,
		`{ account { id } }`, `{ auditEvents { nodes { id } } }`,
		`mutation { createApp(input: {name: "x"}) { app { id } } }`,
		`mutation { generateAccountAccessKey(input: {}) { privateKey } }`,
	} {
		if a := gqlPost(t, srv, key, doc, nil); a.Code(0) != "PERMISSION_DENIED" || len(a.Errors) != 1 {
			t.Errorf("%s: %d %+v, want PERMISSION_DENIED", doc, a.Status, a.Errors)
		}
	}
	c := &accountClient{api.AccountServiceClient, key}
	if _, err := c.ListApps(c.ctx(t), &accountv1.ListAppsRequest{}); err != nil {
		t.Errorf("ListApps: %v", err)
	}
	_, err = c.GetApp(c.ctx(t), &accountv1.GetAppRequest{Id: "billing"})
	wantCode(t, "GetApp", err, codes.PermissionDenied)
	_, err = c.ListTenants(c.ctx(t), &accountv1.ListTenantsRequest{})
	wantCode(t, "ListTenants", err, codes.PermissionDenied)
	_, err = c.CreateApp(c.ctx(t), &accountv1.CreateAppRequest{Name: "x"})
	wantCode(t, "CreateApp", err, codes.PermissionDenied)
	_, err = c.ListServices(c.ctx(t), &accountv1.ListServicesRequest{})
	wantCode(t, "ListServices", err, codes.PermissionDenied)

	a := gqlPost(t, srv, key, `{ apps { nodes { id } } tenants { nodes { id } } }`, nil)
	if a.Status != http.StatusOK || len(a.Errors) != 1 || a.Code(0) != "PERMISSION_DENIED" || a.Errors[0].Path[0] != "tenants" ||
		string(a.Data["tenants"]) != "null" || !strings.Contains(string(a.Data["apps"]), `"billing"`) {
		t.Errorf("mixed document: %d %+v %s", a.Status, a.Errors, a.Data)
	}
}

// TestGraphQLEarlierNamedScope: a key whose stored scope uses an earlier
// operation name (listApps) is rewritten by migration 0011, through the
// change feed, and then runs apps on both transports.
func TestGraphQLEarlierNamedScope(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serveGraphQL(t)
	api := env.client(t, srv)
	gen, err := api.GenerateAccountAccessKey(api.ctx(t), &accountv1.GenerateAccountAccessKeyRequest{Id: "old-reader", Scope: "account-api:query:apps"})
	if err != nil {
		t.Fatal(err)
	}
	key := gen.GetPrivateKey()
	c := &accountClient{api.AccountServiceClient, key}
	conn, err := pgx.Connect(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The database as an earlier keygate left it: the scope with the
	// earlier name, migration 0011 not applied.
	for _, sql := range []string{
		`UPDATE keys SET scope = 'account-api:query:listApps' WHERE id = 'old-reader'`,
		`DELETE FROM schema_migrations WHERE version = 11`,
	} {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	eventually(t, "the earlier name stored and applied (apps refused)", func() bool {
		_, err := c.ListApps(c.ctx(t), &accountv1.ListAppsRequest{})
		return status.Code(err) == codes.PermissionDenied
	})
	if out, err := cliRun(t, "", "migrate", "--database-url", env.url); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	var scope string
	if err := conn.QueryRow(context.Background(), `SELECT scope FROM keys WHERE id = 'old-reader'`).Scan(&scope); err != nil || scope != "account-api:query:apps" {
		t.Fatalf("scope after the migration: %q, %v", scope, err)
	}
	eventually(t, "ListApps allowed after the migration", func() bool {
		_, err := c.ListApps(c.ctx(t), &accountv1.ListAppsRequest{})
		return err == nil
	})
	gqlOK(t, srv, key, `{ apps { nodes { id } } }`, nil)
	if a := gqlPost(t, srv, key, `{ tenants { nodes { id } } }`, nil); a.Code(0) != "PERMISSION_DENIED" {
		t.Errorf("tenants: %+v", a.Errors)
	}
}

// TestGraphQLLimits: the body size, depth and complexity limits of the
// real listener, and a mutation over GET.
func TestGraphQLLimits(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serveGraphQL(t, "--graphql-max-body-bytes", "4096", "--graphql-max-depth", "3", "--graphql-max-complexity", "500")
	key := env.accountKey
	big, _ := json.Marshal(map[string]any{"query": "{ apps { nodes { id } } }", "variables": map[string]any{"pad": strings.Repeat("x", 5000)}})
	if a := gqltest.Do(t, http.MethodPost, gqlURL(srv), key, "application/json", big); a.Status != http.StatusRequestEntityTooLarge || a.Code(0) != "RESOURCE_EXHAUSTED" {
		t.Errorf("5 KiB body: %d %+v", a.Status, a.Errors)
	}
	if a := gqlPost(t, srv, key, `{ keys { nodes { rateLimit { unit } } } }`, nil); a.Status != http.StatusBadRequest || a.Code(0) != "INVALID_ARGUMENT" ||
		!strings.Contains(a.Errors[0].Message, "deep") {
		t.Errorf("depth 4: %d %+v", a.Status, a.Errors)
	}
	gqlOK(t, srv, key, `{ keys { nodes { id } } }`, nil)
	if a := gqlPost(t, srv, key, `{ keys(first: 1000) { nodes { id name scope } } }`, nil); a.Code(0) != "RESOURCE_EXHAUSTED" {
		t.Errorf("complexity: %d %+v", a.Status, a.Errors)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+srv.consoleAddr+"/graphql?query=mutation%7BdeleteKey(id%3A%22x%22)%7Bkey%7Bid%7D%7D%7D", nil)
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("mutation over GET: %d", resp.StatusCode)
	}
}

// TestGraphQLDocsGoClient runs the Go client of
// docs/graphql-account-api.md against the real server: it generates a
// key with seed 001's mutation, which Check accepts.
func TestGraphQLDocsGoClient(t *testing.T) {
	doc, err := os.ReadFile("../docs/graphql-account-api.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## A Go client")
	_, rest, ok2 := strings.Cut(rest, "```go\n")
	src, _, ok3 := strings.Cut(rest, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/graphql-account-api.md has no Go block under \"## A Go client\"")
	}
	env := newDBEnv(t)
	srv := env.serveGraphQL(t)
	gqlOK(t, srv, env.accountKey, `mutation { createApp(input: {id: "billing", name: "Billing"}) { app { id } }
		createTenant(input: {id: "acme", name: "ACME Corp"}) { tenant { id } } }`, nil)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.go"), src)
	cmd := exec.Command("go", "run", filepath.Join(dir, "main.go"))
	cmd.Env = append(os.Environ(), "KEYGATE_GRAPHQL_URL="+gqlURL(srv), "KEYGATE_ACCOUNT_KEY="+env.accountKey, "GO111MODULE=on", "GOFLAGS=-buildvcs=false")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the docs' Go client: %v\n%s", err, out)
	}
	secret := strings.TrimSpace(string(out))
	if !strings.HasPrefix(secret, "kg_sak_") {
		t.Fatalf("the docs' Go client printed %q", out)
	}
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", secret, nil), 200, 10*time.Second)
}

// TestGraphQLDocsCurl runs the curl examples of
// docs/graphql-account-api.md against the real server (its address in
// place of the default one).
func TestGraphQLDocsCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl on this machine")
	}
	doc, err := os.ReadFile("../docs/graphql-account-api.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "With curl")
	_, rest, ok2 := strings.Cut(rest, "```sh\n")
	script, _, ok3 := strings.Cut(rest, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/graphql-account-api.md has no sh block after \"With curl\"")
	}
	env := newDBEnv(t)
	srv := env.serveGraphQL(t)
	gqlOK(t, srv, env.accountKey, `mutation { createApp(input: {id: "billing", name: "Billing"}) { app { id } }
		createTenant(input: {id: "acme", name: "ACME Corp"}) { tenant { id } } }`, nil)
	var lines []string
	for _, l := range strings.Split(script, "\n") {
		if !strings.HasPrefix(l, "export KEYGATE_ACCOUNT_KEY=") {
			lines = append(lines, l)
		}
	}
	script = strings.ReplaceAll(strings.Join(lines, "\n"), "127.0.0.1:9194", srv.consoleAddr)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(cleanEnv(), "KEYGATE_ACCOUNT_KEY="+env.accountKey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the docs' curl examples: %v\n%s", err, out)
	}
	for _, want := range []string{`{"data":{"apps":{"nodes":[{"id":"billing","name":"Billing"}]}`, `"privateKey":"kg_sak_`, `"keyId":"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the curl examples' output lacks %s:\n%s", want, out)
		}
	}
}
