// Service access denials (SPEC §11): compiling a stored denial, the
// denials a check applies, and the denial index's updates, also under
// concurrent checks.

package authz_test

import (
	"context"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

func mustDenial(t testing.TB, d authz.Denial) *authz.CompiledDenial {
	t.Helper()
	c, err := authz.CompileDenial(d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompileDenial(t *testing.T) {
	ok := authz.Denial{ID: "d-1", AccountID: "default", TenantID: "acme", AppID: "billing", Scope: "email-api", Reason: "Payment overdue"}
	with := func(f func(*authz.Denial)) authz.Denial { d := ok; f(&d); return d }
	tests := []struct {
		name string
		d    authz.Denial
		want string
	}{
		{name: "valid", d: ok},
		{name: "reason of 500 bytes", d: with(func(d *authz.Denial) { d.Reason = strings.Repeat("x", 500) })},
		{name: "reason with newline", d: with(func(d *authz.Denial) { d.Reason = "line one\nline two" })},
		{name: "no tenant (no app-wide denials)", d: with(func(d *authz.Denial) { d.TenantID = "" }), want: "tenant: required"},
		{name: "no app", d: with(func(d *authz.Denial) { d.AppID = "" }), want: "app: required"},
		{name: "no id", d: with(func(d *authz.Denial) { d.ID = "" }), want: "id: required"},
		{name: "empty scope", d: with(func(d *authz.Denial) { d.Scope = "" }), want: "scope: required"},
		{name: "deny pattern", d: with(func(d *authz.Denial) { d.Scope = "email-api !email-api:query:*" }), want: "deny (!) patterns are not allowed"},
		{name: "invalid pattern", d: with(func(d *authz.Denial) { d.Scope = "email-api:" }), want: `scope: pattern 1 "email-api:"`},
		{name: "no reason", d: with(func(d *authz.Denial) { d.Reason = "" }), want: "reason: required"},
		{name: "reason over 500 bytes", d: with(func(d *authz.Denial) { d.Reason = strings.Repeat("x", 501) }), want: "reason: 501 bytes, at most 500"},
		{name: "reason with a control character", d: with(func(d *authz.Denial) { d.Reason = "a\x1bb" }), want: "reason: has control character 0x1b"},
		{name: "reason with bidi", d: with(func(d *authz.Denial) { d.Reason = "a\u202eb" }), want: "reason: contains a bidirectional"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authz.CompileDenial(tt.d)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestDenials is row 9: a denial blocks the keys of its tenant and app
// (both must match, in its account) whose operation it covers, after the
// scope check; app keys are never denied; an unknown operation meets any
// denial naming the service (SPEC §9).
func TestDenials(t *testing.T) {
	denials := authz.NewDenialIndex(
		mustDenial(t, authz.Denial{ID: "d-send", AccountID: "default", TenantID: "acme", AppID: "billing",
			Scope: "email-api:mutation:sendEmail", Reason: "Sending is suspended: invoice 42 is overdue"}),
		mustDenial(t, authz.Denial{ID: "d-all", AccountID: "default", TenantID: "globex", AppID: "billing",
			Scope: "email-api billing-api:query:get*", Reason: "Account closed"}),
		mustDenial(t, authz.Denial{ID: "d-other-account", AccountID: "other", TenantID: "acme", AppID: "billing",
			Scope: "email-api", Reason: "not this account"}),
		mustDenial(t, authz.Denial{ID: "d-other-app", AccountID: "default", TenantID: "acme", AppID: "crm",
			Scope: "email-api", Reason: "not this app"}),
	)
	secret := mustGenerate(t, apikey.KindService)
	key := func(f func(*authz.KeySpec)) *authz.Key {
		spec := serviceKey(secret)
		f(&spec)
		return mustCompile(t, spec)
	}
	acme := key(func(*authz.KeySpec) {})
	globex := key(func(s *authz.KeySpec) { s.TenantID, s.TenantName = "globex", "" })
	acmeCRM := key(func(s *authz.KeySpec) { s.AppID = "crm" })
	appKey := key(func(s *authz.KeySpec) { s.Type, s.TenantID, s.TenantName = authz.KeyTypeApp, "", "" })
	narrow := key(func(s *authz.KeySpec) { s.Scope = "email-api:query:*" })
	both := authz.KeyTypes(0).With(authz.KeyTypeService).With(authz.KeyTypeApp)
	target := func(svc, kind, op string) authz.Target {
		return authz.Target{Service: svc, Kind: kind, Operation: op, Accepts: both}
	}
	tests := []struct {
		name   string
		key    *authz.Key
		target authz.Target
		want   authz.Reason
		denial string
	}{
		{name: "tenant and app match, operation covered", key: acme, target: target("email-api", "mutation", "sendEmail"), want: authz.AccessDenied, denial: "d-send"},
		{name: "tenant and app match, operation not covered", key: acme, target: target("email-api", "query", "listEmails"), want: authz.OK},
		{name: "another app of the tenant", key: acmeCRM, target: target("email-api", "query", "listEmails"), want: authz.AccessDenied, denial: "d-other-app"},
		{name: "only the app matches", key: key(func(s *authz.KeySpec) { s.TenantID = "initech" }), target: target("email-api", "mutation", "sendEmail"), want: authz.OK},
		{name: "only the tenant matches", key: key(func(s *authz.KeySpec) { s.AppID = "hr" }), target: target("email-api", "mutation", "sendEmail"), want: authz.OK},
		{name: "another account's denial does not apply", key: key(func(s *authz.KeySpec) { s.AccountID = "third" }), target: target("email-api", "mutation", "sendEmail"), want: authz.OK},
		{name: "whole service", key: globex, target: target("email-api", "query", "listEmails"), want: authz.AccessDenied, denial: "d-all"},
		{name: "prefix operation", key: globex, target: target("billing-api", "query", "getInvoice"), want: authz.AccessDenied, denial: "d-all"},
		{name: "prefix operation not covered", key: globex, target: target("billing-api", "query", "listInvoices"), want: authz.OK},
		{name: "app keys are never denied", key: appKey, target: target("email-api", "mutation", "sendEmail"), want: authz.OK},
		{name: "unknown operation meets a denial of one operation", key: acme, target: target("email-api", "", ""), want: authz.AccessDenied, denial: "d-send"},
		{name: "unknown operation of the denied kind", key: acme, target: target("email-api", "mutation", ""), want: authz.AccessDenied, denial: "d-send"},
		{name: "unknown operation of another kind", key: acme, target: target("email-api", "query", ""), want: authz.OK},
		{name: "the scope decides first", key: narrow, target: target("email-api", "mutation", "sendEmail"), want: authz.ScopeDenied},
		{name: "a GraphQL document's other root field", key: acme, target: func() authz.Target {
			tg := target("email-api", "query", "listEmails")
			tg.More = []authz.Operation{{Kind: "mutation", Name: "sendEmail"}}
			return tg
		}(), want: authz.AccessDenied, denial: "d-send"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &authz.Engine{Routes: &fakeRouter{target: tt.target}, Hasher: hasher, Denials: denials}
			d := e.Evaluate(context.Background(), tt.key, &authz.Request{}, t0)
			if d.Reason != tt.want {
				t.Fatalf("reason %s, want %s", d.Reason, tt.want)
			}
			got := ""
			if d.Denial != nil {
				got = d.Denial.ID
			}
			if got != tt.denial {
				t.Fatalf("denial %q, want %q", got, tt.denial)
			}
		})
	}
}

// TestDenialIndexUpdates: Put, Delete and Apply change what the next
// check sees; deleting a denial restores access; a snapshot a reader
// holds is never changed under it.
func TestDenialIndexUpdates(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	k := mustCompile(t, serviceKey(secret))
	tg := emailRd
	var x authz.DenialIndex // the zero value is ready
	check := func() string {
		if d := x.MatchDenial(k, &tg); d != nil {
			return d.ID
		}
		return ""
	}
	d1 := mustDenial(t, authz.Denial{ID: "d-1", AccountID: "default", TenantID: "acme", AppID: "billing", Scope: "email-api", Reason: "r1"})
	d2 := mustDenial(t, authz.Denial{ID: "d-2", AccountID: "default", TenantID: "acme", AppID: "billing", Scope: "email-api:query", Reason: "r2"})
	if got := check(); got != "" {
		t.Fatalf("empty index denies with %s", got)
	}
	x.Put(d2)
	x.Put(d1)
	if got := check(); got != "d-1" {
		t.Fatalf("got %q, want d-1 (first by id)", got)
	}
	if x.Len() != 2 || len(x.For("default", "acme", "billing")) != 2 {
		t.Fatalf("len %d", x.Len())
	}
	// A put with the same id moves the denial to another tenant.
	x.Put(mustDenial(t, authz.Denial{ID: "d-1", AccountID: "default", TenantID: "globex", AppID: "billing", Scope: "email-api", Reason: "moved"}))
	if got := check(); got != "d-2" {
		t.Fatalf("got %q after moving d-1, want d-2", got)
	}
	x.Delete("default", "d-2")
	if got := check(); got != "" {
		t.Fatalf("got %q after deleting d-2, want access restored", got)
	}
	x.Apply([]*authz.CompiledDenial{d2}, []authz.DenialRef{{AccountID: "default", ID: "d-1"}, {AccountID: "nope", ID: "x"}})
	if got, n := check(), x.Len(); got != "d-2" || n != 1 {
		t.Fatalf("after Apply: %q, %d denials; want d-2, 1", got, n)
	}
	if d, ok := x.Get("default", "d-2"); !ok || d.Reason != "r2" {
		t.Fatalf("Get = %v, %v", d, ok)
	}
	x.Replace(nil)
	if got, n := check(), len(x.All()); got != "" || n != 0 {
		t.Fatalf("after Replace(nil): %q, %d", got, n)
	}
	var nilIndex *authz.DenialIndex
	if nilIndex.MatchDenial(k, &tg) != nil || nilIndex.Len() != 0 || nilIndex.All() != nil {
		t.Fatal("a nil index denies")
	}
}

// TestDenialIndexConcurrent: checks read while a writer puts and deletes
// (run with -race): a reader sees a whole snapshot, never a torn one.
func TestDenialIndexConcurrent(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	k := mustCompile(t, serviceKey(secret))
	var x authz.DenialIndex
	d := mustDenial(t, authz.Denial{ID: "d-1", AccountID: "default", TenantID: "acme", AppID: "billing", Scope: "email-api", Reason: "r"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 500 {
			if i%2 == 0 {
				x.Put(d)
			} else {
				x.Delete("default", "d-1")
			}
		}
	}()
	tg := emailRd
	for {
		select {
		case <-done:
			return
		default:
		}
		if got := x.MatchDenial(k, &tg); got != nil && got != d {
			t.Fatalf("matched %v", got)
		}
		if n := x.Len(); n != 0 && n != 1 {
			t.Fatalf("Len %d", n)
		}
	}
}
