package accountgraphql_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/accountgraphql"
)

// FuzzHandler: whatever a client sends to /graphql, the handler answers
// (no panic) with a JSON body in GraphQL's shape and a status of the set
// it uses, and never shows a key's secret outside privateKey.
func FuzzHandler(f *testing.F) {
	s := accounttest.Start(f)
	h := accountgraphql.NewHandler(s.Service, accountgraphql.Options{MaxBodyBytes: 8192, MaxDepth: 6, MaxComplexity: 2000})
	for _, seed := range []string{
		`{"query":"{ apps { nodes { id } } }"}`,
		`{"query":"mutation { createApp(input: {name: \"x\"}) { app { id } } }"}`,
		`{"query":"{ keys(filter: {type: ACCOUNT}) { nodes { id scope } pageInfo { endCursor } } }"}`,
		`{"query":"mutation($s: Scope) { generateAccountAccessKey(input: {scope: $s}) { privateKey publicKey } }","variables":{"s":"account-api:query:*"}}`,
		`{"query":"{ __schema { types { name } } }"}`,
		`{"query":"query a { apps { nodes { id } } } query b { tenants { nodes { id } } }","operationName":"b"}`,
		`{"query":"{ app(id: 1) { id } }"}`,
		`[{"query":"{ apps { nodes { id } } }"}]`,
		`{"query":"fragment f on Query { apps { nodes { id } } } { ...f }"}`,
		`{"query":"{ apps`, ``, `null`,
	} {
		f.Add(http.MethodPost, seed)
	}
	f.Add(http.MethodGet, "query=%7B%20apps%20%7B%20nodes%20%7B%20id%20%7D%20%7D%20%7D")
	f.Add(http.MethodGet, "query=mutation%7BdeleteKey(id%3A%22root%22)%7Bkey%7Bid%7D%7D%7D")
	statuses := map[int]bool{200: true, 400: true, 401: true, 403: true, 405: true, 413: true, 415: true, 422: true, 429: true, 503: true}
	f.Fuzz(func(t *testing.T, method, body string) {
		var req *http.Request
		if method == http.MethodGet {
			req = httptest.NewRequest(http.MethodGet, "/graphql", nil)
			req.URL.RawQuery = body
		} else {
			req = httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("x-api-key", s.RootKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !statuses[rec.Code] {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		var out struct {
			Data   map[string]any   `json:"data"`
			Errors []map[string]any `json:"errors"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer is not JSON (%v): %q", err, rec.Body.String())
		}
		for _, e := range out.Errors {
			ext, _ := e["extensions"].(map[string]any)
			if code, _ := ext["code"].(string); code == "" {
				t.Fatalf("error without extensions.code: %v", e)
			}
		}
		// The root key's secret is the one every request carries: no
		// answer may echo it.
		if bytes.Contains(rec.Body.Bytes(), []byte(s.RootKey)) {
			t.Fatalf("the caller's secret is in the answer to %q", body)
		}
	})
}
