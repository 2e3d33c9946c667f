// Package accounttest has test helpers for the Account API: an in-memory
// store.Accounts that is also an authz.KeyStore, and a running Account API
// server on a loopback port with a bootstrap account key.
//
// It is for tests only: the store keeps everything in maps behind one
// mutex and checks what it is given like a strict database would.
package accounttest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Store is an in-memory store.Accounts. Every key it is asked to store
// (created, updated, rotated) is compiled again with authz.Compile; a key
// that does not compile fails the test: the Account API must never hand a
// store a key the data plane could not load.
type Store struct {
	tb      testing.TB
	compile authz.CompileOptions
	now     func() time.Time

	mu       sync.Mutex
	accounts map[string]store.Account
	apps     *owners
	tenants  *owners // in their store.App form
	keys     map[ref]store.Key
	audit    []store.AuditEvent
	seq      int
	// Fail, when set, is returned by every call (and LookupKey).
	fail error
	// lookupFail is returned by LookupKey only.
	lookupFail error
}

type ref struct{ account, id string }

var (
	_ store.Accounts = (*Store)(nil)
	_ authz.KeyStore = (*Store)(nil)
)

// NewStore returns an empty store. now is its clock (nil: time.Now); opts
// are what it re-compiles keys with.
func NewStore(tb testing.TB, opts authz.CompileOptions, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		tb: tb, compile: opts, now: now,
		accounts: map[string]store.Account{},
		apps: &owners{kind: "app", m: map[ref]store.App{},
			owns: func(k store.Key, id string) bool { return k.Spec.AppID == id }},
		tenants: &owners{kind: "tenant", m: map[ref]store.App{},
			owns: func(k store.Key, id string) bool { return k.Spec.TenantID == id }},
		keys: map[ref]store.Key{},
	}
}

// SetFail makes every call return err (nil: back to normal).
func (s *Store) SetFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// SetLookupFail makes LookupKey return err (nil: back to normal).
func (s *Store) SetLookupFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookupFail = err
}

// Key returns a stored key with its hash, for tests that check what was
// stored.
func (s *Store) Key(accountID, id string) (store.Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[ref{accountID, id}]
	return k, ok
}

// Keys returns every stored key of every account.
func (s *Store) Keys() []store.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Key, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, k)
	}
	return out
}

func (s *Store) newID() string {
	s.seq++
	return fmt.Sprintf("gen-%04d", s.seq)
}

// record is an audit JSON object without secrets or hashes.
func record(v any) json.RawMessage {
	var m map[string]any
	switch o := v.(type) {
	case store.App:
		m = map[string]any{"id": o.ID, "name": o.Name, "description": o.Description, "active": o.Active}
	case store.Tenant:
		m = map[string]any{"id": o.ID, "name": o.Name, "description": o.Description, "active": o.Active}
	case store.Key:
		m = map[string]any{"id": o.Spec.ID, "name": o.Spec.Name, "type": o.Spec.Type.String(),
			"app_id": o.Spec.AppID, "tenant_id": o.Spec.TenantID, "scope": o.Spec.Scope,
			"active": o.Spec.Active, "group": o.Spec.Group, "description": o.Spec.Description,
			"ip_filters": o.Spec.IPFilters, "origin": string(o.Origin)}
	case store.Account:
		m = map[string]any{"id": o.ID, "name": o.Name}
	default:
		return nil
	}
	b, _ := json.Marshal(m)
	return b
}

func (s *Store) auditLocked(accountID string, actor store.Actor, action, objType, objID string, before, after any) {
	ev := store.AuditEvent{
		ID: int64(len(s.audit) + 1), AccountID: accountID, At: s.now(), Actor: actor,
		Action: action, ObjectType: objType, ObjectID: objID,
	}
	if before != nil {
		ev.Before = record(before)
	}
	if after != nil {
		ev.After = record(after)
	}
	s.audit = append(s.audit, ev)
}

// storeErr has its own message (naming the field, as the PostgreSQL
// store's do) and matches a store sentinel.
type storeErr struct {
	msg  string
	kind error
}

func (e *storeErr) Error() string { return e.msg }
func (e *storeErr) Unwrap() error { return e.kind }

