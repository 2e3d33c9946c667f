package accountgraphql_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/accountgraphql"
	"github.com/keygate/keygate/pkg/accountgraphql/gqltest"
	"github.com/keygate/keygate/pkg/authz"
)

// gqlServer is the GraphQL Account API over an accounttest server's
// account service (the one its gRPC API adapts).
type gqlServer struct {
	*accounttest.Server
	URL string
}

func startGraphQL(t *testing.T, opts accountgraphql.Options) *gqlServer {
	t.Helper()
	return serveGraphQL(t, accounttest.Start(t), opts)
}

// serveGraphQL serves the GraphQL Account API over s's account service.
func serveGraphQL(t *testing.T, s *accounttest.Server, opts accountgraphql.Options) *gqlServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(s.Logs, nil))
	}
	h := httptest.NewServer(accountgraphql.NewHandler(s.Service, opts))
	t.Cleanup(h.Close)
	return &gqlServer{Server: s, URL: h.URL + "/graphql"}
}

func (s *gqlServer) post(t *testing.T, key, query string, vars map[string]any) *gqltest.Answer {
	t.Helper()
	return gqltest.Post(t, s.URL, key, query, vars)
}

func (s *gqlServer) do(t *testing.T, method, u, key, contentType string, body []byte) *gqltest.Answer {
	t.Helper()
	return gqltest.Do(t, method, u, key, contentType, body)
}

