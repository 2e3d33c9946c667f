package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestSyncStatusTwoReplicas (issue 19 part 4, SPEC §13): two replicas
// record heartbeats; a key change through the Account API reports its
// change number and shows `synced 1/2` while one replica's feed is held,
// `synced 2/2` once it is released; a replica stopped with SIGTERM writes
// a last heartbeat and leaves the live count at once, one killed leaves it
// after --replica-timeout.
//
// The feed is held with serve's hidden --hold-feed-file: while the file
// exists replica-b applies no change of the feed but keeps heartbeating,
// truthfully, the change it has applied. That makes the 1/2 state last as
// long as the test wants (a SIGSTOPped replica would also stop its
// heartbeats and drop out after the timeout, racing the assertions).
func TestSyncStatusTwoReplicas(t *testing.T) {
	env := newDBEnv(t)
	hold := filepath.Join(t.TempDir(), "hold-feed")
	common := []string{"--heartbeat-interval", "100ms", "--replica-timeout", "2s"}
	a := env.serve(t, append([]string{"--replica-id", "replica-a"}, common...)...)
	b := env.serve(t, append([]string{"--replica-id", "replica-b", "--hold-feed-file", hold}, common...)...)
	waitReady(t, a)
	waitReady(t, b)
	vars := []string{"KEYGATE_ACCOUNT_ADDR=" + a.accountAddr, "KEYGATE_ACCOUNT_KEY=" + env.accountKey}
	// run returns stdout and stderr of the real CLI.
	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(keygateBinary(t), args...)
		cmd.Env = append(cleanEnv(), vars...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("keygate %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	out := func(args ...string) string { t.Helper(); s, _ := run(args...); return s }
	waitFor := func(want string, args ...string) string {
		t.Helper()
		var got string
		eventually(t, "keygate "+strings.Join(args, " ")+" to show "+want, func() bool {
			got = out(args...)
			return strings.Contains(got, want)
		})
		return got
	}

	out("apps", "create", "--id", "billing", "--name", "Billing")
	_, errOut := run("keys", "generate", "--type", "app", "--app", "billing", "--id", "k1", "--scope", "email-api")
	if !regexp.MustCompile(`(?m)^change [0-9]+ \(keygate sync-status --change [0-9]+\)$`).MatchString(errOut) {
		t.Fatalf("keys generate stderr %q; want a change line", errOut)
	}
	waitFor("synced 2/2", "sync-status", "--key", "k1")

	writeFile(t, hold, "held")
	_, errOut = run("keys", "update", "k1", "--description", "held back")
	m := regexp.MustCompile(`change ([0-9]+) `).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("keys update stderr %q; want its change number", errOut)
	}
	change := m[1]
	got := waitFor("synced 1/2: replica-b ", "sync-status", "--change", change)
	if !strings.Contains(got, "behind") {
		t.Fatalf("sync-status while replica-b is held:\n%s", got)
	}
	waitFor("synced 1/2: replica-b ", "keys", "get", "k1")
	var st struct {
		ChangeNumber string `json:"change_number"`
		Live, Synced int
		Behind       []struct {
			ID            string `json:"id"`
			ChangesBehind string `json:"changes_behind"`
		}
	}
	if err := json.Unmarshal([]byte(out("sync-status", "--change", change, "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.ChangeNumber != change || st.Live != 2 || st.Synced != 1 || len(st.Behind) != 1 || st.Behind[0].ID != "replica-b" || st.Behind[0].ChangesBehind == "" {
		t.Fatalf("sync-status -o json while held: %+v", st)
	}

	// Released: the next notification (another key change) catches it up.
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	out("keys", "generate", "--type", "app", "--app", "billing", "--id", "k2", "--scope", "email-api")
	waitFor("synced 2/2", "sync-status", "--change", change)
	waitFor("synced 2/2", "keys", "get", "k1")

	// keygate replicas lists both, live.
	list := out("replicas")
	for _, want := range []string{"replica-a", "replica-b", "APPLIED"} {
		if !strings.Contains(list, want) {
			t.Fatalf("keygate replicas:\n%s\nwant %q", list, want)
		}
	}

	// A third replica stopped with SIGTERM records that it stopped.
	c := env.serve(t, append([]string{"--replica-id", "replica-c"}, common...)...)
	waitReady(t, c)
	waitFor("synced 3/3", "sync-status", "--change", change)
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-c.done
	waitFor("synced 2/2", "sync-status", "--change", change)
	if l := out("replicas"); !regexp.MustCompile(`replica-c\s+stopped`).MatchString(l) {
		t.Fatalf("keygate replicas after replica-c's SIGTERM:\n%s", l)
	}

	// replica-b killed: no last heartbeat; it drops out after the timeout.
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-b.done
	waitFor("synced 1/1", "sync-status", "--change", change)
	if l := out("replicas"); !regexp.MustCompile(`replica-b\s+silent`).MatchString(l) {
		t.Fatalf("keygate replicas after replica-b was killed:\n%s", l)
	}
	var rs []struct {
		ID   string `json:"id"`
		Live bool   `json:"live"`
	}
	if err := json.Unmarshal([]byte(out("replicas", "-o", "json")), &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].ID != "replica-a" || !rs[0].Live || rs[1].Live || rs[2].Live {
		t.Fatalf("replicas -o json: %+v", rs)
	}
}
