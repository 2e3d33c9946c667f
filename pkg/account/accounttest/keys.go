package accounttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Key returns a stored key with its hash, for tests that check what was
// stored.
func (s *Store) Key(accountID, id string) (store.Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[ref{accountID, id}]
	if !ok {
		return store.Key{}, false
	}
	return s.readLocked(k), true
}

// Keys returns every stored key of every account.
func (s *Store) Keys() []store.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Key, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, s.readLocked(k))
	}
	return out
}

// getKeyLocked finds a key of an account.
func (s *Store) getKeyLocked(accountID, id string) (store.Key, error) {
	k, ok := s.keys[ref{accountID, id}]
	if !ok {
		return store.Key{}, notFound("key %q not found in account %q", id, accountID)
	}
	return k, nil
}

// readLocked is a stored key as reads return it: a copy, with its app's
// and tenant's names.
func (s *Store) readLocked(k store.Key) store.Key {
	k.Spec.IPFilters = slices.Clone(k.Spec.IPFilters)
	k.Spec.ResponseHeaders = slices.Clone(k.Spec.ResponseHeaders)
	k.RoleIDs = slices.Clone(k.RoleIDs)
	if a, ok := s.apps.m[ref{k.Spec.AccountID, k.Spec.AppID}]; ok {
		k.Spec.AppName = a.Name
	}
	if t, ok := s.tenants.m[ref{k.Spec.AccountID, k.Spec.TenantID}]; ok {
		k.Spec.TenantName = t.Name
	}
	return k
}

// stored is k as the database keeps it: times to the microsecond, empty
// lists as none, no app or tenant names, lists not shared with the caller.
func stored(k store.Key) store.Key {
	sp := &k.Spec
	sp.AppName, sp.TenantName = "", ""
	sp.NotBefore, sp.ExpiresAt = dbTime(sp.NotBefore), dbTime(sp.ExpiresAt)
	sp.PreviousValidUntil = dbTime(sp.PreviousValidUntil)
	sp.IPFilters = slices.Clip(slices.Clone(sp.IPFilters))
	if len(sp.IPFilters) == 0 {
		sp.IPFilters = nil
	}
	sp.ResponseHeaders = slices.Clip(slices.Clone(sp.ResponseHeaders))
	if len(sp.ResponseHeaders) == 0 {
		sp.ResponseHeaders = nil
	}
	k.RoleIDs = store.NormalizeRoleIDs(k.RoleIDs)
	return k
}

// digestOf is the hex part of a hash: PostgreSQL keeps digests unique
// whatever the algorithm.
func digestOf(hash string) string {
	_, d, _ := strings.Cut(hash, ":")
	return d
}

// checkKeyLocked is the store's own refusal of a key about to be written:
// it must compile, its id, name and hashes must be free, its account, app
// and tenant must exist.
func (s *Store) checkKeyLocked(k store.Key, isNew bool) error {
	s.tb.Helper()
	spec := k.Spec
	if spec.ID == "" {
		spec.ID = "(new)"
	}
	// Response headers stored under older rules may stay as they are (the
	// data plane drops them at load); new or changed ones must pass.
	_, err := authz.Compile(spec, s.compile)
	if old, ok := s.keys[keyRef(k)]; err != nil && ok && !isNew &&
		slices.Equal(old.Spec.ResponseHeaders, k.Spec.ResponseHeaders) {
		_, _, err = authz.CompileStored(spec, s.compile)
	}
	if err != nil {
		if !s.lenient {
			s.tb.Errorf("accounttest: the store was handed a key that does not compile: %v", err)
		}
		return invalid("invalid key: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if _, dup := s.keys[keyRef(k)]; isNew && dup {
		return exists("key id %q already exists in this account", k.Spec.ID)
	}
	cur, prev := digestOf(k.Spec.Hash), digestOf(k.Spec.PreviousHash)
	for r, o := range s.keys {
		if r == keyRef(k) {
			continue
		}
		if o.Spec.AccountID == k.Spec.AccountID && o.Spec.Name == k.Spec.Name {
			return exists("name %q already exists in this account", k.Spec.Name)
		}
		oc, op := digestOf(o.Spec.Hash), digestOf(o.Spec.PreviousHash)
		if cur == oc || cur == op || prev != "" && (prev == oc || prev == op) {
			return &storeErr{msg: "hash is already in use by another key", kind: store.ErrSecretInUse}
		}
	}
	if err := s.checkAccountLocked(k.Spec.AccountID); err != nil {
		return err
	}
	if k.Spec.AppID != "" {
		if _, err := s.apps.getLocked(k.Spec.AccountID, k.Spec.AppID); err != nil {
			return err
		}
	}
	if k.Spec.TenantID != "" {
		if _, err := s.tenants.getLocked(k.Spec.AccountID, k.Spec.TenantID); err != nil {
			return err
		}
	}
	return s.checkRolesLocked(k.Spec.AccountID, k.RoleIDs)
}

// CreateKey stores a new key.
func (s *Store) CreateKey(ctx context.Context, actor store.Actor, k store.Key) (store.Key, error) {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Key{}, s.fail
	}
	if err := s.reserveLocked(k.Spec.AccountID, store.QuotaKeys); err != nil {
		return store.Key{}, err
	}
	k = stored(k)
	if k.Origin == "" {
		k.Origin = store.OriginGenerated
	}
	if err := s.checkKeyLocked(k, true); err != nil {
		return store.Key{}, err
	}
	if k.Spec.ID == "" {
		k.Spec.ID = newID()
	}
	k.CreatedAt = s.clock()
	k.UpdatedAt, k.LastUsedAt = k.CreatedAt, time.Time{}
	s.keys[keyRef(k)] = k
	out := s.readLocked(k)
	s.auditLocked(k.Spec.AccountID, actor, "key.create", "key", k.Spec.ID, nil, out)
	return out, nil
}

