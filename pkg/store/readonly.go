package store

import (
	"errors"
	"fmt"
)

// ErrReadOnly is what every write to a read-only store returns (wrapped
// in a *ReadOnlyError): nothing was written, and the same call will never
// succeed against this store.
var ErrReadOnly = errors.New("read-only")

// ReadOnlyError is a write refused by a store that serves a keys file
// (pkg/store/filestore): its records change only when the file does.
type ReadOnlyError struct {
	// Path is the keys file, as serve was given it.
	Path string
}

func (e *ReadOnlyError) Error() string {
	return fmt.Sprintf("read_only: keygate serves a keys file; edit %s and it is reloaded", e.Path)
}

func (e *ReadOnlyError) Unwrap() error { return ErrReadOnly }

// ReadOnly is implemented by a store whose records cannot be changed
// through it: ReadOnly returns the *ReadOnlyError its writes return.
// The account service asks it once, so that it refuses changes before
// they reach the store and its adapters hide them.
type ReadOnly interface {
	ReadOnly() *ReadOnlyError
}