func invalid(format string, args ...any) error {
	return &storeErr{msg: fmt.Sprintf(format, args...), kind: store.ErrInvalid}
}

func exists(format string, args ...any) error {
	return &storeErr{msg: fmt.Sprintf(format, args...), kind: store.ErrAlreadyExists}
}

// page cuts a sorted list: the token is the offset of the next item.
func page[T any](all []T, p store.Page) ([]T, string, error) {
	size := p.Size
	if size <= 0 {
		size = 100
	}
	size = min(size, 1000)
	off := 0
	if p.Token != "" {
		n, err := strconv.Atoi(p.Token)
		if err != nil || n < 0 || n > len(all) {
			return nil, "", invalid("page_token: not a token this list returned")
		}
		off = n
	}
	end := min(off+size, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return slices.Clone(all[off:end]), next, nil
}

// CreateAccount adds an account.
func (s *Store) CreateAccount(_ context.Context, actor store.Actor, a store.Account) (store.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Account{}, s.fail
	}
	if a.ID == "" {
		a.ID = s.newID()
	}
	if _, dup := s.accounts[a.ID]; dup {
		return store.Account{}, exists("account %q already exists", a.ID)
	}
	a.CreatedAt = s.now()
	s.accounts[a.ID] = a
	s.auditLocked(a.ID, actor, "account.create", "account", a.ID, nil, a)
	return a, nil
}

// GetAccount returns an account.
func (s *Store) GetAccount(_ context.Context, id string) (store.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Account{}, s.fail
	}
	a, ok := s.accounts[id]
	if !ok {
		return store.Account{}, store.ErrNotFound
	}
	return a, nil
}

func (s *Store) checkAccountLocked(id string) error {
	if _, ok := s.accounts[id]; !ok {
		return &storeErr{msg: fmt.Sprintf("account %q not found", id), kind: store.ErrNotFound}
	}
	return nil
}

// owners holds one kind of key owner, apps or tenants, which the store
// keeps alike (store.Tenant is a store.App).
type owners struct {
	kind string
	m    map[ref]store.App
	owns func(k store.Key, id string) bool // k belongs to owner id
}

// createOwner adds an app or tenant.
func (s *Store) createOwner(o *owners, actor store.Actor, a store.App) (store.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.App{}, s.fail
	}
	if err := s.checkAccountLocked(a.AccountID); err != nil {
		return store.App{}, err
	}
	if a.ID == "" {
		a.ID = s.newID()
	}
	if _, dup := o.m[ref{a.AccountID, a.ID}]; dup {
		return store.App{}, exists("%s id %q already exists in this account", o.kind, a.ID)
	}
	for r, other := range o.m {
		if r.account == a.AccountID && other.Name == a.Name {
			return store.App{}, exists("name %q already exists in this account", a.Name)
		}
	}
	a.CreatedAt, a.UpdatedAt = s.now(), s.now()
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
	a, ok := o.m[ref{accountID, id}]
	if !ok {
		return store.App{}, fmt.Errorf("%s %q: %w", o.kind, id, store.ErrNotFound)
	}
	return a, nil
}

// listOwners lists an account's apps or tenants by id.
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
	slices.SortFunc(all, func(a, b store.App) int { return cmp.Compare(a.ID, b.ID) })
	return page(all, p)
}

// updateOwner changes an app or tenant.
func (s *Store) updateOwner(o *owners, actor store.Actor, accountID, id string, u store.AppUpdate) (store.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.App{}, s.fail
	}
	a, ok := o.m[ref{accountID, id}]
	if !ok {
		return store.App{}, store.ErrNotFound
	}
	before := a
	a = u.Apply(a)
	a.UpdatedAt = s.now()
	o.m[ref{accountID, id}] = a
	s.auditLocked(accountID, actor, o.kind+".update", o.kind, id, before, a)
	return a, nil
}

// deleteOwner removes an app or tenant and its keys, as the PostgreSQL
// store does.
func (s *Store) deleteOwner(o *owners, actor store.Actor, accountID, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	a, ok := o.m[ref{accountID, id}]
	if !ok {
		return store.ErrNotFound
	}
	delete(o.m, ref{accountID, id})
	s.auditLocked(accountID, actor, o.kind+".delete", o.kind, id, a, nil)
	s.deleteKeysLocked(accountID, actor, func(k store.Key) bool { return o.owns(k, id) })
	return nil
}

