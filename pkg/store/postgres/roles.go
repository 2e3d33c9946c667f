package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

var (
	_ store.Roles        = (*Store)(nil)
	_ store.AccessSource = (*Store)(nil)
)

const roleColumns = `account_id, id, name, description, scope, created_at, updated_at, rate_limit`

func scanRole(row pgx.Row) (store.Role, error) {
	var (
		r         store.Role
		rateLimit *string
	)
	err := row.Scan(&r.AccountID, &r.ID, &r.Name, &r.Description, &r.Scope, &r.CreatedAt, &r.UpdatedAt, &rateLimit)
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	if err == nil && rateLimit != nil {
		if r.RateLimit, err = authz.ParseRateLimit(*rateLimit); err != nil {
			err = &rowError{field: "rate_limit", err: fmt.Errorf("role %q: rate_limit: %w", r.ID, err)}
		}
	}
	return r, err
}

// rateLimitText is a rate limit as stored: "N/unit", NULL for none.
func rateLimitText(r authz.RateLimit) *string {
	if r.IsZero() {
		return nil
	}
	s := r.String()
	return &s
}

// quotaText is a key's quota as stored: NULL for none.
func quotaText(q authz.Quota) *string {
	if q.IsZero() {
		return nil
	}
	s := q.String()
	return &s
}

const denialColumns = `account_id, id, tenant_id, app_id, scope, reason, created_at, updated_at`

func scanDenial(row pgx.Row) (store.Denial, error) {
	var d store.Denial
	err := row.Scan(&d.AccountID, &d.ID, &d.TenantID, &d.AppID, &d.Scope, &d.Reason, &d.CreatedAt, &d.UpdatedAt)
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	return d, err
}

func getRole(ctx context.Context, q querier, accountID, id, lock string) (store.Role, error) {
	r, err := scanRole(q.QueryRow(ctx, `SELECT `+roleColumns+` FROM roles WHERE account_id = $1 AND id = $2 `+lock, accountID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, notFound("role %q not found in account %q", id, accountID)
	}
	if err != nil {
		return r, fmt.Errorf("postgres: read role: %w", err)
	}
	return r, nil
}

func getDenial(ctx context.Context, q querier, accountID, id, lock string) (store.Denial, error) {
	d, err := scanDenial(q.QueryRow(ctx, `SELECT `+denialColumns+` FROM denials WHERE account_id = $1 AND id = $2 `+lock, accountID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, notFound("denial %q not found in account %q", id, accountID)
	}
	if err != nil {
		return d, fmt.Errorf("postgres: read denial: %w", err)
	}
	return d, nil
}

// CreateRole stores a role and audits it ("role.create"), within the
// account's quota of roles.
func (s *Store) CreateRole(ctx context.Context, actor store.Actor, r store.Role) (store.Role, error) {
	var out store.Role
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.reserve(ctx, tx, r.AccountID, store.QuotaRoles); err != nil {
			return err
		}
		var err error
		out, err = s.insertRole(ctx, tx, actor, r)
		return err
	})
	return out, err
}

// insertRole inserts a role and audits it, in tx (whose caller has taken
// the account's limits row).
func (s *Store) insertRole(ctx context.Context, tx pgx.Tx, actor store.Actor, r store.Role) (store.Role, error) {
	out, err := scanRole(tx.QueryRow(ctx, `INSERT INTO roles (account_id, id, name, description, scope, created_at, updated_at, rate_limit)
		VALUES ($1, coalesce(nullif($2, ''), gen_random_uuid()::text), $3, $4, $5, $6, $6, $7)
		RETURNING `+roleColumns, r.AccountID, r.ID, r.Name, r.Description, r.Scope, s.now(), rateLimitText(r.RateLimit)))
	if err != nil {
		return out, mapError(err, subject{AccountID: r.AccountID, ID: r.ID, Name: r.Name})
	}
	return out, s.audit(ctx, tx, actor, out.AccountID, "role.create", "role", out.ID, nil, store.RoleAuditOf(out))
}

