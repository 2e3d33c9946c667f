package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/apikey"
)

// Seed names: SeedKeys puts every key under one app and one tenant.
const (
	SeedAppID    = "seed-app"
	SeedTenantID = "seed-tenant"
)

// SeedSecret is the custom secret of seeded key i of an account: a test
// can present it to keygate. Its hash is plain SHA-256. It is as long and
// as varied as an imported secret must now be (apikey.WeakCustomSecret),
// so that serving seeded keys is serving a fleet's keys: a weak one is
// logged once per record, 100,000 lines in the load harness's warm-up.
func SeedSecret(accountID string, i int) string {
	return fmt.Sprintf("seed-%s-%09d-keygate-seed", accountID, i)
}

// SeedKeyID is the id of seeded key i of an account.
func SeedKeyID(accountID string, i int) string {
	return fmt.Sprintf("%s-key-%09d", accountID, i)
}

// SeedKeys bulk-loads n keys into an account with COPY (creating the
// account, SeedAppID and SeedTenantID when absent): a third each of
// service, app and account keys, every tenth with an IP filter and a
// response header, so that compiling them costs what real keys cost. The
// change-feed trigger runs once for the whole COPY.
func SeedKeys(ctx context.Context, pool *pgxpool.Pool, accountID string, n int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, sql := range []string{
			`INSERT INTO accounts (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING`,
			`INSERT INTO apps (account_id, id, name) VALUES ($1, '` + SeedAppID + `', 'Seed app') ON CONFLICT DO NOTHING`,
			`INSERT INTO tenants (account_id, id, name) VALUES ($1, '` + SeedTenantID + `', 'Seed tenant') ON CONFLICT DO NOTHING`,
		} {
			if _, err := tx.Exec(ctx, sql, accountID); err != nil {
				return fmt.Errorf("pgtest: seed: %w", err)
			}
		}
		header := json.RawMessage(`[{"name":"x-tenant","value":"${tenant.name}"}]`)
		noHeaders := json.RawMessage(`[]`)
		filters := []string{"10.0.0.0/8", "2001:db8::/32"}
		i := 0
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"keys"},
			[]string{"account_id", "id", "name", "type", "app_id", "tenant_id", "hash", "scope",
				"ip_filters", "response_headers", "origin"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i >= n {
					return nil, nil
				}
				id := SeedKeyID(accountID, i)
				hash := apikey.FormatHash(apikey.SHA256, sha256.Sum256([]byte(SeedSecret(accountID, i))))
				var (
					typ         string
					app, tenant any
					scope       = "email-api !email-api:mutation:sendEmail"
					ips         = []string{}
					headers     = noHeaders
				)
				switch i % 3 {
				case 0:
					typ, app, tenant = "service", SeedAppID, SeedTenantID
					if i%10 == 0 {
						headers = header
					}
				case 1:
					typ, app = "app", SeedAppID
				default:
					typ, scope = "account", "account-api:query:*"
				}
				if i%10 == 0 {
					ips = filters
				}
				i++
				return []any{accountID, id, id, typ, app, tenant, hash, scope, ips, headers, "custom"}, nil
			}))
		if err != nil {
			return fmt.Errorf("pgtest: seed: copy keys: %w", err)
		}
		return nil
	})
}

// SeedFeatures gives the keys SeedKeys wrote what the decision has gained
// since (issue 22, point 3): three roles held by every service key (two
// with a rate limit), ten service access denials of SeedTenantID and
// SeedAppID (none covering email-api:query:listEmails), a monthly quota
// on the tenant and a daily one on every service key, both far from used
// up, so that every allow is admitted against two quotas.
func SeedFeatures(ctx context.Context, pool *pgxpool.Pool, accountID string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		stmts := []string{
			`INSERT INTO roles (account_id, id, name, scope, rate_limit) VALUES
				($1, 'seed-r1', 'readers', 'email-api:query:*', '100000/second'),
				($1, 'seed-r2', 'cleaners', 'email-api:mutation:deleteEmail !email-api:mutation:sendEmail', '100000000/hour'),
				($1, 'seed-r3', 'users', 'users-api:query:listUsers', NULL)`,
			`INSERT INTO key_roles (account_id, key_id, role_id)
				SELECT k.account_id, k.id, r.id FROM keys k CROSS JOIN (VALUES ('seed-r1'), ('seed-r2'), ('seed-r3')) AS r(id)
				WHERE k.account_id = $1 AND k.type = 'service'`,
			`INSERT INTO denials (account_id, id, tenant_id, app_id, scope, reason)
				SELECT $1, 'seed-d' || i, '` + SeedTenantID + `', '` + SeedAppID + `',
					'email-api:mutation:op' || i || ' users-api:query:x' || i, 'blocked ' || i
				FROM generate_series(0, 9) AS i`,
			`UPDATE tenants SET quota = 1000000000000000 WHERE account_id = $1 AND id = '` + SeedTenantID + `'`,
			`UPDATE keys SET quota = '1000000000000/day' WHERE account_id = $1 AND type = 'service'`,
		}
		for _, sql := range stmts {
			if _, err := tx.Exec(ctx, sql, accountID); err != nil {
				return fmt.Errorf("pgtest: seed features: %w", err)
			}
		}
		return nil
	})
}
