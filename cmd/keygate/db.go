package main

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/store/postgres"
)

type migrateCmd struct {
	databaseURLFlags
}

// Run applies the embedded schema migrations; running it again is a no-op.
func (c *migrateCmd) Run(e *env) error {
	if err := c.require(); err != nil {
		return err
	}
	_, pool, err := openStore(e, c.DatabaseURL, postgres.Options{}, true)
	if err != nil {
		return err
	}
	pool.Close()
	fmt.Fprintln(e.stdout, "migrations applied")
	return nil
}

type bootstrapCmd struct {
	databaseURLFlags
	Account string `name:"account" required:"" help:"Account to create (its id and name)."`
	KeyName string `name:"key-name" default:"bootstrap" help:"Name of the first account key."`
	Migrate bool   `name:"migrate" default:"true" negatable:"" help:"Apply the schema migrations first."`
	hashFlags
}

var accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Run creates the account and its first account key directly in the
// database, and prints that key's secret alone on the last line of stdout:
// the one way in before any account key exists.
func (c *bootstrapCmd) Run(e *env) error {
	if !accountIDPattern.MatchString(c.Account) {
		return errors.New("account: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if err := c.require(); err != nil {
		return err
	}
	h, err := c.hasher()
	if err != nil {
		return err
	}
	st, pool, err := openStore(e, c.DatabaseURL, postgres.Options{}, c.Migrate)
	if err != nil {
		return err
	}
	defer pool.Close()
	secret, err := apikey.Generate(apikey.KindAccount)
	if err != nil {
		return err
	}
	id, err := st.Bootstrap(e.ctx, c.Account, c.Account, c.KeyName, h.HashString(secret))
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	fmt.Fprintf(e.stdout, "account %s: account key %s (%s) with scope account-api; its secret, shown once:\n%s\n", c.Account, c.KeyName, id, secret)
	return nil
}

// openStore opens the store of an operator's command and, with
// migrate, applies the schema migrations first. The caller closes the
// pool.
func openStore(e *env, url string, opts postgres.Options, migrate bool) (*postgres.Store, *pgxpool.Pool, error) {
	st, pool, err := postgres.Open(e.ctx, url, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("database: %w", err)
	}
	if migrate {
		if err := postgres.Migrate(e.ctx, pool); err != nil {
			pool.Close()
			return nil, nil, fmt.Errorf("migrate: %w", err)
		}
	}
	return st, pool, nil
}