// GetRole reads a role.
func (s *Store) GetRole(ctx context.Context, accountID, id string) (store.Role, error) {
	return getRole(ctx, s.reads(), accountID, id, "")
}

// ListRoles lists an account's roles in creation order.
func (s *Store) ListRoles(ctx context.Context, accountID string, p store.Page) ([]store.Role, string, error) {
	return listPage(ctx, s, p, `SELECT `+roleColumns+` FROM roles WHERE account_id = $1`, []any{accountID},
		scanRole, func(r store.Role) store.PageToken {
			return store.PageToken{CreatedAt: r.CreatedAt.UnixMicro(), ID: r.ID}
		})
}

// listPage runs a keyset-paged list: sql selects the rows (WHERE set), args
// its arguments; the page's position and size are appended.
func listPage[T any](ctx context.Context, s *Store, p store.Page, sql string, args []any,
	scan func(pgx.Row) (T, error), token func(T) store.PageToken,
) ([]T, string, error) {
	size, after, err := store.ReadPage(p)
	if err != nil {
		return nil, "", err
	}
	if after != nil {
		args = append(args, after.CreatedAtTime(), after.ID)
		sql += fmt.Sprintf(` AND (created_at, id) > ($%d, $%d)`, len(args)-1, len(args))
	}
	args = append(args, size+1)
	sql += fmt.Sprintf(` ORDER BY created_at, id LIMIT $%d`, len(args))
	rows, err := s.reads().Query(ctx, sql, args...)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list: %w", err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: list: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("postgres: list: %w", err)
	}
	var next string
	if len(out) > size {
		out = out[:size]
		next = token(out[size-1]).String()
	}
	return out, next, nil
}

// UpdateRole changes the fields u sets and audits it ("role.update"). Its
// trigger records one change for the role, whatever the number of keys
// holding it (SPEC §10).
func (s *Store) UpdateRole(ctx context.Context, actor store.Actor, accountID, id string, u store.RoleUpdate) (store.Role, error) {
	if u == (store.RoleUpdate{}) {
		return s.GetRole(ctx, accountID, id)
	}
	var out store.Role
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := getRole(ctx, tx, accountID, id, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		out, err = s.writeRole(ctx, tx, actor, cur, u.Apply(cur))
		return err
	})
	return out, err
}

// writeRole writes next over cur, a role locked in tx, and audits it.
func (s *Store) writeRole(ctx context.Context, tx pgx.Tx, actor store.Actor, cur, next store.Role) (store.Role, error) {
	out, err := scanRole(tx.QueryRow(ctx, `UPDATE roles SET name = $3, description = $4, scope = $5, updated_at = $6, rate_limit = $7
		WHERE account_id = $1 AND id = $2 RETURNING `+roleColumns,
		cur.AccountID, cur.ID, next.Name, next.Description, next.Scope, s.now(), rateLimitText(next.RateLimit)))
	if err != nil {
		return out, mapError(err, subject{AccountID: cur.AccountID, ID: cur.ID, Name: next.Name})
	}
	return out, s.audit(ctx, tx, actor, cur.AccountID, "role.update", "role", cur.ID, store.RoleAuditOf(cur), store.RoleAuditOf(out))
}

