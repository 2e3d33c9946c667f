package accounttest_test

import (
	"testing"

	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/storetest"
)

// TestContract holds the fake to what PostgreSQL does: the same suite runs
// against PostgreSQL in pkg/store/postgres.
func TestContract(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T) store.Accounts {
		s := accounttest.NewStore(t, storetest.CompileOptions, storetest.NewClock(accounttest.T0).Now)
		s.RefuseInvalidKeys()
		return s
	})
}
