package postgres_test

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
)

// A store whose database cannot be reached answers every Account API call
// with store.ErrUnavailable, which the account service turns into
// Unavailable store_unavailable (issue 17, defect 2).
func TestUnreachableIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	pool, err := pgxpool.New(t.Context(), "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := postgres.New(t.Context(), pool, postgres.Options{})
	actor := store.Actor{KeyID: "k"}
	for name, call := range map[string]func() error{
		"GetApp": func() error { _, err := s.GetApp(t.Context(), "acct", "app"); return err },
		"ListApps": func() error {
			_, _, err := s.ListApps(t.Context(), "acct", store.Page{})
			return err
		},
		"CreateTenant": func() error {
			_, err := s.CreateTenant(t.Context(), actor, store.Tenant{AccountID: "acct", Name: "T"})
			return err
		},
		"DeleteApp": func() error { return s.DeleteApp(t.Context(), actor, "acct", "app", true) },
		"ListAuditEvents": func() error {
			_, _, err := s.ListAuditEvents(t.Context(), "acct", store.AuditFilter{}, store.Page{})
			return err
		},
	} {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: %v, want store.ErrUnavailable", name, err)
		}
	}
}

func TestConnectionFailures(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "08006"}, true}, // connection_failure
		{&pgconn.PgError{Code: "57P01"}, true}, // admin_shutdown
		{&pgconn.PgError{Code: "53300"}, true}, // too_many_connections
		{fmt.Errorf("read: %w", &net.OpError{Op: "read", Err: errors.New("reset")}), true},
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined_table: not an outage
		{errors.New("postgres: something else"), false},
	} {
		if got := errors.Is(postgres.Unavailable(tc.err), store.ErrUnavailable); got != tc.want {
			t.Errorf("%v: unavailable %v, want %v", tc.err, got, tc.want)
		}
	}
}
