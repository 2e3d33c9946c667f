package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
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

// gqlAnswer is a GraphQL response.
type gqlAnswer struct {
	status int
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (a *gqlAnswer) code(i int) string {
	if i >= len(a.Errors) {
		return ""
	}
	c, _ := a.Errors[i].Extensions["code"].(string)
	return c
}

// field decodes one root field of the answer's data.
func (a *gqlAnswer) field(t testing.TB, name string, dst any) {
	t.Helper()
	if err := json.Unmarshal(a.Data[name], dst); err != nil {
		t.Fatalf("%s: %v in %s", name, err, a.Data[name])
	}
}

// gqlPost sends a GraphQL document as JSON with key in x-api-key.
func gqlPost(t testing.TB, srv *server, key, query string, vars map[string]any) *gqlAnswer {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	return gqlDo(t, srv, key, body)
}

func gqlDo(t testing.TB, srv *server, key string, body []byte) *gqlAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+srv.consoleAddr+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := &gqlAnswer{status: resp.StatusCode}
	if err := json.Unmarshal(raw, a); err != nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, raw, err)
	}
	return a
}

func gqlOK(t testing.TB, srv *server, key, query string, vars map[string]any) *gqlAnswer {
	t.Helper()
	a := gqlPost(t, srv, key, query, vars)
	if a.status != http.StatusOK || len(a.Errors) > 0 {
		t.Fatalf("%s: %d %+v", query, a.status, a.Errors)
	}
	return a
}

// seedGenerateSAK is seed 001's mutation, exactly as written there.
const seedGenerateSAK = `mutation generate_sak($appId: ID!, $tenantId: ID!, $active: Boolean, $description: String, $scope: Scope) {
  generateServiceAccessKey(
    input: {appId: $appId, tenantId: $tenantId, active: $active, description: $description, scope: $scope}
  ) {
    privateKey
  }
}`

