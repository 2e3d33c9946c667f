package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/store"
)

var _ store.Quotas = (*Store)(nil)

// OperatorActor is the actor the audit events of an operator's command
// (keygate accounts limits) name: no account key made the change.
var OperatorActor = store.Actor{KeyName: "operator"}

// limitColumns are what scanLimits reads of an account_limits row.
const limitColumns = `max_keys, max_apps, max_tenants, max_roles, max_denials, keys, apps, tenants, roles, denials`

// defaults are the limits an account without overrides has.
func (s *Store) defaults() store.Limits { return s.opts.Limits.WithDefaults() }

func (s *Store) scanLimits(row pgx.Row, accountID string) (store.AccountLimits, error) {
	l := store.AccountLimits{AccountID: accountID}
	o := &l.Overrides
	err := row.Scan(&o.Keys, &o.Apps, &o.Tenants, &o.Roles, &o.Denials, &l.Usage.Keys, &l.Usage.Apps, &l.Usage.Tenants, &l.Usage.Roles, &l.Usage.Denials)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, notFound("account %q not found", accountID)
	}
	if err != nil {
		return l, fmt.Errorf("postgres: read account limits: %w", err)
	}
	l.Effective = l.Overrides.Effective(s.defaults())
	return l, nil
}

// reserve is the first statement of every create: it locks the account's
// limits row, so that creates of one account run one after the other, and
// refuses one more object of kind (store.QuotaKeys, …) when the account
// already holds its limit. The insert's trigger then counts the new row
// under the same lock: two creates at limit-1 cannot both pass.
func (s *Store) reserve(ctx context.Context, tx pgx.Tx, accountID, kind string) error {
	l, err := s.scanLimits(tx.QueryRow(ctx, `SELECT `+limitColumns+` FROM account_limits
		WHERE account_id = $1 FOR UPDATE`, accountID), accountID)
	if err != nil {
		return err
	}
	return store.CheckQuota(accountID, kind, l.Usage.Get(kind), l.Effective.Get(kind))
}

// lockCounts is reserve for deletes: they take the account's limits row
// first too (their triggers update it), so that a delete and a create of
// one account never hold each other's next lock (an app's row and the
// limits row, say).
func lockCounts(ctx context.Context, tx pgx.Tx, accountID string) error {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM account_limits WHERE account_id = $1 FOR UPDATE`, accountID); err != nil {
		return fmt.Errorf("postgres: lock account limits: %w", err)
	}
	return nil
}

// AccountLimits reads an account's overrides, effective limits and counts.
func (s *Store) AccountLimits(ctx context.Context, accountID string) (store.AccountLimits, error) {
	return s.scanLimits(s.reads().QueryRow(ctx, `SELECT `+limitColumns+` FROM account_limits
		WHERE account_id = $1`, accountID), accountID)
}

// SetAccountLimits changes an account's overrides (an operator's command,
// never an account's own call) and audits it ("account.limits", the
// overrides before and after). A limit below the current count is allowed:
// nothing is removed, further creates are refused.
func (s *Store) SetAccountLimits(ctx context.Context, actor store.Actor, accountID string, u store.LimitsUpdate) (store.AccountLimits, error) {
	var out store.AccountLimits
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := s.scanLimits(tx.QueryRow(ctx, `SELECT `+limitColumns+` FROM account_limits
			WHERE account_id = $1 FOR UPDATE`, accountID), accountID)
		if err != nil {
			return err
		}
		if err := store.CheckLimitsUpdate(u); err != nil {
			return invalid("%v", err)
		}
		o := u.Apply(cur.Overrides)
		out, err = s.scanLimits(tx.QueryRow(ctx, `UPDATE account_limits
			SET max_keys = $2, max_apps = $3, max_tenants = $4, max_roles = $5, max_denials = $6
			WHERE account_id = $1 RETURNING `+limitColumns,
			accountID, o.Keys, o.Apps, o.Tenants, o.Roles, o.Denials), accountID)
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, accountID, "account.limits", "account", accountID,
			store.LimitsAuditOf(cur.Overrides), store.LimitsAuditOf(out.Overrides))
	})
	return out, err
}
