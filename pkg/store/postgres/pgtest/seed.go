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
// can present it to keygate. Its hash is plain SHA-256.
func SeedSecret(accountID string, i int) string {
	return fmt.Sprintf("seed-%s-%09d", accountID, i)
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
