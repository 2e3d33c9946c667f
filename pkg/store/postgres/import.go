package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// ImportActor is the actor the audit events of keygate import-file name:
// no account key made the change (like bootstrap's).
var ImportActor = store.Actor{KeyName: "import-file"}

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("dry run")

// Import makes the account hold what want holds (a keys file's apps,
// tenants, roles, service access denials and keys, hashes as they are),
// as store.PlanImport plans it, in one transaction: every write audited
// with actor, every change on the change feed (the tables' triggers),
// all or nothing. With dryRun the same writes run and are rolled back, so that
// the plan returned meets every check the import would (quotas,
// constraints, hashes in use elsewhere) and nothing changes.
//
// Lock order, as limits.go documents it: the account's limits row first
// (it also proves the account exists and keeps creates of the account
// out until the commit), then its apps, tenants, roles, denials and keys,
// read locked in that order (roles before keys, as every key writer
// locks a key's roles), so the plan is made from what the transaction
// writes over. Writes follow the references: apps and tenants, then
// roles (keys hold them), keys, then denials (of a tenant and an app).
func (s *Store) Import(ctx context.Context, actor store.Actor, accountID string, want store.ImportSet, dryRun bool) (store.ImportPlan, error) {
	var plan store.ImportPlan
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		l, err := s.scanLimits(tx.QueryRow(ctx, `SELECT `+limitColumns+` FROM account_limits
			WHERE account_id = $1 FOR UPDATE`, accountID), accountID)
		if err != nil {
			return err
		}
		have, err := readAccount(ctx, tx, accountID, " FOR NO KEY UPDATE", " FOR NO KEY UPDATE OF k")
		if err != nil {
			return err
		}
		if plan, err = store.PlanImport(accountID, want, have); err != nil {
			return err
		}
		if err := importQuotas(l, plan); err != nil {
			return err
		}
		if err := s.applyParents(ctx, tx, appsTable, actor, plan.Apps); err != nil {
			return err
		}
		tenants := store.ImportSection[store.App]{Kind: plan.Tenants.Kind}
		for _, st := range plan.Tenants.Steps {
			tenants.Steps = append(tenants.Steps, store.ImportStep[store.App]{Action: st.Action, ID: st.ID,
				Want: store.App(st.Want), Have: store.App(st.Have)})
		}
		if err := s.applyParents(ctx, tx, tenantsTable, actor, tenants); err != nil {
			return err
		}
		if err := s.applyRoles(ctx, tx, actor, plan.Roles); err != nil {
			return err
		}
		if err := s.applyKeys(ctx, tx, actor, plan.Keys); err != nil {
			return err
		}
		if err := s.applyDenials(ctx, tx, actor, plan.Denials); err != nil {
			return err
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		err = nil
	}
	return plan, err
}

// importQuotas refuses a plan that would take the account past a quota
// (SPEC §10), before anything is written.
func importQuotas(l store.AccountLimits, p store.ImportPlan) error {
	for _, c := range []struct {
		kind string
		n    int
	}{{store.QuotaApps, p.Apps.Count(store.ImportCreate)}, {store.QuotaTenants, p.Tenants.Count(store.ImportCreate)},
		{store.QuotaRoles, p.Roles.Count(store.ImportCreate)}, {store.QuotaDenials, p.Denials.Count(store.ImportCreate)},
		{store.QuotaKeys, p.Keys.Count(store.ImportCreate)}} {
		have, max := l.Usage.Get(c.kind), l.Effective.Get(c.kind)
		if c.n > 0 && have+int64(c.n) > max {
			return &storeError{kind: store.ErrQuotaExceeded, msg: fmt.Sprintf(
				"account %q holds %d %s and the file adds %d: more than its limit (%s = %d); an operator raises it with keygate accounts limits --account %s --max-%s N",
				l.AccountID, have, c.kind, c.n, store.LimitName(c.kind), max, l.AccountID, c.kind)}
		}
	}
	return nil
}

// applyParents writes a plan's apps or tenants: updates, then creates.
func (s *Store) applyParents(ctx context.Context, tx pgx.Tx, p parent, actor store.Actor, sec store.ImportSection[store.App]) error {
	for _, a := range []store.ImportAction{store.ImportUpdate, store.ImportCreate} {
		for _, st := range sec.Steps {
			if st.Action != a {
				continue
			}
			var err error
			if a == store.ImportCreate {
				_, err = s.insertParent(ctx, tx, p, actor, st.Want)
			} else {
				_, err = s.writeParent(ctx, tx, p, actor, st.Have, st.Want)
			}
			if err != nil {
				return fmt.Errorf("%s %q: %w", p.object, st.ID, err)
			}
		}
	}
	return nil
}

