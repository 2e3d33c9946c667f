// Listing an account's keys: filters, keyset pages in each sort order, and the search that reads a few matches whole.

package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// keyWhere is the WHERE clause of the keys of account that pass f, and its
// arguments: of keys k left-joined to their last use u (key_usage).
func keyWhere(accountID string, f store.KeyFilter) (*strings.Builder, []any, error) {
	var where strings.Builder
	args := []any{accountID}
	where.WriteString(` WHERE k.account_id = $1`)
	add := func(cond string, v any) {
		args = append(args, v)
		fmt.Fprintf(&where, " AND "+cond, len(args))
	}
	if f.AppID != "" {
		add("k.app_id = $%d", f.AppID)
	}
	if f.TenantID != "" {
		add("k.tenant_id = $%d", f.TenantID)
	}
	if f.Group != "" {
		add("k.grp = $%d", f.Group)
	}
	switch f.Type {
	case authz.KeyTypeUnknown:
	case authz.KeyTypeService, authz.KeyTypeApp, authz.KeyTypeAccount:
		add("k.type = $%d", f.Type.String())
	default:
		return nil, nil, invalid("type: unknown key type %d", f.Type)
	}
	if f.Active != nil {
		add("k.active = $%d", *f.Active)
	}
	if !f.ExpiringBefore.IsZero() {
		add(expiryBound("<", f.Order), f.ExpiringBefore)
	}
	if !f.ExpiresAfter.IsZero() {
		add(expiryBound(">", f.Order), f.ExpiresAfter)
	}
	if !f.UnusedSince.IsZero() {
		add("(u.last_used_at IS NULL OR u.last_used_at < $%d)", f.UnusedSince)
	}
	if f.RoleID != "" {
		add("EXISTS (SELECT 1 FROM key_roles f WHERE f.account_id = k.account_id AND f.key_id = k.id AND f.role_id = $%d)", f.RoleID)
	}
	if f.Name != "" {
		add("k.name = $%d", f.Name)
	}
	if f.NameContains != "" {
		add(`lower(k.name) LIKE '%%' || lower($%d) || '%%'`, likeEscape(f.NameContains))
	}
	if f.IDs != nil {
		add("k.id = ANY($%d)", f.IDs)
	}
	if f.NoIPFilters {
		where.WriteString(" AND cardinality(k.ip_filters) = 0")
	}
	if f.ScopeEverything {
		where.WriteString(" AND k.scope = '' AND NOT EXISTS (SELECT 1 FROM key_roles nr WHERE nr.account_id = k.account_id AND nr.key_id = k.id)")
	}
	return &where, args, nil
}

// expiryBound is the condition of a bound on the expiry (op < or >). A
// list sorted by expiry has it twice: also on the order's column
// (keys_expires_order_idx, where no expiry is infinity), so that its
// index scan starts at the bound rather than walk past every key on the
// other side of it (the keys already expired, before the first not yet
// expired: 140 ms past 47,000 of them, 0.1 ms from the bound). Elsewhere
// the copy would only cost its evaluation.
func expiryBound(op string, o store.KeyOrder) string {
	cond := "k.expires_at " + op + " $%[1]d"
	if o.By == store.SortExpires {
		cond += " AND coalesce(k.expires_at, 'infinity'::timestamptz) " + op + " $%[1]d"
	}
	return cond
}

// likeEscape quotes LIKE's wildcards (and its escape character) in s.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// keySortColumn is the SQL expression a keys list in order o is sorted
// by (after it, the id), each served by an index of migrations 0001 and
// 0013; and the token's value for it.
func keySortColumn(o store.KeyOrder, t *store.PageToken) (string, any) {
	switch o.By {
	case store.SortName:
		return `lower(k.name) COLLATE "C"`, nameArg{t}
	case store.SortExpires:
		v := pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
		if t != nil && !t.Null {
			v = pgtype.Timestamptz{Time: t.AtTime(), Valid: true}
		}
		return `coalesce(k.expires_at, 'infinity'::timestamptz)`, v
	}
	if t == nil {
		return "k.created_at", nil
	}
	return "k.created_at", t.CreatedAtTime()
}

// nameArg is a name token's value.
type nameArg struct{ t *store.PageToken }

// ListKeys lists an account's keys that pass f, in f.Order.
func (s *Store) ListKeys(ctx context.Context, accountID string, f store.KeyFilter, p store.Page) ([]store.Key, string, error) {
	if !f.Order.Valid() {
		return nil, "", invalid("order_by: unknown sort %q", f.Order.By)
	}
	size, after, err := store.ReadKeyPage(p, f.Order)
	if err != nil {
		return nil, "", err
	}
	var keys []store.Key
	if f.NameContains != "" && f.IDs == nil {
		// A search: when few keys match, read them all and sort them
		// here. Walking a sort's index for the first page's matches
		// costs as much as the rows before them, all of the account's
		// keys when the matches are the last in that order.
		ids, few, err := s.fewMatches(ctx, accountID, f)
		if err != nil {
			return nil, "", err
		}
		if few {
			return s.listFew(ctx, accountID, f, ids, after, size)
		}
	}
	sql, args, err := listKeysSQL(accountID, f, after, size)
	if err != nil {
		return nil, "", err
	}
	if keys, err = s.queryKeys(ctx, sql, args); err != nil {
		return nil, "", err
	}
	var next string
	if len(keys) > size {
		keys = keys[:size]
		next = store.KeyToken(keys[size-1], f.Order)
	}
	return keys, next, nil
}

// fewMatchesMax is how many keys a search may match to be read whole
// and sorted here (a variable for tests).
var fewMatchesMax = 500

