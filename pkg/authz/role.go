package authz

import (
	"errors"
	"fmt"
	"slices"

	"github.com/keygate/keygate/pkg/scope"
)

// Role is an account-level named scope (SPEC §11): a key holding it is
// allowed what the role's scope allows, as if its patterns were part of
// the key's own scope (Compile). Roles are records: a store or a keys file
// holds them, CheckRole validates one, and a key is compiled against the
// roles it holds (CompileOptions.Roles), so a cache recompiles the keys
// holding a role when the role changes. A Role is not modified once shared.
type Role struct {
	ID          string
	AccountID   string
	Name        string // unique within the account
	Scope       string // non-empty, SPEC §3's grammar; deny patterns allowed
	Description string
	// RateLimit is the role's rate limit (SPEC §12), zero for none. A key
	// without its own gets the most restrictive of its roles' (Key.RateLimit).
	RateLimit RateLimit
}

// RoleSet finds a role a key holds by its id. The roles of one account:
// role ids are unique within their account, so a caller compiling keys of
// several accounts passes each key the set of its own account.
type RoleSet interface {
	Role(id string) (*Role, bool)
}

// RoleMap is a RoleSet held in a map by id.
type RoleMap map[string]*Role

// Role implements RoleSet.
func (m RoleMap) Role(id string) (*Role, bool) {
	r, ok := m[id]
	return r, ok && r != nil
}

// CheckRole validates a role: id and name present, name a clean label,
// scope non-empty and valid. The error joins one FieldError per problem
// (fields id, name, scope).
func CheckRole(r *Role) error {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, &FieldError{Field: field, Err: err}) }
	if r.ID == "" {
		bad("id", errors.New("required"))
	}
	if r.Name == "" {
		bad("name", errors.New("required"))
	} else if err := CheckLabelText(r.Name); err != nil {
		bad("name", err)
	}
	sc, err := scope.Parse(r.Scope)
	switch {
	case err != nil:
		bad("scope", err)
	case sc.IsEmpty():
		bad("scope", errors.New("required: a role's scope may not be empty (an empty scope would allow everything)"))
	}
	if err := r.RateLimit.Check(); err != nil {
		bad("rate_limit", err)
	}
	return errors.Join(errs...)
}

// compileRoles resolves the roles a key holds and returns them with their
// compiled scopes, in the order the key lists them. A role id the set does
// not hold, or held twice, is an error: a key compiled without one of its
// roles would be allowed more or less than it says (a role may deny).
func compileRoles(ids []string, opts *CompileOptions) ([]*Role, []*scope.Scope, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	var errs []error
	roles := make([]*Role, 0, len(ids))
	scopes := make([]*scope.Scope, 0, len(ids))
	for i, id := range ids {
		if id == "" {
			errs = append(errs, fmt.Errorf("[%d] is empty: give a role id", i))
			continue
		}
		dup := false
		for _, r := range roles {
			if r.ID == id {
				dup = true
			}
		}
		if dup {
			errs = append(errs, fmt.Errorf("[%d] %q is listed twice", i, id))
			continue
		}
		var r *Role
		ok := false
		if opts.Roles != nil {
			r, ok = opts.Roles.Role(id)
		}
		if !ok {
			errs = append(errs, fmt.Errorf("[%d] %q: no such role", i, id))
			continue
		}
		sc, err := opts.Scopes.parse(r.Scope)
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d] %q: the role's scope: %w", i, id, err))
			continue
		}
		if sc.IsEmpty() {
			errs = append(errs, fmt.Errorf("[%d] %q: the role's scope is empty", i, id))
			continue
		}
		roles = append(roles, r)
		scopes = append(scopes, sc)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return roles, scopes, nil
}

// Roles returns the roles the key was compiled with, in the order of
// Spec.Roles. The caller owns the slice, not the roles.
func (k *Key) Roles() []*Role { return slices.Clone(k.Spec.roles) }

// OwnScope is the key's own scope, compiled, without its roles'
// (Scope is the effective one).
func (k *Key) OwnScope() *scope.Scope { return k.Spec.own }

// HoldsRole reports whether the key holds the role with id (for a cache
// that recompiles the keys holding a changed role).
func (k *Key) HoldsRole(id string) bool {
	for _, r := range k.Spec.Roles {
		if r == id {
			return true
		}
	}
	return false
}
