package account

import (
	"github.com/keygate/keygate/pkg/store"
)

// ReasonReadOnly is the Reason of the error every change answers when the
// service's store is read-only (serve with a keys file): FailedPrecondition,
// whose Metadata "file" names the file to edit instead.
const ReasonReadOnly = "read_only"

// readOnlyError is the answer to a change over a read-only store.
func readOnlyError(e *store.ReadOnlyError) *Error {
	return &Error{Code: FailedPrecondition, Message: e.Error(), Reason: ReasonReadOnly,
		Metadata: map[string]string{"file": e.Path}}
}

// ReadOnly is the error every change answers (Reason ReasonReadOnly) when
// the service's store changes nothing — a keys file, whose contents it
// serves — and nil when it can change. Authorize refuses every mutation
// with it, so that adapters hide what cannot be done (the console's
// buttons) and refuse it before it reaches the store.
func (s *Service) ReadOnly() *Error {
	if s.readOnly == nil {
		return nil
	}
	return readOnlyError(s.readOnly)
}

// noAuditLog is the answer to reading the audit log of a read-only
// store: a keys file records no changes.
func noAuditLog() *Error {
	return errorf(FailedPrecondition, "the audit log is kept in database mode only: this keygate serves a keys file, whose changes are not recorded")
}
