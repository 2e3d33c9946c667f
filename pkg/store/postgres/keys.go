package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unique"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/weakmap"
)

// keyColumns are the columns scanKey reads, with the app's and tenant's
// names and flags joined in; the last-used column follows.
const keyColumns = `k.account_id, k.id, k.name, k.type,
	coalesce(k.app_id, ''), coalesce(a.name, ''), coalesce(k.tenant_id, ''), coalesce(t.name, ''),
	k.hash, coalesce(k.previous_hash, ''), k.previous_valid_until,
	k.scope, k.active, coalesce(a.active, true) AND coalesce(t.active, true),
	k.not_before, k.expires_at, k.ip_filters, k.grp, k.description,
	nullif(k.response_headers, '[]'::jsonb), k.origin, k.created_at, k.updated_at,
	kr.ids, kr.names, kr.scopes, kr.found, k.rate_limit, kr.rate_limits, k.quota, t.quota, `

// keyJoins join a key's app, tenant and roles (kr: the roles' ids, names
// and scopes in id order, NULL for none), in the statement's one snapshot:
// a key and the role scopes it is compiled with always agree. found says
// whether each role id the key holds names a role: the foreign key makes
// a missing one impossible, but a key naming a role that is not there
// (a row written past the constraints) must fail to compile, never be
// compiled without the role (which could widen it: a role may deny).
const keyJoins = `
	LEFT JOIN apps a ON a.account_id = k.account_id AND a.id = k.app_id
	LEFT JOIN tenants t ON t.account_id = k.account_id AND t.id = k.tenant_id
	LEFT JOIN LATERAL (
		SELECT array_agg(kr.role_id ORDER BY kr.role_id) AS ids,
			array_agg(coalesce(r.name, '') ORDER BY kr.role_id) AS names,
			array_agg(coalesce(r.scope, '') ORDER BY kr.role_id) AS scopes,
			array_agg(r.id IS NOT NULL ORDER BY kr.role_id) AS found,
			array_agg(coalesce(r.rate_limit, '') ORDER BY kr.role_id) AS rate_limits
		FROM key_roles kr LEFT JOIN roles r ON r.account_id = kr.account_id AND r.id = kr.role_id
		WHERE kr.account_id = k.account_id AND kr.key_id = k.id) kr ON true`

// keyQuery reads keys for the Account API, with their last-used times.
const keyQuery = `SELECT ` + keyColumns + `u.last_used_at
	FROM keys k` + keyJoins + `
	LEFT JOIN key_usage u ON u.account_id = k.account_id AND u.key_id = k.id`

// dataKeyQuery reads keys for the data plane, which needs no last-used time.
const dataKeyQuery = `SELECT ` + keyColumns + `NULL::timestamptz
	FROM keys k` + keyJoins

// keyRow is a scanned key: Spec.Active is the key's own flag.
type keyRow struct {
	store.Key
	parentsActive bool // the app's and the tenant's flags
	// Roles are the roles the key holds, with their scopes: what the data
	// plane compiles the key's effective scope from (SPEC §11). A role id
	// the key names that no role has is in RoleIDs but not in Roles.
	Roles []store.KeyRole
}

// headerJSON is how response headers are stored (keys.response_headers)
// and audited.
type headerJSON struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	Disabled bool   `json:"disabled,omitempty"`
}

