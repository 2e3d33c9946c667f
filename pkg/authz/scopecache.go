// ScopeCache: compiled scopes, owners and accesses shared by the keys
// that have the same, held weakly, so a bulk load of many keys compiles
// each distinct scope (and scope with roles) once.

package authz

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/weakmap"
)

// ScopeCache shares compiled scopes by their text. Scopes are immutable
// once parsed, so sharing is safe; the cache itself is safe for
// concurrent use. It holds scopes weakly (pkg/weakmap): one that no key
// holds any more leaves it, so a store keeps one for its whole life and
// every key with the same scope (or the same scope and roles) shares one,
// whether a bulk load or a single lookup compiled it.
type ScopeCache struct {
	m weakmap.Map[string, scope.Scope]
	// owners and access share what keys of one tenant, or with one scope
	// and roles, have in common (KeyInfo).
	owners weakmap.Map[KeyOwner, KeyOwner]
	access weakmap.Map[string, KeyAccess]
	// lastOwner and lastAccess are the ones returned last: a bulk load
	// meets the keys of one tenant, and of one scope and roles, in runs,
	// and ten million lookups in the maps (a lock and a hash each) would
	// cost seconds of the warm load.
	lastOwner  atomic.Pointer[KeyOwner]
	lastAccess atomic.Pointer[KeyAccess]
}

// owner returns o, shared with the keys that have the same.
func (c *ScopeCache) owner(o KeyOwner) *KeyOwner {
	if c == nil {
		p := o
		return &p
	}
	if last := c.lastOwner.Load(); last != nil && *last == o {
		return last
	}
	return c.newOwner(o)
}

// newOwner is owner past its memo, apart so that the memo's hit copies
// nothing to the heap.
func (c *ScopeCache) newOwner(o KeyOwner) *KeyOwner {
	v, _ := c.owners.LoadOrMake(o, func() (*KeyOwner, error) {
		p := o
		return &p, nil
	})
	c.lastOwner.Store(v)
	return v
}

// is reports whether a was compiled from text and roles.
func (a *KeyAccess) is(text string, roles []*Role) bool {
	return a.Scope == text && slices.Equal(a.roles, roles)
}

// keyAccess compiles a key's own scope and roles, shared with the keys
// that have the same scope text and the same role records (a role edit
// makes new records, so keys compiled against it get an access of their
// own).
// The errors are FieldErrors of the scope and the roles.
func (c *ScopeCache) keyAccess(text string, ids []string, opts *CompileOptions) (*KeyAccess, []error) {
	roles, roleScopes, rolesErr := compileRoles(ids, opts)
	if rolesErr != nil {
		errs := []error{&FieldError{Field: "roles", Err: rolesErr}}
		if _, err := c.parse(text); err != nil {
			errs = slices.Insert(errs, 0, error(&FieldError{Field: "scope", Err: err}))
		}
		return nil, errs
	}
	build := func() (*KeyAccess, error) {
		own, err := c.parse(text)
		if err != nil {
			return nil, &FieldError{Field: "scope", Err: err}
		}
		return &KeyAccess{Scope: text, Roles: ids, own: own, effective: c.union(own, roleScopes), roles: roles}, nil
	}
	if c == nil {
		a, err := build()
		if err != nil {
			return nil, []error{err}
		}
		return a, nil
	}
	if last := c.lastAccess.Load(); last != nil && last.is(text, roles) {
		return last, nil
	}
	// The text's length first: a scope stored under other rules (or
	// written past the Account API) that holds NUL could otherwise spell
	// another key's roles and get their access instead of failing to
	// parse. Then each role's record address: while the access holds a
	// role, no other role record can have it.
	var key strings.Builder
	fmt.Fprintf(&key, "%d\x00%s", len(text), text)
	for _, r := range roles {
		fmt.Fprintf(&key, "\x00%s\x00%p", r.ID, r)
	}
	a, err := c.access.LoadOrMake(key.String(), build)
	if err != nil {
		return nil, []error{err}
	}
	c.lastAccess.Store(a)
	return a, nil
}

func (c *ScopeCache) parse(text string) (*scope.Scope, error) {
	if c == nil {
		return scope.Parse(text)
	}
	return c.m.LoadOrMake(text, func() (*scope.Scope, error) { return scope.Parse(text) })
}

// Len is the number of scopes the cache names (for tests).
func (c *ScopeCache) Len() int { return c.m.Len() }

// union is effectiveScope shared, like parse, between keys with the same
// own scope and roles (a bulk load gives many keys the same roles).
func (c *ScopeCache) union(own *scope.Scope, roles []*scope.Scope) *scope.Scope {
	if c == nil || len(roles) == 0 {
		return effectiveScope(own, roles)
	}
	texts := make([]string, 0, len(roles)+2)
	texts = append(texts, "\x00roles", own.String())
	for _, r := range roles {
		texts = append(texts, r.String())
	}
	// NUL never appears in a valid scope, so the key cannot collide with
	// a scope's own text or another combination.
	key := strings.Join(texts, "\x00")
	sc, _ := c.m.LoadOrMake(key, func() (*scope.Scope, error) { return effectiveScope(own, roles), nil })
	return sc
}
