package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// MaxBulkIDs is how many key ids UpdateKeys answers with at most; Count
// is always the whole number.
const MaxBulkIDs = 1000

// MaxBulkKeys is how many keys one UpdateKeys may change (SPEC §10, issue
// 15): a call that matches more is refused, nothing changed, and the
// caller narrows the filter (app, tenant, group, name contains, ...) and
// changes the rest in further calls. A dry run may count any number.
// Each key changed also counts as one mutation against the caller's rate
// limit (see UpdateKeys), so that one account's bulk changes reach the
// change feed no faster than its single updates could.
const MaxBulkKeys = 1000

// BulkKeyUpdate is UpdateKeys' input: the keys that pass Filter (every key
// of the account only when All is set), the change (description, group,
// scope, active, expiry), DryRun to change nothing and learn what would,
// and ExpectedCount, when set, the number of keys the caller confirmed.
type BulkKeyUpdate struct {
	Filter        KeyFilter
	All           bool
	Update        KeyUpdate
	DryRun        bool
	ExpectedCount *int
}

// BulkResult is what UpdateKeys matched (and changed, unless DryRun):
// Count keys, the first MaxBulkIDs of their ids in creation order.
type BulkResult struct {
	Count    int
	IDs      []string
	DryRun   bool
	Warnings Warnings
}

var errDryRun = errors.New("dry run")

// UpdateKeys applies one change to every key of the caller's account that
// passes the filter, in one transaction (each key audited "key.update").
// The escalation rule holds for every account key it would touch: one
// stronger than the caller, or one the new scope would make stronger,
// refuses the whole change.
//
// One call changes at most MaxBulkKeys keys, and costs one mutation of
// the caller's rate limit per key changed (the call itself took the
// first): the bucket may go into debt, so a change of 1,000 keys is
// allowed at once and the key's next mutations wait until it has
// refilled (SPEC §10: one account cannot hold back another's
// revocations with a flood of per-key feed rows).
func (s *Service) UpdateKeys(ctx context.Context, c Caller, in BulkKeyUpdate) (BulkResult, error) {
	if err := s.check(c); err != nil {
		return BulkResult{}, err
	}
	u := in.Update
	var v Violations
	f := in.Filter
	switch {
	case f.IsZero() && !in.All:
		v.add("filter", "selects every key of the account: give a filter (app, tenant, group, type, name, name contains, active, expiring before, unused since), or set all to change every key")
	case !f.IsZero() && in.All:
		v.add("all", "set together with a filter: give one or the other")
	}
	if len(f.AppID) > MaxIDLen {
		v.add("filter.app_id", "longer than %d bytes", MaxIDLen)
	}
	if len(f.TenantID) > MaxIDLen {
		v.add("filter.tenant_id", "longer than %d bytes", MaxIDLen)
	}
	if len(f.Group) > MaxGroupLen {
		v.add("filter.group", "longer than %d bytes", MaxGroupLen)
	}
	if len(f.Name) > MaxNameLen {
		v.add("filter.name", "longer than %d bytes", MaxNameLen)
	}
	if len(f.NameContains) > MaxNameLen {
		v.add("filter.name_contains", "longer than %d bytes", MaxNameLen)
	}
	if len(f.IDs) > MaxBulkIDs {
		v.add("filter.ids", "more than %d ids", MaxBulkIDs)
	}
	if u.Name != nil || u.NotBefore != nil || u.IPFilters != nil || u.ResponseHeaders != nil {
		v.add("update", "only description, group, scope, active and expiry change many keys at once")
	}
	if emptyKeyUpdate(&u) && !in.DryRun {
		v.add("update", "nothing to change: set description, group, scope, active or expiry (or dry_run to count the keys)")
	}
	if in.ExpectedCount != nil && *in.ExpectedCount < 0 {
		v.add("expected_count", "must not be negative")
	}
	if err := v.err(); err != nil {
		return BulkResult{}, err
	}
	if err := checkKeyUpdate("-", &u); err != nil {
		return BulkResult{}, err
	}
	roles, err := s.accountRoleScopes(ctx, c)
	if err != nil {
		return BulkResult{}, err
	}
	var matched []store.Key
	check := func(keys []store.Key) error {
		matched = keys
		if in.ExpectedCount != nil && len(keys) != *in.ExpectedCount {
			return fieldError(FailedPrecondition, "expected_count",
				"%d keys match the filter now, not the %d expected; nothing was changed: look again (a dry run lists them) and confirm the new count",
				len(keys), *in.ExpectedCount)
		}
		if !in.DryRun && len(keys) > MaxBulkKeys {
			// Named by the limit, as a quota is (QuotaFailure's subject).
			return fieldError(ResourceExhausted, "max_keys_per_update",
				"%d keys match the filter; one call changes at most %d; nothing was changed: narrow the filter (app, tenant, group, type, name contains, active, expiring before) so that each call matches at most %d keys, and change the rest in further calls",
				len(keys), MaxBulkKeys, MaxBulkKeys)
		}
		for _, k := range keys {
			if err := s.bulkAllowed(c, k, u, roles); err != nil {
				return err
			}
		}
		if in.DryRun {
			return errDryRun
		}
		s.limiter.charge(c.AccountID, c.Actor.KeyID, len(keys)-1, s.now())
		return nil
	}
	write := u
	if in.DryRun {
		write = KeyUpdate{}
	}
	keys, err := s.store.UpdateKeys(ctx, c.Actor, c.AccountID, f, write, check)
	switch {
	case errors.Is(err, errDryRun):
		keys = matched
	case err != nil:
		var e *Error
		if errors.As(err, &e) {
			return BulkResult{}, e
		}
		return BulkResult{}, s.storeError(ctx, "UpdateKeys", "keys", err)
	}
	out := BulkResult{Count: len(keys), DryRun: in.DryRun, Warnings: s.updateWarnings(u)}
	for i, k := range keys {
		if i == MaxBulkIDs {
			break
		}
		out.IDs = append(out.IDs, k.Spec.ID)
	}
	if !in.DryRun {
		s.log.Info("account API: keys updated", "count", len(keys), "account_id", c.AccountID, "actor_key_id", c.Actor.KeyID)
	}
	return out, nil
}

