// Package filestore is the read-only store.Accounts over a keys file
// (pkg/keyfile): what the account service reads — the account, its apps,
// tenants, keys, roles and denials — served from the file's current
// contents, so that the console and the GraphQL Account API show a keys
// file as they show a database (issue 21: "the same pages read-only").
//
// It has one job: reads follow the file (every reload of the keyfile.Store
// is seen by the next read), and every write returns a *store.ReadOnlyError
// naming the file to edit instead. It keeps no audit log, usage, quota
// counts or replica heartbeats: it implements none of the optional store
// interfaces, and the account service answers those reads with
// FailedPrecondition.
//
// Lists follow the contract of PostgreSQL (pkg/store/storetest): records in
// (created_at, id) order, keyset page tokens in store.PageToken's format,
// KeyFilter and DenialFilter as PostgreSQL applies them. A file records
// no creation or change times: every record carries the file's
// modification time as both, so that the order is the ids' order, and a
// page token is compared by its id alone, which keeps paging through a
// reload in order (records added before the position are not shown,
// removed ones are not repeated).
package filestore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/store"
)

// Source is the keys file being served: keyfile.Store, whose Set is
// swapped on every successful reload.
type Source interface {
	Set() *keyfile.Set
}

// Store is the read-only store over a keys file.
type Store struct {
	src  Source
	path string
	ro   *store.ReadOnlyError
	// snap is the records of the Set last read: rebuilt when the source
	// serves another Set (a reload), shared by every read until then.
	snap atomic.Pointer[snapshot]
}

var (
	_ store.Accounts = (*Store)(nil)
	_ store.ReadOnly = (*Store)(nil)
)

// New serves src, the keys file at path (as serve was given it: the
// read-only error names it).
func New(src Source, path string) *Store {
	return &Store{src: src, path: path, ro: &store.ReadOnlyError{Path: path}}
}

// ReadOnly is the error every write returns.
func (s *Store) ReadOnly() *store.ReadOnlyError { return s.ro }

// snapshot is one Set as records, each list in (created_at, id) order,
// which is id order: they share one time.
type snapshot struct {
	set     *keyfile.Set
	account store.Account
	apps    []store.App
	tenants []store.App
	keys    []store.Key
	roles   []store.Role
	denials []store.Denial
}

// current is the snapshot of the Set being served. Two reads racing past
// a reload may both build it; they build the same records.
func (s *Store) current() *snapshot {
	set := s.src.Set()
	if sn := s.snap.Load(); sn != nil && sn.set == set {
		return sn
	}
	sn := build(set)
	s.snap.Store(sn)
	return sn
}

// build turns a Set into records, copies of the Set's: the data plane
// serves the Set.
func build(set *keyfile.Set) *snapshot {
	at := set.Modified()
	if at.IsZero() {
		at = time.Now().UTC()
	}
	at = at.UTC().Truncate(time.Microsecond) // as PostgreSQL keeps times and tokens carry them
	acct := set.Account()
	sn := &snapshot{set: set, account: store.Account{ID: acct, Name: acct, CreatedAt: at}}
	owners := func(os []keyfile.Owner) []store.App {
		out := make([]store.App, 0, len(os))
		for _, o := range os {
			out = append(out, store.App{AccountID: acct, ID: o.ID, Name: o.Name, Active: true, Quota: o.Quota, CreatedAt: at, UpdatedAt: at})
		}
		return sortByID(out, func(a store.App) string { return a.ID })
	}
	sn.apps = owners(set.Apps()) // an app has no quota: the file gives none
	sn.tenants = owners(set.Tenants())
	for _, r := range set.Roles() {
		sn.roles = append(sn.roles, store.Role{AccountID: acct, ID: r.ID, Name: r.Name, Description: r.Description,
			Scope: r.Scope, RateLimit: r.RateLimit, CreatedAt: at, UpdatedAt: at})
	}
	sortByID(sn.roles, func(r store.Role) string { return r.ID })
	for _, d := range set.Denials() {
		sn.denials = append(sn.denials, store.Denial{AccountID: acct, ID: d.ID, TenantID: d.TenantID, AppID: d.AppID,
			Scope: d.Scope, Reason: d.Reason, CreatedAt: at, UpdatedAt: at})
	}
	sortByID(sn.denials, func(d store.Denial) string { return d.ID })
	for _, spec := range set.Specs() {
		spec.IPFilters = slices.Clone(spec.IPFilters)
		spec.ResponseHeaders = slices.Clone(spec.ResponseHeaders)
		// A stored key holds its roles by id (RoleIDs), as PostgreSQL
		// reads them.
		roles := store.NormalizeRoleIDs(spec.Roles)
		spec.Roles = nil
		sn.keys = append(sn.keys, store.Key{Spec: spec, Origin: store.ImportOrigin(spec.Type), RoleIDs: roles, CreatedAt: at, UpdatedAt: at})
	}
	sortByID(sn.keys, func(k store.Key) string { return k.Spec.ID })
	return sn
}

