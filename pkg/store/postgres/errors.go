package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keygate/keygate/pkg/store"
)

// ErrChangesPruned is what ChangesSince returns when changes after the
// requested sequence number have been pruned (the reader was away longer
// than the feed keeps changes, a day): it must load every key again.
var ErrChangesPruned = store.ErrFeedTruncated

// storeError is an error with its own message that matches one of the
// store's sentinels (and, for invalid keys, the authz field errors).
type storeError struct {
	msg   string
	kind  error // store.ErrNotFound, ErrAlreadyExists or ErrInvalid
	cause error // optional, e.g. the joined authz.FieldErrors
}

func (e *storeError) Error() string { return e.msg }

func (e *storeError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

func notFound(format string, args ...any) error {
	return &storeError{msg: fmt.Sprintf(format, args...), kind: store.ErrNotFound}
}

func alreadyExists(format string, args ...any) error {
	return &storeError{msg: fmt.Sprintf(format, args...), kind: store.ErrAlreadyExists}
}

func invalid(format string, args ...any) error {
	return &storeError{msg: fmt.Sprintf(format, args...), kind: store.ErrInvalid}
}

// subject is what a write was about, to name it in mapped errors.
type subject struct {
	AccountID string
	Name      string // the name being written, if any
	ID        string
	AppID     string
	TenantID  string
}

// checkFields maps each CHECK constraint to the field it guards and why.
var checkFields = map[string]string{
	"accounts_id_check":               "id: 1 to 128 characters, no spaces or control characters",
	"accounts_name_check":             "name: 1 to 256 characters, no control characters or surrounding spaces",
	"apps_id_check":                   "id: 1 to 128 characters, no spaces or control characters",
	"apps_name_check":                 "name: 1 to 256 characters, no control characters or surrounding spaces",
	"apps_description_check":          "description: at most 4096 characters",
	"tenants_id_check":                "id: 1 to 128 characters, no spaces or control characters",
	"tenants_name_check":              "name: 1 to 256 characters, no control characters or surrounding spaces",
	"tenants_description_check":       "description: at most 4096 characters",
	"keys_id_check":                   "id: 1 to 128 characters, no spaces or control characters",
	"keys_name_check":                 "name: 1 to 256 characters, no control characters or surrounding spaces",
	"keys_type_check":                 "type: must be service, app or account",
	"keys_app_id_check":               "app: required for service and app keys, not allowed for account keys",
	"keys_tenant_id_check":            "tenant: required for service keys, not allowed for app and account keys",
	"keys_hash_check":                 "hash: want sha256:<64 lowercase hex> or hmac-sha256:<64 lowercase hex>",
	"keys_previous_hash_check":        "previous_hash: a valid hash of the same algorithm as hash, and not equal to it",
	"keys_previous_valid_until_check": "previous_valid_until: set exactly when previous_hash is",
	"keys_not_before_check":           "not_before: must not be after expires_at",
	"keys_scope_check":                "scope: at most 8192 characters",
	"keys_rate_limit_check":           "rate_limit: N/second, N/minute, N/hour or N/day with N from 1 to 1000000000",
	"roles_rate_limit_check":          "rate_limit: N/second, N/minute, N/hour or N/day with N from 1 to 1000000000",
	"keys_quota_check":                "quota: N/day or N/month with N from 1 to 1000000000000000",
	"tenants_quota_check":             "quota: a monthly count from 1 to 1000000000000000",
	"keys_ip_filters_check":           "ip_filters: at most 1024 filters, none null",
	"keys_grp_check":                  "group: at most 256 characters, no control characters",
	"keys_description_check":          "description: at most 4096 characters",
	"keys_response_headers_check":     "response_headers: a list of at most 64 headers",
	"keys_origin_check":               "origin: must be generated or custom",
	"roles_id_check":                  "id: 1 to 128 characters, no spaces or control characters",
	"roles_name_check":                "name: 1 to 256 characters, no control characters or surrounding spaces",
	"roles_description_check":         "description: at most 4096 characters",
	"roles_scope_check":               "scope: required (a role with no scope grants nothing), at most 8192 characters",
	"denials_id_check":                "id: 1 to 128 characters, no spaces or control characters",
	"denials_scope_check":             "scope: required (what the denial blocks), at most 8192 characters",
	"denials_reason_check":            "reason: at most 500 bytes",
}

// mapError turns a PostgreSQL error into one of the store's sentinels with
// a message that names the field. Messages are built from what the caller
// sent, never from the server's detail (which can quote a whole row).
func mapError(err error, what subject) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("postgres: %w", err)
	}
	switch pe.Code {
	case "23505": // unique_violation
		switch pe.ConstraintName {
		case "accounts_pkey":
			return alreadyExists("account %q already exists", what.ID)
		case "apps_pkey":
			return alreadyExists("app id %q already exists in this account", what.ID)
		case "tenants_pkey":
			return alreadyExists("tenant id %q already exists in this account", what.ID)
		case "keys_pkey":
			return alreadyExists("key id %q already exists in this account", what.ID)
		case "roles_pkey":
			return alreadyExists("role id %q already exists in this account", what.ID)
		case "denials_pkey":
			return alreadyExists("denial id %q already exists in this account", what.ID)
		case "apps_name_key", "tenants_name_key", "keys_name_key", "roles_name_key":
			return alreadyExists("name %q already exists in this account", what.Name)
		case "keys_digest_key", "keys_previous_digest_key":
			return &storeError{msg: "hash is already in use by another key", kind: store.ErrSecretInUse}
		}
		return &storeError{msg: "already exists (" + pe.ConstraintName + ")", kind: store.ErrAlreadyExists}
	case "23503": // foreign_key_violation
		switch pe.ConstraintName {
		case "keys_app_fkey", "denials_app_fkey":
			return notFound("app %q not found in account %q", what.AppID, what.AccountID)
		case "keys_tenant_fkey", "denials_tenant_fkey":
			return notFound("tenant %q not found in account %q", what.TenantID, what.AccountID)
		case "apps_account_fkey", "tenants_account_fkey", "keys_account_fkey", "roles_account_fkey", "denials_account_fkey":
			return notFound("account %q not found", what.AccountID)
		}
		return &storeError{msg: "not found (" + pe.ConstraintName + ")", kind: store.ErrNotFound}
	case "23514": // check_violation
		if field, ok := checkFields[pe.ConstraintName]; ok {
			return invalid("%s", field)
		}
		return invalid("refused by constraint %s", pe.ConstraintName)
	case "23502": // not_null_violation
		return invalid("%s: required", pe.ColumnName)
	case "22P02", "22007", "22008", "22023", "22001": // bad text, datetime or value
		return invalid("%s", pe.Message)
	}
	return fmt.Errorf("postgres: %w", err)
}