// DeleteRole deletes a role ("role.delete"). While keys hold it, it
// refuses with a *store.RoleHeldError unless force: then the role is
// taken from those keys first, each audited as "key.update" and each a
// change of the key on the feed, and the role's audit record says how many
// held it.
func (s *Store) DeleteRole(ctx context.Context, actor store.Actor, accountID, id string, force bool) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockCounts(ctx, tx, accountID); err != nil {
			return err
		}
		cur, err := getRole(ctx, tx, accountID, id, "FOR UPDATE") // no key takes it meanwhile
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, keyQuery+` WHERE k.account_id = $1 AND EXISTS (SELECT 1 FROM key_roles h
			WHERE h.account_id = k.account_id AND h.key_id = k.id AND h.role_id = $2)
			ORDER BY k.created_at, k.id FOR UPDATE OF k`, accountID, id)
		if err != nil {
			return fmt.Errorf("postgres: delete role: %w", err)
		}
		keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (keyRow, error) { return scanKey(row) })
		if err != nil {
			return fmt.Errorf("postgres: delete role: %w", err)
		}
		if len(keys) > 0 && !force {
			return &store.RoleHeldError{ID: id, Keys: len(keys)}
		}
		now := s.now()
		if len(keys) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM key_roles WHERE account_id = $1 AND role_id = $2`, accountID, id); err != nil {
				return fmt.Errorf("postgres: delete role: %w", err)
			}
			if _, err := tx.Exec(ctx, `UPDATE keys k SET updated_at = $3 FROM unnest($2::text[]) AS h(id)
				WHERE k.account_id = $1 AND k.id = h.id`, accountID, keyIDs(keys), now); err != nil {
				return fmt.Errorf("postgres: delete role: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM roles WHERE account_id = $1 AND id = $2`, accountID, id); err != nil {
			return fmt.Errorf("postgres: delete role: %w", err)
		}
		before := store.RoleAuditOf(cur)
		before.HeldBy = len(keys)
		if err := s.audit(ctx, tx, actor, accountID, "role.delete", "role", id, before, nil); err != nil {
			return err
		}
		for _, k := range keys {
			after, err := getKey(ctx, tx, accountID, k.Spec.ID, false)
			if err != nil {
				return err
			}
			if err := s.audit(ctx, tx, actor, accountID, "key.update", "key", k.Spec.ID,
				store.KeyAuditOf(k.Key), store.KeyAuditOf(after)); err != nil {
				return err
			}
		}
		return nil
	})
}

func keyIDs(keys []keyRow) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Spec.ID
	}
	return out
}

// CreateDenial stores a denial and audits it ("denial.create"), within
// the account's quota of denials. Its trigger records it on the feed as a
// revocation.
func (s *Store) CreateDenial(ctx context.Context, actor store.Actor, d store.Denial) (store.Denial, error) {
	var out store.Denial
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.reserve(ctx, tx, d.AccountID, store.QuotaDenials); err != nil {
			return err
		}
		var err error
		out, err = s.insertDenial(ctx, tx, actor, d)
		return err
	})
	return out, err
}

// insertDenial inserts a denial and audits it, in tx (whose caller has
// taken the account's limits row).
func (s *Store) insertDenial(ctx context.Context, tx pgx.Tx, actor store.Actor, d store.Denial) (store.Denial, error) {
	out, err := scanDenial(tx.QueryRow(ctx, `INSERT INTO denials (account_id, id, tenant_id, app_id, scope, reason, created_at, updated_at)
		VALUES ($1, coalesce(nullif($2, ''), gen_random_uuid()::text), $3, $4, $5, $6, $7, $7)
		RETURNING `+denialColumns, d.AccountID, d.ID, d.TenantID, d.AppID, d.Scope, d.Reason, s.now()))
	if err != nil {
		return out, mapError(err, subject{AccountID: d.AccountID, ID: d.ID, AppID: d.AppID, TenantID: d.TenantID})
	}
	return out, s.audit(ctx, tx, actor, out.AccountID, "denial.create", "denial", out.ID, nil, store.DenialAuditOf(out))
}

// GetDenial reads a denial.
func (s *Store) GetDenial(ctx context.Context, accountID, id string) (store.Denial, error) {
	return getDenial(ctx, s.reads(), accountID, id, "")
}

// ListDenials lists an account's denials in creation order, filtered by
// tenant and app.
func (s *Store) ListDenials(ctx context.Context, accountID string, f store.DenialFilter, p store.Page) ([]store.Denial, string, error) {
	var where strings.Builder
	args := []any{accountID}
	where.WriteString(`SELECT ` + denialColumns + ` FROM denials WHERE account_id = $1`)
	if f.TenantID != "" {
		args = append(args, f.TenantID)
		fmt.Fprintf(&where, ` AND tenant_id = $%d`, len(args))
	}
	if f.AppID != "" {
		args = append(args, f.AppID)
		fmt.Fprintf(&where, ` AND app_id = $%d`, len(args))
	}
	return listPage(ctx, s, p, where.String(), args, scanDenial, func(d store.Denial) store.PageToken {
		return store.PageToken{CreatedAt: d.CreatedAt.UnixMicro(), ID: d.ID}
	})
}