// applyRoles writes a plan's roles: updates first (they may free a name
// a new role takes), then creates. Each is checked as the data plane
// compiles it (authz.CheckRole): a role that cannot compile would make
// every key holding it unloadable.
func (s *Store) applyRoles(ctx context.Context, tx pgx.Tx, actor store.Actor, sec store.ImportSection[store.Role]) error {
	for _, a := range []store.ImportAction{store.ImportUpdate, store.ImportCreate} {
		for _, st := range sec.Steps {
			if st.Action != a {
				continue
			}
			r := st.Want
			err := authz.CheckRole(&authz.Role{ID: r.ID, AccountID: r.AccountID, Name: r.Name, Scope: r.Scope, Description: r.Description, RateLimit: r.RateLimit})
			if err != nil {
				err = invalid("invalid role: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
			} else if a == store.ImportCreate {
				_, err = s.insertRole(ctx, tx, actor, r)
			} else {
				_, err = s.writeRole(ctx, tx, actor, st.Have, r)
			}
			if err != nil {
				return fmt.Errorf("role %q: %w", st.ID, err)
			}
		}
	}
	return nil
}

// applyDenials writes a plan's denials (their tenants and apps written
// before), each checked as the data plane compiles it.
func (s *Store) applyDenials(ctx context.Context, tx pgx.Tx, actor store.Actor, sec store.ImportSection[store.Denial]) error {
	for _, a := range []store.ImportAction{store.ImportUpdate, store.ImportCreate} {
		for _, st := range sec.Steps {
			if st.Action != a {
				continue
			}
			d := st.Want
			_, err := authz.CompileDenial(authz.Denial{ID: d.ID, AccountID: d.AccountID, TenantID: d.TenantID,
				AppID: d.AppID, Scope: d.Scope, Reason: d.Reason})
			if err != nil {
				err = invalid("invalid denial: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
			} else if a == store.ImportCreate {
				_, err = s.insertDenial(ctx, tx, actor, d)
			} else {
				_, err = s.writeDenial(ctx, tx, actor, st.Have, d)
			}
			if err != nil {
				return fmt.Errorf("denial %q: %w", st.ID, err)
			}
		}
	}
	return nil
}

// applyKeys writes a plan's keys: updates first (they may free a name or
// a hash a new key takes), then creates.
func (s *Store) applyKeys(ctx context.Context, tx pgx.Tx, actor store.Actor, sec store.ImportSection[store.Key]) error {
	for _, a := range []store.ImportAction{store.ImportUpdate, store.ImportCreate} {
		for _, st := range sec.Steps {
			if st.Action != a {
				continue
			}
			var err error
			if a == store.ImportCreate {
				k := st.Want
				if k.Origin == "" {
					k.Origin = store.ImportOrigin(k.Spec.Type)
				}
				_, err = s.createKey(ctx, tx, actor, k)
			} else {
				err = s.writeKey(ctx, tx, actor, st.Have, st.Want)
			}
			if err != nil {
				// A hash in use by another account's key keeps the store's
				// wording: which key or account holds it is not told.
				return fmt.Errorf("key %q: %w", st.ID, err)
			}
		}
	}
	return nil
}

// writeKey writes next over cur, a key locked in tx, every field an
// import may change (the hash included: the previous hash goes with a
// change of it, as store.Key.Rotate without grace) and the roles it
// holds, and audits it: "key.regenerate" when the hash changes, else
// "key.update".
func (s *Store) writeKey(ctx context.Context, tx pgx.Tx, actor store.Actor, cur, next store.Key) error {
	sp := &next.Spec
	if err := s.validate(*sp, slices.Equal(sp.ResponseHeaders, cur.Spec.ResponseHeaders)); err != nil {
		return err
	}
	if roles := store.NormalizeRoleIDs(next.RoleIDs); !slices.Equal(roles, store.NormalizeRoleIDs(cur.RoleIDs)) {
		if err := lockRoles(ctx, tx, cur.Spec.AccountID, roles); err != nil {
			return err
		}
		if err := writeKeyRoles(ctx, tx, cur.Spec.AccountID, cur.Spec.ID, roles); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `UPDATE keys SET name = $3, description = $4, grp = $5, scope = $6,
			active = $7, not_before = $8, expires_at = $9, ip_filters = $10,
			response_headers = $11, hash = $12, previous_hash = $13, previous_valid_until = $14,
			updated_at = $15, rate_limit = $16, quota = $17
		WHERE account_id = $1 AND id = $2`,
		cur.Spec.AccountID, cur.Spec.ID, sp.Name, sp.Description, sp.Group, sp.Scope, sp.Active,
		nullTime(sp.NotBefore), nullTime(sp.ExpiresAt), ipFilters(sp.IPFilters),
		headersJSON(sp.ResponseHeaders), sp.Hash, nullString(sp.PreviousHash), nullTime(sp.PreviousValidUntil), s.now(),
		rateLimitText(sp.RateLimit), quotaText(sp.Quota))
	if err != nil {
		return mapError(err, keySubject(*sp))
	}
	out, err := getKey(ctx, tx, cur.Spec.AccountID, cur.Spec.ID, false)
	if err != nil {
		return err
	}
	action := "key.update"
	if sp.Hash != cur.Spec.Hash {
		action = "key.regenerate"
	}
	return s.audit(ctx, tx, actor, cur.Spec.AccountID, action, "key", cur.Spec.ID, store.KeyAuditOf(cur), store.KeyAuditOf(out))
}

// Export reads what an account holds, as an import would compare it: its
// apps, tenants, roles, denials and keys (hashes, never secrets; each
// key's role ids) from one snapshot, in creation order. An account that does not exist is store.ErrNotFound.
func (s *Store) Export(ctx context.Context, accountID string) (store.ImportSet, error) {
	var out store.ImportSet
	err := unavailable(pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return notFound("account %q not found", accountID)
			}
			if err != nil {
				return fmt.Errorf("postgres: read account: %w", err)
			}
			out, err = readAccount(ctx, tx, accountID, "", "")
			return err
		}))
	return out, err
}

