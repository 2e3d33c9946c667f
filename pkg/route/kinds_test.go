package route

import (
	"reflect"

	"github.com/keygate/keygate/pkg/authz"
	"slices"
	"testing"
)

// TestKinds: the kinds a service's routes name, for the Account API's
// scope warnings.
func TestKinds(t *testing.T) {
	tb := mustParse(t, `services:
  - name: email-api
    key_types: [service]
    routes:
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {path: /email/send, methods: [POST], kind: mutation, operation: sendEmail}
      - {path: /email/other, methods: [PUT], kind: query, operation: other}
  - name: gql-api
    key_types: [service]
    routes:
      - {path: /graphql, protocol: graphql}
  - name: users-api
    key_types: [app]
    grpc_services: [users.v1.UserService]
  - name: open-api
    key_types: [app]
    routes:
      - {path_prefix: /open}
  - name: bare-api
    key_types: [app]
`)
	for _, tc := range []struct {
		service  string
		kinds    []string
		anyKind  bool
		declared bool
	}{
		{"email-api", []string{"query", "mutation"}, false, true},
		{"gql-api", []string{"query", "mutation", "subscription"}, false, true},
		{"users-api", []string{"grpc"}, false, true},
		{"open-api", nil, true, true},
		{"bare-api", nil, false, true},
		{"nope-api", nil, false, false},
	} {
		kinds, anyKind, declared := tb.Kinds(tc.service)
		if !slices.Equal(kinds, tc.kinds) || anyKind != tc.anyKind || declared != tc.declared {
			t.Errorf("Kinds(%s) = %v, %v, %v; want %v, %v, %v", tc.service, kinds, anyKind, declared, tc.kinds, tc.anyKind, tc.declared)
		}
	}
	r := NewRouter(tb)
	if _, _, declared := r.Kinds("email-api"); !declared {
		t.Error("Router.Kinds: email-api not declared")
	}
	if _, _, declared := NewRouter(nil).Kinds("email-api"); declared {
		t.Error("a router without a table declares email-api")
	}
}

// TestServiceCatalog: the route catalogue a scope editor's picker reads — each
// service's key types, kinds and the operations its routes name, with the
// kinds and operations the file leaves open marked.
func TestServiceCatalog(t *testing.T) {
	tb := mustParse(t, `services:
  - name: email-api
    key_types: [service, app]
    accounts: [acc-1]
    routes:
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
      - {path: /email/send, methods: [POST], kind: mutation, operation: sendEmail}
      - {path: /email/other, methods: [PUT], kind: query, operation: listEmails}
      - {path: /email/any, methods: [PATCH], kind: mutation}
  - name: gql-api
    key_types: [service]
    routes:
      - {path: /graphql, protocol: graphql}
  - name: users-api
    key_types: [app]
    grpc_services: [users.v1.UserService]
  - name: open-api
    key_types: [app]
    routes:
      - {path_prefix: /open}
`)
	got := NewRouter(tb).Services()
	svcApp := authz.KeyTypes(0).With(authz.KeyTypeService).With(authz.KeyTypeApp)
	want := []ServiceInfo{
		{Name: "email-api", Accepts: svcApp, Accounts: []string{"acc-1"}, Kinds: []KindInfo{
			{Name: "query", Operations: []string{"listEmails"}},
			{Name: "mutation", Operations: []string{"sendEmail"}, AnyOperation: true}}},
		{Name: "gql-api", Accepts: authz.KeyTypes(0).With(authz.KeyTypeService), Kinds: []KindInfo{
			{Name: "query", AnyOperation: true}, {Name: "mutation", AnyOperation: true}, {Name: "subscription", AnyOperation: true}}},
		{Name: "users-api", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp), Kinds: []KindInfo{{Name: "grpc", AnyOperation: true}}},
		{Name: "open-api", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp), AnyKind: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Services() =\n%+v\nwant\n%+v", got, want)
	}
	// The caller's copy: changing it leaves the table as it was.
	got[0].Kinds[0].Operations[0] = "changed"
	got[0].Accounts[0] = "changed"
	if again := tb.Services(); again[0].Kinds[0].Operations[0] != "listEmails" || again[0].Accounts[0] != "acc-1" {
		t.Error("Services shares its slices with the table")
	}
	if NewRouter(nil).Services() != nil {
		t.Error("a router without a table lists services")
	}
}