// UpdateDenial changes the fields u sets and audits it ("denial.update").
func (s *Store) UpdateDenial(ctx context.Context, actor store.Actor, accountID, id string, u store.DenialUpdate) (store.Denial, error) {
	if u == (store.DenialUpdate{}) {
		return s.GetDenial(ctx, accountID, id)
	}
	var out store.Denial
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := getDenial(ctx, tx, accountID, id, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		out, err = s.writeDenial(ctx, tx, actor, cur, u.Apply(cur))
		return err
	})
	return out, err
}

// writeDenial writes next's scope and reason over cur, a denial locked in
// tx, and audits it.
func (s *Store) writeDenial(ctx context.Context, tx pgx.Tx, actor store.Actor, cur, next store.Denial) (store.Denial, error) {
	out, err := scanDenial(tx.QueryRow(ctx, `UPDATE denials SET scope = $3, reason = $4, updated_at = $5
		WHERE account_id = $1 AND id = $2 RETURNING `+denialColumns,
		cur.AccountID, cur.ID, next.Scope, next.Reason, s.now()))
	if err != nil {
		return out, mapError(err, subject{AccountID: cur.AccountID, ID: cur.ID})
	}
	return out, s.audit(ctx, tx, actor, cur.AccountID, "denial.update", "denial", cur.ID, store.DenialAuditOf(cur), store.DenialAuditOf(out))
}

// DeleteDenial deletes a denial ("denial.delete"), which restores access.
func (s *Store) DeleteDenial(ctx context.Context, actor store.Actor, accountID, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockCounts(ctx, tx, accountID); err != nil {
			return err
		}
		cur, err := getDenial(ctx, tx, accountID, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM denials WHERE account_id = $1 AND id = $2`, accountID, id); err != nil {
			return fmt.Errorf("postgres: delete denial: %w", err)
		}
		return s.audit(ctx, tx, actor, accountID, "denial.delete", "denial", id, store.DenialAuditOf(cur), nil)
	})
}

// LoadRoles calls fn for every role of every account.
func (s *Store) LoadRoles(ctx context.Context, fn func(store.Role) error) error {
	return loadEach(ctx, s, `SELECT `+roleColumns+` FROM roles`, scanRole, fn)
}

// LoadDenials calls fn for every denial of every account.
func (s *Store) LoadDenials(ctx context.Context, fn func(store.Denial) error) error {
	return loadEach(ctx, s, `SELECT `+denialColumns+` FROM denials`, scanDenial, fn)
}

func loadEach[T any](ctx context.Context, s *Store, sql string, scan func(pgx.Row) (T, error), fn func(T) error) error {
	rows, err := s.pool.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("postgres: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return fmt.Errorf("postgres: load: %w", err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: load: %w", err)
	}
	return nil
}

// LookupRole reads a role for the data plane; store.ErrNotFound when gone.
func (s *Store) LookupRole(ctx context.Context, accountID, id string) (store.Role, error) {
	return getRole(ctx, s.pool, accountID, id, "")
}

// LookupDenial reads a denial for the data plane; store.ErrNotFound when
// gone.
func (s *Store) LookupDenial(ctx context.Context, accountID, id string) (store.Denial, error) {
	return getDenial(ctx, s.pool, accountID, id, "")
}

// KeysHoldingRole names the keys that hold a role, in id order.
func (s *Store) KeysHoldingRole(ctx context.Context, accountID, roleID string) ([]store.KeyRef, error) {
	rows, err := s.pool.Query(ctx, `SELECT account_id, key_id FROM key_roles
		WHERE account_id = $1 AND role_id = $2 ORDER BY key_id`, accountID, roleID)
	if err != nil {
		return nil, fmt.Errorf("postgres: keys holding role: %w", err)
	}
	refs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.KeyRef, error) {
		var r store.KeyRef
		err := row.Scan(&r.AccountID, &r.ID)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: keys holding role: %w", err)
	}
	return refs, nil
}