func scanKey(row pgx.Row) (keyRow, error) {
	var (
		r                                         keyRow
		typ, origin                               string
		prevUntil, notBefore, expiresAt, lastUsed pgtype.Timestamptz
		headers                                   []byte
		roleIDs, roleNames, roleScopes            []string
		roleFound                                 []bool
		rateLimit, quota                          *string
		tenantQuota                               *int64
		roleRateLimits                            []string
	)
	s := &r.Spec
	err := row.Scan(&s.AccountID, &s.ID, &s.Name, &typ,
		&s.AppID, &s.AppName, &s.TenantID, &s.TenantName,
		&s.Hash, &s.PreviousHash, &prevUntil,
		&s.Scope, &s.Active, &r.parentsActive,
		&notBefore, &expiresAt, &s.IPFilters, &s.Group, &s.Description,
		&headers, &origin, &r.CreatedAt, &r.UpdatedAt, &roleIDs, &roleNames, &roleScopes, &roleFound, &rateLimit, &roleRateLimits, &quota, &tenantQuota, &lastUsed)
	if err != nil {
		return r, err
	}
	if len(roleIDs) > 0 {
		r.RoleIDs = roleIDs
		r.Roles = make([]store.KeyRole, 0, len(roleIDs))
		for i := range roleIDs {
			if i < len(roleFound) && roleFound[i] {
				kr := store.KeyRole{ID: intern(roleIDs[i]), Name: intern(roleNames[i]), Scope: intern(roleScopes[i])}
				if i < len(roleRateLimits) && roleRateLimits[i] != "" {
					if kr.RateLimit, err = authz.ParseRateLimit(roleRateLimits[i]); err != nil {
						return r, &rowError{field: "roles", err: fmt.Errorf("key %q: role %q: rate_limit: %w", s.ID, kr.ID, err)}
					}
				}
				r.Roles = append(r.Roles, kr)
			}
		}
	}
	// Many keys share these: one copy each, not one per key (a million
	// keys of one account and a few apps would otherwise hold a million
	// copies of the same ids and names).
	s.AccountID = intern(s.AccountID)
	s.AppID, s.AppName = intern(s.AppID), intern(s.AppName)
	s.TenantID, s.TenantName = intern(s.TenantID), intern(s.TenantName)
	s.Scope, s.Group = intern(s.Scope), intern(s.Group)
	if rateLimit != nil {
		if s.RateLimit, err = authz.ParseRateLimit(*rateLimit); err != nil {
			return r, &rowError{field: "rate_limit", err: fmt.Errorf("key %q: rate_limit: %w", s.ID, err)}
		}
	}
	if quota != nil {
		if s.Quota, err = authz.ParseQuota(*quota); err != nil {
			return r, &rowError{field: "quota", err: fmt.Errorf("key %q: quota: %w", s.ID, err)}
		}
	}
	if tenantQuota != nil && s.TenantID != "" {
		s.TenantQuota = *tenantQuota
	}
	if s.Type, err = authz.ParseKeyType(typ); err != nil {
		return r, &rowError{field: "type", err: fmt.Errorf("key %q: %w", s.ID, err)}
	}
	s.PreviousValidUntil = timeOf(prevUntil)
	s.NotBefore = timeOf(notBefore)
	s.ExpiresAt = timeOf(expiresAt)
	if len(s.IPFilters) == 0 {
		s.IPFilters = nil
	}
	if headers != nil {
		var hs []headerJSON
		if err := json.Unmarshal(headers, &hs); err != nil {
			return r, &rowError{field: "response_headers", err: fmt.Errorf("key %q: response_headers: %w", s.ID, err)}
		}
		s.ResponseHeaders = make([]authz.HeaderSpec, len(hs))
		for i, h := range hs {
			s.ResponseHeaders[i] = authz.HeaderSpec{Name: h.Name, Value: h.Value, Disabled: h.Disabled}
		}
	}
	r.Origin = store.Origin(origin)
	r.CreatedAt = r.CreatedAt.UTC()
	r.UpdatedAt = r.UpdatedAt.UTC()
	r.LastUsedAt = timeOf(lastUsed)
	return r, nil
}

// roleRecords shares the authz.Role records of the keys a store compiles
// between the keys holding the same role (a million keys of one role need
// one record, not a million), whether a bulk read or a lookup on a miss
// compiled them. It holds them weakly (pkg/weakmap): a record no key holds
// leaves. A nil *roleRecords shares nothing. Safe for concurrent use.
type roleRecords struct {
	m weakmap.Map[roleRecordKey, authz.Role]
}

type roleRecordKey struct {
	account string
	role    store.KeyRole
}

// of is the RoleSet of a key's roles.
func (rr *roleRecords) of(accountID string, roles []store.KeyRole) authz.RoleMap {
	m := make(authz.RoleMap, len(roles))
	for _, kr := range roles {
		record := func() (*authz.Role, error) {
			return &authz.Role{ID: kr.ID, AccountID: accountID, Name: kr.Name, Scope: kr.Scope, RateLimit: kr.RateLimit}, nil
		}
		r, _ := record()
		if rr != nil {
			r, _ = rr.m.LoadOrMake(roleRecordKey{accountID, kr}, record)
		}
		m[kr.ID] = r
	}
	return m
}

func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

