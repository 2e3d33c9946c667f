package accounttest

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

var _ store.Roles = (*Store)(nil)

func checkScopeText(field, scope string) error {
	if strings.Trim(scope, " \t\r\n") == "" || len([]rune(scope)) > 8192 {
		switch field {
		case "role":
			return invalid("scope: required (a role with no scope grants nothing), at most 8192 characters")
		default:
			return invalid("scope: required (what the denial blocks), at most 8192 characters")
		}
	}
	return nil
}

func checkRole(r store.Role) error {
	if err := checkID(r.ID); err != nil {
		return err
	}
	if err := checkName(r.Name); err != nil {
		return err
	}
	if len([]rune(r.Description)) > 4096 {
		return invalid("description: at most 4096 characters")
	}
	return checkScopeText("role", r.Scope)
}

func checkDenial(d store.Denial) error {
	if err := checkID(d.ID); err != nil {
		return err
	}
	if err := checkScopeText("denial", d.Scope); err != nil {
		return err
	}
	if len(d.Reason) > store.MaxDenialReasonLen {
		return invalid("reason: at most 500 bytes")
	}
	return nil
}

func (s *Store) getRoleLocked(accountID, id string) (store.Role, error) {
	r, ok := s.roles[ref{accountID, id}]
	if !ok {
		return store.Role{}, notFound("role %q not found in account %q", id, accountID)
	}
	return r, nil
}

func (s *Store) getDenialLocked(accountID, id string) (store.Denial, error) {
	d, ok := s.denials[ref{accountID, id}]
	if !ok {
		return store.Denial{}, notFound("denial %q not found in account %q", id, accountID)
	}
	return d, nil
}

func (s *Store) roleNameTakenLocked(accountID, id, name string) bool {
	for r, o := range s.roles {
		if r.account == accountID && r.id != id && o.Name == name {
			return true
		}
	}
	return false
}

// checkRolesLocked refuses role ids the account does not have.
func (s *Store) checkRolesLocked(accountID string, ids []string) error {
	for _, id := range ids {
		if _, err := s.getRoleLocked(accountID, id); err != nil {
			return err
		}
	}
	return nil
}

// CreateRole adds a role.
func (s *Store) CreateRole(ctx context.Context, actor store.Actor, r store.Role) (store.Role, error) {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Role{}, s.fail
	}
	if err := s.reserveLocked(r.AccountID, store.QuotaRoles); err != nil {
		return store.Role{}, err
	}
	if r.ID == "" {
		r.ID = newID()
	}
	if err := checkRole(r); err != nil {
		return store.Role{}, err
	}
	if _, dup := s.roles[ref{r.AccountID, r.ID}]; dup {
		return store.Role{}, exists("role id %q already exists in this account", r.ID)
	}
	if s.roleNameTakenLocked(r.AccountID, r.ID, r.Name) {
		return store.Role{}, exists("name %q already exists in this account", r.Name)
	}
	r.CreatedAt = s.clock()
	r.UpdatedAt = r.CreatedAt
	s.roles[ref{r.AccountID, r.ID}] = r
	s.auditLocked(r.AccountID, actor, "role.create", "role", r.ID, nil, r)
	return r, nil
}

// GetRole returns a role.
func (s *Store) GetRole(_ context.Context, accountID, id string) (store.Role, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Role{}, s.fail
	}
	return s.getRoleLocked(accountID, id)
}

// ListRoles lists an account's roles in creation order.
func (s *Store) ListRoles(_ context.Context, accountID string, p store.Page) ([]store.Role, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, "", s.fail
	}
	var all []store.Role
	for r, x := range s.roles {
		if r.account == accountID {
			all = append(all, x)
		}
	}
	return keysetPage(all, p, func(r store.Role) (time.Time, string) { return r.CreatedAt, r.ID })
}

