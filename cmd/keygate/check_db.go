package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store/postgres"
)

// checkDatabase is check-config in database mode: every stored key is
// loaded and compiled as serve would load it (LoadAll, with serve's
// compile options), so that a key serve could only answer
// store_unavailable for is found before a replica starts. Keys that cannot
// be loaded are listed by account and id with the fields to blame and fail
// the check; response headers dropped at load are warnings (the keys work
// without them), logged by key and header name.
func (c *checkConfigCmd) checkDatabase(e *env, l *loaded) error {
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dropped := &droppedHeaders{}
	st, pool, err := openStore(e, c.DatabaseURL, postgres.Options{Compile: l.keysOpts.Compile, Logger: log, Headers: dropped}, false)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.CheckSchema(e.ctx, pool); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	keys, bad := 0, 0
	if _, err := st.LoadAll(e.ctx, func(k *authz.Key) error {
		keys++
		if why := k.Unloadable(); why != "" {
			bad++
			fmt.Fprintf(e.stderr, "database: account %q: key %q: cannot be loaded (serve answers store_unavailable for it): %s\n",
				k.Spec.AccountID, k.Spec.ID, why)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if dropped.n > 0 {
		fmt.Fprintf(e.stderr, "warning: database: %d stored response headers break the response header rules and are dropped at load; the keys work without them\n", dropped.n)
	}
	if bad > 0 {
		return fmt.Errorf("configuration is invalid: %d of %d stored keys cannot be loaded: correct the fields named above (keygate keys update) or delete those keys", bad, keys)
	}
	c.printSummary(e, l, "database", strconv.Itoa(keys)+" keys")
	return nil
}

// droppedHeaders counts the response headers stored keys lose at load
// (postgres.HeaderObserver). LoadAll calls it from one goroutine.
type droppedHeaders struct{ n int }

func (d *droppedHeaders) ObserveDroppedResponseHeaders(n int) { d.n += n }

var _ postgres.HeaderObserver = (*droppedHeaders)(nil)

// errBothKeySources and errNoKeySource are check-config's words for the
// two ways of naming the keys wrongly; serve's are alike.
var (
	errBothKeySources = errors.New("--keys-file and --database-url(-file) exclude each other: check the keys of one source")
	errNoKeySource    = errors.New("no keys to check: give --keys-file (KEYGATE_KEYS_FILE), --database-url-file (KEYGATE_DATABASE_URL_FILE) or --database-url (DATABASE_URL)")
)