// readAccount reads an account's apps, tenants, roles, denials and keys
// in creation order (and locks them in that order); parentLock and
// keyLock are "" or locking clauses, parentLock also for roles and
// denials.
func readAccount(ctx context.Context, q querier, accountID, parentLock, keyLock string) (store.ImportSet, error) {
	var out store.ImportSet
	for _, p := range []parent{appsTable, tenantsTable} {
		rows, err := q.Query(ctx, `SELECT `+p.columns()+` FROM `+p.table+`
			WHERE account_id = $1 ORDER BY created_at, id`+parentLock, accountID)
		if err != nil {
			return out, fmt.Errorf("postgres: read %s: %w", p.table, err)
		}
		as, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.App, error) { return scanParent(row) })
		if err != nil {
			return out, fmt.Errorf("postgres: read %s: %w", p.table, err)
		}
		if p == appsTable {
			out.Apps = as
		} else {
			out.Tenants = store.TenantsOf(as)
		}
	}
	roles, err := q.Query(ctx, `SELECT `+roleColumns+` FROM roles
		WHERE account_id = $1 ORDER BY created_at, id`+parentLock, accountID)
	if err != nil {
		return out, fmt.Errorf("postgres: read roles: %w", err)
	}
	if out.Roles, err = pgx.CollectRows(roles, func(row pgx.CollectableRow) (store.Role, error) { return scanRole(row) }); err != nil {
		return out, fmt.Errorf("postgres: read roles: %w", err)
	}
	denials, err := q.Query(ctx, `SELECT `+denialColumns+` FROM denials
		WHERE account_id = $1 ORDER BY created_at, id`+parentLock, accountID)
	if err != nil {
		return out, fmt.Errorf("postgres: read denials: %w", err)
	}
	if out.Denials, err = pgx.CollectRows(denials, func(row pgx.CollectableRow) (store.Denial, error) { return scanDenial(row) }); err != nil {
		return out, fmt.Errorf("postgres: read denials: %w", err)
	}
	rows, err := q.Query(ctx, keyQuery+` WHERE k.account_id = $1 ORDER BY k.created_at, k.id`+keyLock, accountID)
	if err != nil {
		return out, fmt.Errorf("postgres: read keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Key, error) {
		r, err := scanKey(row)
		return r.Key, err
	})
	if err != nil {
		return out, fmt.Errorf("postgres: read keys: %w", err)
	}
	out.Keys = keys
	return out, nil
}
