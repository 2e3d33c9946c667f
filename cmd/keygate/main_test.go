package main

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/keygate/keygate/pkg/accountcli"
)

func runCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestEnvironmentEquivalents(t *testing.T) {
	t.Setenv("KEYGATE_KEYS_FILE", "../../examples/keys.yaml")
	t.Setenv("KEYGATE_ROUTES_FILE", "../../examples/routes.yaml")
	t.Setenv("KEYGATE_XFF_TRUSTED_HOPS", "2")
	t.Setenv("KEYGATE_KEY_HEADER", "X-Demo-Key")
	out, errOut, err := runCLI(t, "", "check-config")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	for _, want := range []string{"10 keys", "key header x-demo-key", "xff-trusted-hops 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}

func TestInvalidSettingsAreAllReported(t *testing.T) {
	_, errOut, err := runCLI(t, "", "check-config", "--keys-file", "../../examples/keys.yaml",
		"--routes-file", "../../examples/routes.yaml", "--xff-trusted-hops=-1", "--header-key-id", "x-api-key")
	if err == nil {
		t.Fatal("accepted invalid settings")
	}
	for _, want := range []string{"xff-trusted-hops: -1 is negative", `"x-api-key" is used twice`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestKeygenOutputIsTwoLines(t *testing.T) {
	out, _, err := runCLI(t, "", "keygen", "--type", "account")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "kg_aak_") || !strings.HasPrefix(lines[1], "sha256:") {
		t.Fatalf("keygen printed %q", out)
	}
	if _, _, err := runCLI(t, "", "keygen", "--type", "wizard"); err == nil {
		t.Fatal("keygen accepted an unknown type")
	}
}

func TestHashReadsOneLine(t *testing.T) {
	out, _, err := runCLI(t, "my-custom-secret-0001\r\n", "hash")
	if err != nil || !strings.HasPrefix(out, "sha256:") || strings.Count(out, "\n") != 1 {
		t.Fatalf("got %q %v", out, err)
	}
	if _, _, err := runCLI(t, "", "hash"); err == nil || !strings.Contains(err.Error(), "no secret") {
		t.Fatalf("empty stdin: %v", err)
	}
}

func TestHelpExitsCleanly(t *testing.T) {
	out, _, err := runCLI(t, "", "--help")
	if err != nil || !strings.Contains(out, "check-config") {
		t.Fatalf("help: %v\n%s", err, out)
	}
}

func TestExplain(t *testing.T) {
	const readOnly = "kg_sak_ElM6AcWnVMJgkFDHOKdZSzx8ldu6AR4WwJ5o" // demo key from examples/keys.yaml
	args := []string{"explain", "--keys-file", "../../examples/keys.yaml", "--routes-file", "../../examples/routes.yaml"}
	out, _, err := runCLI(t, readOnly+"\n", append(args, "--method", "POST", "--path", "/email/send")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 known", "k-acme-read", "operation \"sendEmail\"", "FAIL scope_denied (403)", "decision: DENY 403"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCLI(t, readOnly+"\n", append(args, "--path", "/email/inbox")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"decision: ALLOW", "upstream header   x-keygate-key-id: k-acme-read", "removed upstream  x-api-key"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, readOnly) {
		t.Error("explain printed the secret")
	}
	out, _, err = runCLI(t, "kg_sak_nope\n", append(args, "--path", "/email/inbox")...)
	if err != nil || !strings.Contains(out, "2 well formed                    FAIL malformed_key (401)") || !strings.Contains(out, "not reached") {
		t.Errorf("malformed key: %v\n%s", err, out)
	}
}

// TestEnvVarsHaveOneMeaning fails when an environment variable is bound by
// two flags: two in one command, or flags of different names or meanings
// in different commands (KEYGATE_ACCOUNT_ADDR was serve's listen address
// and the CLI's dial address). A flag shared by several commands is
// declared once (an embedded struct), so its help is the same everywhere.
func TestEnvVarsHaveOneMeaning(t *testing.T) {
	parser, err := kong.New(&cli{})
	if err != nil {
		t.Fatal(err)
	}
	type use struct{ where, flag, help string }
	seen := map[string][]use{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			for _, e := range f.Envs {
				seen[e] = append(seen[e], use{n.Path(), f.Name, f.Help})
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(parser.Model.Node)
	if len(seen) < 20 {
		t.Fatalf("found %d environment variables: is the walk still reaching every command?", len(seen))
	}
	for env, uses := range seen {
		for _, u := range uses[1:] {
			if u.flag != uses[0].flag || u.help != uses[0].help {
				t.Errorf("%s is bound by --%s of %q (%q) and by --%s of %q (%q): one variable, one meaning",
					env, uses[0].flag, uses[0].where, uses[0].help, u.flag, u.where, u.help)
			}
		}
	}
}

// TestMain runs the package's tests without the caller's keygate
// environment: DATABASE_URL (which make test and integration runs export)
// and KEYGATE_* variables bind flags, so a test of flag handling would
// otherwise depend on the shell it runs in.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "DATABASE_URL" || strings.HasPrefix(name, "KEYGATE_") {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}

func TestVersionFlagAndCommandAgree(t *testing.T) {
	flag, _, err := runCLI(t, "", "--version")
	if err != nil {
		t.Fatal(err)
	}
	cmd, _, err := runCLI(t, "", "version")
	if err != nil {
		t.Fatal(err)
	}
	if flag != cmd {
		t.Errorf("--version printed %q, version printed %q", flag, cmd)
	}
	for _, want := range []string{"keygate " + buildVersion() + "\n", "commit ", "built ", runtime.Version()} {
		if !strings.Contains(flag, want) {
			t.Errorf("--version output %q lacks %q", flag, want)
		}
	}
}

func TestVersionCommitFromBuildInfo(t *testing.T) {
	var out bytes.Buffer
	d := buildDetails{Version: "v1.2.3", Revision: "abc123", Time: "2026-01-02T03:04:05Z", Modified: true, GoVersion: "go1.26.8"}
	if err := d.write(&out); err != nil {
		t.Fatal(err)
	}
	want := "keygate v1.2.3\ncommit abc123 (modified)\nbuilt 2026-01-02T03:04:05Z\ngo1.26.8\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// On a terminal, hash prompts on stderr and reads the secret without echo;
// the secret appears nowhere in the output.
func TestHashPromptsOnTerminal(t *testing.T) {
	const secret = "my-custom-secret-0001"
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, acct: &accountcli.Env{
		Stderr:       &errOut,
		IsTerminal:   func() bool { return true },
		ReadPassword: func() ([]byte, error) { return []byte(secret), nil },
	}}
	if err := (&hashCmd{}).Run(e); err != nil {
		t.Fatal(err)
	}
	piped, _, err := runCLI(t, secret+"\n", "hash")
	if err != nil || out.String() != piped {
		t.Fatalf("terminal gave %q, pipe gave %q (%v)", out.String(), piped, err)
	}
	if errOut.String() != "secret: \n" || strings.Contains(out.String(), secret) {
		t.Fatalf("stdout %q, stderr %q", out.String(), errOut.String())
	}
}

// TestDurationFlagsTakeDays: every duration flag of the binary takes days
// (issue 17, item 9), serve's included.
func TestDurationFlagsTakeDays(t *testing.T) {
	var c cli
	parser, err := kong.New(&c, kong.TypeMapper(reflect.TypeFor[time.Duration](), accountcli.DurationMapper()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse([]string{"serve", "--routes-file", "routes.yaml", "--keys-file", "keys.yaml", "--unready-after", "1d12h", "--usage-interval", "2d"}); err != nil {
		t.Fatal(err)
	}
	if c.Serve.UnreadyAfter != 36*time.Hour || c.Serve.UsageInterval != 48*time.Hour {
		t.Errorf("unready-after %v, usage-interval %v", c.Serve.UnreadyAfter, c.Serve.UsageInterval)
	}
	var out, errb strings.Builder
	err = run(t.Context(), []string{"serve", "--routes-file", "routes.yaml", "--drain-period", "1x"}, strings.NewReader(""), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "days (7d, 1d12h)") {
		t.Errorf("a bad duration: %v", err)
	}
}

// TestServeFlagsOutOfBounds: --authz-stream-workers past its bound and
// --authz-kept-allow-bytes below one slab are refused before anything
// listens, naming the flag and what it must be.
func TestServeFlagsOutOfBounds(t *testing.T) {
	for _, tc := range []struct{ flag, value, want string }{
		{"--authz-stream-workers", "5000", "authz-stream-workers: 5000 must be from 0 (a goroutine per call) to 4096"},
		{"--authz-kept-allow-bytes", "1000", "authz-kept-allow-bytes: 1000 is less than one slab"},
	} {
		var out, errb strings.Builder
		err := run(t.Context(), []string{"serve", "--routes-file", "../../examples/routes.yaml", "--keys-file", "../../examples/keys.yaml",
			tc.flag, tc.value}, strings.NewReader(""), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: %v", tc.flag, tc.value, err)
		}
	}
}
