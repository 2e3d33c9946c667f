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
