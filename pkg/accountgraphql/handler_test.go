package accountgraphql_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/accountgraphql"
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
	s := accounttest.Start(t)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(s.Logs, nil))
	}
	h := httptest.NewServer(accountgraphql.NewHandler(s.Service, opts))
	t.Cleanup(h.Close)
	return &gqlServer{Server: s, URL: h.URL + "/graphql"}
}

// gqlResponse is a GraphQL answer.
type gqlResponse struct {
	status int
	header http.Header
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (r *gqlResponse) code(i int) string {
	if i >= len(r.Errors) {
		return ""
	}
	c, _ := r.Errors[i].Extensions["code"].(string)
	return c
}

func (s *gqlServer) post(t *testing.T, key, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	return s.do(t, http.MethodPost, s.URL, key, "application/json", body)
}

func (s *gqlServer) do(t *testing.T, method, u, key, contentType string, body []byte) *gqlResponse {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
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
	out := &gqlResponse{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s %s: %d %s: not JSON: %v", method, u, resp.StatusCode, raw, err)
	}
	return out
}

// seedMutation is seed 001's mutation, exactly as written there.
const seedMutation = `mutation generate_sak($appId: ID!, $tenantId: ID!, $active: Boolean, $description: String, $scope: Scope) {
  generateServiceAccessKey(
    input: {appId: $appId, tenantId: $tenantId, active: $active, description: $description, scope: $scope}
  ) {
    privateKey
  }
}`

// TestSeedMutation: seed 001's generate_sak mutation with its variables
// returns the new key's secret; the answer is never cached.
func TestSeedMutation(t *testing.T) {
	s := startGraphQL(t, accountgraphql.Options{})
	r := s.post(t, s.RootKey, `mutation { createApp(input: {id: "billing", name: "Billing"}) { app { id } changeNumber }
		createTenant(input: {id: "acme", name: "Acme"}) { tenant { id } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("setup: %+v\n%s", r.Errors, s.Logs.String())
	}
	r = s.post(t, s.RootKey, seedMutation, map[string]any{"appId": "billing", "tenantId": "acme", "description": "", "scope": ""})
	if len(r.Errors) > 0 || r.status != http.StatusOK {
		t.Fatalf("seed mutation: %d %+v", r.status, r.Errors)
	}
	var got struct{ PrivateKey string }
	if err := json.Unmarshal(r.Data["generateServiceAccessKey"], &got); err != nil || !strings.HasPrefix(got.PrivateKey, "kg_sak_") {
		t.Fatalf("privateKey %q, %v", got.PrivateKey, err)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
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
	if r.status != http.StatusOK || len(r.Errors) != 1 || r.code(0) != "PERMISSION_DENIED" || len(r.Errors[0].Path) != 1 || r.Errors[0].Path[0] != "tenants" {
		t.Fatalf("mixed document: %d %+v", r.status, r.Errors)
	}
	if string(r.Data["tenants"]) != "null" || !strings.Contains(string(r.Data["apps"]), "nodes") || string(r.Data["__typename"]) != `"Query"` {
		t.Errorf("data %s", mustJSON(r.Data))
	}
	if !strings.Contains(r.Errors[0].Message, "account-api:query:tenants") {
		t.Errorf("message %q does not name the operation", r.Errors[0].Message)
	}
	r = s.post(t, appsOnly, `mutation { createApp(input: {name: "x"}) { app { id } } }`, nil)
	if r.code(0) != "PERMISSION_DENIED" || string(r.Data["createApp"]) != "null" {
		t.Errorf("mutation with a query-only key: %+v %s", r.Errors, mustJSON(r.Data))
	}
	r = s.post(t, appsOnly, `{ __schema { queryType { name } } }`, nil)
	if len(r.Errors) > 0 || !strings.Contains(string(r.Data["__schema"]), "Query") {
		t.Errorf("introspection with a valid key: %+v", r.Errors)
	}
	for _, key := range []string{"", "kg_aak_nope"} {
		r = s.post(t, key, `{ __schema { queryType { name } } }`, nil)
		if r.status != http.StatusUnauthorized || r.code(0) != "UNAUTHENTICATED" || r.Data != nil {
			t.Errorf("introspection with key %q: %d %+v", key, r.status, r.Errors)
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
			if r.status != tc.status || r.code(0) != tc.code || !strings.Contains(r.Errors[0].Message, tc.contains) {
				t.Errorf("%d %+v; want %d %s with %q", r.status, r.Errors, tc.status, tc.code, tc.contains)
			}
		})
	}
	r := s.do(t, http.MethodGet, s.URL+"?query="+url.QueryEscape(`{ apps { nodes { id } } }`), s.RootKey, "", nil)
	if r.status != http.StatusOK || len(r.Errors) > 0 {
		t.Errorf("query over GET: %d %+v", r.status, r.Errors)
	}
}

// TestErrors: the service's errors carry extensions.code (gRPC's code
// names) and the field at fault as the schema names it; a secret given in
// importKey never comes back in an error.
func TestErrors(t *testing.T) {
	s := startGraphQL(t, accountgraphql.Options{})
	r := s.post(t, s.RootKey, `{ app(id: "nope") { id } }`, nil)
	if r.code(0) != "NOT_FOUND" {
		t.Errorf("missing app: %+v", r.Errors)
	}
	r = s.post(t, s.RootKey, `mutation { generateServiceAccessKey(input: {appId: "", tenantId: "t"}) { privateKey } }`, nil)
	if r.code(0) != "INVALID_ARGUMENT" || r.Errors[0].Extensions["field"] != "appId" || !strings.HasPrefix(r.Errors[0].Message, "appId: ") {
		t.Errorf("empty appId: %+v", r.Errors)
	}
	const secret = "my-very-own-secret-value-1234567890"
	r = s.post(t, s.RootKey, `mutation($k: String!) { importKey(input: {type: ACCOUNT, privateKey: $k}) { key { id } } }`, map[string]any{"k": secret})
	if r.code(0) != "INVALID_ARGUMENT" || strings.Contains(mustJSON(r), secret) {
		t.Errorf("import of an account key: %s", mustJSON(r))
	}
	if strings.Contains(s.Logs.String(), secret) {
		t.Error("the secret reached the log")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