func timeOf(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// compileWith builds the data plane's record: active only when the key, its app
// and its tenant are. A stored key that does not compile (the constraints
// should make it impossible, but a row written past the API, or rules
// changed since, can) becomes an authz.Unloadable record, never an error
// that would fail a warm load or a change: the key is denied
// store_unavailable and reported (see unloadable.go). The one exception
// is response headers: a header that breaks SPEC §9's rules (saved before
// they held, or reserved by a server setting changed since) is dropped,
// logged by name and counted, and the key works without it.
func (s *Store) compileWith(r keyRow, opts authz.CompileOptions, roles *roleRecords) (k *authz.Key, err error) {
	spec := r.Spec
	spec.Active = spec.Active && r.parentsActive
	defer func() {
		if p := recover(); p != nil {
			k, err = unloadable(spec, fmt.Errorf("compile panicked: %v", p))
		}
	}()
	runCompileHook(spec)
	// The effective scope (SPEC §11): the key's own scope and the scopes
	// of the roles it holds, read in the same statement. Every role id the
	// key names is passed; one without its role (see keyJoins) makes the
	// key unloadable rather than compiled without it.
	if len(r.RoleIDs) > 0 {
		spec.Roles = r.RoleIDs
		opts.Roles = roles.of(spec.AccountID, r.Roles)
	}
	k, dropped, err := authz.CompileStored(spec, opts)
	if err != nil {
		return unloadable(spec, err)
	}
	if len(dropped) > 0 {
		s.droppedHeaders(spec.ID, dropped)
	}
	return k, nil
}

// droppedHeaders logs, by name only, the response headers a stored key
// lost at load, and counts them.
func (s *Store) droppedHeaders(keyID string, names []string) {
	for _, name := range names {
		s.log.Warn("stored key: response header dropped at load: it breaks the response header rules; the key works without it",
			"key_id", keyID, "header", name)
	}
	if s.opts.Headers != nil {
		s.opts.Headers.ObserveDroppedResponseHeaders(len(names))
	}
}

// validate compiles a key about to be written, so that every problem the
// data plane would refuse is reported at once, naming its fields. With
// keptHeaders (an update that leaves the stored response headers as they
// are) headers saved under older rules do not fail the write: the data
// plane drops them at load, and a key must stay editable (deactivated,
// say) without first fixing them.
func (s *Store) validate(spec authz.KeySpec, keptHeaders bool) error {
	if spec.ID == "" {
		spec.ID = "(new)" // the database picks the id
	}
	compile := authz.Compile
	if keptHeaders {
		compile = func(spec authz.KeySpec, opts authz.CompileOptions) (*authz.Key, error) {
			k, _, err := authz.CompileStored(spec, opts)
			return k, err
		}
	}
	if _, err := compile(spec, s.opts.Compile); err != nil {
		return &storeError{msg: "invalid key: " + strings.ReplaceAll(err.Error(), "\n", "; "), kind: store.ErrInvalid, cause: err}
	}
	return nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func headersJSON(hs []authz.HeaderSpec) []headerJSON {
	out := make([]headerJSON, len(hs))
	for i, h := range hs {
		out[i] = headerJSON{Name: h.Name, Value: h.Value, Disabled: h.Disabled}
	}
	return out
}

func ipFilters(f []string) []string {
	if f == nil {
		return []string{} // the column is NOT NULL; pgx sends nil as NULL
	}
	return f
}

// CreateKey stores a new key and audits it ("key.create"), within the
// account's quota of keys (Bootstrap, the operator's, is not held to it).
func (s *Store) CreateKey(ctx context.Context, actor store.Actor, k store.Key) (store.Key, error) {
	var out store.Key
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.reserve(ctx, tx, k.Spec.AccountID, store.QuotaKeys); err != nil {
			return err
		}
		var err error
		out, err = s.createKey(ctx, tx, actor, k)
		return err
	})
	return out, err
}

