package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/store"
)

// parent describes the apps or the tenants table: same shape, same code.
type parent struct {
	table  string // "apps" or "tenants"
	object string // "app" or "tenant"
	keyCol string // the keys column that references it
	// quota is the column of the monthly quota ("quota" for tenants), or
	// "" for a table without one (apps).
	quota string
}

var (
	appsTable    = parent{table: "apps", object: "app", keyCol: "app_id"}
	tenantsTable = parent{table: "tenants", object: "tenant", keyCol: "tenant_id", quota: "quota"}
)

// columns are the columns scanParent reads.
func (p parent) columns() string {
	q := "NULL::bigint"
	if p.quota != "" {
		q = p.quota
	}
	return `account_id, id, name, description, active, created_at, updated_at, ` + q
}

func scanParent(row pgx.Row) (store.App, error) {
	var (
		a     store.App
		quota *int64
	)
	err := row.Scan(&a.AccountID, &a.ID, &a.Name, &a.Description, &a.Active, &a.CreatedAt, &a.UpdatedAt, &quota)
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	if quota != nil {
		a.Quota = *quota
	}
	return a, err
}

// quotaValue is a quota as stored: NULL for none (0).
func quotaValue(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

// get reads one app or tenant; lock is "" or a locking clause.
func (p parent) get(ctx context.Context, q querier, accountID, id, lock string) (store.App, error) {
	sql := `SELECT ` + p.columns() + ` FROM ` + p.table + ` WHERE account_id = $1 AND id = $2 ` + lock
	a, err := scanParent(q.QueryRow(ctx, sql, accountID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, notFound("%s %q not found in account %q", p.object, id, accountID)
	}
	if err != nil {
		return a, fmt.Errorf("postgres: read %s: %w", p.object, err)
	}
	return a, nil
}

func (s *Store) createParent(ctx context.Context, p parent, actor store.Actor, a store.App) (store.App, error) {
	var out store.App
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.reserve(ctx, tx, a.AccountID, p.table); err != nil {
			return err
		}
		var err error
		out, err = s.insertParent(ctx, tx, p, actor, a)
		return err
	})
	return out, err
}

// insertParent inserts an app or tenant in tx and audits it; the caller
// has reserved room for it.
func (s *Store) insertParent(ctx context.Context, tx pgx.Tx, p parent, actor store.Actor, a store.App) (store.App, error) {
	if p.quota == "" && a.Quota != 0 {
		return store.App{}, &storeError{msg: "quota: an " + p.object + " has no quota (tenants do)", kind: store.ErrInvalid}
	}
	cols, vals, args := "", "", []any{a.AccountID, a.ID, a.Name, a.Description, a.Active, s.now()}
	if p.quota != "" {
		cols, vals, args = ", "+p.quota, ", $7", append(args, quotaValue(a.Quota))
	}
	out, err := scanParent(tx.QueryRow(ctx, `INSERT INTO `+p.table+`
			(account_id, id, name, description, active, created_at, updated_at`+cols+`)
		VALUES ($1, coalesce(nullif($2, ''), gen_random_uuid()::text), $3, $4, $5, $6, $6`+vals+`)
		RETURNING `+p.columns(), args...))
	if err != nil {
		return out, mapError(err, subject{AccountID: a.AccountID, ID: a.ID, Name: a.Name})
	}
	return out, s.audit(ctx, tx, actor, out.AccountID, p.object+".create", p.object, out.ID, nil, store.ParentAuditOf(out))
}

