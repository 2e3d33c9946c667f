package pgtest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestTemplateStale(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		rest  string
		stale bool
	}{
		{"0123456789abcdef_1800000000", false},                                       // built now
		{"0123456789abcdef_" + itoa(now.Add(-staleAfter+time.Minute).Unix()), false}, // a day less a minute: may be in use
		{"0123456789abcdef_" + itoa(now.Add(-staleAfter-time.Minute).Unix()), true},
		{"0123456789abcdef", true},       // the earlier naming, without a time
		{"0123456789abcdef_build", true}, // a build left half-way
		{"0123456789abcdef_x1", true},
	} {
		if got := templateStale(tc.rest, now); got != tc.stale {
			t.Errorf("templateStale(%q) = %v, want %v", tc.rest, got, tc.stale)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestNewDatabaseAfterTemplateDropped: a run of another checkout (under
// the earlier rules) or a person may drop the template while this binary
// holds its name; the next database is created from a rebuilt one instead
// of failing the test.
func TestNewDatabaseAfterTemplateDropped(t *testing.T) {
	name := Template(t)
	ctx := context.Background()
	admin, err := connectAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n == 0 {
		t.Fatalf("%d migrations, %v", n, err)
	}
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", Template(t)).Scan(&exists); err != nil || !exists {
		t.Fatalf("the template was not rebuilt (%v)", err)
	}
}
