package accountcli_test

import (
	"encoding/json"
	"testing"

	"github.com/keygate/keygate/pkg/accountcli"
)

// An empty scope allows every operation: tables say so in words, where "-"
// would read as "nothing"; JSON keeps the stored "" for scripts.
func TestEmptyScopeReadsAsEverything(t *testing.T) {
	s := setup(t)
	ok(t, cli(t, s, "", "keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme", "--id", "k1", "--name", "all"))
	ok(t, cli(t, s, "", "keys", "generate", "--type", "app", "--app", "billing", "--id", "k2", "--name", "mail", "--scope", "email-api"))

	// Golden: no secret, no time (neither key expires nor was used).
	const golden = "" +
		"ID    NAME  TYPE     APP      TENANT  ACTIVE  GROUP  SCOPE                                                   EXPIRES  LAST USED\n" +
		"k1    all   service  billing  acme    yes     -      * (every operation of the services accepting its type)  -        -\n" +
		"k2    mail  app      billing  -       yes     -      email-api                                               -        -\n" +
		"root  root  account  -        -       yes     -      * (every operation of the services accepting its type)  -        -\n"
	if got := ok(t, cli(t, s, "", "keys", "list")).stdout; got != golden {
		t.Fatalf("keys list:\n%s\nwant:\n%s", got, golden)
	}
	if got := field(t, ok(t, cli(t, s, "", "keys", "get", "k1")).stdout, "SCOPE"); got != accountcli.AllScope {
		t.Fatalf("keys get SCOPE = %q, want %q", got, accountcli.AllScope)
	}

	var key map[string]any
	if err := json.Unmarshal([]byte(ok(t, cli(t, s, "", "keys", "get", "k1", "-o", "json")).stdout), &key); err != nil {
		t.Fatal(err)
	}
	if scope, found := key["scope"]; found && scope != "" {
		t.Fatalf("JSON scope = %v, want the stored value \"\"", scope)
	}
}