func (s *Store) createKey(ctx context.Context, tx pgx.Tx, actor store.Actor, k store.Key) (store.Key, error) {
	spec := k.Spec
	if k.Origin == "" {
		k.Origin = store.OriginGenerated
	}
	if err := s.validate(spec, false); err != nil {
		return store.Key{}, err
	}
	roles := store.NormalizeRoleIDs(k.RoleIDs)
	if err := lockRoles(ctx, tx, spec.AccountID, roles); err != nil {
		return store.Key{}, err
	}
	now := s.now()
	var id string
	err := tx.QueryRow(ctx, `INSERT INTO keys (account_id, id, name, type, app_id, tenant_id,
			hash, previous_hash, previous_valid_until, scope, active, not_before, expires_at,
			ip_filters, grp, description, response_headers, origin, created_at, updated_at, rate_limit, quota)
		VALUES ($1, coalesce(nullif($2, ''), gen_random_uuid()::text), $3, $4, $5, $6,
			$7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19, $20, $21)
		RETURNING id`,
		spec.AccountID, spec.ID, spec.Name, spec.Type.String(), nullString(spec.AppID), nullString(spec.TenantID),
		spec.Hash, nullString(spec.PreviousHash), nullTime(spec.PreviousValidUntil), spec.Scope, spec.Active,
		nullTime(spec.NotBefore), nullTime(spec.ExpiresAt), ipFilters(spec.IPFilters), spec.Group,
		spec.Description, headersJSON(spec.ResponseHeaders), string(k.Origin), now, rateLimitText(spec.RateLimit),
		quotaText(spec.Quota)).Scan(&id)
	if err != nil {
		return store.Key{}, mapError(err, keySubject(spec))
	}
	if err := writeKeyRoles(ctx, tx, spec.AccountID, id, roles); err != nil {
		return store.Key{}, err
	}
	got, err := getKey(ctx, tx, spec.AccountID, id, false)
	if err != nil {
		return store.Key{}, err
	}
	err = s.audit(ctx, tx, actor, spec.AccountID, "key.create", "key", id, nil, store.KeyAuditOf(got))
	return got, err
}

func keySubject(spec authz.KeySpec) subject {
	return subject{AccountID: spec.AccountID, ID: spec.ID, Name: spec.Name, AppID: spec.AppID, TenantID: spec.TenantID}
}

// getKey reads one key of an account as the Account API shows it (the
// key's own active flag); forUpdate locks its row.
func getKey(ctx context.Context, q querier, accountID, id string, forUpdate bool) (store.Key, error) {
	sql := keyQuery + ` WHERE k.account_id = $1 AND k.id = $2`
	if forUpdate {
		// NO KEY UPDATE: enough to serialise writers of this key, without
		// blocking TouchKeys' foreign-key checks on it.
		sql += ` FOR NO KEY UPDATE OF k`
	}
	r, err := scanKey(q.QueryRow(ctx, sql, accountID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Key{}, notFound("key %q not found in account %q", id, accountID)
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("postgres: read key: %w", err)
	}
	return r.Key, nil
}

// GetKey reads one key. Spec.Active is the key's own flag; Spec.AppName
// and TenantName are filled.
func (s *Store) GetKey(ctx context.Context, accountID, id string) (store.Key, error) {
	return getKey(ctx, s.reads(), accountID, id, false)
}

// updateKey locks a key, lets change edit a copy, validates the copy,
// writes it with set (which gets the copy and the time) and audits it.
// With lockCounts it takes the account's limits row first, as a write of
// the key's roles must (a forced role delete takes it first too).
func (s *Store) updateKey(ctx context.Context, actor store.Actor, accountID, id, action string, lockAccount bool,
	change func(k *store.Key) error, set func(ctx context.Context, tx pgx.Tx, k *store.Key, now time.Time) error,
) (store.Key, error) {
	var out store.Key
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if lockAccount {
			if err := lockCounts(ctx, tx, accountID); err != nil {
				return err
			}
		}
		cur, err := getKey(ctx, tx, accountID, id, true)
		if err != nil {
			return err
		}
		next := cur
		next.Spec.IPFilters = append([]string(nil), cur.Spec.IPFilters...)
		next.Spec.ResponseHeaders = append([]authz.HeaderSpec(nil), cur.Spec.ResponseHeaders...)
		if err := change(&next); err != nil {
			return err
		}
		if err := s.validate(next.Spec, slices.Equal(next.Spec.ResponseHeaders, cur.Spec.ResponseHeaders)); err != nil {
			return err
		}
		if err := set(ctx, tx, &next, s.now()); err != nil {
			return mapError(err, keySubject(next.Spec))
		}
		if out, err = getKey(ctx, tx, accountID, id, false); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, accountID, action, "key", id, store.KeyAuditOf(cur), store.KeyAuditOf(out))
	})
	return out, err
}

