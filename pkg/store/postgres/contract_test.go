package postgres_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
	"github.com/keygate/keygate/pkg/store/storetest"
)

// TestContract runs the store contract suite against PostgreSQL, each
// subtest on its own database cloned from the migrated template.
func TestContract(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T) store.Accounts {
		url := pgtest.NewDatabase(t)
		pool, err := pgxpool.New(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		clock := storetest.NewClock(time.Now())
		return postgres.New(t.Context(), pool, postgres.Options{Compile: storetest.CompileOptions, Now: clock.Now})
	})
}
