package integration

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// TestSecretsByFile runs bootstrap, serve and the Account API CLI with the
// database URL (password included) and the account key given as files,
// not as flags a process list shows (SPEC §16): everything works, and the
// password shows in no log, error or pprof answer.
func TestSecretsByFile(t *testing.T) {
	const password = "pw-Given-By-File-42"
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	// The test server trusts local connections: the password is carried,
	// not checked, which is all this test needs.
	u.User = url.UserPassword(u.User.Username(), password)
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "database-url")
	if err := os.WriteFile(urlFile, []byte(u.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	routesFile := filepath.Join(dir, "routes.yaml")
	writeFile(t, routesFile, routesYAML)

	out, err := cliRun(t, "", "bootstrap", "--database-url-file", urlFile, "--account", "acct-files")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	accountKey := lines[len(lines)-1]
	keyFile := filepath.Join(dir, "account-key")
	if err := os.WriteFile(keyFile, []byte(accountKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	srv := startServe(t, []string{"authz", "admin", "account"}, "--database-url-file", urlFile,
		"--routes-file", routesFile, "--pprof")
	waitReady(t, srv)

	if _, err := cliRunEnv(t, []string{"KEYGATE_ACCOUNT_KEY_FILE=" + keyFile}, "",
		"apps", "create", "--account-addr", srv.accountAddr, "--id", "billing", "--name", "Billing"); err != nil {
		t.Fatalf("apps create with KEYGATE_ACCOUNT_KEY_FILE: %v", err)
	}
	list, err := cliRun(t, "", "apps", "list", "--account-addr", srv.accountAddr, "--account-key-file", keyFile)
	if err != nil || !strings.Contains(list, "billing") {
		t.Fatalf("apps list with --account-key-file: %v\n%s", err, list)
	}
	_, err = cliRunEnv(t, []string{"KEYGATE_ACCOUNT_KEY=" + accountKey}, "",
		"apps", "list", "--account-addr", srv.accountAddr, "--account-key-file", keyFile)
	if err == nil || !strings.Contains(err.Error(), "given both") || strings.Contains(err.Error(), accountKey) {
		t.Fatalf("key and key file together: %v", err)
	}
	_, err = cliRun(t, "", "migrate", "--database-url", u.String(), "--database-url-file", urlFile)
	if err == nil || !strings.Contains(err.Error(), "given both") || strings.Contains(err.Error(), password) {
		t.Fatalf("URL and URL file together: %v", err)
	}

	if code, body := httpGet(t, "http://"+srv.adminAddr+"/debug/pprof/cmdline"); code != 404 || strings.Contains(body, password) {
		t.Fatalf("/debug/pprof/cmdline: %d", code)
	}
	if logs := srv.Logs(); strings.Contains(logs, password) || strings.Contains(logs, accountKey) {
		t.Fatal("a secret given by file is in the server's logs")
	}
}
