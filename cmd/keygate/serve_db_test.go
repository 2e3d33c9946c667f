package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keygate/keygate/pkg/store/postgres"
)

// TestStartupReason: /readyz says what to do about a missing schema, and
// names an unreachable database or a failed --migrate apart from other
// failures, never quoting the error itself.
func TestStartupReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w; schema version 2, this keygate needs 4", postgres.ErrNoSchema), "run keygate migrate (or serve --migrate)"},
		{fmt.Errorf("postgres: connect: %w", &pgconn.ConnectError{}), "database unreachable"},
		{fmt.Errorf("%w: %w", errStartupMigrate, &pgconn.ConnectError{}), "database unreachable"},
		{fmt.Errorf("%w: checksum mismatch", errStartupMigrate), "--migrate failed"},
		{errors.New("postgres: load keys: secret detail"), "loading the keys from the database failed"},
	} {
		got := startupReason(tc.err)
		if !strings.Contains(got, tc.want) || strings.Contains(got, "secret detail") {
			t.Errorf("startupReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
