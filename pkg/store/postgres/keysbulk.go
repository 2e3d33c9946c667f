// A bulk key update: every matching key written with one statement, under the feed lock for as short as it can be.

package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// UpdateKeys applies u to every key that passes f in one transaction, in
// the lock order of every key writer: the account's limits row first, then
// the key rows (creation order), then the change feed's lock. Each key is
// audited "key.update" and reaches the change feed as UpdateKey's would.
//
// The write is set-based (SPEC §10, issue 15): every key is read, checked
// and validated first, then one UPDATE writes them all (its statement
// trigger takes the fleet-wide feed lock and writes the feed rows in one
// INSERT), one SELECT reads them back and one INSERT audits them. Every
// other account's key write waits on the feed lock only for those three
// statements, not for a round trip per key.
func (s *Store) UpdateKeys(ctx context.Context, actor store.Actor, accountID string, f store.KeyFilter, u store.KeyUpdate, check func([]store.Key) error) ([]store.Key, error) {
	where, args, err := keyWhere(accountID, f)
	if err != nil {
		return nil, err
	}
	var out []store.Key
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out = nil
		if err := lockCounts(ctx, tx, accountID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, keyQuery+where.String()+` ORDER BY k.created_at, k.id FOR NO KEY UPDATE OF k`, args...)
		if err != nil {
			return fmt.Errorf("postgres: update keys: %w", err)
		}
		cur, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (keyRow, error) { return scanKey(row) })
		if err != nil {
			return fmt.Errorf("postgres: update keys: %w", err)
		}
		matched := make([]store.Key, len(cur))
		for i, r := range cur {
			matched[i] = r.Key
		}
		if check != nil {
			if err := check(matched); err != nil {
				return err
			}
		}
		if u == (store.KeyUpdate{}) || len(matched) == 0 {
			out = matched
			return nil
		}
		n := len(matched)
		var (
			ids, names, descs, groups, scopes, headers []string
			ipf                                        []string // JSON arrays
			active                                     []bool
			notBefore, expiresAt                       []pgtype.Timestamptz
			rateLimits, quotas                         []*string
		)
		for _, k := range matched {
			next := k
			next.Spec.IPFilters = append([]string(nil), k.Spec.IPFilters...)
			next.Spec.ResponseHeaders = append([]authz.HeaderSpec(nil), k.Spec.ResponseHeaders...)
			next.Spec = u.Apply(next.Spec)
			if err := s.validate(next.Spec, slices.Equal(next.Spec.ResponseHeaders, k.Spec.ResponseHeaders)); err != nil {
				return fmt.Errorf("key %q: %w", k.Spec.ID, err)
			}
			sp := &next.Spec
			h, err := json.Marshal(headersJSON(sp.ResponseHeaders))
			if err != nil {
				return fmt.Errorf("key %q: response headers: %w", k.Spec.ID, err)
			}
			ips, err := json.Marshal(ipFilters(sp.IPFilters))
			if err != nil {
				return fmt.Errorf("key %q: ip filters: %w", k.Spec.ID, err)
			}
			ids, names, descs, groups = append(ids, k.Spec.ID), append(names, sp.Name), append(descs, sp.Description), append(groups, sp.Group)
			scopes, active, headers, ipf = append(scopes, sp.Scope), append(active, sp.Active), append(headers, string(h)), append(ipf, string(ips))
			notBefore, expiresAt = append(notBefore, tstz(sp.NotBefore)), append(expiresAt, tstz(sp.ExpiresAt))
			rateLimits, quotas = append(rateLimits, rateLimitText(sp.RateLimit)), append(quotas, quotaText(sp.Quota))
		}
		tag, err := tx.Exec(ctx, `UPDATE keys k SET name = v.name, description = v.description, grp = v.grp,
				scope = v.scope, active = v.active, not_before = v.not_before, expires_at = v.expires_at,
				ip_filters = ARRAY(SELECT e FROM jsonb_array_elements_text(v.ip_filters::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY n),
				response_headers = v.response_headers::jsonb,
				updated_at = $14, rate_limit = v.rate_limit, quota = v.quota
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[],
				$8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::text[])
				AS v(id, name, description, grp, scope, active, not_before, expires_at, ip_filters,
					response_headers, rate_limit, quota)
			WHERE k.account_id = $1 AND k.id = v.id`,
			accountID, ids, names, descs, groups, scopes, active, notBefore, expiresAt, ipf, headers,
			rateLimits, quotas, s.now())
		if err != nil {
			return mapError(err, subject{AccountID: accountID})
		}
		if int(tag.RowsAffected()) != n {
			return fmt.Errorf("postgres: update keys: %d of %d locked keys written", tag.RowsAffected(), n)
		}
		rows, err = tx.Query(ctx, keyQuery+` WHERE k.account_id = $1 AND k.id = ANY($2) ORDER BY k.created_at, k.id`, accountID, ids)
		if err != nil {
			return fmt.Errorf("postgres: update keys: %w", err)
		}
		got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (keyRow, error) { return scanKey(row) })
		if err != nil {
			return fmt.Errorf("postgres: update keys: %w", err)
		}
		if len(got) != n {
			return fmt.Errorf("postgres: update keys: read back %d of %d keys", len(got), n)
		}
		before, after := make([]any, n), make([]any, n)
		for i, k := range matched {
			if got[i].Spec.ID != k.Spec.ID {
				return fmt.Errorf("postgres: update keys: key %q read back in another order", k.Spec.ID)
			}
			before[i], after[i] = store.KeyAuditOf(k), store.KeyAuditOf(got[i].Key)
			out = append(out, got[i].Key)
		}
		return s.auditMany(ctx, tx, actor, accountID, "key.update", "key", ids, before, after)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// tstz is t as a timestamptz, NULL for the zero time ("unset").
func tstz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}