// UpdateRole changes a role; an update that sets nothing writes nothing.
func (s *Store) UpdateRole(ctx context.Context, actor store.Actor, accountID, id string, u store.RoleUpdate) (store.Role, error) {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Role{}, s.fail
	}
	before, err := s.getRoleLocked(accountID, id)
	if err != nil || u == (store.RoleUpdate{}) {
		return before, err
	}
	r := u.Apply(before)
	if err := checkRole(r); err != nil {
		return store.Role{}, err
	}
	if s.roleNameTakenLocked(accountID, id, r.Name) {
		return store.Role{}, exists("name %q already exists in this account", r.Name)
	}
	r.UpdatedAt = s.clock()
	s.roles[ref{accountID, id}] = r
	s.auditLocked(accountID, actor, "role.update", "role", id, before, r)
	return r, nil
}

// DeleteRole removes a role; while keys hold it only with force, which
// takes it from them (each audited "key.update").
func (s *Store) DeleteRole(ctx context.Context, actor store.Actor, accountID, id string, force bool) error {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	r, err := s.getRoleLocked(accountID, id)
	if err != nil {
		return err
	}
	var held []store.Key
	for _, k := range s.keys {
		if k.Spec.AccountID == accountID && slices.Contains(k.RoleIDs, id) {
			held = append(held, k)
		}
	}
	sortKeys(held)
	if len(held) > 0 && !force {
		return &store.RoleHeldError{ID: id, Keys: len(held)}
	}
	now := s.clock()
	delete(s.roles, ref{accountID, id})
	s.auditLocked(accountID, actor, "role.delete", "role", id, roleHeld{r, len(held)}, nil)
	for _, k := range held {
		next := k
		next.RoleIDs = store.NormalizeRoleIDs(slices.DeleteFunc(slices.Clone(k.RoleIDs), func(x string) bool { return x == id }))
		next.UpdatedAt = now
		s.keys[keyRef(k)] = next
		s.auditLocked(accountID, actor, "key.update", "key", k.Spec.ID, s.readLocked(k), s.readLocked(next))
	}
	return nil
}

// roleHeld is a deleted role's audit record with how many keys held it.
type roleHeld struct {
	store.Role
	keys int
}

// CreateDenial adds a denial.
func (s *Store) CreateDenial(ctx context.Context, actor store.Actor, d store.Denial) (store.Denial, error) {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Denial{}, s.fail
	}
	if err := s.reserveLocked(d.AccountID, store.QuotaDenials); err != nil {
		return store.Denial{}, err
	}
	if d.ID == "" {
		d.ID = newID()
	}
	if err := checkDenial(d); err != nil {
		return store.Denial{}, err
	}
	if _, dup := s.denials[ref{d.AccountID, d.ID}]; dup {
		return store.Denial{}, exists("denial id %q already exists in this account", d.ID)
	}
	if _, err := s.tenants.getLocked(d.AccountID, d.TenantID); err != nil {
		return store.Denial{}, err
	}
	if _, err := s.apps.getLocked(d.AccountID, d.AppID); err != nil {
		return store.Denial{}, err
	}
	d.CreatedAt = s.clock()
	d.UpdatedAt = d.CreatedAt
	s.denials[ref{d.AccountID, d.ID}] = d
	s.auditLocked(d.AccountID, actor, "denial.create", "denial", d.ID, nil, d)
	return d, nil
}

// GetDenial returns a denial.
func (s *Store) GetDenial(_ context.Context, accountID, id string) (store.Denial, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Denial{}, s.fail
	}
	return s.getDenialLocked(accountID, id)
}

// ListDenials lists an account's denials in creation order, filtered.
func (s *Store) ListDenials(_ context.Context, accountID string, f store.DenialFilter, p store.Page) ([]store.Denial, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, "", s.fail
	}
	var all []store.Denial
	for r, d := range s.denials {
		if r.account == accountID && (f.TenantID == "" || d.TenantID == f.TenantID) && (f.AppID == "" || d.AppID == f.AppID) {
			all = append(all, d)
		}
	}
	return keysetPage(all, p, func(d store.Denial) (time.Time, string) { return d.CreatedAt, d.ID })
}

