package account_test

import (
	"testing"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
)

// TestGenerateOperation: every key type has its creating operation, a
// mutation of the catalogue (the console and the service ask this one
// table), and an unknown type has none.
func TestGenerateOperation(t *testing.T) {
	for _, tc := range []struct {
		typ  authz.KeyType
		want string
	}{
		{authz.KeyTypeService, "generateServiceAccessKey"},
		{authz.KeyTypeApp, "generateAppAccessKey"},
		{authz.KeyTypeAccount, "generateAccountAccessKey"},
	} {
		op, ok := account.GenerateOperation(tc.typ)
		if !ok || op != tc.want {
			t.Errorf("GenerateOperation(%v) = %q, %v; want %q", tc.typ, op, ok, tc.want)
			continue
		}
		if o, ok := account.OperationNamed(op); !ok || o.Kind != "mutation" {
			t.Errorf("%s: not a mutation of the catalogue (%+v, %v)", op, o, ok)
		}
	}
	if op, ok := account.GenerateOperation(authz.KeyType(0)); ok {
		t.Errorf("GenerateOperation(unknown type) = %q, true", op)
	}
}
