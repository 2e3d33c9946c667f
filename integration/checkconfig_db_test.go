package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// TestCheckConfigDatabase (issue 17, point 6): check-config in database
// mode (no --keys-file) checks the routes file and every stored key as
// serve would load it: a summary when all load, each unloadable key by
// account and id with the fields to blame (exit non-zero), dropped
// response headers as warnings, and the migrate hint for a database
// without the schema. The URL works from the environment and a file too.
func TestCheckConfigDatabase(t *testing.T) {
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routes, routesYAML)
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	pool := pgtest.Pool(t, url)
	if err := pgtest.SeedKeys(ctx, pool, "acme", 7); err != nil {
		t.Fatal(err)
	}

	out, err := cliRun(t, "", "check-config", "--routes-file", routes, "--database-url", url)
	if err != nil || !strings.HasPrefix(out, "ok: "+routes+": 2 services; database: 7 keys (hash sha256)") {
		t.Fatalf("check-config on good stored keys: %v\n%s", err, out)
	}
	urlFile := filepath.Join(t.TempDir(), "database-url")
	writeFile(t, urlFile, url+"\n")
	for name, env := range map[string][]string{
		"DATABASE_URL":              {"DATABASE_URL=" + url},
		"KEYGATE_DATABASE_URL_FILE": {"KEYGATE_DATABASE_URL_FILE=" + urlFile},
	} {
		if out, err := cliRunEnv(t, env, "", "check-config", "--routes-file", routes); err != nil || !strings.Contains(out, "database: 7 keys") {
			t.Errorf("check-config with %s: %v\n%s", name, err, out)
		}
	}

	// Written by SQL past the API: an IP filter that cannot compile, and a
	// response header that breaks the rules.
	badID, headersID := pgtest.SeedKeyID("acme", 6), pgtest.SeedKeyID("acme", 3)
	for _, q := range []struct{ sql, id string }{
		{`UPDATE keys SET ip_filters = '{not-an-address}' WHERE id = $1`, badID},
		{`UPDATE keys SET response_headers = '[{"name": "set-cookie", "value": "s=1"}]' WHERE id = $1`, headersID},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.id); err != nil {
			t.Fatal(err)
		}
	}
	_, err = cliRun(t, "", "check-config", "--routes-file", routes, "--database-url", url)
	for _, want := range []string{
		`database: account "acme": key "` + badID + `": cannot be loaded (serve answers store_unavailable for it): does not compile: ip_filters`,
		"warning: database: 1 stored response headers break the response header rules",
		"header=set-cookie",
		"configuration is invalid: 1 of 7 stored keys cannot be loaded",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check-config with an unloadable key: %v\nwant %s", err, want)
		}
	}

	_, err = cliRun(t, "", "check-config", "--routes-file", routes, "--database-url", pgtest.NewEmptyDatabase(t))
	if err == nil || !strings.Contains(err.Error(), "run keygate migrate") {
		t.Errorf("check-config on a database without the schema: %v", err)
	}
	_, err = cliRun(t, "", "check-config", "--routes-file", routes)
	if err == nil || !strings.Contains(err.Error(), "no keys to check: give --keys-file") {
		t.Errorf("check-config with no keys source: %v", err)
	}
}
