package postgres_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keygate/keygate/pkg/store"
)

// TestConstraintsRefuseBadKeys writes keys by raw SQL, as a client that
// bypasses keygate would: the database itself must refuse each.
func TestConstraintsRefuseBadKeys(t *testing.T) {
	e := newEnv(t)
	h := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	const insert = `INSERT INTO keys (account_id, id, name, type, app_id, tenant_id, hash,
		previous_hash, previous_valid_until, not_before, expires_at)
		VALUES ('acct', $1, $1, $2, $3, $4, $5, $6, $7, $8, $9)`
	cases := []struct {
		name       string
		args       []any
		code       string
		constraint string
	}{
		{"service key without tenant", []any{"service", "app1", nil, h("a"), nil, nil, nil, nil}, "23514", "keys_tenant_id_check"},
		{"service key without app", []any{"service", nil, "ten1", h("a"), nil, nil, nil, nil}, "23514", "keys_app_id_check"},
		{"app key with tenant", []any{"app", "app1", "ten1", h("a"), nil, nil, nil, nil}, "23514", "keys_tenant_id_check"},
		{"app key without app", []any{"app", nil, nil, h("a"), nil, nil, nil, nil}, "23514", "keys_app_id_check"},
		{"account key with app", []any{"account", "app1", nil, h("a"), nil, nil, nil, nil}, "23514", "keys_app_id_check"},
		{"account key with tenant", []any{"account", nil, "ten1", h("a"), nil, nil, nil, nil}, "23514", "keys_tenant_id_check"},
		{"unknown type", []any{"admin", "app1", nil, h("a"), nil, nil, nil, nil}, "23514", "keys_type_check"},
		{"bad hash", []any{"account", nil, nil, "kg_sak_plaintextsecret", nil, nil, nil, nil}, "23514", "keys_hash_check"},
		{"uppercase hash", []any{"account", nil, nil, h("A"), nil, nil, nil, nil}, "23514", "keys_hash_check"},
		{"short hash", []any{"account", nil, nil, "sha256:abcd", nil, nil, nil, nil}, "23514", "keys_hash_check"},
		{"bad previous hash", []any{"account", nil, nil, h("a"), "sha256:zz", "2030-01-01T00:00:00Z", nil, nil}, "23514", "keys_previous_hash_check"},
		{"previous hash of another algorithm", []any{"account", nil, nil, h("a"), "hmac-sha256:" + strings.Repeat("b", 64), "2030-01-01T00:00:00Z", nil, nil}, "23514", "keys_previous_hash_check"},
		{"previous hash without deadline", []any{"account", nil, nil, h("a"), h("b"), nil, nil, nil}, "23514", "keys_previous_valid_until_check"},
		{"deadline without previous hash", []any{"account", nil, nil, h("a"), nil, "2030-01-01T00:00:00Z", nil, nil}, "23514", "keys_previous_valid_until_check"},
		{"not_before after expires_at", []any{"account", nil, nil, h("a"), nil, nil, "2030-01-02T00:00:00Z", "2030-01-01T00:00:00Z"}, "23514", "keys_not_before_check"},
		{"app of another account", []any{"app", "nope", nil, h("a"), nil, nil, nil, nil}, "23503", "keys_app_fkey"},
		{"tenant of another account", []any{"service", "app1", "nope", h("a"), nil, nil, nil, nil}, "23503", "keys_tenant_fkey"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]any{"k" + string(rune('a'+i))}, c.args...)
			err := e.exec(insert, args...)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				t.Fatalf("insert accepted or failed oddly: %v", err)
			}
			if pe.Code != c.code || pe.ConstraintName != c.constraint {
				t.Fatalf("refused with %s %s (%s), want %s %s", pe.Code, pe.ConstraintName, pe.Message, c.code, c.constraint)
			}
		})
	}

	t.Run("name and id bounds", func(t *testing.T) {
		for _, c := range []struct{ id, name, constraint string }{
			{"ok-id", "", "keys_name_check"},
			{"ok-id", " padded", "keys_name_check"},
			{"ok-id", "line\nbreak", "keys_name_check"},
			{"ok-id", strings.Repeat("n", 257), "keys_name_check"},
			{"", "name", "keys_id_check"},
			{"has space", "name", "keys_id_check"},
			{strings.Repeat("i", 129), "name", "keys_id_check"},
		} {
			err := e.exec(`INSERT INTO keys (account_id, id, name, type, hash) VALUES ('acct', $1, $2, 'account', $3)`,
				c.id, c.name, h("c"))
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.ConstraintName != c.constraint {
				t.Errorf("id %q name %q: %v, want %s", c.id, c.name, err, c.constraint)
			}
		}
	})

	t.Run("digest current for one key and previous for another", func(t *testing.T) {
		if err := e.exec(`INSERT INTO keys (account_id, id, name, type, hash, previous_hash, previous_valid_until)
			VALUES ('acct', 'r1', 'r1', 'account', $1, $2, now() + interval '1 hour')`, h("1"), h("2")); err != nil {
			t.Fatal(err)
		}
		err := e.exec(`INSERT INTO keys (account_id, id, name, type, hash) VALUES ('acct', 'r2', 'r2', 'account', $1)`, h("2"))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23505" {
			t.Fatalf("a key whose hash is another key's previous hash: %v, want unique_violation", err)
		}
		err = e.exec(`INSERT INTO keys (account_id, id, name, type, hash) VALUES ('acct', 'r3', 'r3', 'account', $1)`, h("1"))
		if !errors.As(err, &pe) || pe.Code != "23505" {
			t.Fatalf("a duplicate hash: %v, want unique_violation", err)
		}
	})

	t.Run("truncate is refused", func(t *testing.T) {
		err := e.exec(`TRUNCATE keys CASCADE`)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || !strings.Contains(pe.Message, "change feed") {
			t.Fatalf("TRUNCATE: %v, want refused", err)
		}
	})
}

// TestConstraintErrorsMapped checks that a constraint the store's own
// validation does not catch comes back as store.ErrInvalid naming the field.
func TestConstraintErrorsMapped(t *testing.T) {
	e := newEnv(t)
	k := serviceKey("bad-name")
	k.Spec.Name = "  spaces around  "
	_, err := e.store.CreateKey(e.ctx, e.actor, k)
	wantErr(t, err, store.ErrInvalid, "name")

	k = serviceKey("bad-id")
	k.Spec.ID = "with space"
	_, err = e.store.CreateKey(e.ctx, e.actor, k)
	wantErr(t, err, store.ErrInvalid, "id")

	k = serviceKey("bad-origin")
	k.Origin = "stolen"
	_, err = e.store.CreateKey(e.ctx, e.actor, k)
	wantErr(t, err, store.ErrInvalid, "origin")

	_, err = e.store.CreateApp(e.ctx, e.actor, store.App{AccountID: "acct", Name: ""})
	wantErr(t, err, store.ErrInvalid, "name")
}
