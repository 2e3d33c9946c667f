package scope

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

type probe struct {
	service, kind, operation string
	want                     bool
}

func mustParse(t testing.TB, s string) *Scope {
	t.Helper()
	sc, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return sc
}

func checkProbes(t *testing.T, sc *Scope, probes []probe) {
	t.Helper()
	for _, p := range probes {
		if got := sc.Allows(p.service, p.kind, p.operation); got != p.want {
			t.Errorf("Allows(%q, %q, %q) = %v, want %v", p.service, p.kind, p.operation, got, p.want)
		}
	}
}

// TestSpecExamples is SPEC §3's examples, one subtest each.
func TestSpecExamples(t *testing.T) {
	tests := []struct {
		name   string
		scope  string
		probes []probe
	}{
		{"whole service", "email-api", []probe{
			{"email-api", "query", "getEmail", true},
			{"email-api", "mutation", "sendEmail", true},
			{"email-api", "", "", true},
			{"email-api", "grpc", "Send", true},
			{"authorization-api", "query", "getEmail", false},
			{"email-api2", "query", "x", false},
			{"email", "query", "x", false},
		}},
		{"queries and mutations of one service", "authorization-api:query:* authorization-api:mutation:*", []probe{
			{"authorization-api", "query", "listRoles", true},
			{"authorization-api", "mutation", "grantRole", true},
			{"authorization-api", "subscription", "roleChanged", false},
			{"authorization-api", "", "", false},
			{"email-api", "query", "listRoles", false},
		}},
		{"account API read only", "account-api:query:*", []probe{
			{"account-api", "query", "listKeys", true},
			{"account-api", "query", "", true},
			{"account-api", "mutation", "generateServiceAccessKey", false},
			{"email-api", "query", "listKeys", false},
		}},
		{"read but never send", "email-api !email-api:mutation:sendEmail", []probe{
			{"email-api", "query", "getEmail", true},
			{"email-api", "mutation", "deleteEmail", true},
			{"email-api", "mutation", "sendEmail", false},
			{"email-api", "mutation", "sendEmailLater", true},
			{"email-api", "query", "sendEmail", true},
			{"other-api", "mutation", "sendEmail", false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProbes(t, mustParse(t, tt.scope), tt.probes)
		})
	}
}

func TestSemantics(t *testing.T) {
	tests := []struct {
		name   string
		scope  string
		probes []probe
	}{
		{"empty scope allows all", "", []probe{
			{"email-api", "query", "getEmail", true},
			{"", "", "", true},
		}},
		{"whitespace-only scope allows all", " \t\n ", []probe{
			{"anything", "at", "all", true},
		}},
		{"deny-only allows nothing", "!email-api:mutation:sendEmail", []probe{
			{"email-api", "query", "getEmail", false},
			{"other-api", "query", "x", false},
			{"email-api", "mutation", "sendEmail", false},
		}},
		{"deny everything", "* !*", []probe{
			{"email-api", "query", "getEmail", false},
			{"", "", "", false},
		}},
		{"deny wins over allow regardless of order", "!email-api:mutation email-api", []probe{
			{"email-api", "query", "getEmail", true},
			{"email-api", "mutation", "sendEmail", false},
		}},
		{"prefix matches the bare prefix", "email-api:query:get*", []probe{
			{"email-api", "query", "get", true},
			{"email-api", "query", "getEmail", true},
			{"email-api", "query", "ge", false},
			{"email-api", "query", "Get", false},
			{"email-api", "query", "", false},
			{"email-api", "mutation", "getEmail", false},
		}},
		{"star matches empty kind and operation", "email-api:*:*", []probe{
			{"email-api", "", "", true},
			{"email-api", "query", "", true},
			{"email-api", "", "op", true},
		}},
		{"star service matches empty service", "*", []probe{
			{"", "", "", true},
			{"email-api", "query", "x", true},
		}},
		{"missing kind matched only by star", "email-api:query email-api:grpc:Send* email-api:rest*", []probe{
			{"email-api", "", "", false},
			{"email-api", "", "Send", false},
			{"email-api", "query", "", true},
			{"email-api", "grpc", "", false},
			{"email-api", "grpc", "SendMail", true},
			{"email-api", "rest", "", true},
		}},
		// SPEC §9: an unknown kind or operation (empty) is matched by
		// allow patterns only through "*", by deny patterns always.
		{"deny pattern matches an unknown operation", "email-api !email-api:mutation:sendEmail", []probe{
			{"email-api", "", "", false},
			{"email-api", "mutation", "", false},
			{"email-api", "query", "", true},
			{"email-api", "mutation", "deleteEmail", true},
		}},
		{"deny prefix matches an unknown operation", "email-api !email-api:mutation:send*", []probe{
			{"email-api", "mutation", "", false},
			{"email-api", "", "sendNow", false},
			{"email-api", "", "x", true},
			{"email-api", "query", "x", true},
		}},
		{"deny of another service ignores unknown operations", "email-api !other-api:mutation:x", []probe{
			{"email-api", "", "", true},
		}},
		{"deny star kind with literal operation matches unknown", "email-api !email-api:*:purge", []probe{
			{"email-api", "query", "", false},
			{"email-api", "query", "list", true},
		}},
		{"allow literal never matches unknown", "email-api:query:list email-api:query:get*", []probe{
			{"email-api", "query", "", false},
			{"email-api", "", "list", false},
		}},
		{"missing segments mean star", "email-api:mutation", []probe{
			{"email-api", "mutation", "", true},
			{"email-api", "mutation", "sendEmail", true},
			{"email-api", "query", "sendEmail", false},
		}},
		{"literal is exact", "email-api:query:getEmail", []probe{
			{"email-api", "query", "getEmail", true},
			{"email-api", "query", "getEmails", false},
			{"email-api", "query", "getemail", false},
		}},
		{"prefix service", "email*:query", []probe{
			{"email", "query", "x", true},
			{"email-api", "query", "x", true},
			{"mail-api", "query", "x", false},
		}},
		{"deny with prefix", "email-api !email-api:mutation:send*", []probe{
			{"email-api", "mutation", "send", false},
			{"email-api", "mutation", "sendEmail", false},
			{"email-api", "mutation", "resend", true},
		}},
		{"literal characters", "a.b_c-d/e:Q1:op/v2.x_y-z", []probe{
			{"a.b_c-d/e", "Q1", "op/v2.x_y-z", true},
		}},
		{"tabs and newlines separate patterns", "email-api:query\t\tauthorization-api\n!authorization-api:mutation:drop*\r\n", []probe{
			{"email-api", "query", "x", true},
			{"authorization-api", "query", "x", true},
			{"authorization-api", "mutation", "dropRole", false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProbes(t, mustParse(t, tt.scope), tt.probes)
		})
	}

	t.Run("nil scope allows all", func(t *testing.T) {
		var sc *Scope
		checkProbes(t, sc, []probe{{"email-api", "query", "x", true}})
		if sc.String() != "" || sc.Services() != nil {
			t.Fatalf("nil scope: String %q, Services %q", sc.String(), sc.Services())
		}
	})
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		scope   string
		wantErr string // exact
	}{
		{"empty middle segment", "email-api email-api::x", `pattern 2 "email-api::x": segment 2 is empty`},
		{"empty trailing segment", "email-api:", `pattern 1 "email-api:": segment 2 is empty`},
		{"empty third segment", "a:b:", `pattern 1 "a:b:": segment 3 is empty`},
		{"empty first segment", ":query", `pattern 1 ":query": segment 1 is empty`},
		{"empty denied segment", "!:query", `pattern 1 "!:query": segment 1 is empty`},
		{"too many segments", "a:b:c:d", `pattern 1 "a:b:c:d": 4 segments, at most 3 (service:kind:operation)`},
		{"lone bang", "email-api !", `pattern 2 "!": ! must be followed by service[:kind[:operation]]`},
		{"double bang", "!!email-api", `pattern 1 "!!email-api": segment 1 has invalid character '!' (allowed: A-Z a-z 0-9 . _ - / and a trailing *)`},
		{"bang inside", "email!api", `pattern 1 "email!api": segment 1 has invalid character '!' (allowed: A-Z a-z 0-9 . _ - / and a trailing *)`},
		{"star inside segment", "email-api:q*ery", `pattern 1 "email-api:q*ery": segment 2 has * before its end (only a trailing * is allowed)`},
		{"double star", "email-api:**", `pattern 1 "email-api:**": segment 2 has * before its end (only a trailing * is allowed)`},
		{"leading star", "*api", `pattern 1 "*api": segment 1 has * before its end (only a trailing * is allowed)`},
		{"bad character", "a b c@d", `pattern 3 "c@d": segment 1 has invalid character '@' (allowed: A-Z a-z 0-9 . _ - / and a trailing *)`},
		{"comma is not a separator", "a,b", `pattern 1 "a,b": segment 1 has invalid character ',' (allowed: A-Z a-z 0-9 . _ - / and a trailing *)`},
		{"non-ASCII", "e-mail:qüery", `pattern 1 "e-mail:qüery": segment 2 has invalid character 'ü' (allowed: A-Z a-z 0-9 . _ - / and a trailing *)`},
		{"non-breaking space is not a separator", "a\u00a0b", `pattern 1 "a\u00a0b": segment 1 has invalid character '\u00a0' (allowed: A-Z a-z 0-9 . _ - / and a trailing *)`},
		{"invalid UTF-8", "a:\xff", `pattern 1 "a:\xff": segment 2 has invalid byte 0xff (allowed: A-Z a-z 0-9 . _ - / and a trailing *)`},
		{"control character", "a:b\x00", `pattern 1 "a:b\x00": segment 2 has invalid character '\x00' (allowed: A-Z a-z 0-9 . _ - / and a trailing *)`},
		{"too long", strings.Repeat("a", MaxBytes+1), "scope: 4097 bytes, at most 4096"},
		{"too many patterns", strings.Repeat("a ", MaxPatterns+1), "scope: 257 patterns, at most 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := Parse(tt.scope)
			if err == nil {
				t.Fatalf("Parse = %q, want error %q", sc, tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Fatalf("Parse error\n got %s\nwant %s", err, tt.wantErr)
			}
		})
	}

	t.Run("PatternError fields", func(t *testing.T) {
		_, err := Parse("email-api email-api::x")
		var pe *PatternError
		if !errors.As(err, &pe) || pe.Index != 2 || pe.Pattern != "email-api::x" || pe.Reason != "segment 2 is empty" {
			t.Fatalf("error %#v, want *PatternError{2, \"email-api::x\", \"segment 2 is empty\"}", err)
		}
	})
}

func TestBounds(t *testing.T) {
	tests := []struct {
		name  string
		scope string
	}{
		{"exactly MaxBytes", strings.Repeat("a", MaxBytes)},
		{"exactly MaxPatterns", strings.TrimSpace(strings.Repeat("a ", MaxPatterns))},
		{"MaxPatterns with surrounding space", " " + strings.Repeat("a ", MaxPatterns)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustParse(t, tt.scope)
		})
	}
}

