package integration

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// keysCLI runs the real CLI against srv with the account key and returns
// stdout and stderr apart, and whether it succeeded.
func keysCLI(t *testing.T, env *dbEnv, srv *server, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(keygateBinary(t), args...)
	cmd.Env = append(cleanEnv(), "KEYGATE_ACCOUNT_ADDR="+srv.accountAddr, "KEYGATE_ACCOUNT_KEY="+env.accountKey)
	cmd.Stdin = strings.NewReader("")
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func mustKeysCLI(t *testing.T, env *dbEnv, srv *server, args ...string) (stdout, stderr string) {
	t.Helper()
	o, e, err := keysCLI(t, env, srv, args...)
	if err != nil {
		t.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), err, e)
	}
	return o, e
}

// lastLine is a generate's secret: the last line of stdout.
func lastLine(s string) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return ls[len(ls)-1]
}

// TestCLIBulkKeyUpdate: `keys update` with filters deactivates every key
// of one tenant in one change, after a dry run and confirmation (--yes off
// a terminal); the data plane then denies them while the other tenant's
// key stays allowed; each key has its key.update audit row (issue 17,
// item 15).
func TestCLIBulkKeyUpdate(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	mustKeysCLI(t, env, srv, "apps", "create", "--id", "billing", "--name", "Billing")
	mustKeysCLI(t, env, srv, "tenants", "create", "--id", "acme", "--name", "ACME")
	mustKeysCLI(t, env, srv, "tenants", "create", "--id", "globex", "--name", "Globex")
	secrets := map[string]string{}
	for _, k := range [][2]string{{"a1", "acme"}, {"a2", "acme"}, {"g1", "globex"}} {
		out, _ := mustKeysCLI(t, env, srv, "keys", "generate", "--type", "service", "--app", "billing", "--tenant", k[1], "--id", k[0])
		secrets[k[0]] = lastLine(out)
	}
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	for _, id := range []string{"a1", "a2", "g1"} {
		waitOutcome(t, authz, checkReq("GET", "/email/inbox", secrets[id], nil), 200, 10*time.Second)
	}

	_, stderr, err := keysCLI(t, env, srv, "keys", "update", "--tenant", "acme", "--no-active")
	if err == nil || !strings.Contains(stderr, "2 keys match (a1, a2)") || !strings.Contains(stderr, "stdin is not a terminal to confirm: add --yes") {
		t.Fatalf("bulk update off a terminal without --yes: %v\n%s", err, stderr)
	}
	_, stderr, err = keysCLI(t, env, srv, "keys", "update", "--no-active", "--yes")
	if err == nil || !strings.Contains(stderr, "no key and no filter") {
		t.Fatalf("bulk update without a filter: %v\n%s", err, stderr)
	}
	// The server refuses a change whose count is not the confirmed one.
	api := env.client(t, srv)
	off := false
	_, err = api.UpdateKeys(api.ctx(t), &accountv1.UpdateKeysRequest{Filter: &accountv1.KeyFilter{TenantId: "acme"}, Active: &off, ExpectedCount: new(int32(3))})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "2 keys match the filter now, not the 3 expected") {
		t.Fatalf("UpdateKeys with a stale expected count: %v", err)
	}

	out, _ := mustKeysCLI(t, env, srv, "keys", "update", "--tenant", "acme", "--no-active", "--yes", "-o", "json")
	var res struct {
		Count  int      `json:"count"`
		KeyIDs []string `json:"key_ids"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Count != 2 || !slices.Equal(res.KeyIDs, []string{"a1", "a2"}) {
		t.Fatalf("bulk update -o json: %v\n%s", err, out)
	}
	for _, id := range []string{"a1", "a2"} {
		eventually(t, id+" denied inactive_key", func() bool {
			got, _ := call(t, authz, checkReq("GET", "/email/inbox", secrets[id], nil))
			return got == outcome{401, "inactive_key"}
		})
	}
	if got, _ := call(t, authz, checkReq("GET", "/email/inbox", secrets["g1"], nil)); got.status != 200 {
		t.Fatalf("the other tenant's key: %+v", got)
	}

	out, _ = mustKeysCLI(t, env, srv, "audit", "-o", "json")
	var events []struct {
		Action   string         `json:"action"`
		ObjectID string         `json:"object_id"`
		Before   map[string]any `json:"before"`
		After    map[string]any `json:"after"`
	}
	if err := json.Unmarshal([]byte(out), &events); err != nil {
		t.Fatal(err)
	}
	var updated []string
	for _, e := range events {
		if e.Action == "key.update" {
			if e.Before["active"] != true || e.After["active"] != false {
				t.Errorf("audit of %s: before %v after %v", e.ObjectID, e.Before, e.After)
			}
			updated = append(updated, e.ObjectID)
		}
	}
	slices.Sort(updated)
	if !slices.Equal(updated, []string{"a1", "a2"}) {
		t.Fatalf("key.update audit rows for %v, want a1 and a2", updated)
	}
}

// TestCLIKeyNamesAndWarnings: keys by name, a scope naming an undeclared
// service or a kind no route has is accepted with a warning on stderr, a
// new key expiring in the past is refused and an update to a past expiry
// warns, after which the key is denied expired_key (issue 17, item 9).
func TestCLIKeyNamesAndWarnings(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	mustKeysCLI(t, env, srv, "apps", "create", "--id", "billing", "--name", "Billing")
	mustKeysCLI(t, env, srv, "tenants", "create", "--id", "acme", "--name", "ACME")
	gen := []string{"keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme"}

	out, stderr := mustKeysCLI(t, env, srv, append(gen, "--name", "typo", "--scope", "emial-api")...)
	if !strings.Contains(stderr, `warning: scope pattern "emial-api": service "emial-api" is not declared in the routes file`) ||
		!strings.HasPrefix(lastLine(out), "kg_sak_") {
		t.Fatalf("undeclared service: stdout\n%s\nstderr\n%s", out, stderr)
	}
	_, stderr = mustKeysCLI(t, env, srv, "keys", "update", "typo", "--scope", "email-api:querry")
	if !strings.Contains(stderr, `warning: scope pattern "email-api:querry": no route of service "email-api" has kind "querry" (its kinds: query, mutation)`) {
		t.Fatalf("unknown kind: %s", stderr)
	}
	out, stderr = mustKeysCLI(t, env, srv, append(gen, "--name", "good", "--scope", "email-api:query")...)
	// Nothing else than the change number (SPEC §13) and the secret's notice.
	if !regexp.MustCompile(`^change [0-9]+ \(keygate sync-status --change [0-9]+\)\nThe key's secret follows on the last line of stdout\. It is shown only this once: store it now\.\n$`).MatchString(stderr) {
		t.Fatalf("a good scope warned: %q", stderr)
	}
	secret := lastLine(out)

	_, stderr, err := keysCLI(t, env, srv, append(gen, "--name", "old", "--expires-at", "2020-01-01")...)
	if err == nil || !strings.Contains(stderr, "InvalidArgument: expires_at: 2020-01-01T00:00:00Z is not in the future") {
		t.Fatalf("generate with a past expiry: %v %s", err, stderr)
	}
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	req := checkReq("GET", "/email/inbox", secret, nil)
	waitOutcome(t, authz, req, 200, 10*time.Second)
	out, stderr = mustKeysCLI(t, env, srv, "keys", "update", "good", "--expires-at", "2020-01-01", "-o", "json")
	if !strings.Contains(stderr, "warning: expires_at 2020-01-01T00:00:00Z is not in the future: every request with this key is now denied expired_key") ||
		!strings.Contains(out, `"expires_at"`) {
		t.Fatalf("update to a past expiry: stdout\n%s\nstderr\n%s", out, stderr)
	}
	eventually(t, "expired_key", func() bool {
		got, _ := call(t, authz, req)
		return got == outcome{401, "expired_key"}
	})
	out, _ = mustKeysCLI(t, env, srv, "keys", "get", "good", "-o", "json")
	if !strings.Contains(out, `"name": "good"`) {
		t.Fatalf("get by name: %s", out)
	}
	_, stderr, err = keysCLI(t, env, srv, "keys", "delete", "nope")
	if err == nil || !strings.Contains(stderr, `no key has the id or name "nope": list the keys with keygate keys list`) {
		t.Fatalf("delete of an unknown key: %v %s", err, stderr)
	}
}