// deleteKeysLocked deletes (and audits) the account's keys that match.
func (s *Store) deleteKeysLocked(accountID string, actor store.Actor, match func(store.Key) bool) {
	var ids []string
	for r, k := range s.keys {
		if r.account == accountID && match(k) {
			ids = append(ids, r.id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		k := s.keys[ref{accountID, id}]
		delete(s.keys, ref{accountID, id})
		s.auditLocked(accountID, actor, "key.delete", "key", id, k, nil)
	}
}

// CreateApp adds an app.
func (s *Store) CreateApp(_ context.Context, actor store.Actor, a store.App) (store.App, error) {
	return s.createOwner(s.apps, actor, a)
}

// GetApp returns an app.
func (s *Store) GetApp(_ context.Context, accountID, id string) (store.App, error) {
	return s.getOwner(s.apps, accountID, id)
}

// ListApps lists an account's apps by id.
func (s *Store) ListApps(_ context.Context, accountID string, p store.Page) ([]store.App, string, error) {
	return s.listOwners(s.apps, accountID, p)
}

// UpdateApp changes an app.
func (s *Store) UpdateApp(_ context.Context, actor store.Actor, accountID, id string, u store.AppUpdate) (store.App, error) {
	return s.updateOwner(s.apps, actor, accountID, id, u)
}

// DeleteApp removes an app and its keys.
func (s *Store) DeleteApp(_ context.Context, actor store.Actor, accountID, id string) error {
	return s.deleteOwner(s.apps, actor, accountID, id)
}

// CreateTenant adds a tenant.
func (s *Store) CreateTenant(_ context.Context, actor store.Actor, t store.Tenant) (store.Tenant, error) {
	a, err := s.createOwner(s.tenants, actor, store.App(t))
	return store.Tenant(a), err
}

// GetTenant returns a tenant.
func (s *Store) GetTenant(_ context.Context, accountID, id string) (store.Tenant, error) {
	a, err := s.getOwner(s.tenants, accountID, id)
	return store.Tenant(a), err
}

// ListTenants lists an account's tenants by id.
func (s *Store) ListTenants(_ context.Context, accountID string, p store.Page) ([]store.Tenant, string, error) {
	as, next, err := s.listOwners(s.tenants, accountID, p)
	if err != nil {
		return nil, "", err
	}
	return store.TenantsOf(as), next, nil
}

// UpdateTenant changes a tenant.
func (s *Store) UpdateTenant(_ context.Context, actor store.Actor, accountID, id string, u store.AppUpdate) (store.Tenant, error) {
	a, err := s.updateOwner(s.tenants, actor, accountID, id, u)
	return store.Tenant(a), err
}

// DeleteTenant removes a tenant and its keys.
func (s *Store) DeleteTenant(_ context.Context, actor store.Actor, accountID, id string) error {
	return s.deleteOwner(s.tenants, actor, accountID, id)
}

// checkKeyLocked is the store's own refusal of a key: it must compile, its
// app and tenant must exist, its name must be unique in the account.
func (s *Store) checkKeyLocked(k store.Key) error {
	s.tb.Helper()
	// Response headers stored under older rules may stay as they are (the
	// data plane drops them at load); new or changed ones must pass.
	_, err := authz.Compile(k.Spec, s.compile)
	if old, ok := s.keys[ref{k.Spec.AccountID, k.Spec.ID}]; err != nil && ok &&
		slices.Equal(old.Spec.ResponseHeaders, k.Spec.ResponseHeaders) {
		_, _, err = authz.CompileStored(k.Spec, s.compile)
	}
	if err != nil {
		s.tb.Errorf("accounttest: the store was handed a key that does not compile: %v", err)
		return invalid("invalid key: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if err := s.checkAccountLocked(k.Spec.AccountID); err != nil {
		return err
	}
	if k.Spec.AppID != "" {
		if _, ok := s.apps.m[ref{k.Spec.AccountID, k.Spec.AppID}]; !ok {
			return &storeErr{msg: fmt.Sprintf("app %q not found", k.Spec.AppID), kind: store.ErrNotFound}
		}
	}
	if k.Spec.TenantID != "" {
		if _, ok := s.tenants.m[ref{k.Spec.AccountID, k.Spec.TenantID}]; !ok {
			return &storeErr{msg: fmt.Sprintf("tenant %q not found", k.Spec.TenantID), kind: store.ErrNotFound}
		}
	}
	for r, o := range s.keys {
		if r.account == k.Spec.AccountID && r.id != k.Spec.ID && o.Spec.Name == k.Spec.Name {
			return exists("name %q already exists in this account", k.Spec.Name)
		}
		if r.id != k.Spec.ID && (o.Spec.Hash == k.Spec.Hash || o.Spec.PreviousHash == k.Spec.Hash) {
			return exists("hash is already in use by another key")
		}
	}
	return nil
}

// withNames fills the app and tenant names, as reads do.
func (s *Store) withNamesLocked(k store.Key) store.Key {
	if a, ok := s.apps.m[ref{k.Spec.AccountID, k.Spec.AppID}]; ok {
		k.Spec.AppName = a.Name
	}
	if t, ok := s.tenants.m[ref{k.Spec.AccountID, k.Spec.TenantID}]; ok {
		k.Spec.TenantName = t.Name
	}
	return k
}

func cloneKey(k store.Key) store.Key {
	k.Spec.IPFilters = slices.Clone(k.Spec.IPFilters)
	k.Spec.ResponseHeaders = slices.Clone(k.Spec.ResponseHeaders)
	return k
}

// CreateKey stores a new key.
func (s *Store) CreateKey(_ context.Context, actor store.Actor, k store.Key) (store.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Key{}, s.fail
	}
	k = cloneKey(k)
	if k.Spec.ID == "" {
		k.Spec.ID = s.newID()
	}
	if _, dup := s.keys[ref{k.Spec.AccountID, k.Spec.ID}]; dup {
		return store.Key{}, exists("key id %q already exists", k.Spec.ID)
	}
	if err := s.checkKeyLocked(k); err != nil {
		return store.Key{}, err
	}
	k.CreatedAt, k.UpdatedAt = s.now(), s.now()
	k.LastUsedAt = time.Time{}
	k.Spec.AppName, k.Spec.TenantName = "", ""
	s.keys[ref{k.Spec.AccountID, k.Spec.ID}] = k
	s.auditLocked(k.Spec.AccountID, actor, "key.create", "key", k.Spec.ID, nil, k)
	return s.withNamesLocked(cloneKey(k)), nil
}

// GetKey returns a key.
func (s *Store) GetKey(_ context.Context, accountID, id string) (store.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Key{}, s.fail
	}
	k, ok := s.keys[ref{accountID, id}]
	if !ok {
		return store.Key{}, store.ErrNotFound
	}
	return s.withNamesLocked(cloneKey(k)), nil
}

// ListKeys lists an account's keys by id.
func (s *Store) ListKeys(_ context.Context, accountID string, f store.KeyFilter, p store.Page) ([]store.Key, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, "", s.fail
	}
	var all []store.Key
	for r, k := range s.keys {
		sp := &k.Spec
		switch {
		case r.account != accountID,
			f.AppID != "" && sp.AppID != f.AppID,
			f.TenantID != "" && sp.TenantID != f.TenantID,
			f.Group != "" && sp.Group != f.Group,
			f.Type != authz.KeyTypeUnknown && sp.Type != f.Type,
			f.Active != nil && sp.Active != *f.Active,
			!f.ExpiringBefore.IsZero() && (sp.ExpiresAt.IsZero() || !sp.ExpiresAt.Before(f.ExpiringBefore)),
			!f.UnusedSince.IsZero() && !k.LastUsedAt.IsZero() && !k.LastUsedAt.Before(f.UnusedSince):
			continue
		}
		all = append(all, s.withNamesLocked(cloneKey(k)))
	}
	slices.SortFunc(all, func(a, b store.Key) int { return cmp.Compare(a.Spec.ID, b.Spec.ID) })
	return page(all, p)
}