func (s *Store) listParents(ctx context.Context, p parent, accountID string, pg store.Page) ([]store.App, string, error) {
	size, after, err := store.ReadPage(pg)
	if err != nil {
		return nil, "", err
	}
	args := []any{accountID, size + 1}
	sql := `SELECT ` + p.columns() + ` FROM ` + p.table + ` WHERE account_id = $1`
	if after != nil {
		args = append(args, after.CreatedAtTime(), after.ID)
		sql += ` AND (created_at, id) > ($3, $4)`
	}
	rows, err := s.reads().Query(ctx, sql+` ORDER BY created_at, id LIMIT $2`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list %s: %w", p.table, err)
	}
	defer rows.Close()
	var out []store.App
	for rows.Next() {
		a, err := scanParent(rows)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: list %s: %w", p.table, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("postgres: list %s: %w", p.table, err)
	}
	var next string
	if len(out) > size {
		out = out[:size]
		last := out[size-1]
		next = store.PageToken{CreatedAt: last.CreatedAt.UnixMicro(), ID: last.ID}.String()
	}
	return out, next, nil
}

func (s *Store) updateParent(ctx context.Context, p parent, actor store.Actor, accountID, id string, u store.AppUpdate) (store.App, error) {
	if u == (store.AppUpdate{}) {
		return p.get(ctx, s.reads(), accountID, id, "")
	}
	var out store.App
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := p.get(ctx, tx, accountID, id, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		out, err = s.writeParent(ctx, tx, p, actor, cur, u.Apply(cur))
		return err
	})
	return out, err
}

// writeParent writes next over cur, an app or tenant locked in tx, and
// audits it. The update trigger appends one change to the feed for the
// app or tenant when its name, active flag or quota changes.
func (s *Store) writeParent(ctx context.Context, tx pgx.Tx, p parent, actor store.Actor, cur, next store.App) (store.App, error) {
	if p.quota == "" && next.Quota != 0 {
		return store.App{}, &storeError{msg: "quota: an " + p.object + " has no quota (tenants do)", kind: store.ErrInvalid}
	}
	set, args := "", []any{cur.AccountID, cur.ID, next.Name, next.Description, next.Active, s.now()}
	if p.quota != "" {
		set, args = ", "+p.quota+" = $7", append(args, quotaValue(next.Quota))
	}
	out, err := scanParent(tx.QueryRow(ctx, `UPDATE `+p.table+`
		SET name = $3, description = $4, active = $5, updated_at = $6`+set+`
		WHERE account_id = $1 AND id = $2
		RETURNING `+p.columns(), args...))
	if err != nil {
		return out, mapError(err, subject{AccountID: cur.AccountID, ID: cur.ID, Name: next.Name})
	}
	return out, s.audit(ctx, tx, actor, cur.AccountID, p.object+".update", p.object, cur.ID, store.ParentAuditOf(cur), store.ParentAuditOf(out))
}

