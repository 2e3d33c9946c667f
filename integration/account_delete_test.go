package integration

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// cliAgainst runs the real CLI against srv with the account key, returning
// stdout and the error (which carries stderr).
func cliAgainst(t *testing.T, env *dbEnv, srv *server) func(args ...string) (string, error) {
	vars := []string{"KEYGATE_ACCOUNT_ADDR=" + srv.accountAddr, "KEYGATE_ACCOUNT_KEY=" + env.accountKey}
	return func(args ...string) (string, error) {
		t.Helper()
		return cliRunEnv(t, vars, "", args...)
	}
}

// TestCLIDeleteAppWithKeys: `apps delete` refuses an app with keys, saying
// how many and how to go on; off a terminal --cascade needs --yes; with
// it the app and its keys go, and the audit log lists each key (issue 17,
// defect 1).
func TestCLIDeleteAppWithKeys(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	cli := cliAgainst(t, env, srv)
	must := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("keygate %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	must("apps", "create", "--id", "billing", "--name", "Billing")
	keys := []string{"k1", "k2", "k3"}
	for _, id := range keys {
		must("keys", "generate", "--type", "app", "--app", "billing", "--id", id, "--scope", "email-api")
	}
	_, err := cli("apps", "delete", "billing")
	if err == nil || !strings.Contains(err.Error(),
		`FailedPrecondition: app "billing" has 3 keys: delete them first, or delete with cascade (keygate apps delete billing --cascade)`) {
		t.Fatalf("apps delete of an app with keys: %v", err)
	}
	_, err = cli("apps", "delete", "billing", "--cascade")
	if err == nil || !strings.Contains(err.Error(), "app billing has 3 keys and stdin is not a terminal to confirm: add --yes") {
		t.Fatalf("apps delete --cascade off a terminal: %v", err)
	}
	if out := must("keys", "list"); !strings.Contains(out, "k3") {
		t.Fatalf("keys after the refusals:\n%s", out)
	}
	if out := must("apps", "delete", "billing", "--cascade", "--yes"); strings.TrimSpace(out) != "deleted app billing" {
		t.Fatalf("apps delete --cascade --yes: %q", out)
	}
	if _, err := cli("keys", "get", "k1"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("a key of the deleted app: %v", err)
	}
	type event struct {
		Action   string `json:"action"`
		ObjectID string `json:"object_id"`
	}
	var events []event
	if err := json.Unmarshal([]byte(must("audit", "-o", "json")), &events); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, e := range events {
		if e.Action == "key.delete" {
			deleted = append(deleted, e.ObjectID)
		}
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, keys) || !slices.Contains(events, event{"app.delete", "billing"}) {
		t.Fatalf("audit events: %+v", events)
	}
}

// TestCLIStoreUnavailable: with the Account API's database unreachable
// the CLI says so and that a retry may work, instead of "Internal:
// internal error" (issue 17, defect 2); once it is back, calls succeed.
func TestCLIStoreUnavailable(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	cli := cliAgainst(t, env, srv)
	if _, err := cli("apps", "create", "--id", "billing", "--name", "Billing"); err != nil {
		t.Fatal(err)
	}
	// The outage as TestOutage makes it: no new connections to keygate's
	// database, every existing one ended.
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	cfg, err := pgx.ParseConfig(env.url)
	if err != nil {
		t.Fatal(err)
	}
	db := pgx.Identifier{cfg.Database}.Sanitize()
	allow := func(on bool) {
		t.Helper()
		sql := "ALTER DATABASE " + db + " WITH ALLOW_CONNECTIONS " + map[bool]string{true: "true", false: "false"}[on]
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	allow(false)
	t.Cleanup(func() { _, _ = admin.Exec(ctx, "ALTER DATABASE "+db+" WITH ALLOW_CONNECTIONS true") })
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", cfg.Database); err != nil {
		t.Fatal(err)
	}
	const want = "the Account API's database is unavailable (store_unavailable); retry later"
	for _, args := range [][]string{{"apps", "list"}, {"apps", "get", "billing"}, {"tenants", "create", "--name", "ACME"}} {
		if _, err := cli(args...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("keygate %s with the database down: %v", strings.Join(args, " "), err)
		}
	}
	allow(true)
	eventually(t, "apps list to succeed once the database is back", func() bool {
		out, err := cli("apps", "list")
		return err == nil && strings.Contains(out, "billing")
	})
}
