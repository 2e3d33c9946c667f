package filestore

import (
	"context"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// Every write of store.Accounts: refused with the read-only error, which
// names the file to edit. Nothing is written anywhere.

func (s *Store) CreateAccount(context.Context, store.Actor, store.Account) (store.Account, error) {
	return store.Account{}, s.ro
}

func (s *Store) CreateApp(context.Context, store.Actor, store.App) (store.App, error) {
	return store.App{}, s.ro
}

func (s *Store) UpdateApp(context.Context, store.Actor, string, string, store.AppUpdate) (store.App, error) {
	return store.App{}, s.ro
}

func (s *Store) DeleteApp(context.Context, store.Actor, string, string, bool) error { return s.ro }

func (s *Store) CreateTenant(context.Context, store.Actor, store.Tenant) (store.Tenant, error) {
	return store.Tenant{}, s.ro
}

func (s *Store) UpdateTenant(context.Context, store.Actor, string, string, store.AppUpdate) (store.Tenant, error) {
	return store.Tenant{}, s.ro
}

func (s *Store) DeleteTenant(context.Context, store.Actor, string, string, bool) error { return s.ro }

func (s *Store) CreateKey(context.Context, store.Actor, store.Key) (store.Key, error) {
	return store.Key{}, s.ro
}

func (s *Store) UpdateKey(context.Context, store.Actor, string, string, store.KeyUpdate) (store.Key, error) {
	return store.Key{}, s.ro
}

func (s *Store) RotateKey(context.Context, store.Actor, string, string, string, time.Time) (store.Key, error) {
	return store.Key{}, s.ro
}

func (s *Store) DeleteKey(context.Context, store.Actor, string, string) error { return s.ro }

// UpdateKeys is refused before check sees any key.
func (s *Store) UpdateKeys(context.Context, store.Actor, string, store.KeyFilter, store.KeyUpdate, func([]store.Key) error) ([]store.Key, error) {
	return nil, s.ro
}

// RecordDenied is refused too: the file keeps no audit log.
func (s *Store) RecordDenied(context.Context, store.Actor, string, store.DeniedEvent) error {
	return s.ro
}

func (s *Store) CreateRole(context.Context, store.Actor, store.Role) (store.Role, error) {
	return store.Role{}, s.ro
}

func (s *Store) UpdateRole(context.Context, store.Actor, string, string, store.RoleUpdate) (store.Role, error) {
	return store.Role{}, s.ro
}

func (s *Store) DeleteRole(context.Context, store.Actor, string, string, bool) error { return s.ro }

func (s *Store) CreateDenial(context.Context, store.Actor, store.Denial) (store.Denial, error) {
	return store.Denial{}, s.ro
}

func (s *Store) UpdateDenial(context.Context, store.Actor, string, string, store.DenialUpdate) (store.Denial, error) {
	return store.Denial{}, s.ro
}

func (s *Store) DeleteDenial(context.Context, store.Actor, string, string) error { return s.ro }
