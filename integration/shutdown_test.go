package integration

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestGracefulShutdownUnderLoad sends SIGTERM to a keygate serving a
// steady load with --drain-period 1s. The gRPC health service must report
// NOT_SERVING at once (the Watch stream sees it), checks must still be
// answered during the drain, and no check may be lost: every call either
// gets a CheckResponse or — started after the listener closed — fails to
// connect, which the client can tell apart as never accepted. Every deny
// keygate logged must have reached the client. keygate exits 0.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	dir := t.TempDir()
	svc, svcHash := quickKey(t, "service")
	ro, roHash := quickKey(t, "service")
	keysFile, routesFile := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, keysYAML(
		keyEntry{"k-svc", "service", svcHash, ""},
		keyEntry{"k-ro", "service", roHash, "    scope: \"email-api !email-api:mutation:sendEmail\"\n"},
	))
	writeFile(t, routesFile, routesYAML)
	srv := startServer(t, keysFile, routesFile, "--drain-period", "1s", "--shutdown-timeout", "10s")
	unknown := mustGenerate(t)
	targets := []loadTarget{
		{"allow", checkReq("GET", "/email/inbox", svc, nil)},
		{"deny", checkReq("POST", "/email/send", ro, nil)},
		{"deny", checkReq("GET", "/email/inbox", unknown, nil)},
		// Large requests stay in flight longer.
		{"allow", checkReq("GET", "/email/inbox", svc, map[string]string{"x-junk": strings.Repeat("j", 256<<10)})},
	}

	// Health: watch from a connection of its own.
	hconn := dial(t, srv.authzAddr)
	watch, err := healthpb.NewHealthClient(hconn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health before SIGTERM: %v %v", m, err)
	}
	notServing := make(chan time.Time, 1)
	go func() {
		for {
			m, err := watch.Recv()
			if err != nil {
				return
			}
			if m.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
				notServing <- time.Now()
				return
			}
		}
	}()

	// Load: workers on connections of their own; each call runs to its end.
	type result struct {
		start, end time.Time
		status     int
		reason     string
		err        error
	}
	const conns, workers = 4, 8
	var (
		mu      sync.Mutex
		results []result
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for c := range conns {
		client := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
		for w := range workers / conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c*workers + w; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r := result{start: time.Now()}
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					resp, err := client.Check(ctx, targets[i%len(targets)].req)
					cancel()
					r.end = time.Now()
					r.status, r.reason, r.err = classify(resp, err)
					mu.Lock()
					results = append(results, r)
					mu.Unlock()
					if err != nil {
						time.Sleep(5 * time.Millisecond) // do not spin on a closed port
					}
				}
			}()
		}
	}

	time.Sleep(time.Second)
	sigAt := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var healthAt time.Time
	select {
	case healthAt = <-notServing:
	case <-time.After(5 * time.Second):
		t.Fatal("health did not report NOT_SERVING within 5 s of SIGTERM")
	}
	select {
	case err := <-srv.done:
		if err != nil {
			t.Errorf("keygate exited with %v", err)
		}
		srv.done <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("keygate did not stop within 20 s of SIGTERM")
	}
	exitAt := time.Now()
	time.Sleep(300 * time.Millisecond) // calls after the exit: never accepted
	close(stop)
	wg.Wait()

	var answered, duringDrain, refused, lost, denied int
	var firstRefused time.Time
	for _, r := range results {
		switch {
		case r.err == nil:
			answered++
			if r.status != 200 {
				denied++
			}
			if r.start.After(healthAt) {
				duringDrain++
			}
		case neverAccepted(r.err):
			refused++
			if firstRefused.IsZero() || r.start.Before(firstRefused) {
				firstRefused = r.start
			}
		default:
			lost++
			if lost <= 5 {
				t.Errorf("call started %v after SIGTERM lost: %v", r.start.Sub(sigAt).Round(time.Microsecond), r.err)
			}
		}
	}
	t.Logf("%d calls: %d answered (%d denied; %d started after NOT_SERVING), %d never accepted, %d lost; "+
		"NOT_SERVING %v after SIGTERM, first refusal %v after SIGTERM, exit %v after SIGTERM",
		len(results), answered, denied, duringDrain, refused, lost, healthAt.Sub(sigAt).Round(time.Millisecond),
		firstRefused.Sub(sigAt).Round(time.Millisecond), exitAt.Sub(sigAt).Round(time.Millisecond))
	if lost > 0 {
		t.Errorf("%d checks lost on shutdown", lost)
	}
	// Drain, then in-flight checks (milliseconds), and the race
	// detector's second at exit: far less than the shutdown timeout, which
	// would cancel checks.
	if d := exitAt.Sub(sigAt); d > 4*time.Second || strings.Contains(srv.Logs(), "shutdown timeout") {
		t.Errorf("keygate took %v to exit after SIGTERM with a 1 s drain period (shutdown timeout hit: %v)",
			d.Round(time.Millisecond), strings.Contains(srv.Logs(), "shutdown timeout"))
	}
	if d := healthAt.Sub(sigAt); d > 500*time.Millisecond {
		t.Errorf("NOT_SERVING only %v after SIGTERM", d)
	}
	if duringDrain == 0 {
		t.Error("no check answered during the drain period")
	}
	if refused == 0 {
		t.Error("no call was refused after the listener closed: the load did not outlive keygate")
	} else if d := firstRefused.Sub(healthAt); d < 900*time.Millisecond {
		t.Errorf("a call was refused %v after NOT_SERVING, before the 1 s drain period ended", d)
	}
	// Every deny keygate decided (and logged at debug) reached a client.
	if logged := strings.Count(srv.Logs(), `"msg":"denied"`); logged != denied {
		t.Errorf("keygate logged %d denies, clients received %d", logged, denied)
	}
	if !strings.Contains(srv.Logs(), `"msg":"shutting down"`) {
		t.Error("no shutdown line in the logs")
	}
	assertCleanLogs(t, srv)
}

// neverAccepted reports whether a Check error means the call never reached
// keygate: Unavailable because no connection could be made.
func neverAccepted(err error) bool {
	if status.Code(err) != codes.Unavailable {
		return false
	}
	msg := status.Convert(err).Message()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "Error while dialing")
}
