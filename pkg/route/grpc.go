// gRPC routing (the third step of the package doc's order): recognising
// a gRPC content-type and reading /pkg.Service/Method against the
// services that declare grpc_services.

package route

import (
	"strings"

	"github.com/keygate/keygate/pkg/authz"
)

// isGRPC reports whether a content-type is gRPC's (SPEC §9):
// application/grpc, application/grpc+<codec> and application/grpc-web*,
// compared without case and up to parameters. "application/grpcx" is not.
func isGRPC(contentType string) bool {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	contentType = strings.TrimRight(contentType, " \t")
	const p, web = "application/grpc", "application/grpc-web"
	switch {
	case len(contentType) < len(p) || !strings.EqualFold(contentType[:len(p)], p):
		return false
	case len(contentType) == len(p) || contentType[len(p)] == '+':
		return true
	}
	return len(contentType) >= len(web) && strings.EqualFold(contentType[:len(web)], web)
}

// resolveGRPC reads /pkg.Service/Method.
func (t *Table) resolveGRPC(path string) (authz.Target, bool) {
	rest := path[1:]
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return authz.Target{}, false
	}
	name, method := rest[:i], rest[i+1:]
	g, ok := t.grpc[name]
	if !ok || !isIdent(method) {
		return authz.Target{}, false
	}
	return authz.Target{Service: g.service, Kind: g.kind, Operation: method, Accepts: g.accepts, Accounts: g.accounts}, true
}

// isIdent is a protobuf identifier, the form of gRPC service-name parts and
// method names.
func isIdent(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