// bulkAllowed checks one key of a bulk change as UpdateKey would: the key
// as changed compiles, and neither it nor the key as it is exceeds the
// caller's rights.
//
// Account keys are judged by their effective scope (SPEC §11): roles are
// the account's roles by id, read before the change (a bulk change does
// not change a key's roles).
func (s *Service) bulkAllowed(c Caller, k store.Key, u KeyUpdate, roles map[string]*scope.Scope) error {
	var held []*scope.Scope
	if k.Spec.Type == authz.KeyTypeAccount {
		for _, id := range k.RoleIDs {
			sc, ok := roles[id]
			if !ok {
				return keyError(k.Spec.ID, fieldError(FailedPrecondition, "role_ids",
					"role %q changed during the call; try again", id))
			}
			held = append(held, sc)
		}
		ks, err := scope.Parse(k.Spec.Scope)
		if err != nil {
			return fmt.Errorf("key %q: stored scope: %w", k.Spec.ID, err)
		}
		if err := withinCaller(c, k.Spec.Type, effectiveOf(ks, held)); err != nil {
			return keyError(k.Spec.ID, err)
		}
	}
	updated, err := compileStored(u.Apply(k.Spec), s.compile)
	if err != nil {
		var v Violations
		v.compileErrors(err)
		return keyError(k.Spec.ID, v.err())
	}
	return keyError(k.Spec.ID, withinCaller(c, updated.Spec.Type, effectiveOf(updated.Scope(), held)))
}

// keyError prefixes a refusal with the key it is about.
func keyError(id string, err error) error {
	var e *Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	cp := *e
	cp.Message = fmt.Sprintf("key %q: %s", id, e.Message)
	return &cp
}
