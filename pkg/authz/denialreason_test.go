package authz_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

// TestCheckDenialReason: the one rule for a denial's reason, which the
// Account API, the keys file and the data plane share (issue 18, audit
// 18 §1): required, at most 500 bytes, newlines and tabs allowed, no other
// control, bidirectional or invisible character.
func TestCheckDenialReason(t *testing.T) {
	tests := []struct {
		name, reason string
		want         string // "" for accepted; else a part of the error
		tooLong      bool
	}{
		{name: "plain", reason: "Payment overdue: contact billing@example.com"},
		{name: "newline and tab", reason: "Payment overdue.\n\tContact billing."},
		{name: "non-ASCII", reason: "Zahlung überfällig — 请联系"},
		{name: "500 bytes", reason: strings.Repeat("x", 500)},
		{name: "empty", reason: "", want: "required: the text the blocked caller reads"},
		{name: "501 bytes", reason: strings.Repeat("x", 501), want: "501 bytes, at most 500", tooLong: true},
		{name: "NUL", reason: "a\x00b", want: "control character 0x00"},
		{name: "carriage return", reason: "a\rb", want: "control character 0x0d"},
		{name: "escape", reason: "a\x1b[31mb", want: "control character 0x1b"},
		{name: "DEL", reason: "a\x7fb", want: "control character"},
		{name: "C1 control", reason: "a\u0085b", want: "C1 control character"},
		{name: "right-to-left override", reason: "a\u202eb", want: "bidirectional control character (U+202E)"},
		{name: "right-to-left isolate", reason: "a\u2067b", want: "bidirectional control character"},
		{name: "zero-width space", reason: "zero\u200bwidth", want: "invisible character (U+200B)"},
		{name: "byte order mark", reason: "\ufeffhidden", want: "invisible character"},
		{name: "invalid UTF-8", reason: "a\xffb", want: "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := authz.CheckDenialReason(tt.reason)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				// What the rule accepts, a denial compiles with.
				if _, err := authz.CompileDenial(authz.Denial{ID: "d", AccountID: "a", TenantID: "t", AppID: "p", Scope: "email-api", Reason: tt.reason}); err != nil {
					t.Errorf("accepted by the rule, refused by CompileDenial: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if got := errors.Is(err, authz.ErrDenialReasonTooLong); got != tt.tooLong {
				t.Errorf("errors.Is(err, ErrDenialReasonTooLong) = %v", got)
			}
			if _, err := authz.CompileDenial(authz.Denial{ID: "d", AccountID: "a", TenantID: "t", AppID: "p", Scope: "email-api", Reason: tt.reason}); err == nil ||
				!strings.Contains(err.Error(), "reason: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CompileDenial: %v, want reason: %s", err, tt.want)
			}
		})
	}
}

// TestCompileStoredDenial: a stored denial whose only fault is its reason
// blocks what its scope names, with the generic reason, and no more; one
// that does not compile otherwise blocks everything of its tenant and app
// (fail closed); one without a tenant is dropped (it could block nothing).
func TestCompileStoredDenial(t *testing.T) {
	base := authz.Denial{ID: "d", AccountID: "a", TenantID: "t", AppID: "p", Scope: "email-api:mutation:sendEmail", Reason: "Payment overdue"}
	with := func(f func(*authz.Denial)) authz.Denial { d := base; f(&d); return d }
	tests := []struct {
		name     string
		d        authz.Denial
		fallback authz.StoredDenialFallback
		reason   string
		blocks   []string // service:kind:operation it covers
		allows   []string // and does not
	}{
		{name: "as written", d: base, fallback: authz.StoredDenialAsWritten, reason: "Payment overdue",
			blocks: []string{"email-api:mutation:sendEmail"}, allows: []string{"email-api:query:inbox", "billing:query:list"}},
		{name: "empty reason", d: with(func(d *authz.Denial) { d.Reason = "" }), fallback: authz.StoredDenialGenericReason, reason: authz.StoredDenialReason,
			blocks: []string{"email-api:mutation:sendEmail"}, allows: []string{"email-api:query:inbox", "billing:query:list"}},
		{name: "bidi reason", d: with(func(d *authz.Denial) { d.Reason = "a\u202eb" }), fallback: authz.StoredDenialGenericReason, reason: authz.StoredDenialReason,
			blocks: []string{"email-api:mutation:sendEmail"}, allows: []string{"email-api:query:inbox"}},
		{name: "reason too long", d: with(func(d *authz.Denial) { d.Reason = strings.Repeat("x", 600) }), fallback: authz.StoredDenialGenericReason, reason: authz.StoredDenialReason,
			blocks: []string{"email-api:mutation:sendEmail"}, allows: []string{"email-api:query:inbox"}},
		{name: "deny pattern in the scope", d: with(func(d *authz.Denial) { d.Scope = "!email-api" }), fallback: authz.StoredDenialBlocksAll, reason: authz.UnloadableDenialReason,
			blocks: []string{"email-api:query:inbox", "billing:query:list"}},
		{name: "bad scope and no reason", d: with(func(d *authz.Denial) { d.Scope, d.Reason = "email-api:", "" }), fallback: authz.StoredDenialBlocksAll, reason: authz.UnloadableDenialReason,
			blocks: []string{"email-api:query:inbox", "billing:query:list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cd, fallback, err := authz.CompileStoredDenial(tt.d)
			if fallback != tt.fallback || (err == nil) != (tt.fallback == authz.StoredDenialAsWritten) || cd == nil {
				t.Fatalf("fallback %v, err %v, record %v; want fallback %v", fallback, err, cd, tt.fallback)
			}
			if cd.Reason != tt.reason || cd.ID != "d" || cd.TenantID != "t" || cd.AppID != "p" {
				t.Errorf("compiled %+v, want reason %q", cd.Denial, tt.reason)
			}
			for _, op := range tt.blocks {
				if s := strings.Split(op, ":"); !cd.Covers(s[0], s[1], s[2]) {
					t.Errorf("does not block %s", op)
				}
			}
			for _, op := range tt.allows {
				if s := strings.Split(op, ":"); cd.Covers(s[0], s[1], s[2]) {
					t.Errorf("blocks %s, which its scope does not name", op)
				}
			}
		})
	}
	if cd, _, err := authz.CompileStoredDenial(with(func(d *authz.Denial) { d.TenantID, d.Reason = "", "" })); cd != nil || err == nil {
		t.Errorf("a denial without a tenant: %v, %v; want nil and an error", cd, err)
	}
}
