// Package gqltest is a small client of the GraphQL Account API for tests:
// the unit tests of pkg/accountgraphql and the integration tests against
// the real server share it.
package gqltest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// SeedGenerateSAK is seed 001's generate_sak mutation, exactly as the
// seed writes it.
const SeedGenerateSAK = `mutation generate_sak($appId: ID!, $tenantId: ID!, $active: Boolean, $description: String, $scope: Scope) {
  generateServiceAccessKey(
    input: {appId: $appId, tenantId: $tenantId, active: $active, description: $description, scope: $scope}
  ) {
    privateKey
  }
}`

// Answer is a GraphQL response and its HTTP status and headers.
type Answer struct {
	Status int                        `json:"-"`
	Header http.Header                `json:"-"`
	Data   map[string]json.RawMessage `json:"data"`
	Errors []Error                    `json:"errors"`
}

// Error is one GraphQL error.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code is the extensions.code of the i-th error, "" when there is none.
func (a *Answer) Code(i int) string {
	if i >= len(a.Errors) {
		return ""
	}
	c, _ := a.Errors[i].Extensions["code"].(string)
	return c
}

// Field decodes one root field of the data.
func (a *Answer) Field(t testing.TB, name string, dst any) {
	t.Helper()
	if err := json.Unmarshal(a.Data[name], dst); err != nil {
		t.Fatalf("%s: %v in %s", name, err, a.Data[name])
	}
}

// Post sends a document and its variables as JSON to url with key in
// x-api-key ("" sends none).
func Post(t testing.TB, url, key, query string, vars map[string]any) *Answer {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	return Do(t, http.MethodPost, url, key, "application/json", body)
}

// OK is Post that fails the test unless the answer is 200 without errors.
func OK(t testing.TB, url, key, query string, vars map[string]any) *Answer {
	t.Helper()
	a := Post(t, url, key, query, vars)
	if a.Status != http.StatusOK || len(a.Errors) > 0 {
		t.Fatalf("%s: %d %+v", query, a.Status, a.Errors)
	}
	return a
}

// Do sends one request and decodes the answer, which must be JSON.
func Do(t testing.TB, method, url, key, contentType string, body []byte) *Answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
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
	a := &Answer{Status: resp.StatusCode, Header: resp.Header}
	if err := json.Unmarshal(raw, a); err != nil {
		t.Fatalf("%s %s: %d %s: not JSON: %v", method, url, resp.StatusCode, raw, err)
	}
	return a
}
