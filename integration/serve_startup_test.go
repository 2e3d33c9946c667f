package integration

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// The start-up loop backs off to 30 s; these bounds leave room for one
// full wait after the database comes right.
const startupBound = 45 * time.Second

// waitReadyz polls /readyz until its status is code and its body holds
// want, and returns the body.
func waitReadyz(t testing.TB, s *server, code int, want string, bound time.Duration) string {
	t.Helper()
	var got int
	var body string
	for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, body = httpGet(t, "http://"+s.adminAddr+"/readyz"); got == code && strings.Contains(body, want) {
			return body
		}
	}
	t.Fatalf("/readyz: %d %q after %s, want %d with %q\n%s", got, body, bound, code, want, s.Logs())
	return ""
}

// stillRunning fails the test if keygate has exited.
func stillRunning(t testing.TB, s *server) {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		t.Fatalf("keygate exited (%v) while it should wait for the database\n%s", err, s.Logs())
	default:
	}
}

// stopCleanly sends SIGTERM and wants a clean exit within 15 s.
func stopCleanly(t testing.TB, s *server) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("keygate exited with %v on SIGTERM\n%s", err, s.Logs())
		}
		s.done <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("keygate did not stop within 15 s of SIGTERM")
	}
}

// TestServeWithoutSchema (issue 17, point 7): serve on a database that was
// never migrated stays up and unready, /readyz saying to run keygate
// migrate, Check answering store_unavailable; once `keygate migrate` has
// run the replica becomes ready without a restart.
func TestServeWithoutSchema(t *testing.T) {
	url := pgtest.NewEmptyDatabase(t)
	env := &dbEnv{url: url, routesFile: t.TempDir() + "/routes.yaml"}
	writeFile(t, env.routesFile, routesYAML)
	srv := env.serve(t)
	waitReadyz(t, srv, 503, "run keygate migrate (or serve --migrate)", startupBound)
	if strings.Contains(srv.Logs(), "does not exist") {
		t.Errorf("the log names a missing relation rather than the missing schema:\n%s", srv.Logs())
	}
	secret, _ := quickKey(t, "service")
	client := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	if got, _ := call(t, client, checkReq("GET", "/email/inbox", secret, nil)); got.status != 503 || got.reason != "store_unavailable" {
		t.Errorf("Check before the schema exists: %+v, want 503 store_unavailable", got)
	}
	if out, err := cliRun(t, "", "migrate", "--database-url", url); err != nil {
		t.Fatalf("keygate migrate: %v\n%s", err, out)
	}
	waitReadyz(t, srv, 200, "", startupBound)
	stillRunning(t, srv)
}

// TestServeWaitsForDatabase (issue 17, point 7): with its database down at
// start, serve keeps its listeners up, unready (/readyz naming the
// reason), retrying with backoff; it becomes ready once the database
// starts, and a SIGTERM while it waits stops it cleanly.
func TestServeWaitsForDatabase(t *testing.T) {
	t.Run("ready once the database starts", func(t *testing.T) {
		pg, env := newThrowawayEnv(t)
		pg.stop(t, "fast")
		srv := env.serve(t)
		waitReadyz(t, srv, 503, "database unreachable", startupBound)
		time.Sleep(2 * time.Second) // a few retries
		stillRunning(t, srv)
		waitReadyz(t, srv, 503, "database unreachable", time.Second)
		pg.start(t)
		waitReadyz(t, srv, 200, "", startupBound)
		stopCleanly(t, srv)
	})
	t.Run("SIGTERM while waiting exits cleanly", func(t *testing.T) {
		routes := t.TempDir() + "/routes.yaml"
		writeFile(t, routes, routesYAML)
		closed := fmt.Sprintf("postgres://keygate@127.0.0.1:%d/keygate?sslmode=disable", freePort(t))
		srv := startServe(t, []string{"authz", "admin", "account"}, "--database-url", closed, "--routes-file", routes)
		waitReadyz(t, srv, 503, "database unreachable", startupBound)
		stillRunning(t, srv)
		stopCleanly(t, srv)
	})
}
