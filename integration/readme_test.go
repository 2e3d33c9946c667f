package integration

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// readmeMarker precedes each README command block this test runs.
const readmeMarker = "<!-- readme-test: database walkthrough -->"

var readmeBlock = regexp.MustCompile("(?s)" + regexp.QuoteMeta(readmeMarker) + "\n```sh\n(.*?)```")

// TestReadmeDatabaseWalkthrough runs the README's database walkthrough
// (the blocks marked readme-test: the setup, the CLI, and every section
// after it up to the clean-up, which go on with the same app and key)
// with bash, as a newcomer would paste them in order: the real binary, PostgreSQL, serve on its default ports. Only the
// database is the test's own: its name, and the server's address and user
// from DATABASE_URL, replace the README's keygate_demo on 127.0.0.1:5432.
func TestReadmeDatabaseWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	blocks := readmeBlock.FindAllSubmatch(readme, -1)
	if len(blocks) < 12 {
		t.Fatalf("README has %d blocks marked %s, want the setup, the CLI walkthrough, the sections after it (roles, bulk changes, audit, usage, quotas, rate limits, sync status, moving, limits) and the clean-up", len(blocks), readmeMarker)
	}
	for _, b := range blocks {
		script.Write(b[1])
	}
	for _, port := range []string{"9191", "9192", "9193", "9194"} {
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatalf("the walkthrough serves on keygate's default ports, and 127.0.0.1:%s is taken (is make run or another keygate running?): %v", port, err)
		}
		l.Close()
	}

	// The test's database in place of the README's.
	base, err := url.Parse(pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("readme_%d", time.Now().UnixNano())
	host, port := base.Hostname(), base.Port()
	if port == "" {
		port = "5432"
	}
	user := base.User.Username()
	dbURL := *base
	dbURL.Path = "/" + name
	text := script.String()
	for old, new := range map[string]string{
		"createdb -h 127.0.0.1 -U postgres keygate_demo":                    fmt.Sprintf("createdb -h %s -p %s -U %s %s", host, port, user, name),
		"'postgres://postgres@127.0.0.1:5432/keygate_demo?sslmode=disable'": "'" + dbURL.String() + "'",
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("the README walkthrough no longer contains %q; update this test with it", old)
		}
		text = strings.ReplaceAll(text, old, new)
	}
	t.Cleanup(func() { dropDatabase(t, base, name) })

	dir := t.TempDir()
	root, _ := filepath.Abs("..")
	if err := os.Symlink(filepath.Join(root, "examples"), filepath.Join(dir, "examples")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(keygateBinary(t)), filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	if base.User != nil {
		if pw, ok := base.User.Password(); ok {
			t.Setenv("PGPASSWORD", pw)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", text)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	if pw := os.Getenv("PGPASSWORD"); pw != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+pw)
	}
	// Its own process group, so that a failure midway cannot leave the
	// background serve running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A script that stops early leaves its background serve holding
	// stdout: Run returns once bash has exited and the output has stopped
	// for 10 s, rather than waiting for the serve (killed below).
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	serveLog, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatalf("the README walkthrough failed: %v\nstdout:\n%s\nstderr:\n%s\nserve.log:\n%s", err, stdout.String(), stderr.String(), serveLog)
	}
	out := stdout.String()
	for _, want := range []string{
		"acme-billing",        // keys get by name
		"deleted app billing", // apps delete --cascade
		"key.update",          // the audit of the key
		"2 keys match",        // the bulk dry run (stderr below)
		"(bootstrap)",         // the audit names the actor
		"exported account acme-prod",
	} {
		if !strings.Contains(out+stderr.String(), want) {
			t.Errorf("the walkthrough's output lacks %q:\nstdout:\n%s\nstderr:\n%s", want, out, stderr.String())
		}
	}
	for _, want := range []string{
		`warning: `,                     // the scope typo
		`role "reader": 2 keys hold it`, // the refused role delete
		"1 key match",                   // bulk --where-name
		`app "billing" has 4 keys`,      // the refused delete
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	for _, f := range []string{"acme-keys.yaml", "acme-prod-keys.yaml"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || !strings.Contains(string(b), "keys:") {
			t.Errorf("export-file wrote %s: %q, %v", f, b, err)
		}
	}
	for _, f := range []string{"account.key", "acme-billing.key", "acme-prod.key"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || !strings.HasPrefix(string(b), "kg_") {
			t.Errorf("%s holds %q (%v), want a secret", f, b, err)
		}
	}
	if strings.Contains(string(serveLog), "level=WARN msg=\"change feed") || strings.Contains(string(serveLog), "level=ERROR") {
		t.Errorf("serve logged a warning or error during the walkthrough:\n%s", serveLog)
	}
}

// dropDatabase removes the walkthrough's database.
func dropDatabase(t testing.TB, base *url.URL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base.String())
	if err != nil {
		t.Logf("drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Logf("drop %s: %v", name, err)
	}
}