// UpdateKey changes the fields u sets.
func (s *Store) UpdateKey(_ context.Context, actor store.Actor, accountID, id string, u store.KeyUpdate) (store.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Key{}, s.fail
	}
	k, ok := s.keys[ref{accountID, id}]
	if !ok {
		return store.Key{}, store.ErrNotFound
	}
	before := k
	k = cloneKey(k)
	k.Spec = u.Apply(k.Spec)
	if err := s.checkKeyLocked(k); err != nil {
		return store.Key{}, err
	}
	k.UpdatedAt = s.now()
	s.keys[ref{accountID, id}] = k
	s.auditLocked(accountID, actor, "key.update", "key", id, before, k)
	return s.withNamesLocked(cloneKey(k)), nil
}

// RotateKey replaces a key's hash, keeping the old one until graceUntil.
func (s *Store) RotateKey(_ context.Context, actor store.Actor, accountID, id, newHash string, graceUntil time.Time) (store.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Key{}, s.fail
	}
	k, ok := s.keys[ref{accountID, id}]
	if !ok {
		return store.Key{}, store.ErrNotFound
	}
	before := k
	k = cloneKey(k)
	// As the PostgreSQL store: a grace end not in the future drops the old
	// hash at once; the origin stays as it was.
	if graceUntil.After(s.now()) {
		k.Spec.PreviousHash, k.Spec.PreviousValidUntil = k.Spec.Hash, graceUntil
	} else {
		k.Spec.PreviousHash, k.Spec.PreviousValidUntil = "", time.Time{}
	}
	k.Spec.Hash = newHash
	if err := s.checkKeyLocked(k); err != nil {
		return store.Key{}, err
	}
	k.UpdatedAt = s.now()
	s.keys[ref{accountID, id}] = k
	s.auditLocked(accountID, actor, "key.regenerate", "key", id, before, k)
	return s.withNamesLocked(cloneKey(k)), nil
}