// UpdateKey changes the fields u sets and audits it ("key.update"). An
// update that sets no field returns the key unchanged, without a write.
func (s *Store) UpdateKey(ctx context.Context, actor store.Actor, accountID, id string, u store.KeyUpdate) (store.Key, error) {
	if u == (store.KeyUpdate{}) {
		return s.GetKey(ctx, accountID, id)
	}
	var roles []string
	if u.RoleIDs != nil {
		roles = store.NormalizeRoleIDs(*u.RoleIDs)
	}
	return s.updateKey(ctx, actor, accountID, id, "key.update", u.RoleIDs != nil, func(k *store.Key) error {
		k.Spec = u.Apply(k.Spec)
		return nil
	}, func(ctx context.Context, tx pgx.Tx, k *store.Key, now time.Time) error {
		if u.RoleIDs != nil {
			if err := lockRoles(ctx, tx, accountID, roles); err != nil {
				return err
			}
			if err := writeKeyRoles(ctx, tx, accountID, id, roles); err != nil {
				return err
			}
		}
		sp := &k.Spec
		_, err := tx.Exec(ctx, `UPDATE keys SET name = $3, description = $4, grp = $5, scope = $6,
				active = $7, not_before = $8, expires_at = $9, ip_filters = $10,
				response_headers = $11, updated_at = $12, rate_limit = $13, quota = $14
			WHERE account_id = $1 AND id = $2`,
			accountID, id, sp.Name, sp.Description, sp.Group, sp.Scope, sp.Active,
			nullTime(sp.NotBefore), nullTime(sp.ExpiresAt), ipFilters(sp.IPFilters),
			headersJSON(sp.ResponseHeaders), now, rateLimitText(sp.RateLimit), quotaText(sp.Quota))
		return err
	})
}

// RotateKey replaces the key's hash and audits it ("key.regenerate"). The
// old hash stays valid until graceUntil when that is in the future; a zero
// or past graceUntil drops it (and any older previous hash) at once.
func (s *Store) RotateKey(ctx context.Context, actor store.Actor, accountID, id, newHash string, graceUntil time.Time) (store.Key, error) {
	return s.updateKey(ctx, actor, accountID, id, "key.regenerate", false, func(k *store.Key) error {
		if !k.Rotate(newHash, graceUntil, s.now()) {
			return invalid("hash: the new hash is the key's current one")
		}
		return nil
	}, func(ctx context.Context, tx pgx.Tx, k *store.Key, now time.Time) error {
		_, err := tx.Exec(ctx, `UPDATE keys SET hash = $3, previous_hash = $4,
				previous_valid_until = $5, updated_at = $6
			WHERE account_id = $1 AND id = $2`,
			accountID, id, k.Spec.Hash, nullString(k.Spec.PreviousHash), nullTime(k.Spec.PreviousValidUntil), now)
		return err
	})
}

// DeleteKey deletes a key and audits it ("key.delete").
func (s *Store) DeleteKey(ctx context.Context, actor store.Actor, accountID, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockCounts(ctx, tx, accountID); err != nil {
			return err
		}
		cur, err := getKey(ctx, tx, accountID, id, true)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM keys WHERE account_id = $1 AND id = $2`, accountID, id); err != nil {
			return fmt.Errorf("postgres: delete key: %w", err)
		}
		return s.audit(ctx, tx, actor, accountID, "key.delete", "key", id, store.KeyAuditOf(cur), nil)
	})
}

// lockRoles checks that the account has every role of ids and locks
// their rows (KEY SHARE: a concurrent delete of one waits, edits do not),
// before the key is written, so that the feed lock is never held while
// waiting for a role. A missing role is ErrNotFound, naming it.
func lockRoles(ctx context.Context, tx pgx.Tx, accountID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id FROM roles WHERE account_id = $1 AND id = ANY($2)
		ORDER BY id FOR KEY SHARE`, accountID, ids)
	if err != nil {
		return fmt.Errorf("postgres: read roles: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("postgres: read roles: %w", err)
	}
	for _, id := range ids {
		if !slices.Contains(found, id) {
			return notFound("role %q not found in account %q", id, accountID)
		}
	}
	return nil
}

// writeKeyRoles makes ids (locked by lockRoles) the roles a key holds:
// rows no longer named are removed, new ones added, each a change of the
// key on the feed.
func writeKeyRoles(ctx context.Context, tx pgx.Tx, accountID, keyID string, ids []string) error {
	if ids == nil {
		ids = []string{}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM key_roles WHERE account_id = $1 AND key_id = $2
		AND NOT (role_id = ANY($3))`, accountID, keyID, ids); err != nil {
		return fmt.Errorf("postgres: set key roles: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO key_roles (account_id, key_id, role_id)
		SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING`, accountID, keyID, ids); err != nil {
		return mapError(err, subject{AccountID: accountID, ID: keyID})
	}
	return nil
}
