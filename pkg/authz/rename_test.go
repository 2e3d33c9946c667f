package authz_test

import (
	"testing"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
)

// TestCanonicalScope: scopes with the Account API's earlier operation
// names allow and deny after the rewrite exactly what they did before.
func TestCanonicalScope(t *testing.T) {
	for _, tc := range authz.CanonicalScopeCases {
		if got := authz.CanonicalScope(tc.In); got != tc.Want {
			t.Errorf("CanonicalScope(%q) = %q, want %q", tc.In, got, tc.Want)
		}
		if _, err := scope.Parse(authz.CanonicalScope(tc.In)); err != nil {
			t.Errorf("CanonicalScope(%q) does not parse: %v", tc.In, err)
		}
	}
	// Every old name allowed before is the new name allowed after.
	for _, r := range authz.RenamedOperations {
		for _, in := range []string{"account-api:query:" + r.Old, "*:*:" + r.Old, "account-api:*:" + r.Old[:2] + "*"} {
			sc, err := scope.Parse(authz.CanonicalScope(in))
			if err != nil {
				t.Fatal(err)
			}
			if !sc.Allows("account-api", "query", r.New) {
				t.Errorf("%q rewritten as %q does not allow %s", in, sc.String(), r.New)
			}
		}
	}
}
