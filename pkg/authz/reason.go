// Package authz holds keygate's decision: the request a proxy asks about, the
// compiled key record it is decided against, and the ordered checks of SPEC §5.
//
// It knows nothing of gRPC, YAML, pgx or OpenTelemetry; adapters translate
// their types into Request and Decision. It imports only the standard library
// and keygate's pure leaf packages (apikey, scope).
package authz

// Reason is the stable code of a decision. OK means allow; every other value
// is a deny. The snake_case names are public interface: deny bodies, metrics
// and logs carry them, and users' dashboards and scripts match on them.
type Reason uint8

const (
	OK Reason = iota
	MissingKey
	MalformedKey
	UnknownKey
	InactiveKey
	NotYetValid
	ExpiredKey
	InvalidPath
	UnknownRoute
	WrongKeyType
	IPNotAllowed
	ScopeDenied
	InvalidGraphQL
	StoreUnavailable
	// InvalidRequest is a request keygate cannot decide safely as sent: a
	// method-override header naming another method (SPEC §9).
	InvalidRequest
	// AccountNotAllowed is row 6a: the service lists the accounts it
	// serves, and the key's is not among them.
	AccountNotAllowed
	// AccessDenied is row 9: a service access denial of the key's tenant
	// and app covers the operation (SPEC §11); the deny body's error is
	// the denial's reason text, not Message.
	AccessDenied
	// QuotaExceeded is row 10: the tenant's or the key's quota for the
	// period is used up (SPEC §12); the deny carries retry-after, the
	// seconds until the period resets (Decision.RetryAfter).
	QuotaExceeded

	numReasons
)

var reasonNames = [numReasons]string{
	OK:                "ok",
	MissingKey:        "missing_key",
	MalformedKey:      "malformed_key",
	UnknownKey:        "unknown_key",
	InactiveKey:       "inactive_key",
	NotYetValid:       "not_yet_valid",
	ExpiredKey:        "expired_key",
	InvalidPath:       "invalid_path",
	UnknownRoute:      "unknown_route",
	WrongKeyType:      "wrong_key_type",
	IPNotAllowed:      "ip_not_allowed",
	ScopeDenied:       "scope_denied",
	InvalidGraphQL:    "invalid_graphql",
	StoreUnavailable:  "store_unavailable",
	InvalidRequest:    "invalid_request",
	AccountNotAllowed: "account_not_allowed",
	AccessDenied:      "access_denied",
	QuotaExceeded:     "quota_exceeded",
}

// denyAnswers are what SPEC §5 answers each deny reason with: the HTTP
// status of its row and a message safe to show any caller (it says what
// failed, never anything about the key). The one table of reasons: the
// Envoy adapter derives its wire answers from it, the account service its
// error codes.
var denyAnswers = [numReasons]struct {
	status  int
	message string
}{
	MissingKey:        {401, "an API key is required"},
	MalformedKey:      {401, "the API key is malformed"},
	UnknownKey:        {401, "the API key is not valid"},
	InactiveKey:       {401, "the API key is inactive"},
	NotYetValid:       {401, "the API key is not valid yet"},
	ExpiredKey:        {401, "the API key has expired"},
	InvalidPath:       {400, "the request path is invalid"},
	UnknownRoute:      {403, "no service is configured for this route"},
	WrongKeyType:      {403, "this service does not accept this type of key"},
	IPNotAllowed:      {403, "the client address is not allowed for this key"},
	ScopeDenied:       {403, "the key's scope does not allow this operation"},
	InvalidGraphQL:    {400, "the GraphQL request is invalid"},
	StoreUnavailable:  {503, "the key store is unavailable; retry later"},
	InvalidRequest:    {400, "the request is ambiguous: a method-override header names another method"},
	AccountNotAllowed: {403, "this service does not accept keys of this account"},
	AccessDenied:      {403, "access to this operation is denied"},
	QuotaExceeded:     {429, "the request quota for this period is used up; retry after it resets"},
}

// Status is the HTTP status a deny for r is answered with (SPEC §5); 200
// for OK, 500 for a reason outside the list.
func (r Reason) Status() int {
	switch {
	case r == OK:
		return 200
	case r < numReasons && denyAnswers[r].status != 0:
		return denyAnswers[r].status
	}
	return 500
}

// Message is what a deny for r says, safe to show any caller.
func (r Reason) Message() string {
	if r < numReasons && denyAnswers[r].message != "" {
		return denyAnswers[r].message
	}
	return "internal error"
}

// String returns the reason's stable snake_case code.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown_reason"
}

// Reasons lists every reason, OK first, so that adapters can build their
// per-reason metric series and responses once at start.
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// IsKeyFailure reports whether the reason is about the key itself (rows 1–4),
// the class a "generic message" setting hides behind one text.
func (r Reason) IsKeyFailure() bool {
	return r >= MissingKey && r <= ExpiredKey
}

// Row is one row of the decision (SPEC §5): its number, what it checks, and
// the reasons that fail it. Rows lists them in order; explain and docs show
// them, so that no caller keeps its own copy of the table.
type Row struct {
	Number  string
	Check   string
	Reasons []Reason
}

// Rows are SPEC §5's rows in the order Engine.Check runs them.
// StoreUnavailable is listed with row 3, where a store outage shows.
var Rows = []Row{
	{"1", "key present", []Reason{MissingKey}},
	{"2", "well formed", []Reason{MalformedKey}},
	{"3", "known", []Reason{UnknownKey, StoreUnavailable}},
	{"4", "active and valid now", []Reason{InactiveKey, NotYetValid, ExpiredKey}},
	{"5", "route resolves to a service", []Reason{InvalidPath, InvalidRequest, UnknownRoute, InvalidGraphQL}},
	{"6", "service accepts the key type", []Reason{WrongKeyType}},
	{"6a", "service accepts the account", []Reason{AccountNotAllowed}},
	{"7", "client IP allowed", []Reason{IPNotAllowed}},
	{"8", "scope allows the operation", []Reason{ScopeDenied}},
	{"9", "no service access denial", []Reason{AccessDenied}},
	{"10", "the tenant's and the key's quotas are not used up", []Reason{QuotaExceeded}},
}

// RowOf returns the index in Rows of the row a deny reason fails, or -1
// for OK.
func RowOf(r Reason) int {
	for i, row := range Rows {
		for _, x := range row.Reasons {
			if x == r {
				return i
			}
		}
	}
	return -1
}
