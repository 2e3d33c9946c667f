package integration

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// TestFaultsUnderLoad injects database faults into a keygate serving a
// steady load on loopback, on a PostgreSQL cluster of the test's own:
//
//   - terminate: every connection of keygate's ended, several times;
//   - listen: the LISTEN connection alone ended, while new connections are
//     refused (so the notification of a revocation is certainly missed);
//   - restart: the server stopped and started again, a key revoked right
//     after the restart while keygate is still kept out.
//
// In each, one key is revoked just before the fault and one during it. It
// asserts that cached keys are never denied and every call gets an answer,
// that both revoked keys are denied once the database is back and never
// allowed again after their first deny, that no panic or race shows in the
// logs, and that keygate's goroutines and database connections come back
// to where they were. KEYGATE_LONG=1 holds each fault longer and repeats it.
func TestFaultsUnderLoad(t *testing.T) {
	pg, env := newThrowawayEnv(t)
	srv := env.serve(t, "--degraded-after", "300ms")
	waitReady(t, srv)
	api := env.client(t, srv)
	secrets := seed(t, api)
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))

	faults := []string{"terminate", "listen", "restart"}
	victims := map[string]*authv3.CheckRequest{}
	for _, f := range faults {
		for _, when := range []string{"before", "during"} {
			id := "k-" + f + "-" + when
			resp, err := api.GenerateServiceAccessKey(api.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{
				Id: id, Name: id, AppId: "billing", TenantId: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			victims[id] = checkReq("GET", "/email/inbox", resp.GetPrivateKey(), nil)
		}
	}
	cached := []loadTarget{
		{"cached-allow", checkReq("GET", "/email/inbox", secrets["svc"], nil)},
		{"cached-allow", checkReq("POST", "/users.v1.UserService/GetUser", secrets["app"], map[string]string{"content-type": "application/grpc"})},
		{"cached-scope-denied", checkReq("POST", "/email/send", secrets["ro"], nil)},
		{"unknown", checkReq("GET", "/email/inbox", mustGenerate(t), nil)},
	}
	for _, req := range append([]*authv3.CheckRequest{cached[0].req, cached[1].req}, mapValues(victims)...) {
		waitOutcome(t, authz, req, 200, 10*time.Second)
	}

	admin := pg.connect(t, "postgres")
	t.Cleanup(func() { admin.Close(context.Background()) })
	hold, rounds := 1500*time.Millisecond, 3
	if longRun() {
		hold, rounds = 15*time.Second, 10
	}
	slack := max(4, runtime.NumCPU()) // pgxpool's default MaxConns

	type report struct {
		name        string
		all         tally
		honoured    []string
		readyAfter  time.Duration
		caughtUp    time.Duration
		conns, gors string
	}
	var reports []report

	run := func(name string, inject func(t *testing.T, revokeDuring func()) time.Time) {
		t.Run(name, func(t *testing.T) {
			before, during := "k-"+name+"-before", "k-"+name+"-during"
			g0 := goroutines(t, srv)
			c0, l0 := backends(t, admin, throwawayDB)
			if l0 != 1 {
				t.Fatalf("%d listen connections before the fault, want 1", l0)
			}
			targets := append(append([]loadTarget{}, cached...),
				loadTarget{"victim-before", victims[before]}, loadTarget{"victim-during", victims[during]})
			ld := startLoad(t, srv.authzAddr, 2, 4, 4*time.Millisecond, 2*time.Minute, targets)
			time.Sleep(500 * time.Millisecond)

			applied0 := metricValue(t, srv, "keygate_change_feed_applied_total")
			// A connection opened before the fault, to revoke with.
			db := pg.connect(t, throwawayDB)
			defer db.Close(context.Background())
			revoke := func(conn *pgx.Conn, sql, id string) time.Time {
				t.Helper()
				if _, err := conn.Exec(context.Background(), sql, id); err != nil {
					t.Fatalf("revoke %s: %v", id, err)
				}
				return time.Now()
			}
			revokedBefore := revoke(db, "DELETE FROM keys WHERE id = $1", before)
			var revokedDuring time.Time
			back := inject(t, func() {
				conn := db
				if name == "restart" { // the connection died with the server
					conn = pg.connect(t, throwawayDB)
					defer conn.Close(context.Background())
				}
				revokedDuring = revoke(conn, "UPDATE keys SET active = false WHERE id = $1", during)
			})
			if revokedDuring.IsZero() {
				t.Fatal("the fault did not revoke its key")
			}
			// keygate reports the catch-up: both revocations applied
			// (keygate_change_feed_applied_total), /readyz without degraded.
			caughtUp := time.Now()
			eventually(t, "the revocations to be applied", func() bool {
				caughtUp = time.Now()
				return metricValue(t, srv, "keygate_change_feed_applied_total") >= applied0+2
			})
			readyAt := time.Now()
			eventually(t, "/readyz without degraded", func() bool {
				code, body := httpGet(t, "http://"+srv.adminAddr+"/readyz")
				readyAt = time.Now()
				return code == 200 && !strings.Contains(body, "degraded")
			})
			for kind, from := range map[string]time.Time{"victim-before": revokedBefore, "victim-during": revokedDuring} {
				eventually(t, kind+" to be denied", func() bool {
					_, ok := firstDeny(ld.Results(), kind, from)
					return ok
				})
			}
			time.Sleep(time.Second)
			res := ld.Stop()

			rep := report{name: name, all: tallyOf(res, ""), readyAfter: readyAt.Sub(back), caughtUp: caughtUp.Sub(back)}
			for kind, want := range map[string]string{"cached-allow": "allow", "cached-scope-denied": "deny:scope_denied", "unknown": "deny:unknown_key"} {
				if tl := tallyOf(res, kind); tl.by[want] != tl.sent || tl.sent == 0 {
					t.Errorf("%s: %v, want every one %s", kind, tl, want)
				}
			}
			if n := rep.all.errors; n > 0 {
				t.Errorf("%d calls got no CheckResponse: %v", n, rep.all)
			}
			for _, v := range []struct {
				kind    string
				revoked time.Time
			}{{"victim-before", revokedBefore}, {"victim-during", revokedDuring}} {
				first, _ := firstDeny(res, v.kind, v.revoked)
				if n := allowsAfter(res, v.kind, first); n > 0 {
					t.Errorf("%s allowed %d times after its first deny at %v", v.kind, n, first.Format(time.StampMicro))
				}
				if n := allowsAfter(res, v.kind, caughtUp); n > 0 {
					t.Errorf("%s allowed %d times after keygate reported the catch-up", v.kind, n)
				}
				rep.honoured = append(rep.honoured, fmt.Sprintf("%s denied %v after its revocation, %v after the database returned, allowed %d times after that (%v)",
					v.kind, first.Sub(v.revoked).Round(time.Millisecond), first.Sub(back).Round(time.Millisecond),
					allowsAfter(res, v.kind, back), tallyOf(res, v.kind)))
			}

			// Nothing left behind: goroutines and database connections.
			var g1, c1, l1 int
			eventually(t, "goroutines and connections to settle", func() bool {
				g1 = goroutines(t, srv)
				c1, l1 = backends(t, admin, throwawayDB)
				return g1 <= g0+5 && l1 == 1 && c1 <= c0+slack
			})
			rep.gors = fmt.Sprintf("%d → %d", g0, g1)
			rep.conns = fmt.Sprintf("%d → %d (listen %d)", c0, c1, l1)
			reports = append(reports, rep)
			assertCleanLogs(t, srv)
		})
	}

	terminate := func(t *testing.T) {
		t.Helper()
		if _, err := admin.Exec(context.Background(),
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", throwawayRole); err != nil {
			t.Fatal(err)
		}
	}
	reload := func(t *testing.T, block bool) {
		t.Helper()
		pg.writeHBA(t, block)
		if _, err := admin.Exec(context.Background(), "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the postmaster rereads pg_hba.conf on SIGHUP
	}

	// Every connection of keygate's ended, several times; it reconnects
	// between the rounds.
	run("terminate", func(t *testing.T, revokeDuring func()) time.Time {
		for i := range rounds {
			terminate(t)
			if i == 0 {
				revokeDuring()
			}
			time.Sleep(hold / time.Duration(rounds))
		}
		terminate(t)
		return time.Now()
	})

	// The LISTEN connection alone: new connections refused, the listener
	// ended, a key revoked while it cannot hear; the pool's connections
	// stay up.
	run("listen", func(t *testing.T, revokeDuring func()) time.Time {
		reload(t, true)
		if _, err := admin.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'keygate-listen'"); err != nil {
			t.Fatal(err)
		}
		revokeDuring()
		time.Sleep(hold)
		reload(t, false)
		return time.Now()
	})

	// Stopped and started again; the key is revoked right after the
	// restart, while pg_hba.conf still keeps keygate out.
	run("restart", func(t *testing.T, revokeDuring func()) time.Time {
		pg.writeHBA(t, true)
		pg.stop(t, "fast")
		time.Sleep(hold)
		pg.start(t)
		admin.Close(context.Background()) // it died with the server
		admin = pg.connect(t, "postgres")
		revokeDuring()
		reload(t, false)
		return time.Now()
	})

	for _, r := range reports {
		t.Logf("%s: %v; catch-up seen %v and /readyz ok %v after the database returned; %s; goroutines %s; connections %s",
			r.name, r.all, r.caughtUp.Round(time.Millisecond), r.readyAfter.Round(time.Millisecond),
			strings.Join(r.honoured, "; "), r.gors, r.conns)
	}
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
