package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// routesWithArchive is routesYAML plus one route, so that rewriting the
// routes file between the two changes what /email/archive resolves to.
var routesWithArchive = strings.Replace(routesYAML, "  - name: users-api",
	"      - {path: /email/archive, methods: [GET], kind: query, operation: archive}\n  - name: users-api", 1)

// churnDuration is how long the concurrency tests churn.
func churnDuration() time.Duration {
	if longRun() {
		return time.Minute
	}
	return 4 * time.Second
}

// TestConcurrentChecksUpdatesAndReloads runs many concurrent Checks against
// the race-detector binary in database mode while keys are updated,
// deactivated and rotated through the Account API and the routes file is
// rewritten again and again. keygate must answer every Check, report no
// data race or panic, and once the churn stops and a final state is
// written, decide every key by that state.
func TestConcurrentChecksUpdatesAndReloads(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	api := env.client(t, srv)
	seed(t, api)
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))

	const n = 12
	secrets := make([]string, n)
	for i := range secrets {
		id := fmt.Sprintf("k-churn-%d", i)
		resp, err := api.GenerateServiceAccessKey(api.ctx(t), &accountv1.GenerateServiceAccessKeyRequest{
			Id: id, Name: id, AppId: "billing", TenantId: "acme"})
		mustOK(t, "GenerateServiceAccessKey", err)
		secrets[i] = resp.GetPrivateKey()
	}
	var mu sync.Mutex // guards secrets during the churn
	secretOf := func(i int) string { mu.Lock(); defer mu.Unlock(); return secrets[i] }
	waitOutcome(t, authz, checkReq("GET", "/email/inbox", secrets[n-1], nil), 200, 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), churnDuration())
	defer cancel()
	var wg sync.WaitGroup
	// Checkers.
	results := make(chan tally, 6)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tl := tally{by: map[string]int{}}
			paths := []struct{ method, path string }{{"GET", "/email/inbox"}, {"POST", "/email/send"}, {"GET", "/email/archive"}}
			for i := w; ctx.Err() == nil; i++ {
				p := paths[i%len(paths)]
				cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := authz.Check(cctx, checkReq(p.method, p.path, secretOf(i%n), nil))
				ccancel()
				st, reason, err := classify(resp, err)
				tl.sent++
				tl.by[loadResult{status: st, reason: reason, err: err}.outcome()]++
			}
			results <- tl
		}()
	}
	// Updates through the Account API.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			id := fmt.Sprintf("k-churn-%d", i%n)
			var err error
			switch i % 4 {
			case 0:
				_, err = api.UpdateKey(api.ctx(t), &accountv1.UpdateKeyRequest{Id: id, Scope: proto.String("email-api:query:*")})
			case 1:
				_, err = api.UpdateKey(api.ctx(t), &accountv1.UpdateKeyRequest{Id: id, Active: proto.Bool(i%8 == 1)})
			case 2:
				_, err = api.UpdateKey(api.ctx(t), &accountv1.UpdateKeyRequest{Id: id, Scope: proto.String("email-api"), Active: proto.Bool(true),
					IpFilters: &accountv1.IPFilters{Filters: []string{"127.0.0.0/8"}}})
			case 3:
				var resp *accountv1.RegenerateKeyResponse
				resp, err = api.RegenerateKey(api.ctx(t), &accountv1.RegenerateKeyRequest{Id: id, GracePeriod: durationpb.New(time.Second)})
				if err == nil {
					mu.Lock()
					secrets[i%n] = resp.GetPrivateKey()
					mu.Unlock()
				}
			}
			if err != nil {
				t.Errorf("update %d of %s: %v", i, id, err)
				return
			}
		}
	}()
	// Routes file rewrites.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			writeFile(t, env.routesFile, []string{routesYAML, routesWithArchive}[i%2])
			// Longer than the watcher's 50 ms debounce: each version is
			// loaded while the checks run.
			time.Sleep(100 * time.Millisecond)
		}
	}()
	wg.Wait()
	close(results)
	total := tally{by: map[string]int{}}
	for tl := range results {
		total.sent += tl.sent
		for k, v := range tl.by {
			total.by[k] += v
		}
	}
	t.Logf("during the churn: %d checks: %v", total.sent, total.by)
	if n := strings.Count(srv.Logs(), `"msg":"routes file reloaded"`); n < 4 {
		t.Errorf("the routes file was reloaded %d times during the churn", n)
	}
	for outcome := range total.by {
		switch outcome {
		case "allow", "deny:inactive_key", "deny:scope_denied", "deny:unknown_route", "deny:unknown_key":
		default:
			t.Errorf("unexpected outcome during the churn: %s (%d)", outcome, total.by[outcome])
		}
	}

	// The final state: even keys active with a query-only scope, odd keys
	// inactive; the archive route present.
	writeFile(t, env.routesFile, routesWithArchive)
	for i := range n {
		_, err := api.UpdateKey(api.ctx(t), &accountv1.UpdateKeyRequest{Id: fmt.Sprintf("k-churn-%d", i),
			Active: proto.Bool(i%2 == 0), Scope: proto.String("email-api:query:*"), IpFilters: &accountv1.IPFilters{}})
		mustOK(t, "final UpdateKey", err)
	}
	for i, s := range secrets {
		want := map[string]outcome{"GET /email/inbox": {status: 200}, "GET /email/archive": {status: 200}, "POST /email/send": {403, "scope_denied"}}
		if i%2 == 1 {
			want = map[string]outcome{"GET /email/inbox": {401, "inactive_key"}, "GET /email/archive": {401, "inactive_key"}, "POST /email/send": {401, "inactive_key"}}
		}
		for req, w := range want {
			method, path, _ := strings.Cut(req, " ")
			var got outcome
			eventually(t, fmt.Sprintf("k-churn-%d %s to be %+v", i, req, w), func() bool {
				got, _ = call(t, authz, checkReq(method, path, s, nil))
				return got == w
			})
		}
	}
	assertCleanLogs(t, srv)
}

