package accountcli_test

import (
	"strings"
	"testing"
)

// TestDenialsReasonRequired (issue 18, audit 18 §1): keygate denials
// create requires --reason, naming the flag, before any call; the Account
// API's rule (authz.CheckDenialReason) answers the rest, on create and on
// update, naming the field.
func TestDenialsReasonRequired(t *testing.T) {
	s := setup(t)
	r := cli(t, s, "", "denials", "create", "--tenant", "acme", "--app", "billing", "--scope", "email-api")
	wantErr(t, r, "--reason")
	r = cli(t, s, "", "denials", "create", "--tenant", "acme", "--app", "billing", "--scope", "email-api", "--reason", "")
	wantErr(t, r, "InvalidArgument: reason: required: the text the blocked caller reads")
	r = cli(t, s, "", "denials", "create", "--tenant", "acme", "--app", "billing", "--scope", "email-api", "--reason", "pay\u202elater")
	wantErr(t, r, "reason: contains a bidirectional control character (U+202E)")
	r = ok(t, cli(t, s, "", "denials", "create", "--id", "unpaid", "--tenant", "acme", "--app", "billing", "--scope", "email-api",
		"--reason", "Payment overdue.\nContact billing."))
	if !strings.Contains(r.stdout, "Payment overdue.") {
		t.Errorf("create output:\n%s", r.stdout)
	}
	wantErr(t, cli(t, s, "", "denials", "update", "unpaid", "--reason", ""), "InvalidArgument: reason: required")
}