// GetKey returns a key.
func (s *Store) GetKey(_ context.Context, accountID, id string) (store.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Key{}, s.fail
	}
	k, err := s.getKeyLocked(accountID, id)
	if err != nil {
		return store.Key{}, err
	}
	return s.readLocked(k), nil
}

// ListKeys lists an account's keys in creation order, filtered by f.
func (s *Store) ListKeys(_ context.Context, accountID string, f store.KeyFilter, p store.Page) ([]store.Key, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, "", s.fail
	}
	if !f.Order.Valid() {
		return nil, "", invalid("order_by: unknown sort %q", f.Order.By)
	}
	size, after, err := store.ReadKeyPage(p, f.Order)
	if err != nil {
		return nil, "", err
	}
	switch f.Type {
	case authz.KeyTypeUnknown, authz.KeyTypeService, authz.KeyTypeApp, authz.KeyTypeAccount:
	default:
		return nil, "", invalid("type: unknown key type %d", f.Type)
	}
	out, next := store.SortKeyPage(s.matchLocked(accountID, f), f.Order, after, size)
	return out, next, nil
}

// matchLocked are the keys of an account that pass f, as reads return
// them, in no particular order.
func (s *Store) matchLocked(accountID string, f store.KeyFilter) []store.Key {
	var all []store.Key
	for _, k := range s.keys {
		if k.Spec.AccountID != accountID {
			continue
		}
		if k = s.readLocked(k); f.Matches(&k) {
			all = append(all, k)
		}
	}
	return all
}

// CountKeys counts an account's keys that pass f.
func (s *Store) CountKeys(_ context.Context, accountID string, f store.KeyFilter) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	switch f.Type {
	case authz.KeyTypeUnknown, authz.KeyTypeService, authz.KeyTypeApp, authz.KeyTypeAccount:
	default:
		return 0, invalid("type: unknown key type %d", f.Type)
	}
	return len(s.matchLocked(accountID, f)), nil
}

// UpdateKeys applies u to every key of the account that passes f, all or
// nothing, after check has seen the matching keys in creation order.
func (s *Store) UpdateKeys(ctx context.Context, actor store.Actor, accountID string, f store.KeyFilter, u store.KeyUpdate, check func([]store.Key) error) ([]store.Key, error) {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	switch f.Type {
	case authz.KeyTypeUnknown, authz.KeyTypeService, authz.KeyTypeApp, authz.KeyTypeAccount:
	default:
		return nil, invalid("type: unknown key type %d", f.Type)
	}
	matched := s.matchLocked(accountID, f)
	slices.SortFunc(matched, func(a, b store.Key) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Spec.ID, b.Spec.ID)
	})
	if check != nil {
		if err := check(matched); err != nil {
			return nil, err
		}
	}
	if u == (store.KeyUpdate{}) {
		return matched, nil
	}
	next := make([]store.Key, len(matched))
	for i, k := range matched {
		cur := s.keys[keyRef(k)]
		n := stored(cur)
		n.Spec = u.Apply(n.Spec)
		n = stored(n)
		if err := s.checkKeyLocked(n, false); err != nil {
			return nil, fmt.Errorf("key %q: %w", k.Spec.ID, err)
		}
		next[i] = n
	}
	now := s.clock()
	out := make([]store.Key, len(next))
	for i, n := range next {
		n.UpdatedAt = now
		s.keys[keyRef(n)] = n
		out[i] = s.readLocked(n)
		s.auditLocked(accountID, actor, "key.update", "key", n.Spec.ID, matched[i], out[i])
	}
	return out, nil
}