// fewMatches returns the ids of the keys that pass f (a search) when
// there are at most fewMatchesMax, and whether there are: one read that
// stops at the bound, through the trigram index where it is selective.
func (s *Store) fewMatches(ctx context.Context, accountID string, f store.KeyFilter) ([]string, bool, error) {
	where, args, err := keyWhere(accountID, f)
	if err != nil {
		return nil, false, err
	}
	rows, err := s.reads().Query(ctx, `SELECT k.id FROM keys k
		LEFT JOIN key_usage u ON u.account_id = k.account_id AND u.key_id = k.id`+where.String()+
		fmt.Sprintf(" LIMIT %d", fewMatchesMax+1), args...)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: list keys: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, false, fmt.Errorf("postgres: list keys: %w", err)
	}
	return ids, len(ids) <= fewMatchesMax, nil
}

// listFew is ListKeys of the keys of ids (all that pass f), sorted here
// in f.Order as PostgreSQL sorts them (store.CompareKeys).
func (s *Store) listFew(ctx context.Context, accountID string, f store.KeyFilter, ids []string, after *store.PageToken, size int) ([]store.Key, string, error) {
	f.IDs = ids
	where, args, err := keyWhere(accountID, f)
	if err != nil {
		return nil, "", err
	}
	all, err := s.queryKeys(ctx, keyQuery+where.String(), args)
	if err != nil {
		return nil, "", err
	}
	keys, next := store.SortKeyPage(all, f.Order, after, size)
	return keys, next, nil
}

// queryKeys runs a keys statement of the Account API (keyQuery's columns).
func (s *Store) queryKeys(ctx context.Context, sql string, args []any) ([]store.Key, error) {
	rows, err := s.reads().Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", err)
	}
	defer rows.Close()
	var keys []store.Key
	for rows.Next() {
		r, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list keys: %w", err)
		}
		keys = append(keys, r.Key)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", err)
	}
	return keys, nil
}

// listKeysSQL is ListKeys' statement and arguments: the page of size+1
// keys after the token after (nil: the first page) in f.Order.
func listKeysSQL(accountID string, f store.KeyFilter, after *store.PageToken, size int) (string, []any, error) {
	where, args, err := keyWhere(accountID, f)
	if err != nil {
		return "", nil, err
	}
	var sql string
	if f.Order.By == store.SortLastUsed {
		sql, args = byLastUse(where.String(), args, f.Order.Desc, after, size)
	} else {
		col, v := keySortColumn(f.Order, after)
		cmpOp, dir := ">", ""
		if f.Order.Desc {
			cmpOp, dir = "<", " DESC"
		}
		if after != nil {
			arg := "$%d"
			if n, ok := v.(nameArg); ok {
				v, arg = n.t.Name, `lower($%d::text) COLLATE "C"`
			}
			args = append(args, v, after.ID)
			fmt.Fprintf(where, " AND (%s, k.id) %s ("+arg+", $%d)", col, cmpOp, len(args)-1, len(args))
		}
		args = append(args, size+1)
		sql = keyQuery + where.String() + fmt.Sprintf(" ORDER BY %s%s, k.id%s LIMIT $%d", col, dir, dir, len(args))
	}
	return sql, args, nil
}

// byLastUse is the statement of a keys list sorted by last use, then
// creation: the keys never used (through keys_list_idx) and the used ones
// (through key_usage_last_used_idx), each group's page read on its own
// and the two put together, so that neither sorts the account's keys.
// Ascending, the never used come first; descending, last.
func byLastUse(where string, args []any, desc bool, after *store.PageToken, size int) (string, []any) {
	cmpOp, dir, nulls := ">", "", " NULLS FIRST"
	if desc {
		cmpOp, dir, nulls = "<", " DESC", " NULLS LAST"
	}
	never := where + " AND u.key_id IS NULL"
	used := where
	skipNever, skipUsed := false, false
	if after != nil {
		if after.Null {
			args = append(args, after.CreatedAtTime(), after.ID)
			never += fmt.Sprintf(" AND (k.created_at, k.id) %s ($%d, $%d)", cmpOp, len(args)-1, len(args))
			// Ascending, every used key follows; descending, they came before.
			skipUsed = desc
		} else {
			args = append(args, after.AtTime(), after.CreatedAtTime(), after.ID)
			used += fmt.Sprintf(" AND (u.last_used_at, k.created_at, k.id) %s ($%d, $%d, $%d)", cmpOp, len(args)-2, len(args)-1, len(args))
			// Ascending, the never used came before; descending, all follow.
			skipNever = !desc
		}
	}
	// The limit is written in, not a parameter: each branch is a page.
	limit := fmt.Sprintf(" LIMIT %d", size+1)
	var parts []string
	if !skipNever {
		parts = append(parts, `(`+keyQuery+never+` ORDER BY k.created_at`+dir+`, k.id`+dir+limit+`)`)
	}
	if !skipUsed {
		parts = append(parts, `(SELECT `+keyColumns+`u.last_used_at FROM keys k`+keyJoins+`
	JOIN key_usage u ON u.account_id = k.account_id AND u.key_id = k.id`+
			used+` ORDER BY u.last_used_at`+dir+`, k.created_at`+dir+`, k.id`+dir+limit+`)`)
	}
	if len(parts) == 1 {
		return strings.TrimSuffix(strings.TrimPrefix(parts[0], "("), ")"), args
	}
	// A union's order names its output columns.
	return strings.Join(parts, " UNION ALL ") + ` ORDER BY last_used_at` + dir + nulls + `, created_at` + dir + `, id` + dir + limit, args
}
