package postgres

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/authz"
)

// rowError is a key row that was read but one of whose columns does not
// parse (a response_headers array of something else than headers, say):
// the data plane turns it into an unloadable record; the Account API
// reports it as the error it is.
type rowError struct {
	field string
	err   error
}

func (e *rowError) Error() string { return e.err.Error() }
func (e *rowError) Unwrap() error { return e.err }

// scanCompiled reads one key row for the data plane and compiles it. A
// row read whole whose columns do not parse or compile is an unloadable
// record (authz.Unloadable), so that one bad row never fails a warm load,
// a change or a lookup; only a row that cannot be read, or whose hash
// (which a constraint guards) does not parse, is an error.
func (s *Store) scanCompiled(row pgx.Row, opts authz.CompileOptions, roles *roleRecords) (*authz.Key, error) {
	r, err := scanKey(row)
	var re *rowError
	switch {
	case errors.As(err, &re):
		return unloadable(r.Spec, &authz.FieldError{Field: re.field, Err: re.err})
	case err != nil:
		return nil, err
	}
	return s.compileWith(r, opts, roles)
}

// unloadable is the record of a stored key that does not compile.
func unloadable(spec authz.KeySpec, cause error) (*authz.Key, error) {
	k, err := authz.Unloadable(spec, cause)
	if err != nil {
		return nil, fmt.Errorf("postgres: stored key cannot be loaded: %w", err)
	}
	return k, nil
}

// compileHook, when set, runs before each data-plane compile: the seam a
// test uses to make one key's compile panic.
var compileHook atomic.Pointer[func(authz.KeySpec)]

func runCompileHook(spec authz.KeySpec) {
	if h := compileHook.Load(); h != nil {
		(*h)(spec)
	}
}
