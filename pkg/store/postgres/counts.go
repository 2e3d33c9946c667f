// Counting an account's keys, apps and tenants: one count(*) each, for
// the console's overview and delete confirmations.

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// CountKeys counts an account's keys that pass f, reading no app, tenant
// or role of a key but those f names: unfiltered, an index-only count;
// the hygiene filters through the partial indexes of migration 0016.
func (s *Store) CountKeys(ctx context.Context, accountID string, f store.KeyFilter) (int, error) {
	sql, args, err := countKeysSQL(accountID, f)
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.reads().QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count keys: %w", err)
	}
	return n, nil
}

// countKeysSQL is CountKeys' statement and arguments. The keys unused
// since a time are counted as the keys that pass the other filters less
// those of them used since: the last uses of an account are one index
// range (key_usage_last_used_idx), and every row of key_usage is of a
// key (its foreign key), so without other filters neither count joins
// the other table. Joining every key to its last use to find the unused
// ones costs a pass over both (tens of milliseconds with 100,000 keys).
// One statement: both counts read the same snapshot.
func countKeysSQL(accountID string, f store.KeyFilter) (string, []any, error) {
	since := f.UnusedSince
	f.UnusedSince, f.Order = time.Time{}, store.KeyOrder{}
	where, args, err := keyWhere(accountID, f)
	if err != nil {
		return "", nil, err
	}
	all := `SELECT count(*) FROM keys k` + where.String()
	// The holders of a role, and nothing else (a role's delete
	// confirmation): its rows of key_roles, each of a key (its foreign
	// key), without reading the keys.
	roleOnly := f
	roleOnly.RoleID = ""
	if since.IsZero() && f.RoleID != "" && roleOnly.IsZero() {
		return `SELECT count(*) FROM key_roles WHERE account_id = $1 AND role_id = $2`, []any{accountID, f.RoleID}, nil
	}
	if since.IsZero() {
		return all, args, nil
	}
	args = append(args, since)
	used := fmt.Sprintf(`SELECT count(*) FROM key_usage u WHERE u.account_id = $1 AND u.last_used_at >= $%d`, len(args))
	if !f.IsZero() {
		used = `SELECT count(*) FROM keys k JOIN key_usage u ON u.account_id = k.account_id AND u.key_id = k.id` +
			where.String() + fmt.Sprintf(` AND u.last_used_at >= $%d`, len(args))
	}
	return `SELECT (` + all + `) - (` + used + `)`, args, nil
}

// CountApps counts an account's apps.
func (s *Store) CountApps(ctx context.Context, accountID string) (int, error) {
	return s.countParents(ctx, appsTable, accountID)
}

// CountTenants counts an account's tenants.
func (s *Store) CountTenants(ctx context.Context, accountID string) (int, error) {
	return s.countParents(ctx, tenantsTable, accountID)
}

func (s *Store) countParents(ctx context.Context, p parent, accountID string) (int, error) {
	var n int
	if err := s.reads().QueryRow(ctx, `SELECT count(*) FROM `+p.table+` WHERE account_id = $1`, accountID).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count %s: %w", p.table, err)
	}
	return n, nil
}
