package account

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/route"
)

// Routes is what the account service knows of the routes file being
// served, to warn about scopes that cannot match anything (SPEC §9: a
// scope naming an undeclared service is accepted with a warning). The
// route table (route.Router) implements it; it may change at any time (a
// reload).
type Routes interface {
	// Kinds reports whether service is declared and the kinds its routes
	// name; anyKind is set when a route of it leaves the kind unknown.
	Kinds(service string) (kinds []string, anyKind, declared bool)
	// Services lists the declared services with their key types,
	// accounts, kinds and operations (the services operation).
	Services() []route.ServiceInfo
}

// Warnings are accepted but suspicious settings of a key, one sentence
// each, for the caller to show.
type Warnings []string

// scopeWarnings names each pattern of scope whose service the routes do
// not declare, or whose kind no route of that service has. Wildcards
// and prefixes are not checked (they may match), nor the Account API's
// own service. Without routes there is nothing to say.
func (s *Service) scopeWarnings(scope string) Warnings {
	if s.routes == nil {
		return nil
	}
	var out Warnings
	seen := map[string]bool{}
	for _, p := range strings.Fields(scope) {
		pat := strings.TrimPrefix(p, "!")
		svc, rest, _ := strings.Cut(pat, ":")
		kind, _, _ := strings.Cut(rest, ":")
		if svc == "" || strings.Contains(svc, "*") || svc == authz.AccountAPIService {
			continue
		}
		kinds, anyKind, declared := s.routes.Kinds(svc)
		switch {
		case !declared:
			if !seen[svc] {
				seen[svc] = true
				out = append(out, fmt.Sprintf("scope pattern %q: service %q is not declared in the routes file, so it matches nothing until it is (check the spelling)", p, svc))
			}
		case kind == "" || strings.Contains(kind, "*") || anyKind || len(kinds) == 0:
		case !slices.Contains(kinds, kind):
			out = append(out, fmt.Sprintf("scope pattern %q: no route of service %q has kind %q (its kinds: %s), so it matches nothing (check the spelling)",
				p, svc, kind, strings.Join(kinds, ", ")))
		}
	}
	return out
}

// expiredWarning is the warning of an update that sets an expiry not after
// now: accepted (expiring a key at once is legitimate), but said.
func expiredWarning(at time.Time) string {
	return fmt.Sprintf("expires_at %s is not in the future: every request with this key is now denied expired_key", at.UTC().Format(time.RFC3339))
}
