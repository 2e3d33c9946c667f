// Apps and tenants: the owners of keys, which the store keeps alike.

package accounttest

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// owners holds one kind of key owner, apps or tenants, which the store
// keeps alike (store.Tenant is a store.App).
type owners struct {
	kind string
	m    map[ref]store.App
	owns func(k store.Key, id string) bool // k belongs to owner id
}

func (o *owners) getLocked(accountID, id string) (store.App, error) {
	a, ok := o.m[ref{accountID, id}]
	if !ok {
		return store.App{}, notFound("%s %q not found in account %q", o.kind, id, accountID)
	}
	return a, nil
}

// nameTakenLocked reports whether another owner of the account has name.
func (o *owners) nameTakenLocked(accountID, id, name string) bool {
	for r, other := range o.m {
		if r.account == accountID && r.id != id && other.Name == name {
			return true
		}
	}
	return false
}

// createOwner adds an app or tenant.
func (s *Store) createOwner(o *owners, actor store.Actor, a store.App) (store.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.App{}, s.fail
	}
	if err := s.reserveLocked(a.AccountID, o.kind+"s"); err != nil {
		return store.App{}, err
	}
	if a.ID == "" {
		a.ID = newID()
	}
	if err := checkOwner(a); err != nil {
		return store.App{}, err
	}
	if _, dup := o.m[ref{a.AccountID, a.ID}]; dup {
		return store.App{}, exists("%s id %q already exists in this account", o.kind, a.ID)
	}
	if o.nameTakenLocked(a.AccountID, a.ID, a.Name) {
		return store.App{}, exists("name %q already exists in this account", a.Name)
	}
	if err := s.checkAccountLocked(a.AccountID); err != nil {
		return store.App{}, err
	}
	a.CreatedAt = s.clock()
	a.UpdatedAt = a.CreatedAt
	o.m[ref{a.AccountID, a.ID}] = a
	s.auditLocked(a.AccountID, actor, o.kind+".create", o.kind, a.ID, nil, a)
	return a, nil
}

// getOwner returns an app or tenant.
func (s *Store) getOwner(o *owners, accountID, id string) (store.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.App{}, s.fail
	}
	return o.getLocked(accountID, id)
}

// listOwners lists an account's apps or tenants in creation order.
func (s *Store) listOwners(o *owners, accountID string, p store.Page) ([]store.App, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, "", s.fail
	}
	var all []store.App
	for r, a := range o.m {
		if r.account == accountID {
			all = append(all, a)
		}
	}
	return keysetPage(all, p, func(a store.App) (time.Time, string) { return a.CreatedAt, a.ID })
}

// countOwners counts an account's apps or tenants.
func (s *Store) countOwners(o *owners, accountID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	n := 0
	for r := range o.m {
		if r.account == accountID {
			n++
		}
	}
	return n, nil
}

// updateOwner changes an app or tenant; an update that sets nothing
// writes nothing.
func (s *Store) updateOwner(o *owners, actor store.Actor, accountID, id string, u store.AppUpdate) (store.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.App{}, s.fail
	}
	before, err := o.getLocked(accountID, id)
	if err != nil || u == (store.AppUpdate{}) {
		return before, err
	}
	a := u.Apply(before)
	if err := checkOwner(a); err != nil {
		return store.App{}, err
	}
	if o.nameTakenLocked(accountID, id, a.Name) {
		return store.App{}, exists("name %q already exists in this account", a.Name)
	}
	a.UpdatedAt = s.clock()
	o.m[ref{accountID, id}] = a
	s.auditLocked(accountID, actor, o.kind+".update", o.kind, id, before, a)
	return a, nil
}

