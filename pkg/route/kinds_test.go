package route

import (
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