func sortByID[T any](xs []T, id func(T) string) []T {
	slices.SortFunc(xs, func(a, b T) int { return strings.Compare(id(a), id(b)) })
	return xs
}

// find is the record of id in xs (sorted by id).
func find[T any](xs []T, id func(T) string, want string) (T, bool) {
	i, ok := slices.BinarySearchFunc(xs, want, func(x T, want string) int { return cmp.Compare(id(x), want) })
	if !ok {
		var zero T
		return zero, false
	}
	return xs[i], true
}

// page is one page of xs (sorted by id) after p's token, keeping those
// that pass keep (nil keeps all), and the next page's token ("" at the
// end). The records of a snapshot share one time, so the position is the
// token's id: see the package comment.
func page[T any](xs []T, p store.Page, id func(T) string, at func(T) time.Time, keep func(T) bool) ([]T, string, error) {
	size, after, err := store.ReadPage(p)
	if err != nil {
		return nil, "", err
	}
	start := 0
	if after != nil {
		start, _ = slices.BinarySearchFunc(xs, after.ID, func(x T, want string) int { return cmp.Compare(id(x), want) })
		if start < len(xs) && id(xs[start]) == after.ID {
			start++
		}
	}
	var out []T
	for _, x := range xs[start:] {
		if keep != nil && !keep(x) {
			continue
		}
		if len(out) == size {
			last := out[size-1]
			return out, store.PageToken{CreatedAt: at(last).UnixMicro(), ID: id(last)}.String(), nil
		}
		out = append(out, x)
	}
	return out, "", nil
}

// of is sn's records when accountID is the file's account, else none:
// another account's ids are not found, as in PostgreSQL.
func of[T any](sn *snapshot, accountID string, xs []T) []T {
	if accountID != sn.account.ID {
		return nil
	}
	return xs
}

func notFound(what, id string) error {
	return fmt.Errorf("%s %q: %w", what, id, store.ErrNotFound)
}

func appID(a store.App) string          { return a.ID }
func appAt(a store.App) time.Time       { return a.CreatedAt }
func keyID(k store.Key) string          { return k.Spec.ID }
func keyAt(k store.Key) time.Time       { return k.CreatedAt }
func roleID(r store.Role) string        { return r.ID }
func roleAt(r store.Role) time.Time     { return r.CreatedAt }
func denialID(d store.Denial) string    { return d.ID }
func denialAt(d store.Denial) time.Time { return d.CreatedAt }

// GetAccount returns the file's account.
func (s *Store) GetAccount(_ context.Context, id string) (store.Account, error) {
	sn := s.current()
	if id != sn.account.ID {
		return store.Account{}, notFound("account", id)
	}
	return sn.account, nil
}

// GetApp returns an app of the file.
func (s *Store) GetApp(_ context.Context, accountID, id string) (store.App, error) {
	sn := s.current()
	if a, ok := find(of(sn, accountID, sn.apps), appID, id); ok {
		return a, nil
	}
	return store.App{}, notFound("app", id)
}

// ListApps lists the file's apps.
func (s *Store) ListApps(_ context.Context, accountID string, p store.Page) ([]store.App, string, error) {
	sn := s.current()
	return page(of(sn, accountID, sn.apps), p, appID, appAt, nil)
}

// CountApps counts the file's apps.
func (s *Store) CountApps(_ context.Context, accountID string) (int, error) {
	sn := s.current()
	return len(of(sn, accountID, sn.apps)), nil
}

// CountTenants counts the file's tenants.
func (s *Store) CountTenants(_ context.Context, accountID string) (int, error) {
	sn := s.current()
	return len(of(sn, accountID, sn.tenants)), nil
}

// GetTenant returns a tenant of the file.
func (s *Store) GetTenant(_ context.Context, accountID, id string) (store.Tenant, error) {
	sn := s.current()
	if a, ok := find(of(sn, accountID, sn.tenants), appID, id); ok {
		return store.Tenant(a), nil
	}
	return store.Tenant{}, notFound("tenant", id)
}

// ListTenants lists the file's tenants.
func (s *Store) ListTenants(_ context.Context, accountID string, p store.Page) ([]store.Tenant, string, error) {
	sn := s.current()
	as, next, err := page(of(sn, accountID, sn.tenants), p, appID, appAt, nil)
	return store.TenantsOf(as), next, err
}