// deleteParent deletes an app or tenant. Its keys would go with it (ON
// DELETE CASCADE, recorded in the change feed by the keys trigger), so
// while it has any, only a cascade deletes it, auditing each key as
// "key.delete". The row lock taken before counting keeps a key from being
// created for it between the count and the delete.
func (s *Store) deleteParent(ctx context.Context, p parent, actor store.Actor, accountID, id string, cascade bool) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockCounts(ctx, tx, accountID); err != nil {
			return err
		}
		cur, err := p.get(ctx, tx, accountID, id, "FOR UPDATE") // no new keys for it meanwhile
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, keyQuery+` WHERE k.account_id = $1 AND k.`+p.keyCol+` = $2
			ORDER BY k.created_at, k.id FOR UPDATE OF k`, accountID, id)
		if err != nil {
			return fmt.Errorf("postgres: delete %s: %w", p.object, err)
		}
		keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (keyRow, error) { return scanKey(row) })
		if err != nil {
			return fmt.Errorf("postgres: delete %s: %w", p.object, err)
		}
		if len(keys) > 0 && !cascade {
			return &store.HasKeysError{Object: p.object, ID: id, Keys: len(keys)}
		}
		// Its denials go with it (ON DELETE CASCADE), each audited.
		drows, err := tx.Query(ctx, `SELECT `+denialColumns+` FROM denials WHERE account_id = $1 AND `+p.keyCol+` = $2
			ORDER BY created_at, id`, accountID, id)
		if err != nil {
			return fmt.Errorf("postgres: delete %s: %w", p.object, err)
		}
		denials, err := pgx.CollectRows(drows, func(row pgx.CollectableRow) (store.Denial, error) { return scanDenial(row) })
		if err != nil {
			return fmt.Errorf("postgres: delete %s: %w", p.object, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+p.table+` WHERE account_id = $1 AND id = $2`, accountID, id); err != nil {
			return fmt.Errorf("postgres: delete %s: %w", p.object, err)
		}
		if err := s.audit(ctx, tx, actor, accountID, p.object+".delete", p.object, id, store.ParentAuditOf(cur), nil); err != nil {
			return err
		}
		for _, k := range keys {
			if err := s.audit(ctx, tx, actor, accountID, "key.delete", "key", k.Spec.ID, store.KeyAuditOf(k.Key), nil); err != nil {
				return err
			}
		}
		for _, d := range denials {
			if err := s.audit(ctx, tx, actor, accountID, "denial.delete", "denial", d.ID, store.DenialAuditOf(d), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// CreateApp creates an app and audits it ("app.create").
func (s *Store) CreateApp(ctx context.Context, actor store.Actor, a store.App) (store.App, error) {
	return s.createParent(ctx, appsTable, actor, a)
}

// GetApp reads an app.
func (s *Store) GetApp(ctx context.Context, accountID, id string) (store.App, error) {
	return appsTable.get(ctx, s.reads(), accountID, id, "")
}

// ListApps lists an account's apps in creation order.
func (s *Store) ListApps(ctx context.Context, accountID string, p store.Page) ([]store.App, string, error) {
	return s.listParents(ctx, appsTable, accountID, p)
}

// UpdateApp changes the fields u sets and audits it ("app.update").
func (s *Store) UpdateApp(ctx context.Context, actor store.Actor, accountID, id string, u store.AppUpdate) (store.App, error) {
	return s.updateParent(ctx, appsTable, actor, accountID, id, u)
}

// DeleteApp deletes an app ("app.delete"), with its keys ("key.delete")
// if cascade, else only if it has none.
func (s *Store) DeleteApp(ctx context.Context, actor store.Actor, accountID, id string, cascade bool) error {
	return s.deleteParent(ctx, appsTable, actor, accountID, id, cascade)
}

// CreateTenant creates a tenant and audits it ("tenant.create").
func (s *Store) CreateTenant(ctx context.Context, actor store.Actor, t store.Tenant) (store.Tenant, error) {
	a, err := s.createParent(ctx, tenantsTable, actor, store.App(t))
	return store.Tenant(a), err
}

// GetTenant reads a tenant.
func (s *Store) GetTenant(ctx context.Context, accountID, id string) (store.Tenant, error) {
	a, err := tenantsTable.get(ctx, s.reads(), accountID, id, "")
	return store.Tenant(a), err
}

// ListTenants lists an account's tenants in creation order.
func (s *Store) ListTenants(ctx context.Context, accountID string, p store.Page) ([]store.Tenant, string, error) {
	as, next, err := s.listParents(ctx, tenantsTable, accountID, p)
	if err != nil {
		return nil, "", err
	}
	return store.TenantsOf(as), next, nil
}

// UpdateTenant changes the fields u sets and audits it ("tenant.update").
func (s *Store) UpdateTenant(ctx context.Context, actor store.Actor, accountID, id string, u store.AppUpdate) (store.Tenant, error) {
	a, err := s.updateParent(ctx, tenantsTable, actor, accountID, id, u)
	return store.Tenant(a), err
}

// DeleteTenant deletes a tenant ("tenant.delete"), with its keys
// ("key.delete") if cascade, else only if it has none.
func (s *Store) DeleteTenant(ctx context.Context, actor store.Actor, accountID, id string, cascade bool) error {
	return s.deleteParent(ctx, tenantsTable, actor, accountID, id, cascade)
}