// unavailable wraps err in store.ErrUnavailable when it is a failure to
// reach the database rather than a refusal of the statement, so that the
// Account API answers Unavailable (retry later) and not Internal.
func unavailable(err error) error {
	if err == nil || !connectionFailure(err) {
		return err
	}
	return &storeError{msg: "postgres: the database is unavailable", kind: store.ErrUnavailable, cause: err}
}

// connectionFailure reports whether err means the database could not be
// reached or dropped the connection: any failure to connect (refused,
// timed out, or refused by the server: not accepting connections, too
// many clients), a network error, a connection cut mid-statement, or a
// server error of class 08 (connection_exception), 57P01–57P03 (shutting
// down, cannot connect now) or 53300 (too many connections).
func connectionFailure(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03", "53300":
			return true
		}
		return strings.HasPrefix(pe.Code, "08")
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// inTx runs fn in a transaction on the pool, marking a failure to reach
// the database.
//
// Under store.WithChangeNumbers it also reads, last in the transaction,
// max(seq) of the change feed and notes it once the commit succeeded: the
// feed triggers hold the feed's advisory lock from their first seq to the
// commit, so when the transaction wrote feed rows no other writer can have
// drawn a seq since, and the max is the transaction's own highest seq;
// when it wrote none, it is the head committed before it, which covers
// the call just as well. It costs one more statement in the transaction
// (an index probe), only for callers that ask.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	cn := store.ChangeNumbersFrom(ctx)
	if cn == nil {
		return unavailable(pgx.BeginFunc(ctx, s.pool, fn))
	}
	var seq int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM key_changes`).Scan(&seq); err != nil {
			return fmt.Errorf("postgres: read the change number: %w", err)
		}
		return nil
	})
	if err == nil {
		cn.Note(seq)
	}
	return unavailable(err)
}

// reads is the pool for the Account API's reads, marking a failure to
// reach the database.
func (s *Store) reads() querier { return classified{s.pool} }

// classified is a querier whose errors say when the database was
// unreachable (store.ErrUnavailable).
type classified struct{ q querier }

func (c classified) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := c.q.Exec(ctx, sql, args...)
	return tag, unavailable(err)
}

func (c classified) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := c.q.Query(ctx, sql, args...)
	return rows, unavailable(err)
}

func (c classified) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return classifiedRow{c.q.QueryRow(ctx, sql, args...)}
}

// classifiedRow is a row whose Scan marks an unreachable database: pgx
// reports a QueryRow's failure only there.
type classifiedRow struct{ row pgx.Row }

func (r classifiedRow) Scan(dest ...any) error { return unavailable(r.row.Scan(dest...)) }