// TestGraphQLAccountAPI runs, against the real server and PostgreSQL,
// seed 001's generate_sak mutation with its variables (Check then accepts
// the privateKey it returns) and every query and mutation of the schema
// once; the root fields run are every operation of the catalogue.
func TestGraphQLAccountAPI(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serveGraphQL(t)
	key := env.accountKey
	ran := map[string]bool{}
	run := func(query string, vars map[string]any) *gqlAnswer {
		t.Helper()
		a := gqlOK(t, srv, key, query, vars)
		for f := range a.Data {
			ran[f] = true
		}
		return a
	}

	run(`mutation { createApp(input: {id: "billing", name: "Billing"}) { app { id } changeNumber } }`, nil)
	run(`mutation { createTenant(input: {id: "acme", name: "ACME Corp"}) { tenant { id } changeNumber } }`, nil)
	a := run(seedGenerateSAK, map[string]any{"appId": "billing", "tenantId": "acme", "description": "", "scope": ""})
	var sak struct{ PrivateKey string }
	a.field(t, "generateServiceAccessKey", &sak)
	if !strings.HasPrefix(sak.PrivateKey, "kg_sak_") {
		t.Fatalf("privateKey %q", sak.PrivateKey)
	}
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", sak.PrivateKey, nil), 200, 10*time.Second)

	a = run(`mutation { generateAccountAccessKey(input: {id: "reader", name: "reader", scope: "account-api:query:*", description: "reads"}) {
		publicKey privateKey scope description } }`, nil)
	var aak struct{ PublicKey, PrivateKey, Scope, Description string }
	a.field(t, "generateAccountAccessKey", &aak)
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
	a.field(t, "regenerateKey", &regen)
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
	a.field(t, "account", &acct)
	if acct.ID != "acct-test" || len(acct.Operations) != len(account.Operations) {
		t.Errorf("account: %+v", acct)
	}
	var services []struct{ Name string }
	a.field(t, "services", &services)
	if len(services) < 2 || services[0].Name != "account-api" || services[1].Name != "email-api" {
		t.Errorf("services: %+v", services)
	}
	run(`{ apps { nodes { id } pageInfo { hasNextPage endCursor } } app(id: "billing") { description } }`, nil)
	run(`{ tenants { nodes { id } } tenant(id: "acme") { description } }`, nil)
	// Keys, a page at a time: first and after, with ListKeys' filters.
	var ids []string
	after := ""
	for range 10 {
		a = run(`query($after: String) { keys(filter: {appId: "billing", type: SERVICE}, first: 1, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } }`,
			map[string]any{"after": after})
		var page struct {
			Nodes    []struct{ ID string }
			PageInfo struct {
				HasNextPage bool
				EndCursor   *string
			}
		}
		a.field(t, "keys", &page)
		for _, n := range page.Nodes {
			ids = append(ids, n.ID)
		}
		if !page.PageInfo.HasNextPage {
			break
		}
		after = *page.PageInfo.EndCursor
	}
	if len(ids) != 1 {
		t.Errorf("service keys of billing: %v, want the seed's one", ids)
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

	gqlOK(t, srv, key, `{ apps { nodes { id } } }`, nil)
	for _, doc := range []string{
		`{ app(id: "billing") { id } }`, `{ tenants { nodes { id } } }`, `{ keys { nodes { id } } }`, `{ services { name } }`,
		`{ account { id } }`, `{ auditEvents { nodes { id } } }`,
		`mutation { createApp(input: {name: "x"}) { app { id } } }`,
		`mutation { generateAccountAccessKey(input: {}) { privateKey } }`,
	} {
		if a := gqlPost(t, srv, key, doc, nil); a.code(0) != "PERMISSION_DENIED" || len(a.Errors) != 1 {
			t.Errorf("%s: %d %+v, want PERMISSION_DENIED", doc, a.status, a.Errors)
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
	if a.status != http.StatusOK || len(a.Errors) != 1 || a.code(0) != "PERMISSION_DENIED" || a.Errors[0].Path[0] != "tenants" ||
		string(a.Data["tenants"]) != "null" || !strings.Contains(string(a.Data["apps"]), `"billing"`) {
		t.Errorf("mixed document: %d %+v %s", a.status, a.Errors, a.Data)
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
	if a := gqlPost(t, srv, key, `{ tenants { nodes { id } } }`, nil); a.code(0) != "PERMISSION_DENIED" {
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
	if a := gqlDo(t, srv, key, big); a.status != http.StatusRequestEntityTooLarge || a.code(0) != "RESOURCE_EXHAUSTED" {
		t.Errorf("5 KiB body: %d %+v", a.status, a.Errors)
	}
	if a := gqlPost(t, srv, key, `{ keys { nodes { rateLimit { unit } } } }`, nil); a.status != http.StatusBadRequest || a.code(0) != "INVALID_ARGUMENT" ||
		!strings.Contains(a.Errors[0].Message, "deep") {
		t.Errorf("depth 4: %d %+v", a.status, a.Errors)
	}
	gqlOK(t, srv, key, `{ keys { nodes { id } } }`, nil)
	if a := gqlPost(t, srv, key, `{ keys(first: 1000) { nodes { id name scope } } }`, nil); a.code(0) != "RESOURCE_EXHAUSTED" {
		t.Errorf("complexity: %d %+v", a.status, a.Errors)
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

// TestConsoleListenerNeedsDatabase: with a keys file there is no Account
// API, so the console listener stays off and the log says why.
func TestConsoleListenerNeedsDatabase(t *testing.T) {
	dir := t.TempDir()
	keys, routes := dir+"/keys.yaml", dir+"/routes.yaml"
	writeFile(t, keys, keysYAML())
	writeFile(t, routes, routesYAML)
	srv := startServer(t, keys, routes)
	logs := srv.Logs()
	if !strings.Contains(logs, "the Account API needs a database") || strings.Contains(logs, `"listener":"console"`) {
		t.Fatalf("console listener with a keys file:\n%s", logs)
	}
	if !slices.Contains([]string{""}, srv.consoleAddr) {
		t.Fatalf("console listening on %s", srv.consoleAddr)
	}
}
