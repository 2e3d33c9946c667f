package pgtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

func TestNewDatabase(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		url := pgtest.NewDatabase(t)
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n == 0 {
			t.Fatalf("%d migrations, %v", n, err)
		}
		name = conn.Config().Database
		if !strings.HasPrefix(name, "keygate_test_") {
			t.Fatalf("database %q", name)
		}
	})
	// Dropped once the inner test ended.
	conn, err := pgx.Connect(t.Context(), pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil || exists {
		t.Fatalf("database %s still exists (%v)", name, err)
	}
}

func TestNewDatabaseIsolated(t *testing.T) {
	t.Parallel()
	a, b := pgtest.NewPool(t), pgtest.NewPool(t)
	if _, err := a.Exec(t.Context(), "INSERT INTO accounts (id, name) VALUES ('only-a', 'A')"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRow(t.Context(), "SELECT count(*) FROM accounts").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the other database sees %d accounts (%v)", n, err)
	}
}

// TestUnreachableServerFails runs a test in a child process against a port
// nobody listens on: it must fail (never skip) and say how to get a server.
func TestUnreachableServerFails(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		pgtest.NewDatabase(t)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnreachableServerFails$", "-test.v")
	cmd.Env = append(os.Environ(), "PGTEST_CHILD=1", "DATABASE_URL=postgres://postgres@127.0.0.1:1/test?sslmode=disable")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the child test passed without a server:\n%s", out)
	}
	for _, want := range []string{"--- FAIL", "not reachable", "Set DATABASE_URL", "127.0.0.1:5432"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "--- SKIP") {
		t.Errorf("the child skipped:\n%s", out)
	}
}

func TestWithDatabase(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://u:p@h:5432/test?sslmode=disable", "postgres://u:p@h:5432/other?sslmode=disable"},
		{"postgresql://h/test", "postgresql://h/other"},
		{"postgres://h", "postgres://h/other"},
		{"host=h user=u dbname=test", "host=h user=u dbname=test dbname='other'"},
	} {
		if got := pgtest.WithDatabase(c.in, "other"); got != c.want {
			t.Errorf("WithDatabase(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// pgx reads the last dbname of a keyword/value string.
	cfg, err := pgx.ParseConfig(pgtest.WithDatabase("host=h user=u dbname=test", "it's"))
	if err != nil || cfg.Database != "it's" {
		t.Fatalf("parsed %v, %v", cfg, err)
	}
}
