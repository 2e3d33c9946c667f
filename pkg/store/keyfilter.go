package store

import (
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/authz"
)

// KeyFilter narrows ListKeys, CountKeys and UpdateKeys; zero fields do not
// filter, set fields must all match.
type KeyFilter struct {
	AppID          string
	TenantID       string
	Group          string
	Type           authz.KeyType
	Active         *bool
	ExpiringBefore time.Time // keys with expires_at < this
	// ExpiresAfter keeps keys with expires_at > this: with the current
	// time, the keys not yet expired (a key expires at its expires_at).
	// Keys that never expire do not pass it, as they do not pass
	// ExpiringBefore.
	ExpiresAfter time.Time
	UnusedSince  time.Time // keys with last_used_at < this or never used
	RoleID       string    // keys holding this role
	Name         string    // the key of this name (names are unique in an account)
	// NameContains keeps keys whose name contains it, letters compared
	// without case (lower(name) LIKE '%text%': a trigram index serves it
	// where pg_trgm is installed).
	NameContains string
	// IDs keeps the keys of these ids (nil: any; empty: none): a
	// selection of keys, as the console's bulk actions make.
	IDs []string
	// NoIPFilters keeps keys without IP filters (accepted from any
	// address).
	NoIPFilters bool
	// ScopeEverything keeps keys with an empty own scope and no roles:
	// keys allowed every operation of the services that accept their
	// type.
	ScopeEverything bool
	// Order is the order ListKeys returns keys in (the zero value:
	// creation order); the other filters are what it selects, and
	// CountKeys and UpdateKeys ignore it.
	Order KeyOrder
}

// IsZero reports whether f selects every key (its Order aside).
func (f *KeyFilter) IsZero() bool {
	return f.AppID == "" && f.TenantID == "" && f.Group == "" && f.Type == authz.KeyTypeUnknown &&
		f.Active == nil && f.ExpiringBefore.IsZero() && f.ExpiresAfter.IsZero() && f.UnusedSince.IsZero() &&
		f.Name == "" && f.RoleID == "" && f.NameContains == "" && f.IDs == nil && !f.NoIPFilters && !f.ScopeEverything
}

// Matches reports whether k (as reads return it: LastUsedAt and RoleIDs
// filled) passes f, the rule PostgreSQL's WHERE applies: for stores that
// filter keys they hold. It does not look at the account or check Type.
func (f *KeyFilter) Matches(k *Key) bool {
	sp := &k.Spec
	return (f.Name == "" || sp.Name == f.Name) &&
		(f.NameContains == "" || strings.Contains(strings.ToLower(sp.Name), strings.ToLower(f.NameContains))) &&
		(f.IDs == nil || slices.Contains(f.IDs, sp.ID)) &&
		(f.AppID == "" || sp.AppID == f.AppID) &&
		(f.TenantID == "" || sp.TenantID == f.TenantID) &&
		(f.Group == "" || sp.Group == f.Group) &&
		(f.Type == authz.KeyTypeUnknown || sp.Type == f.Type) &&
		(f.Active == nil || sp.Active == *f.Active) &&
		(f.ExpiringBefore.IsZero() || !sp.ExpiresAt.IsZero() && sp.ExpiresAt.Before(f.ExpiringBefore)) &&
		(f.ExpiresAfter.IsZero() || !sp.ExpiresAt.IsZero() && sp.ExpiresAt.After(f.ExpiresAfter)) &&
		(f.UnusedSince.IsZero() || k.LastUsedAt.IsZero() || k.LastUsedAt.Before(f.UnusedSince)) &&
		(f.RoleID == "" || slices.Contains(k.RoleIDs, f.RoleID)) &&
		(!f.NoIPFilters || len(sp.IPFilters) == 0) &&
		(!f.ScopeEverything || sp.Scope == "" && len(k.RoleIDs) == 0)
}