// TestConcurrentChecksAndFileReloads is the same for the keys-file mode:
// concurrent Checks while the keys file and the routes file are rewritten.
func TestConcurrentChecksAndFileReloads(t *testing.T) {
	dir := t.TempDir()
	a, aHash := quickKey(t, "service")
	b, bHash := quickKey(t, "service")
	keysFile, routesFile := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	// Two versions of the keys file: a allowed everything and b inactive,
	// or a query-only and b active.
	versions := []string{
		keysYAML(keyEntry{"k-a", "service", aHash, ""}, keyEntry{"k-b", "service", bHash, "    active: false\n"}),
		keysYAML(keyEntry{"k-a", "service", aHash, "    scope: \"email-api:query:*\"\n"}, keyEntry{"k-b", "service", bHash, ""}),
	}
	writeFile(t, keysFile, versions[0])
	writeFile(t, routesFile, routesYAML)
	srv := startServer(t, keysFile, routesFile)
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))

	ctx, cancel := context.WithTimeout(context.Background(), churnDuration())
	defer cancel()
	targets := []loadTarget{
		{"a", checkReq("GET", "/email/inbox", a, nil)},
		{"a", checkReq("POST", "/email/send", a, nil)},
		{"b", checkReq("GET", "/email/archive", b, nil)},
		{"b", checkReq("GET", "/email/inbox", b, nil)},
	}
	ld := startLoad(t, srv.authzAddr, 2, 6, 0, time.Minute+churnDuration(), targets)
	for i := 0; ctx.Err() == nil; i++ {
		writeFile(t, keysFile, versions[i%2])
		writeFile(t, routesFile, []string{routesYAML, routesWithArchive}[i%2])
		time.Sleep(100 * time.Millisecond) // past the watcher's 50 ms debounce
	}
	res := ld.Stop()
	all := tallyOf(res, "")
	t.Logf("during the churn: %v", all)
	for outcome := range all.by {
		switch outcome {
		case "allow", "deny:inactive_key", "deny:scope_denied", "deny:unknown_route":
		default:
			t.Errorf("unexpected outcome during the churn: %s (%d)", outcome, all.by[outcome])
		}
	}
	if all.by["deny:scope_denied"] == 0 || all.by["deny:inactive_key"] == 0 {
		t.Errorf("the churn did not load both versions of the keys file: %v", all)
	}
	if n := strings.Count(srv.Logs(), `"msg":"routes file reloaded"`); n < 4 {
		t.Errorf("the routes file was reloaded %d times during the churn", n)
	}
	// Final state: the second version of both files.
	writeFile(t, keysFile, versions[1])
	writeFile(t, routesFile, routesWithArchive)
	for _, c := range []struct {
		req  *authv3.CheckRequest
		want outcome
	}{
		{checkReq("GET", "/email/inbox", a, nil), outcome{status: 200}},
		{checkReq("POST", "/email/send", a, nil), outcome{403, "scope_denied"}},
		{checkReq("GET", "/email/archive", b, nil), outcome{status: 200}},
		{checkReq("POST", "/email/send", b, nil), outcome{status: 200}},
	} {
		var got outcome
		eventually(t, "the final files to decide", func() bool {
			got, _ = call(t, authz, c.req)
			return got == c.want
		})
	}
	assertCleanLogs(t, srv)
}