// DeleteKey removes a key.
func (s *Store) DeleteKey(_ context.Context, actor store.Actor, accountID, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	k, ok := s.keys[ref{accountID, id}]
	if !ok {
		return store.ErrNotFound
	}
	delete(s.keys, ref{accountID, id})
	s.auditLocked(accountID, actor, "key.delete", "key", id, k, nil)
	return nil
}

// ListAuditEvents lists an account's audit events, oldest first.
func (s *Store) ListAuditEvents(_ context.Context, accountID string, p store.Page) ([]store.AuditEvent, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, "", s.fail
	}
	var all []store.AuditEvent
	for _, e := range s.audit {
		if e.AccountID == accountID {
			all = append(all, e)
		}
	}
	return page(all, p)
}

// Touch records a key's last use.
func (s *Store) Touch(accountID, id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[ref{accountID, id}]; ok {
		k.LastUsedAt = at
		s.keys[ref{accountID, id}] = k
	}
}

// LookupKey is the authz.KeyStore view: the compiled key whose current or
// previous hash has digest d. Keys of inactive apps or tenants come back
// inactive, as store.Source promises.
func (s *Store) LookupKey(_ context.Context, d apikey.Digest) (*authz.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	if s.lookupFail != nil {
		return nil, s.lookupFail
	}
	for _, k := range s.keys {
		_, cur, err1 := apikey.ParseHash(k.Spec.Hash)
		_, prev, err2 := apikey.ParseHash(k.Spec.PreviousHash)
		if !(err1 == nil && cur == d) && !(err2 == nil && prev == d) {
			continue
		}
		k = s.withNamesLocked(cloneKey(k))
		if a, ok := s.apps.m[ref{k.Spec.AccountID, k.Spec.AppID}]; ok && !a.Active {
			k.Spec.Active = false
		}
		if t, ok := s.tenants.m[ref{k.Spec.AccountID, k.Spec.TenantID}]; ok && !t.Active {
			k.Spec.Active = false
		}
		ck, _, err := authz.CompileStored(k.Spec, s.compile)
		if err != nil {
			return nil, errors.New("accounttest: stored key does not compile")
		}
		return ck, nil
	}
	return nil, authz.ErrKeyNotFound
}