// GetKey returns a key of the file (its hash, never a secret: the file
// has none).
func (s *Store) GetKey(_ context.Context, accountID, id string) (store.Key, error) {
	sn := s.current()
	if k, ok := find(of(sn, accountID, sn.keys), keyID, id); ok {
		return own(k), nil
	}
	return store.Key{}, notFound("key", id)
}

// own is k with lists of its own: the snapshot's are shared by every
// read, and a caller may change what it is given.
func own(k store.Key) store.Key {
	k.Spec.IPFilters = slices.Clone(k.Spec.IPFilters)
	k.Spec.ResponseHeaders = slices.Clone(k.Spec.ResponseHeaders)
	k.RoleIDs = slices.Clone(k.RoleIDs)
	return k
}

// ListKeys lists the file's keys that pass f. The file records no
// last-used times: every key is unused, so UnusedSince selects them all
// (here and in CountKeys).
func (s *Store) ListKeys(_ context.Context, accountID string, f store.KeyFilter, p store.Page) ([]store.Key, string, error) {
	if err := checkType(f.Type); err != nil {
		return nil, "", err
	}
	if !f.Order.Valid() {
		return nil, "", fmt.Errorf("%w: order: unknown sort %q", store.ErrInvalid, f.Order.By)
	}
	size, after, err := store.ReadKeyPage(p, f.Order)
	if err != nil {
		return nil, "", err
	}
	sn := s.current()
	var ks []store.Key
	var next string
	if f.Order.IsDefault() {
		// Creation order is id order here (every key has the file's
		// time): paged by id, which stays in order across a reload.
		ks, next, err = page(of(sn, accountID, sn.keys), p, keyID, keyAt, func(k store.Key) bool { return f.Matches(&k) })
	} else {
		var all []store.Key
		for _, k := range of(sn, accountID, sn.keys) {
			if f.Matches(&k) {
				all = append(all, k)
			}
		}
		ks, next = store.SortKeyPage(all, f.Order, after, size)
	}
	for i := range ks {
		ks[i] = own(ks[i])
	}
	return ks, next, err
}

// CountKeys counts the file's keys that pass f.
func (s *Store) CountKeys(_ context.Context, accountID string, f store.KeyFilter) (int, error) {
	if err := checkType(f.Type); err != nil {
		return 0, err
	}
	n := 0
	sn := s.current()
	for _, k := range of(sn, accountID, sn.keys) {
		if f.Matches(&k) {
			n++
		}
	}
	return n, nil
}

// checkType refuses a filter's unknown key type, as PostgreSQL does.
func checkType(t authz.KeyType) error {
	switch t {
	case authz.KeyTypeUnknown, authz.KeyTypeService, authz.KeyTypeApp, authz.KeyTypeAccount:
		return nil
	}
	return fmt.Errorf("%w: type: unknown key type %d", store.ErrInvalid, t)
}

// ListAuditEvents lists no events: a keys file records no changes (the
// account service says so before asking, see account.Service.ReadOnly).
func (s *Store) ListAuditEvents(_ context.Context, _ string, _ store.AuditFilter, p store.Page) ([]store.AuditEvent, string, error) {
	if _, _, err := store.ReadPage(p); err != nil {
		return nil, "", err
	}
	return nil, "", nil
}

// GetRole returns a role of the file.
func (s *Store) GetRole(_ context.Context, accountID, id string) (store.Role, error) {
	sn := s.current()
	if r, ok := find(of(sn, accountID, sn.roles), roleID, id); ok {
		return r, nil
	}
	return store.Role{}, notFound("role", id)
}

// ListRoles lists the file's roles.
func (s *Store) ListRoles(_ context.Context, accountID string, p store.Page) ([]store.Role, string, error) {
	sn := s.current()
	return page(of(sn, accountID, sn.roles), p, roleID, roleAt, nil)
}

// GetDenial returns a service access denial of the file.
func (s *Store) GetDenial(_ context.Context, accountID, id string) (store.Denial, error) {
	sn := s.current()
	if d, ok := find(of(sn, accountID, sn.denials), denialID, id); ok {
		return d, nil
	}
	return store.Denial{}, notFound("denial", id)
}

// ListDenials lists the file's denials that pass f.
func (s *Store) ListDenials(_ context.Context, accountID string, f store.DenialFilter, p store.Page) ([]store.Denial, string, error) {
	sn := s.current()
	return page(of(sn, accountID, sn.denials), p, denialID, denialAt, func(d store.Denial) bool {
		return (f.TenantID == "" || d.TenantID == f.TenantID) && (f.AppID == "" || d.AppID == f.AppID)
	})
}
