package authz

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/keygate/keygate/pkg/apikey"
)

// Request is what a proxy asks about, already lifted out of its wire format
// by an adapter. Strings may alias the wire message: the engine never keeps
// them past Check.
type Request struct {
	// Key is the API key value as sent, untrimmed. KeyCount is how many values
	// the request carried (header values, comma-joined values, the query
	// parameter): 0 is missing_key, more than one is malformed_key.
	Key      string
	KeyCount int
	// ClientIP is the address IP filters are checked against; the zero Addr
	// means "unknown", which fails closed for keys with filters.
	ClientIP netip.Addr
	Route    RouteInput
}

// RouteInput is what routing reads from a request.
type RouteInput struct {
	// Host is the :authority / Host header, possibly with a port.
	Host   string
	Method string
	// Path is the request target as the proxy saw it: not decoded, with
	// its query string.
	Path        string
	ContentType string
	// Extensions are the Envoy per-route context_extensions keygate reads;
	// zero when the route sets none.
	Extensions Extensions
	// Body is the request body the proxy forwarded (Envoy's
	// with_request_body), read only by GraphQL routes. BodyTruncated is set
	// when the proxy cut it at its buffer limit.
	Body          []byte
	BodyTruncated bool
	// MethodOverridden is set when the request carries a method-override
	// header (MethodOverrideHeaders) naming another method than Method:
	// an upstream honouring it would run another operation than the one
	// decided, so the request is refused (invalid_request).
	MethodOverridden bool
}

// MethodOverrideHeaders are the headers some frameworks read the "real"
// method from (SPEC §9), lower case.
var MethodOverrideHeaders = [...]string{"x-http-method-override", "x-http-method", "x-method-override"}

// OverridesMethod reports whether a method-override header value names
// another method than the request's. Methods are compared without case:
// the frameworks that honour these headers upper-case them.
func OverridesMethod(method, value string) bool {
	return !strings.EqualFold(strings.TrimSpace(value), method)
}

// Extensions are the context_extensions keygate reads (SPEC §4 item 1).
// A struct rather than the map Envoy sends, so that an adapter decoding the
// wire message itself fills it without building a map per request.
type Extensions struct {
	Service, Kind, Operation string
}

// ExtensionsFrom picks keygate's context_extensions out of Envoy's map.
func ExtensionsFrom(m map[string]string) Extensions {
	var e Extensions
	for name, value := range m {
		e.Set(name, value)
	}
	return e
}

// Set records the context_extension name if it is one keygate reads
// (service, kind, operation), and ignores any other.
func (e *Extensions) Set(name, value string) {
	switch name {
	case "service":
		e.Service = value
	case "kind":
		e.Kind = value
	case "operation":
		e.Operation = value
	}
}

// Operation is one (kind, operation) pair of a service a request calls.
type Operation struct {
	Kind, Name string
}

// Target is where a request goes once routed: the keygate service, the kind
// and the operation, and which key types the service accepts.
type Target struct {
	Service   string
	Kind      string
	Operation string
	Accepts   KeyTypes
	// Accounts, when set, are the only accounts whose keys the service
	// accepts (row 6a); nil accepts every account.
	Accounts []string
	// More lists further operations the request calls that must each be
	// allowed too: a GraphQL document's other root fields.
	More []Operation
	// GraphQL is set for GraphQL routes, whose scope_denied names the
	// refused field.
	GraphQL bool
	// Detail says why routing refused the request (which GraphQL limit or
	// parse error); it is safe to show the caller and never holds key
	// material.
	Detail string
}

// Router maps a request to its target. It answers OK, UnknownRoute,
// InvalidPath, InvalidRequest or (GraphQL) InvalidGraphQL. Implementations must be safe
// for concurrent use and should not allocate for ordinary paths.
type Router interface {
	Resolve(in *RouteInput) (Target, Reason)
}

// ErrKeyNotFound is what a KeyStore returns for a digest it does not hold.
var ErrKeyNotFound = errors.New("key not found")

// KeyStore finds a compiled key by the digest of its secret. Any error other
// than ErrKeyNotFound means the store could not answer (store_unavailable);
// it must never carry the secret.
type KeyStore interface {
	LookupKey(ctx context.Context, digest apikey.Digest) (*Key, error)
}
