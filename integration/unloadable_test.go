package integration

import (
	"context"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// TestUnloadableKeyBinary: a stored key whose IP filter cannot compile
// (written by SQL past the API) does not keep the real binary from
// warming: other keys are allowed, that one is denied store_unavailable
// (503, not unknown_key), /readyz stays 200 and names it, and
// keygate_keys_unloadable counts it.
func TestUnloadableKeyBinary(t *testing.T) {
	t.Parallel()
	env := newDBEnv(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgtest.SeedKeys(ctx, pool, "broken", 7); err != nil {
		t.Fatal(err)
	}
	// Seeded keys 3 and 6 are service keys without IP filters.
	badID := pgtest.SeedKeyID("broken", 6)
	if _, err := pool.Exec(ctx, `UPDATE keys SET ip_filters = '{not-an-address}' WHERE id = $1`, badID); err != nil {
		t.Fatal(err)
	}

	srv := env.serve(t)
	waitReady(t, srv)
	c := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	if got, _ := call(t, c, checkReq("GET", "/email/inbox", pgtest.SeedSecret("broken", 3), nil)); got.status != 200 {
		t.Errorf("a good key: %+v, want allowed", got)
	}
	if got, _ := call(t, c, checkReq("GET", "/email/inbox", pgtest.SeedSecret("broken", 6), nil)); got.status != 503 || got.reason != "store_unavailable" {
		t.Errorf("the unloadable key: %+v, want 503 store_unavailable", got)
	}
	if code, body := httpGet(t, "http://"+srv.adminAddr+"/readyz"); code != 200 || !strings.Contains(body, "broken/"+badID) {
		t.Errorf("/readyz: %d %q, want 200 naming broken/%s", code, body, badID)
	}
	if _, body := httpGet(t, "http://"+srv.adminAddr+"/metrics"); !strings.Contains(body, "\nkeygate_keys_unloadable 1\n") {
		t.Errorf("/metrics lacks keygate_keys_unloadable 1")
	}
}