// UpdateDenial changes a denial; an update that sets nothing writes
// nothing.
func (s *Store) UpdateDenial(ctx context.Context, actor store.Actor, accountID, id string, u store.DenialUpdate) (store.Denial, error) {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Denial{}, s.fail
	}
	before, err := s.getDenialLocked(accountID, id)
	if err != nil || u == (store.DenialUpdate{}) {
		return before, err
	}
	d := u.Apply(before)
	if err := checkDenial(d); err != nil {
		return store.Denial{}, err
	}
	d.UpdatedAt = s.clock()
	s.denials[ref{accountID, id}] = d
	s.auditLocked(accountID, actor, "denial.update", "denial", id, before, d)
	return d, nil
}

// DeleteDenial removes a denial.
func (s *Store) DeleteDenial(ctx context.Context, actor store.Actor, accountID, id string) error {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	d, err := s.getDenialLocked(accountID, id)
	if err != nil {
		return err
	}
	delete(s.denials, ref{accountID, id})
	s.auditLocked(accountID, actor, "denial.delete", "denial", id, d, nil)
	return nil
}

// deleteDenialsOfLocked removes the denials of an app or tenant being
// deleted, audited in creation order as PostgreSQL's cascade is.
func (s *Store) deleteDenialsOfLocked(actor store.Actor, kind, accountID, id string) {
	var gone []store.Denial
	for r, d := range s.denials {
		if r.account == accountID && (kind == "app" && d.AppID == id || kind == "tenant" && d.TenantID == id) {
			gone = append(gone, d)
		}
	}
	slices.SortFunc(gone, func(a, b store.Denial) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, d := range gone {
		delete(s.denials, ref{accountID, d.ID})
		s.auditLocked(accountID, actor, "denial.delete", "denial", d.ID, d, nil)
	}
}

var _ store.AccessSource = (*Store)(nil)

// LoadRoles calls fn for every role of every account.
func (s *Store) LoadRoles(_ context.Context, fn func(store.Role) error) error {
	s.mu.Lock()
	all := make([]store.Role, 0, len(s.roles))
	for _, r := range s.roles {
		all = append(all, r)
	}
	fail := s.fail
	if s.lookupServes {
		fail = nil
	}
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	for _, r := range all {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// LoadDenials calls fn for every denial of every account.
func (s *Store) LoadDenials(_ context.Context, fn func(store.Denial) error) error {
	s.mu.Lock()
	all := make([]store.Denial, 0, len(s.denials))
	for _, d := range s.denials {
		all = append(all, d)
	}
	fail := s.fail
	if s.lookupServes {
		fail = nil
	}
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	for _, d := range all {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// LookupRole returns a role for the data plane.
func (s *Store) LookupRole(_ context.Context, accountID, id string) (store.Role, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil && !s.lookupServes {
		return store.Role{}, s.fail
	}
	return s.getRoleLocked(accountID, id)
}

// LookupDenial returns a denial for the data plane.
func (s *Store) LookupDenial(_ context.Context, accountID, id string) (store.Denial, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil && !s.lookupServes {
		return store.Denial{}, s.fail
	}
	return s.getDenialLocked(accountID, id)
}

// KeysHoldingRole names the keys that hold a role, in id order.
func (s *Store) KeysHoldingRole(_ context.Context, accountID, roleID string) ([]store.KeyRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil && !s.lookupServes {
		return nil, s.fail
	}
	var out []store.KeyRef
	for r, k := range s.keys {
		if r.account == accountID && slices.Contains(k.RoleIDs, roleID) {
			out = append(out, store.KeyRef{AccountID: r.account, ID: r.id})
		}
	}
	slices.SortFunc(out, func(a, b store.KeyRef) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
