package accounttest

import (
	"context"

	"github.com/keygate/keygate/pkg/store"
)

var _ store.Quotas = (*Store)(nil)

// SetDefaultLimits sets the limits of accounts without overrides, as
// serve's --max-*-per-account flags do for PostgreSQL (zero fields:
// store.DefaultLimits').
func (s *Store) SetDefaultLimits(l store.Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaults = l.WithDefaults()
}

// usageLocked counts what an account holds, as PostgreSQL's triggers keep
// count.
func (s *Store) usageLocked(accountID string) store.Usage {
	var u store.Usage
	for _, k := range s.keys {
		if k.Spec.AccountID == accountID {
			u.Keys++
		}
	}
	for r := range s.apps.m {
		if r.account == accountID {
			u.Apps++
		}
	}
	for r := range s.tenants.m {
		if r.account == accountID {
			u.Tenants++
		}
	}
	for r := range s.roles {
		if r.account == accountID {
			u.Roles++
		}
	}
	for r := range s.denials {
		if r.account == accountID {
			u.Denials++
		}
	}
	return u
}

func (s *Store) limitsLocked(accountID string) (store.AccountLimits, error) {
	if err := s.checkAccountLocked(accountID); err != nil {
		return store.AccountLimits{}, err
	}
	o := s.overrides[accountID]
	return store.AccountLimits{AccountID: accountID, Overrides: o,
		Effective: o.Effective(s.defaults), Usage: s.usageLocked(accountID)}, nil
}

// reserveLocked refuses one more object of kind past the account's limit;
// PostgreSQL checks it first in a create, and so does the fake.
func (s *Store) reserveLocked(accountID, kind string) error {
	l, err := s.limitsLocked(accountID)
	if err != nil {
		return err
	}
	return store.CheckQuota(accountID, kind, l.Usage.Get(kind), l.Effective.Get(kind))
}

// AccountLimits returns an account's overrides, effective limits and
// counts.
func (s *Store) AccountLimits(_ context.Context, accountID string) (store.AccountLimits, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.AccountLimits{}, s.fail
	}
	return s.limitsLocked(accountID)
}

// SetAccountLimits changes an account's overrides and audits it
// ("account.limits").
func (s *Store) SetAccountLimits(ctx context.Context, actor store.Actor, accountID string, u store.LimitsUpdate) (store.AccountLimits, error) {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.AccountLimits{}, s.fail
	}
	cur, err := s.limitsLocked(accountID)
	if err != nil {
		return store.AccountLimits{}, err
	}
	if err := store.CheckLimitsUpdate(u); err != nil {
		return store.AccountLimits{}, invalid("%v", err)
	}
	s.overrides[accountID] = u.Apply(cur.Overrides)
	out, _ := s.limitsLocked(accountID)
	s.auditLocked(accountID, actor, "account.limits", "account", accountID, cur.Overrides, out.Overrides)
	return out, nil
}
