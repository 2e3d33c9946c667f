package account

import "github.com/keygate/keygate/pkg/authz"

// RenamedOperations are the Account API operations SPEC §14 renamed
// (authz.RenamedOperations).
var RenamedOperations = authz.RenamedOperations

// CanonicalScopeCases are CanonicalScope's test table
// (authz.CanonicalScopeCases).
var CanonicalScopeCases = authz.CanonicalScopeCases

// CanonicalScope rewrites the earlier Account API operation names of a
// scope (SPEC §14). The rule is authz.CanonicalScope, shared with the keys
// file, so that every input of scopes applies the same one.
func CanonicalScope(s string) string { return authz.CanonicalScope(s) }
