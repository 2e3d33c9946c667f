package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// topLevel are the commands every script must offer after `keygate`.
var topLevel = []string{"serve", "keygen", "hash", "check-config", "explain", "migrate", "bootstrap",
	"accounts", "apps", "tenants", "keys", "audit", "completion", "version"}

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	out, _, err := runCLI(t, "", "completion", shell)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCompletionScriptsNameCommandsAndFlags(t *testing.T) {
	flags := []string{"type", "app", "tenant", "name", "scope", "expires"}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		script := completionScript(t, shell)
		for _, cmd := range topLevel {
			if !strings.Contains(script, "'"+cmd+"'") && !strings.Contains(script, " "+cmd+" ") {
				t.Errorf("%s script lacks command %s", shell, cmd)
			}
		}
		for _, f := range flags {
			if !strings.Contains(script, "--"+f) && !strings.Contains(script, "-l "+f) {
				t.Errorf("%s script lacks keys generate's --%s", shell, f)
			}
		}
	}
	if _, _, err := runCLI(t, "", "completion", "powershell"); err == nil {
		t.Error("completion accepted an unknown shell")
	}
}

// complete runs the bash script's function on the words typed so far (the
// last one is the word being completed) and returns what it offers.
func complete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keygate.bash")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	prog := "source " + shellQuote(path) + "; COMP_WORDS=(keygate " + strings.Join(quoted, " ") + "); " +
		"COMP_CWORD=" + strconv.Itoa(len(words)) + "; _keygate; printf '%s\\n' \"${COMPREPLY[@]}\""
	out, err := exec.Command("bash", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script := completionScript(t, "bash")
	out, err := exec.Command("bash", "-n", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	cases := []struct {
		words []string
		want  string
	}{
		{[]string{"ke"}, "keygen keys"},
		{[]string{"keys", "ge"}, "generate get"},
		{[]string{"keys", "generate", "--type", ""}, "service app account"},
		{[]string{"keys", "generate", "--type", "app", "--ten"}, "--tenant"},
		{[]string{"completion", ""}, "bash zsh fish --help -h --version"},
	}
	for _, c := range cases {
		if got := strings.Join(complete(t, script, c.words...), " "); got != c.want {
			t.Errorf("keygate %s<TAB>: got %q, want %q", strings.Join(c.words, " "), got, c.want)
		}
	}
}

func TestFishCompletionParses(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish is not installed")
	}
	out, err := exec.Command("fish", "--no-execute", "-c", completionScript(t, "fish")).CombinedOutput()
	if err != nil {
		t.Fatalf("fish --no-execute: %v\n%s", err, out)
	}
}