// updateKey applies change to a copy of a key, checks and stores the
// copy, and audits it.
func (s *Store) updateKey(actor store.Actor, accountID, id, action string, change func(k *store.Key) error) (store.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Key{}, s.fail
	}
	cur, err := s.getKeyLocked(accountID, id)
	if err != nil {
		return store.Key{}, err
	}
	next := stored(cur)
	if err := change(&next); err != nil {
		return store.Key{}, err
	}
	next = stored(next)
	if err := s.checkKeyLocked(next, false); err != nil {
		return store.Key{}, err
	}
	next.UpdatedAt = s.clock()
	s.keys[ref{accountID, id}] = next
	out := s.readLocked(next)
	s.auditLocked(accountID, actor, action, "key", id, s.readLocked(cur), out)
	return out, nil
}

// UpdateKey changes the fields u sets; an update that sets nothing writes
// nothing.
func (s *Store) UpdateKey(ctx context.Context, actor store.Actor, accountID, id string, u store.KeyUpdate) (store.Key, error) {
	defer s.noteChange(ctx)
	if u == (store.KeyUpdate{}) {
		return s.GetKey(ctx, accountID, id)
	}
	return s.updateKey(actor, accountID, id, "key.update", func(k *store.Key) error {
		k.Spec = u.Apply(k.Spec)
		if u.RoleIDs != nil {
			k.RoleIDs = slices.Clone(*u.RoleIDs)
		}
		return nil
	})
}

// RotateKey replaces a key's hash, keeping the old one until graceUntil
// when that is in the future (else dropping it, and any older one, at
// once).
func (s *Store) RotateKey(ctx context.Context, actor store.Actor, accountID, id, newHash string, graceUntil time.Time) (store.Key, error) {
	defer s.noteChange(ctx)
	return s.updateKey(actor, accountID, id, "key.regenerate", func(k *store.Key) error {
		if !k.Rotate(newHash, graceUntil, s.now()) {
			return invalid("hash: the new hash is the key's current one")
		}
		return nil
	})
}

// DeleteKey removes a key.
func (s *Store) DeleteKey(ctx context.Context, actor store.Actor, accountID, id string) error {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	k, err := s.getKeyLocked(accountID, id)
	if err != nil {
		return err
	}
	delete(s.keys, ref{accountID, id})
	s.auditLocked(accountID, actor, "key.delete", "key", id, s.readLocked(k), nil)
	return nil
}

// TouchKeys records last-used times, keeping the later of the stored and
// the given time; unknown keys are skipped. It is no change of the record:
// no updated_at, no audit event.
func (s *Store) TouchKeys(_ context.Context, used map[store.KeyRef]time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	for r, at := range used {
		s.touchLocked(ref{r.AccountID, r.ID}, at)
	}
	return nil
}

// Touch records a key's last use (TouchKeys for one key of an account).
func (s *Store) Touch(accountID, id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.touchLocked(ref{accountID, id}, at)
}

func (s *Store) touchLocked(r ref, at time.Time) {
	if k, ok := s.keys[r]; ok && dbTime(at).After(k.LastUsedAt) {
		k.LastUsedAt = dbTime(at)
		s.keys[r] = k
	}
}

// keyRef is where s.keys holds k.
func keyRef(k store.Key) ref { return ref{k.Spec.AccountID, k.Spec.ID} }

// LookupKey is the authz.KeyStore view: the compiled key whose current or
// previous hash has digest d. Keys of inactive apps or tenants come back
// inactive, as store.Source promises.
func (s *Store) LookupKey(_ context.Context, d apikey.Digest) (*authz.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil && !s.lookupServes {
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
		k = s.readLocked(k)
		if a, ok := s.apps.m[ref{k.Spec.AccountID, k.Spec.AppID}]; ok && !a.Active {
			k.Spec.Active = false
		}
		if t, ok := s.tenants.m[ref{k.Spec.AccountID, k.Spec.TenantID}]; ok && !t.Active {
			k.Spec.Active = false
		}
		// The effective scope, as the PostgreSQL store compiles it: the
		// roles the key holds, each one that is gone failing the key.
		opts := s.compile
		spec := k.Spec
		if len(k.RoleIDs) > 0 {
			spec.Roles = k.RoleIDs
			roles := authz.RoleMap{}
			for _, id := range k.RoleIDs {
				if r, ok := s.roles[ref{k.Spec.AccountID, id}]; ok {
					roles[id] = &authz.Role{ID: r.ID, AccountID: r.AccountID, Name: r.Name, Scope: r.Scope, RateLimit: r.RateLimit}
				}
			}
			opts.Roles = roles
		}
		ck, _, err := authz.CompileStored(spec, opts)
		if err != nil {
			return nil, errors.New("accounttest: stored key does not compile")
		}
		return ck, nil
	}
	return nil, authz.ErrKeyNotFound
}
