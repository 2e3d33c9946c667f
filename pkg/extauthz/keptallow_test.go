package extauthz_test

import (
	"testing"

	"github.com/keygate/keygate/pkg/extauthz"
)

// TestKeptAllowFollowsOperation: a key's kept allow is its first until it
// calls another operation, then the last one's; each answer names the
// operation its request called, whichever was kept before.
func TestKeptAllowFollowsOperation(t *testing.T) {
	f := newFixture(t, extauthz.Config{})
	for i, tc := range []struct{ path, op string }{
		{"/email/read", "listEmails"}, {"/email/read", "listEmails"}, {"/email/send", "sendEmail"},
		{"/email/send", "sendEmail"}, {"/email/read", "listEmails"}, {"/email/send", "sendEmail"},
	} {
		resp := check(t, f.srv, request(tc.path, f.service, nil))
		if op := resp.GetDynamicMetadata().GetFields()["operation"].GetStringValue(); op != tc.op {
			t.Fatalf("request %d (%s): operation = %q, want %q", i, tc.path, op, tc.op)
		}
	}
}
