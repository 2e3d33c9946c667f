package account

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Code classifies an Error. The values mirror gRPC's status codes (and so
// their numbers), the vocabulary every adapter maps from: gRPC casts it,
// GraphQL names it in extensions.code, the console picks a page for it.
type Code int

// The codes the account service answers with.
const (
	Canceled           Code = 1
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Internal           Code = 13
	Unavailable        Code = 14
	Unauthenticated    Code = 16
)

var codeNames = map[Code]string{
	Canceled: "Canceled", InvalidArgument: "InvalidArgument", DeadlineExceeded: "DeadlineExceeded",
	NotFound: "NotFound", AlreadyExists: "AlreadyExists", PermissionDenied: "PermissionDenied",
	ResourceExhausted: "ResourceExhausted", FailedPrecondition: "FailedPrecondition",
	Internal: "Internal", Unavailable: "Unavailable", Unauthenticated: "Unauthenticated",
}

func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("Code(%d)", int(c))
}

// Error is the one error type of the account service. Message is safe to
// show the caller: it never holds a secret nor a store's internal detail
// (those are logged, and the caller gets Internal). Field names the request
// field at fault, when one is; an InvalidArgument lists every field at
// fault in Violations, and its Message joins them; so does a
// ResourceExhausted for fields past a size limit (SPEC §10).
type Error struct {
	Code       Code
	Field      string
	Message    string
	Violations []Violation
	// RetryAfter, when set, is how long the caller should wait before
	// trying again (a rate limit).
	RetryAfter time.Duration
	// Reason, when set, is a machine-readable cause (store_unavailable,
	// has_keys) that clients act on without parsing Message; Metadata
	// holds its figures (has_keys: "keys", the count).
	Reason   string
	Metadata map[string]string
}

// Violation is one field of a request that is wrong, and why.
type Violation struct {
	Field       string
	Description string
}

func (e *Error) Error() string { return e.Message }

// errorf is an Error with a formatted message.
func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// fieldError is an Error about one field; the message starts with it.
func fieldError(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// internal is what a caller sees of a failure that is not theirs.
func internal() *Error { return &Error{Code: Internal, Message: "internal error"} }

// Reasons an Error can carry.
const (
	// ReasonStoreUnavailable: the store could not be reached; retry later.
	// The data plane's reason name for the same outage.
	ReasonStoreUnavailable = "store_unavailable"
	// ReasonHasKeys: an app or tenant still has keys (Metadata "keys").
	ReasonHasKeys = "has_keys"
)

// storeUnavailable is the answer while the store cannot be reached, in
// the data plane's words, so that clients retry as they do for Check.
func storeUnavailable() *Error {
	return &Error{Code: Unavailable, Reason: ReasonStoreUnavailable,
		Message: authz.StoreUnavailable.String() + ": " + authz.StoreUnavailable.Message()}
}

// hasKeys refuses to delete an app or tenant that still has keys, saying
// how to go on: the keys are deleted with it only when asked.
func hasKeys(e *store.HasKeysError) *Error {
	noun, them := "keys", "them"
	if e.Keys == 1 {
		noun, them = "key", "it"
	}
	return &Error{Code: FailedPrecondition, Field: "cascade", Reason: ReasonHasKeys,
		Metadata: map[string]string{"keys": strconv.Itoa(e.Keys)},
		Message: fmt.Sprintf("%s %q has %d %s: delete %s first, or delete with cascade (keygate %ss delete %s --cascade)",
			e.Object, e.ID, e.Keys, noun, them, e.Object, e.ID)}
}

// tooLarge is a ResourceExhausted naming every field past a size limit.
func tooLarge(list []Violation) *Error {
	e := invalid(list)
	e.Code = ResourceExhausted
	return e
}

// invalid is an InvalidArgument naming every violation.
func invalid(list []Violation) *Error {
	parts := make([]string, len(list))
	for i, v := range list {
		parts[i] = v.Field + ": " + v.Description
	}
	e := &Error{Code: InvalidArgument, Message: strings.Join(parts, "; "), Violations: list}
	if len(list) == 1 {
		e.Field = list[0].Field
	}
	return e
}
