package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A URL no server answers (port 1), with a password that must never be
// echoed.
const unreachableURL = "postgres://keygate:pw-Never-Echoed-7@127.0.0.1:1/keygate?sslmode=disable&connect_timeout=2"

func secretFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// unsetenv removes environment variables for the test (an empty one would
// still count as set).
func unsetenv(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		t.Setenv(n, "") // restored when the test ends
		os.Unsetenv(n)
	}
}

func TestDatabaseURLFromFile(t *testing.T) {
	file := secretFile(t, unreachableURL+"\n")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string // in the error
	}{
		{"migrate reads the file", nil, []string{"migrate", "--database-url-file", file}, "database:"},
		{"bootstrap reads the file", nil, []string{"bootstrap", "--account", "a", "--database-url-file", file}, "database:"},
		// serve waits for an unreachable database (unready) rather than
		// failing: a URL it cannot parse shows that it read the file.
		{"serve reads the file", nil, []string{"serve", "--routes-file", "../../examples/routes.yaml",
			"--authz-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--database-url-file",
			secretFile(t, "postgres://u:pw-Never-Echoed-7@127.0.0.1:notaport/db\n")}, "database: postgres: cannot parse the database URL"},
		{"explain reads the file", nil, []string{"explain", "--routes-file", "../../examples/routes.yaml", "--path", "/x",
			"--database-url-file", file}, "database:"},
		{"the environment variable", map[string]string{"KEYGATE_DATABASE_URL_FILE": file}, []string{"migrate"}, "database:"},
		{"flag and file together", nil, []string{"migrate", "--database-url", unreachableURL, "--database-url-file", file},
			"--database-url (KEYGATE_DATABASE_URL, DATABASE_URL) and --database-url-file (KEYGATE_DATABASE_URL_FILE): given both"},
		{"environment and file together", map[string]string{"DATABASE_URL": unreachableURL},
			[]string{"migrate", "--database-url-file", file}, "given both directly and as a file"},
		{"serve refuses both too", nil, []string{"serve", "--routes-file", "../../examples/routes.yaml",
			"--database-url", unreachableURL, "--database-url-file", file}, "given both"},
		{"neither", nil, []string{"migrate"}, "no database: give --database-url-file"},
		{"an empty variable is not given", map[string]string{"KEYGATE_DATABASE_URL_FILE": ""}, []string{"migrate"}, "no database"},
		{"an empty file", nil, []string{"migrate", "--database-url-file", secretFile(t, "\n")}, "is empty"},
		{"a missing file", nil, []string{"migrate", "--database-url-file", file + ".missing"}, "--database-url-file (KEYGATE_DATABASE_URL_FILE): "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unsetenv(t, "DATABASE_URL", "KEYGATE_DATABASE_URL", "KEYGATE_DATABASE_URL_FILE")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, errOut, err := runCLI(t, "", tc.args...)
			if err == nil {
				t.Fatalf("no error; stdout %q", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
			for _, s := range []string{err.Error(), out, errOut} {
				if strings.Contains(s, "pw-Never-Echoed-7") {
					t.Fatalf("the password is echoed: %q", s)
				}
			}
		})
	}
}

func TestAccountKeyFromFile(t *testing.T) {
	const key = "kg_aak_NeverEchoedAccountKey0123456789"
	file := secretFile(t, key+"\n")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		// Nothing listens on the address: getting as far as calling it
		// means the key was read.
		{"the CLI reads the file", nil, []string{"apps", "list", "--account-addr", "127.0.0.1:1", "--timeout", "2s",
			"--account-key-file", file}, "Unavailable"},
		{"the environment variable", map[string]string{"KEYGATE_ACCOUNT_KEY_FILE": file},
			[]string{"apps", "list", "--account-addr", "127.0.0.1:1", "--timeout", "2s"}, "Unavailable"},
		{"key and file together", map[string]string{"KEYGATE_ACCOUNT_KEY": key},
			[]string{"apps", "list", "--account-key-file", file}, "--account-key (KEYGATE_ACCOUNT_KEY) and --account-key-file (KEYGATE_ACCOUNT_KEY_FILE): given both"},
		{"explain refuses both too", map[string]string{"KEYGATE_ACCOUNT_KEY": key},
			[]string{"explain", "--routes-file", "../../examples/routes.yaml", "--path", "/x", "--key-id", "k", "--account-key-file", file}, "given both"},
		{"neither", nil, []string{"apps", "list"}, "no account key"},
		{"an empty variable is not given", map[string]string{"KEYGATE_ACCOUNT_KEY_FILE": ""}, []string{"apps", "list"}, "no account key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unsetenv(t, "KEYGATE_ACCOUNT_KEY", "KEYGATE_ACCOUNT_KEY_FILE")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, errOut, err := runCLI(t, "", tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			for _, s := range []string{err.Error(), out, errOut} {
				if strings.Contains(s, "NeverEchoed") {
					t.Fatalf("the key is echoed: %q", s)
				}
			}
		})
	}
}