// TestSeedMutation: seed 001's generate_sak mutation with its variables
// returns the new key's secret; the answer is never cached.
func TestSeedMutation(t *testing.T) {
	s := startGraphQL(t, accountgraphql.Options{})
	r := s.post(t, s.RootKey, `mutation { createApp(input: {id: "billing", name: "Billing"}) { app { id } changeNumber }
		createTenant(input: {id: "acme", name: "Acme"}) { tenant { id } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("setup: %+v\n%s", r.Errors, s.Logs.String())
	}
	r = s.post(t, s.RootKey, gqltest.SeedGenerateSAK, map[string]any{"appId": "billing", "tenantId": "acme", "description": "", "scope": ""})
	if len(r.Errors) > 0 || r.Status != http.StatusOK {
		t.Fatalf("seed mutation: %d %+v", r.Status, r.Errors)
	}
	var got struct{ PrivateKey string }
	if err := json.Unmarshal(r.Data["generateServiceAccessKey"], &got); err != nil || !strings.HasPrefix(got.PrivateKey, "kg_sak_") {
		t.Fatalf("privateKey %q, %v", got.PrivateKey, err)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
}

// TestFieldByField: each root field is authorised on its own — a refused
// field is null with PERMISSION_DENIED and its path, the allowed one is
// answered; introspection needs a valid key and no scope.
func TestFieldByField(t *testing.T) {
	s := startGraphQL(t, accountgraphql.Options{})
	appsOnly := s.AddKey(t, authz.KeySpec{ID: "apps-only", Name: "apps-only", Type: authz.KeyTypeAccount, AccountID: s.AccountID,
		Active: true, Scope: "account-api:query:apps"})
	r := s.post(t, appsOnly, `{ apps { nodes { id } } tenants { nodes { id } } __typename }`, nil)
	if r.Status != http.StatusOK || len(r.Errors) != 1 || r.Code(0) != "PERMISSION_DENIED" || len(r.Errors[0].Path) != 1 || r.Errors[0].Path[0] != "tenants" {
		t.Fatalf("mixed document: %d %+v", r.Status, r.Errors)
	}
	if string(r.Data["tenants"]) != "null" || !strings.Contains(string(r.Data["apps"]), "nodes") || string(r.Data["__typename"]) != `"Query"` {
		t.Errorf("data %s", mustJSON(r.Data))
	}
	if !strings.Contains(r.Errors[0].Message, "account-api:query:tenants") {
		t.Errorf("message %q does not name the operation", r.Errors[0].Message)
	}
	r = s.post(t, appsOnly, `mutation { createApp(input: {name: "x"}) { app { id } } }`, nil)
	if r.Code(0) != "PERMISSION_DENIED" || string(r.Data["createApp"]) != "null" {
		t.Errorf("mutation with a query-only key: %+v %s", r.Errors, mustJSON(r.Data))
	}
	r = s.post(t, appsOnly, `{ __schema { queryType { name } } }`, nil)
	if len(r.Errors) > 0 || !strings.Contains(string(r.Data["__schema"]), "Query") {
		t.Errorf("introspection with a valid key: %+v", r.Errors)
	}
	for _, key := range []string{"", "kg_aak_nope"} {
		r = s.post(t, key, `{ __schema { queryType { name } } }`, nil)
		if r.Status != http.StatusUnauthorized || r.Code(0) != "UNAUTHENTICATED" || r.Data != nil {
			t.Errorf("introspection with key %q: %d %+v", key, r.Status, r.Errors)
		}
	}
}

// TestRequestLimits: methods, content types, body size, depth and
// complexity are refused with GraphQL errors naming the limit.
func TestRequestLimits(t *testing.T) {
	s := startGraphQL(t, accountgraphql.Options{MaxBodyBytes: 2048, MaxDepth: 3, MaxComplexity: 500})
	deep := `{ keys { nodes { rateLimit { unit } } } }`
	for _, tc := range []struct {
		name        string
		method      string
		url         string
		contentType string
		body        string
		status      int
		code        string
		contains    string
	}{
		{"mutation over GET", http.MethodGet, s.URL + "?query=" + url.QueryEscape(`mutation { deleteKey(id: "root") { key { id } } }`), "", "",
			http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "POST"},
		{"PUT", http.MethodPut, s.URL, "application/json", `{"query":"{ apps { nodes { id } } }"}`, http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "GET or POST"},
		{"form body", http.MethodPost, s.URL, "application/x-www-form-urlencoded", "query=%7Bapps%7D", http.StatusUnsupportedMediaType, "INVALID_ARGUMENT", "application/json"},
		{"body too large", http.MethodPost, s.URL, "application/json", `{"query":"{ apps { nodes { id } } }", "x": "` + strings.Repeat("a", 4096) + `"}`,
			http.StatusRequestEntityTooLarge, "RESOURCE_EXHAUSTED", "2048 bytes"},
		{"too deep", http.MethodPost, s.URL, "application/json", `{"query":"` + deep + `"}`, http.StatusBadRequest, "INVALID_ARGUMENT", "deep"},
		{"duplicate JSON keys", http.MethodPost, s.URL, "application/json", `{"query":"{ apps { nodes { id } } }","query":"mutation { deleteKey(id: \"root\") { key { id } } }"}`,
			http.StatusBadRequest, "INVALID_ARGUMENT", "query"},
		{"not GraphQL", http.MethodPost, s.URL, "application/json", `{"query":"{ apps "}`, http.StatusBadRequest, "INVALID_ARGUMENT", ""},
		{"too complex", http.MethodPost, s.URL, "application/json", `{"query":"{ a: apps(first: 1000) { nodes { id name } } }"}`, http.StatusOK, "RESOURCE_EXHAUSTED", "complexity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, tc.method, tc.url, s.RootKey, tc.contentType, []byte(tc.body))
			if r.Status != tc.status || r.Code(0) != tc.code || !strings.Contains(r.Errors[0].Message, tc.contains) {
				t.Errorf("%d %+v; want %d %s with %q", r.Status, r.Errors, tc.status, tc.code, tc.contains)
			}
		})
	}
	r := s.do(t, http.MethodGet, s.URL+"?query="+url.QueryEscape(`{ apps { nodes { id } } }`), s.RootKey, "", nil)
	if r.Status != http.StatusOK || len(r.Errors) > 0 {
		t.Errorf("query over GET: %d %+v", r.Status, r.Errors)
	}
}

// TestErrors: the service's errors carry extensions.code (gRPC's code
// names) and the field at fault as the schema names it; a secret given in
// importKey never comes back in an error.
func TestErrors(t *testing.T) {
	s := startGraphQL(t, accountgraphql.Options{})
	r := s.post(t, s.RootKey, `{ app(id: "nope") { id } }`, nil)
	if r.Code(0) != "NOT_FOUND" {
		t.Errorf("missing app: %+v", r.Errors)
	}
	r = s.post(t, s.RootKey, `mutation { generateServiceAccessKey(input: {appId: "", tenantId: "t"}) { privateKey } }`, nil)
	if r.Code(0) != "INVALID_ARGUMENT" || r.Errors[0].Extensions["field"] != "appId" || !strings.HasPrefix(r.Errors[0].Message, "appId: ") {
		t.Errorf("empty appId: %+v", r.Errors)
	}
	const secret = "my-very-own-secret-value-1234567890"
	r = s.post(t, s.RootKey, `mutation($k: String!) { importKey(input: {type: ACCOUNT, privateKey: $k}) { key { id } } }`, map[string]any{"k": secret})
	if r.Code(0) != "INVALID_ARGUMENT" || strings.Contains(mustJSON(r), secret) {
		t.Errorf("import of an account key: %s", mustJSON(r))
	}
	// Written where a value of another type belongs, the secret is not
	// quoted back by GraphQL's validation either.
	for _, q := range []string{
		`mutation { importKey(input: {type: APP, appId: "x", privateKey: ` + "my_very_own_secret_value_1234567890" + `}) { key { id } } }`,
		`mutation { importKey(input: {type: APP, appId: "x", privateKey: ["` + secret + `"]}) { key { id } } }`,
		`mutation { importKey(input: {type: ` + "my_very_own_secret_value_1234567890" + `, appId: "x", privateKey: "a"}) { key { id } } }`,
	} {
		r = s.post(t, s.RootKey, q, nil)
		if r.Code(0) != "INVALID_ARGUMENT" || strings.Contains(mustJSON(r), "my_very_own_secret") || strings.Contains(mustJSON(r), secret) {
			t.Errorf("%s: %s", q, mustJSON(r))
		}
	}
	r = s.post(t, s.RootKey, `mutation($t: KeyType!) { importKey(input: {type: $t, appId: "x", privateKey: "a"}) { key { id } } }`,
		map[string]any{"t": secret})
	if r.Code(0) != "INVALID_ARGUMENT" || strings.Contains(mustJSON(r), secret) {
		t.Errorf("enum variable: %s", mustJSON(r))
	}
	if strings.Contains(s.Logs.String(), secret) {
		t.Error("the secret reached the log")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRateLimitPerField: each root field counts against the key's rate
// limit as one gRPC call does; a field past it is RESOURCE_EXHAUSTED and
// the answer carries Retry-After.
func TestRateLimitPerField(t *testing.T) {
	s := accounttest.Start(t)
	svc := account.NewService(s.Store, s.Engine, s.Hasher, account.Options{Compile: accounttest.CompileOptions, Now: s.Clock.Now,
		RateLimits: account.RateLimits{MutationsPerSecond: 1, ReadsPerSecond: 1}})
	h := httptest.NewServer(accountgraphql.NewHandler(svc, accountgraphql.Options{}))
	t.Cleanup(h.Close)
	// Bursts of twice the rate: two reads pass, the third (whichever:
	// query fields run concurrently) waits.
	r := gqltest.Post(t, h.URL, s.RootKey, `{ a: apps { nodes { id } } b: apps { nodes { id } } c: apps { nodes { id } } }`, nil)
	if r.Status != http.StatusOK || len(r.Errors) != 1 || r.Code(0) != "RESOURCE_EXHAUSTED" || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("%d %+v %v", r.Status, r.Errors, r.Header)
	}
	nulls := 0
	for _, f := range []string{"a", "b", "c"} {
		if string(r.Data[f]) == "null" {
			nulls++
			if r.Errors[0].Path[0] != f {
				t.Errorf("field %s is null, the error names %v", f, r.Errors[0].Path)
			}
		}
	}
	if nulls != 1 {
		t.Errorf("%d fields null, want the one refused: %s", nulls, mustJSON(r.Data))
	}
	if !strings.Contains(r.Errors[0].Message, "rate_limited") {
		t.Errorf("message %q", r.Errors[0].Message)
	}
}

// TestConnections: lists are cursor connections — each edge's cursor
// starts the next page after it, and the last one is pageInfo.endCursor.
func TestConnections(t *testing.T) {
	s := startGraphQL(t, accountgraphql.Options{})
	for _, id := range []string{"a1", "a2", "a3"} {
		s.Clock.Add(time.Second)
		if r := s.post(t, s.RootKey, `mutation($id: ID!, $name: String!) { createApp(input: {id: $id, name: $name}) { app { id } } }`, map[string]any{"id": id, "name": id}); len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
	}
	type page struct {
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
	list := func(vars map[string]any) page {
		r := s.post(t, s.RootKey, `query($first: Int, $after: String) { apps(first: $first, after: $after) {
			edges { cursor node { id } } nodes { id } pageInfo { hasNextPage endCursor } } }`, vars)
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		var p page
		r.Field(t, "apps", &p)
		return p
	}
	p := list(map[string]any{"first": 2})
	if len(p.Edges) != 2 || p.Edges[0].Node.ID != "a1" || p.Nodes[1].ID != "a2" || !p.PageInfo.HasNextPage ||
		p.PageInfo.EndCursor == nil || *p.PageInfo.EndCursor != p.Edges[1].Cursor {
		t.Fatalf("first page: %+v", p)
	}
	if p = list(map[string]any{"after": p.Edges[0].Cursor}); len(p.Nodes) != 2 || p.Nodes[0].ID != "a2" || p.Nodes[1].ID != "a3" || p.PageInfo.HasNextPage {
		t.Fatalf("after the first edge: %+v", p)
	}
}