func TestServices(t *testing.T) {
	tests := []struct {
		name  string
		scope string
		want  []string
	}{
		{"empty", "", nil},
		{"one", "email-api", []string{"email-api"}},
		{"first appearance order, no duplicates", "b-api:query a-api b-api:mutation !a-api:mutation:x", []string{"b-api", "a-api"}},
		{"deny patterns count", "* !legacy-api", []string{"legacy-api"}},
		{"wildcards and prefixes are not services", "* email*:query account-api", []string{"account-api"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := mustParse(t, tt.scope)
			got := sc.Services()
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Services = %q, want %q", got, tt.want)
			}
			if len(got) > 0 {
				got[0] = "mutated"
				if sc.Services()[0] == "mutated" {
					t.Fatal("Services returned the scope's own slice")
				}
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		name, scope, want string
	}{
		{"empty", "", ""},
		{"blank", " \n\t", ""},
		{"kept as written", "email-api:query:* !email-api:mutation:sendEmail", "email-api:query:* !email-api:mutation:sendEmail"},
		{"whitespace runs collapse", "  a\t\tb:c \n !d  ", "a b:c !d"},
		{"missing segments are not expanded", "a a:b", "a a:b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := mustParse(t, tt.scope)
			if got := sc.String(); got != tt.want {
				t.Fatalf("String = %q, want %q", got, tt.want)
			}
			if again := mustParse(t, sc.String()).String(); again != tt.want {
				t.Fatalf("String is not stable: %q then %q", tt.want, again)
			}
		})
	}
}
