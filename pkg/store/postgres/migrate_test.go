package postgres_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

func migrationCount(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewEmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for i := range 2 {
		if err := postgres.Migrate(ctx, pool); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	n := migrationCount(t, pool)
	if n < 2 {
		t.Fatalf("schema_migrations has %d rows, want every migration", n)
	}
	// The SQL itself is idempotent: forget that it ran and run it again
	// on the migrated schema.
	if _, err := pool.Exec(ctx, "DELETE FROM schema_migrations"); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatalf("re-applying every migration on a migrated schema: %v", err)
	}
	if got := migrationCount(t, pool); got != n {
		t.Fatalf("schema_migrations has %d rows after re-applying, want %d", got, n)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = postgres.MigrateURL(ctx, url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d: %v", i, err)
		}
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var versions []int
	rows, _ := pool.Query(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	// Each embedded migration once. Versions need not be contiguous:
	// branches take numbers apart (0004 may land before 0003).
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for _, f := range files {
		v, err := strconv.Atoi(filepath.Base(f)[:4])
		if err != nil {
			t.Fatalf("migration %s: %v", f, err)
		}
		want = append(want, v)
	}
	slices.Sort(want)
	if !slices.Equal(versions, want) {
		t.Fatalf("versions %v, want %v each once", versions, want)
	}
}

func TestMigrationsDigestStable(t *testing.T) {
	a, b := postgres.MigrationsDigest(), postgres.MigrationsDigest()
	if a != b || len(a) != 64 {
		t.Fatalf("MigrationsDigest = %q, %q", a, b)
	}
}

// TestMigrate0003KeepsData: a database at 0002 holding keys, last-used
// times and feed rows keeps them when 0003 makes key ids per account, and
// then takes a second account's key of the same id.
func TestMigrate0003KeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	if err := postgres.MigrateURLUpTo(ctx, url, 2); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	used := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, sql := range []string{
		`INSERT INTO accounts (id, name) VALUES ('acct', 'Acct'), ('other', 'Other')`,
		`INSERT INTO apps (account_id, id, name) VALUES ('acct', 'app1', 'App One')`,
		`INSERT INTO keys (account_id, id, name, type, app_id, hash) VALUES
			('acct', 'k1', 'k1', 'app', 'app1', 'sha256:` + strings.Repeat("a", 64) + `'),
			('acct', 'gone', 'gone', 'app', 'app1', 'sha256:` + strings.Repeat("b", 64) + `')`,
		`DELETE FROM keys WHERE id = 'gone'`,
		`INSERT INTO key_usage (key_id, last_used_at) VALUES ('k1', '` + used.Format(time.RFC3339) + `')`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if err := postgres.MigrateURL(ctx, url); err != nil {
		t.Fatalf("migrating a 0002 database with data: %v", err)
	}

	st := postgres.New(ctx, pool, postgres.Options{})
	k, err := st.GetKey(ctx, "acct", "k1")
	if err != nil || !k.LastUsedAt.Equal(used) || k.Spec.AppName != "App One" {
		t.Fatalf("k1 after the migration: %+v, %v", k, err)
	}
	cs, err := st.ChangesSince(ctx, 0, 100)
	if err != nil || len(cs) != 3 {
		t.Fatalf("feed after the migration: %+v, %v; want 3 rows", cs, err)
	}
	// Rows of a live key name its account; a key deleted before the
	// migration has none to find (a reader finds it gone, as it is).
	for _, c := range cs {
		want := map[string]string{"k1": "acct", "gone": ""}[c.ID]
		if c.Kind != store.ChangeKey || c.AccountID != want || !c.Revokes {
			t.Errorf("feed row %+v, want a revoking key row of account %q", c, want)
		}
	}
	if last := cs[2]; last.ID != "gone" || len(last.OldDigest) != 1 {
		t.Errorf("the deletion's row: %+v, want gone with its old hash", last)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO keys (account_id, id, name, type, hash)
		VALUES ('other', 'k1', 'k1', 'account', 'sha256:`+strings.Repeat("c", 64)+`')`); err != nil {
		t.Fatalf("a second account's k1: %v", err)
	}
	if err := postgres.MigrateURL(ctx, url); err != nil {
		t.Fatalf("migrating again: %v", err)
	}
}

// TestCheckSchema: a database never migrated, or migrated by an older
// keygate, is ErrNoSchema with what to do and the versions; an up-to-date
// one passes.
func TestCheckSchema(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	pool := pgtest.Pool(t, url)
	check := func(want string) {
		t.Helper()
		err := postgres.CheckSchema(ctx, pool)
		switch {
		case want == "" && err != nil:
			t.Fatalf("CheckSchema: %v", err)
		case want != "" && (!errors.Is(err, postgres.ErrNoSchema) || !strings.Contains(err.Error(), want)):
			t.Fatalf("CheckSchema: %v, want ErrNoSchema with %q", err, want)
		}
	}
	check("run keygate migrate (or serve --migrate); no migration applied")
	if err := postgres.MigrateURLUpTo(ctx, url, 2); err != nil {
		t.Fatal(err)
	}
	check("; schema version 2, this keygate needs ")
	if err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	check("")
}

// TestMigrate0011RenamesScopes: migration 0011 rewrites the keys' and
// roles' scopes that name Account API operations by their earlier names,
// through the change feed (a replica reloads them), and its SQL rule
// agrees with authz.CanonicalScope on the same table.
func TestMigrate0011RenamesScopes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	if err := postgres.MigrateURLUpTo(ctx, url, 9); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for _, sql := range []string{
		`INSERT INTO accounts (id, name) VALUES ('acct', 'Acct')`,
		`INSERT INTO keys (account_id, id, name, type, hash, scope) VALUES
			('acct', 'old', 'old', 'account', 'sha256:` + strings.Repeat("a", 64) + `', 'account-api:query:listApps !account-api:query:getKey'),
			('acct', 'new', 'new', 'account', 'sha256:` + strings.Repeat("b", 64) + `', 'account-api:query:*')`,
		`INSERT INTO roles (account_id, id, name, scope) VALUES ('acct', 'auditor', 'auditor', 'account-api:query:listAuditEvents')`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	st := postgres.New(ctx, pool, postgres.Options{})
	before, err := st.ChangesSince(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateURL(ctx, url); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ query, want string }{
		{`SELECT scope FROM keys WHERE id = 'old'`, "account-api:query:apps !account-api:query:key"},
		{`SELECT scope FROM keys WHERE id = 'new'`, "account-api:query:*"},
		{`SELECT scope FROM roles WHERE id = 'auditor'`, "account-api:query:auditEvents"},
	} {
		var got string
		if err := pool.QueryRow(ctx, c.query).Scan(&got); err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.query, got, err, c.want)
		}
	}
	after, err := st.ChangesSince(ctx, before[len(before)-1].Seq, 100)
	if err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, c := range after {
		changed = append(changed, string(c.Kind)+":"+c.ID)
	}
	slices.Sort(changed)
	if want := []string{"key:old", "role:auditor"}; !slices.Equal(changed, want) {
		t.Errorf("feed rows of the migration: %v, want %v", changed, want)
	}
	for _, tc := range authz.CanonicalScopeCases {
		var got string
		if err := pool.QueryRow(ctx, `SELECT keygate_canonical_scope($1)`, tc.In).Scan(&got); err != nil || got != tc.Want {
			t.Errorf("keygate_canonical_scope(%q) = %q, %v; want %q (authz.CanonicalScope)", tc.In, got, err, tc.Want)
		}
	}
}
