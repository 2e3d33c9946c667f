package main

import (
	"testing"

	"github.com/keygate/keygate/pkg/accountcli"
)

// explain shows an empty scope in the CLI tables' words, not as "".
func TestQuotedScope(t *testing.T) {
	for scope, want := range map[string]string{
		"":          accountcli.AllScope,
		"  ":        accountcli.AllScope,
		"email-api": `"email-api"`,
	} {
		if got := quotedScope(scope); got != want {
			t.Errorf("quotedScope(%q) = %q, want %q", scope, got, want)
		}
	}
}

// The CLI's message about a server without the Account API names serve's
// default listen address: the two must not drift apart.
func TestDefaultAccountAddrAgrees(t *testing.T) {
	if defaultAccountListenAddr != accountcli.DefaultAccountAddr {
		t.Fatalf("serve listens on %s by default, the CLI says %s", defaultAccountListenAddr, accountcli.DefaultAccountAddr)
	}
}