// deleteOwner removes an app or tenant and its keys, audited as
// PostgreSQL's cascade is: the owner, then each key in creation order.
func (s *Store) deleteOwner(o *owners, actor store.Actor, accountID, id string, cascade bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	a, err := o.getLocked(accountID, id)
	if err != nil {
		return err
	}
	var gone []store.Key
	for _, k := range s.keys {
		if k.Spec.AccountID == accountID && o.owns(k, id) {
			gone = append(gone, k)
		}
	}
	sortKeys(gone)
	if len(gone) > 0 && !cascade {
		return &store.HasKeysError{Object: o.kind, ID: id, Keys: len(gone)}
	}
	delete(o.m, ref{accountID, id})
	s.auditLocked(accountID, actor, o.kind+".delete", o.kind, id, a, nil)
	for _, k := range gone {
		delete(s.keys, keyRef(k))
		s.auditLocked(accountID, actor, "key.delete", "key", k.Spec.ID, s.readLocked(k), nil)
	}
	s.deleteDenialsOfLocked(actor, o.kind, accountID, id)
	return nil
}

// sortKeys sorts keys in creation order.
func sortKeys(keys []store.Key) {
	slices.SortFunc(keys, func(a, b store.Key) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Spec.ID, b.Spec.ID))
	})
}

// CreateApp adds an app.
func (s *Store) CreateApp(ctx context.Context, actor store.Actor, a store.App) (store.App, error) {
	defer s.noteChange(ctx)
	return s.createOwner(s.apps, actor, a)
}

// GetApp returns an app.
func (s *Store) GetApp(_ context.Context, accountID, id string) (store.App, error) {
	return s.getOwner(s.apps, accountID, id)
}

// ListApps lists an account's apps in creation order.
func (s *Store) ListApps(_ context.Context, accountID string, p store.Page) ([]store.App, string, error) {
	return s.listOwners(s.apps, accountID, p)
}

// CountApps counts an account's apps.
func (s *Store) CountApps(_ context.Context, accountID string) (int, error) {
	return s.countOwners(s.apps, accountID)
}

// UpdateApp changes an app.
func (s *Store) UpdateApp(ctx context.Context, actor store.Actor, accountID, id string, u store.AppUpdate) (store.App, error) {
	defer s.noteChange(ctx)
	return s.updateOwner(s.apps, actor, accountID, id, u)
}

// DeleteApp removes an app, and its keys if cascade (else only if it has
// none).
func (s *Store) DeleteApp(ctx context.Context, actor store.Actor, accountID, id string, cascade bool) error {
	defer s.noteChange(ctx)
	return s.deleteOwner(s.apps, actor, accountID, id, cascade)
}

// CreateTenant adds a tenant.
func (s *Store) CreateTenant(ctx context.Context, actor store.Actor, t store.Tenant) (store.Tenant, error) {
	defer s.noteChange(ctx)
	a, err := s.createOwner(s.tenants, actor, store.App(t))
	return store.Tenant(a), err
}

// GetTenant returns a tenant.
func (s *Store) GetTenant(_ context.Context, accountID, id string) (store.Tenant, error) {
	a, err := s.getOwner(s.tenants, accountID, id)
	return store.Tenant(a), err
}

// ListTenants lists an account's tenants in creation order.
func (s *Store) ListTenants(_ context.Context, accountID string, p store.Page) ([]store.Tenant, string, error) {
	as, next, err := s.listOwners(s.tenants, accountID, p)
	if err != nil {
		return nil, "", err
	}
	return store.TenantsOf(as), next, nil
}

// CountTenants counts an account's tenants.
func (s *Store) CountTenants(_ context.Context, accountID string) (int, error) {
	return s.countOwners(s.tenants, accountID)
}

// UpdateTenant changes a tenant.
func (s *Store) UpdateTenant(ctx context.Context, actor store.Actor, accountID, id string, u store.AppUpdate) (store.Tenant, error) {
	defer s.noteChange(ctx)
	a, err := s.updateOwner(s.tenants, actor, accountID, id, u)
	return store.Tenant(a), err
}

// DeleteTenant removes a tenant, and its keys if cascade (else only if it
// has none).
func (s *Store) DeleteTenant(ctx context.Context, actor store.Actor, accountID, id string, cascade bool) error {
	defer s.noteChange(ctx)
	return s.deleteOwner(s.tenants, actor, accountID, id, cascade)
}
