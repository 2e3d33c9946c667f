package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// usageCounts are counts by "key operation outcome".
type usageCounts map[string]int64

func (u usageCounts) String() string {
	var lines []string
	for k, n := range u {
		lines = append(lines, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(lines)
	return strings.Join(lines, " ")
}

// getUsage asks the Account API for today's usage by key, operation and
// outcome, leaving out the key the test waits on (k-office).
func getUsage(t *testing.T, c *accountClient) usageCounts {
	t.Helper()
	got, err := tryUsage(t, c)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func tryUsage(t *testing.T, c *accountClient) (usageCounts, error) {
	now := time.Now()
	resp, err := c.GetUsage(c.ctx(t), &accountv1.GetUsageRequest{
		Since: timestamppb.New(now.Add(-24 * time.Hour)), Until: timestamppb.New(now.Add(24 * time.Hour)),
		Granularity: "day", GroupBy: []string{"key", "operation", "outcome"}})
	if err != nil {
		return nil, err
	}
	got := usageCounts{}
	for _, s := range resp.GetSeries() {
		g := s.GetGroup()
		if g["key"] == "k-office" {
			continue
		}
		got[g["key"]+" "+g["operation"]+" "+g["outcome"]] += s.GetTotal()
	}
	return got, nil
}

// TestUsageCounts: two replicas on one database serve known counts of
// allowed and denied requests for several keys; GetUsage returns exactly
// those counts by key, operation and outcome once they have flushed —
// one replica every 200 ms, the other only at SIGTERM. Then the database
// goes away, the first replica serves more, and once it is back nothing
// counted meanwhile is missing.
func TestUsageCounts(t *testing.T) {
	env := newDBEnv(t)
	a := env.serve(t, "--usage-flush-interval", "200ms", "--degraded-after", "500ms")
	waitReady(t, a)
	api := env.client(t, a)
	secrets := seed(t, api)
	// The other replica writes only when it stops.
	b := env.serve(t, "--usage-flush-interval", "1h")
	waitReady(t, b)
	authzA := authv3.NewAuthorizationClient(dial(t, a.authzAddr))
	authzB := authv3.NewAuthorizationClient(dial(t, b.authzAddr))
	// k-office (ip_not_allowed from 127.0.0.1) was created last: once a
	// replica answers it, it holds every key before it.
	office := checkReq("GET", "/email/inbox", secrets["office"], nil)
	waitOutcome(t, authzA, office, 403, 10*time.Second)
	waitOutcome(t, authzB, office, 403, 10*time.Second)

	inbox := func(name string) *authv3.CheckRequest { return checkReq("GET", "/email/inbox", secrets[name], nil) }
	send := func(name string) *authv3.CheckRequest { return checkReq("POST", "/email/send", secrets[name], nil) }
	serve := func(c authv3.AuthorizationClient, req *authv3.CheckRequest, n, status int) {
		t.Helper()
		for range n {
			if got, _ := call(t, c, req); got.status != status {
				t.Fatalf("got %+v, want status %d", got, status)
			}
		}
	}
	serve(authzA, inbox("svc"), 5, 200)
	serve(authzA, send("ro"), 3, 403) // scope_denied
	serve(authzA, inbox("inactive"), 2, 401)
	serve(authzA, inbox("no-such-key"), 4, 401) // not a key: not counted
	serve(authzB, inbox("svc"), 4, 200)
	serve(authzB, inbox("ro"), 2, 200)
	serve(authzB, send("svc"), 1, 200)
	serve(authzB, inbox("expired"), 3, 401)

	fromA := usageCounts{
		"k-svc listEmails allowed":    5,
		"k-ro sendEmail scope_denied": 3,
		"k-inactive  inactive_key":    2,
	}
	var got usageCounts
	eventually(t, "replica a's counts in GetUsage", func() bool {
		got = getUsage(t, api)
		return got.String() == fromA.String()
	})

	// SIGTERM: b writes what it counted as it stops.
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		t.Fatal("replica b did not stop within 20 s of SIGTERM")
	}
	both := usageCounts{
		"k-svc listEmails allowed":    9,
		"k-svc sendEmail allowed":     1,
		"k-ro listEmails allowed":     2,
		"k-ro sendEmail scope_denied": 3,
		"k-inactive  inactive_key":    2,
		"k-expired  expired_key":      3,
	}
	if got = getUsage(t, api); got.String() != both.String() {
		t.Fatalf("after SIGTERM of b:\n got  %v\n want %v\n%s", got, both, b.Logs())
	}

	// Outage: a keeps deciding from its cache and keeps the counts.
	admin, err := pgx.Connect(context.Background(), pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	db, err := pgx.Connect(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	dbName := db.Config().Database
	db.Close(context.Background())
	ident := pgx.Identifier{dbName}.Sanitize()
	if _, err := admin.Exec(context.Background(), "ALTER DATABASE "+ident+" WITH ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "ALTER DATABASE "+ident+" WITH ALLOW_CONNECTIONS true")
	})
	if _, err := admin.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbName); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/readyz to report degraded", func() bool {
		code, body := httpGet(t, "http://"+a.adminAddr+"/readyz")
		return code == 200 && strings.Contains(body, "degraded")
	})
	serve(authzA, inbox("svc"), 6, 200)
	serve(authzA, send("ro"), 2, 403)
	// The counts stay in memory while writing them fails.
	eventually(t, "a usage write to fail", func() bool {
		return strings.Contains(a.Logs(), "writing usage counts failed")
	})
	if _, err := admin.Exec(context.Background(), "ALTER DATABASE "+ident+" WITH ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
	both["k-svc listEmails allowed"] += 6
	both["k-ro sendEmail scope_denied"] += 2
	eventually(t, "the outage's counts in GetUsage", func() bool {
		got, err = tryUsage(t, api)
		return err == nil && got.String() == both.String()
	})

	// The CLI: a table with a total and a sparkline per row, and JSON.
	vars := []string{"KEYGATE_ACCOUNT_ADDR=" + a.accountAddr, "KEYGATE_ACCOUNT_KEY=" + env.accountKey}
	out, err := cliRunEnv(t, vars, "", "usage", "--since", "1d", "--until", time.Now().Add(24*time.Hour).Format(time.RFC3339),
		"--by", "key,outcome", "--key", "svc")
	if err != nil {
		t.Fatalf("keygate usage: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "KEY OUTCOME TOTAL TREND" {
		t.Fatalf("keygate usage printed:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 4 || f[0] != "k-svc" || f[1] != "allowed" || f[2] != "16" || !strings.ContainsAny(f[3], "▁▂▃▄▅▆▇█") {
		t.Errorf("row %q, want k-svc allowed 16 and a sparkline", lines[1])
	}
	out, err = cliRunEnv(t, vars, "", "usage", "--since", "2d", "--by", "outcome", "--outcome", "scope_denied", "-o", "json")
	if err != nil {
		t.Fatalf("keygate usage -o json: %v\n%s", err, out)
	}
	var doc struct {
		Granularity string
		Series      []struct {
			Group map[string]string
			Total string // int64 in protojson
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("keygate usage -o json: %v\n%s", err, out)
	}
	if doc.Granularity != "day" || len(doc.Series) != 1 || doc.Series[0].Group["outcome"] != "scope_denied" || doc.Series[0].Total != "5" {
		t.Errorf("keygate usage -o json printed:\n%s", out)
	}
	// A range past the bound is refused with what to do.
	if out, err := cliRunEnv(t, vars, "", "usage", "--since", "500d"); err == nil || !strings.Contains(out+err.Error(), "400 days") {
		t.Errorf("--since 500d: %v\n%s", err, out)
	}
}
