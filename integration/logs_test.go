package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeLogs holds the log lines a new user reads (issue 17 item 12):
// "keygate serving" comes once the keys are loaded, with their count; a
// clean shutdown logs no warning; every duration is written the same way,
// as Go spells it ("1.5s"), never as a count of nanoseconds.
func TestServeLogs(t *testing.T) {
	env := newDBEnv(t)
	pepper := filepath.Join(t.TempDir(), "pepper")
	writeFile(t, pepper, "0123456789abcdef0123456789abcdef\n")
	srv := env.serve(t, "--pepper-file", pepper)
	waitReady(t, srv)
	// Only a listener that has handed out its answer counts as stopped
	// cleanly; SIGTERM is what Kubernetes sends.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-srv.done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM; logs:\n%s", err, srv.Logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop after SIGTERM; logs:\n%s", srv.Logs())
	}

	var warmAt, servingAt, listeningAt = -1, -1, -1
	for i, line := range strings.Split(strings.TrimSpace(srv.Logs()), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue // the race detector's own lines, if any
		}
		if lvl := rec["level"]; lvl == "WARN" || lvl == "ERROR" {
			t.Errorf("a clean start and shutdown logged %v: %s", lvl, line)
		}
		for _, k := range []string{"took", "drain", "timeout", "retry_in", "in"} {
			if v, ok := rec[k]; ok {
				if _, isText := v.(string); !isText {
					t.Errorf("duration %q written as %v (%T), want Go's text form: %s", k, v, v, line)
				}
			}
		}
		switch rec["msg"] {
		case "key cache warm":
			warmAt = i
		case "keygate listening; loading keys (not ready until they are)":
			listeningAt = i
		case "keygate serving":
			servingAt = i
			// bootstrap created the account key: the count is 1, not the 0
			// of a cache still loading.
			if rec["keys"] != float64(1) {
				t.Errorf("keygate serving logged keys=%v, want 1: %s", rec["keys"], line)
			}
		}
	}
	if listeningAt < 0 || warmAt < 0 || servingAt < 0 || !(listeningAt < warmAt && warmAt < servingAt) {
		t.Errorf("want listening, then key cache warm, then keygate serving; got lines %d, %d, %d:\n%s",
			listeningAt, warmAt, servingAt, srv.Logs())
	}
}
