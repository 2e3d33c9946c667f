package main

import (
	"errors"

	"github.com/keygate/keygate/pkg/secretfile"
)

// databaseURLFlags give the PostgreSQL URL, password included, directly or
// as a file (SPEC §16): a flag shows in process lists.
type databaseURLFlags struct {
	DatabaseURL     string `name:"database-url" env:"KEYGATE_DATABASE_URL,DATABASE_URL" help:"PostgreSQL URL. Prefer --database-url-file or the environment: a flag shows in process lists."`
	DatabaseURLFile string `name:"database-url-file" env:"KEYGATE_DATABASE_URL_FILE" help:"File holding the PostgreSQL URL (e.g. a mounted Secret); one trailing newline is dropped. Excludes --database-url."`
}

// resolve sets DatabaseURL from the file when one is given, refusing both
// forms together; "" when neither is given.
func (f *databaseURLFlags) resolve() error {
	url, err := secretfile.Source{
		Direct: "--database-url (KEYGATE_DATABASE_URL, DATABASE_URL)", File: "--database-url-file (KEYGATE_DATABASE_URL_FILE)",
		Value: f.DatabaseURL, Path: f.DatabaseURLFile,
	}.Get()
	if err != nil {
		return err
	}
	f.DatabaseURL = url
	return nil
}

// require is resolve for commands that need a database.
func (f *databaseURLFlags) require() error {
	if err := f.resolve(); err != nil {
		return err
	}
	if f.DatabaseURL == "" {
		return errors.New("no database: give --database-url-file (KEYGATE_DATABASE_URL_FILE) or --database-url (KEYGATE_DATABASE_URL, DATABASE_URL)")
	}
	return nil
}
