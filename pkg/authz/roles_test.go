package authz_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
)

var testRoles = authz.RoleMap{
	"r-read":    {ID: "r-read", AccountID: "default", Name: "readers", Scope: "email-api:query:*"},
	"r-send":    {ID: "r-send", AccountID: "default", Name: "senders", Scope: "email-api:mutation:sendEmail"},
	"r-billing": {ID: "r-billing", AccountID: "default", Name: "billing", Scope: "billing-api"},
	"r-nosecret": {ID: "r-nosecret", AccountID: "default", Name: "no-secrets",
		Scope: "email-api !email-api:query:secret*"},
	"r-denyonly": {ID: "r-denyonly", AccountID: "default", Name: "deny-only", Scope: "!email-api:mutation:*"},
}

func compileWithRoles(t testing.TB, own string, roles ...string) *authz.Key {
	t.Helper()
	spec := serviceKey("kg_unused")
	spec.Hash = hasher.HashString("a-custom-secret-0001")
	spec.Scope, spec.Roles = own, roles
	k, err := authz.Compile(spec, authz.CompileOptions{Roles: testRoles})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return k
}

// TestEffectiveScope holds SPEC §11's rule: the union of the allow
// patterns of the key's own scope and of its roles, with every deny
// pattern of any of them; an empty own scope without roles allows
// everything, with roles what the roles allow.
func TestEffectiveScope(t *testing.T) {
	type op struct{ service, kind, operation string }
	var (
		list    = op{"email-api", "query", "listEmails"}
		secret  = op{"email-api", "query", "secretThing"}
		send    = op{"email-api", "mutation", "sendEmail"}
		del     = op{"email-api", "mutation", "deleteEmail"}
		invoice = op{"billing-api", "query", "invoice"}
		other   = op{"sms-api", "mutation", "send"}
		unknown = op{"email-api", "", ""}         // SPEC §9: no kind, no operation
		unkOp   = op{"email-api", "mutation", ""} // kind known, operation not
	)
	tests := []struct {
		name    string
		own     string
		roles   []string
		allowed []op
		denied  []op
	}{
		{name: "empty own scope, no roles: everything", own: "",
			allowed: []op{list, secret, send, del, invoice, other, unknown}},
		{name: "empty own scope, one role: what the role allows", own: "", roles: []string{"r-read"},
			allowed: []op{list, secret}, denied: []op{send, del, invoice, other, unknown}},
		{name: "empty own scope, several roles: their union", own: "", roles: []string{"r-read", "r-send", "r-billing"},
			allowed: []op{list, secret, send, invoice}, denied: []op{del, other, unknown, unkOp}},
		{name: "own scope and a role: union", own: "sms-api", roles: []string{"r-read"},
			allowed: []op{list, other}, denied: []op{send, invoice}},
		{name: "own scope without roles: own scope alone", own: "email-api:mutation:sendEmail",
			allowed: []op{send}, denied: []op{list, del, invoice}},
		{name: "a role's deny pattern applies to the own scope's allows", own: "email-api:query:*", roles: []string{"r-nosecret"},
			allowed: []op{list, send, del}, denied: []op{secret, invoice}},
		{name: "the own scope's deny applies to a role's allows", own: "!email-api:mutation:sendEmail", roles: []string{"r-send", "r-read"},
			allowed: []op{list}, denied: []op{send, del}},
		{name: "a deny-only role with an empty own scope allows nothing", own: "", roles: []string{"r-denyonly"},
			denied: []op{list, send, invoice, other, unknown}},
		{name: "a deny-only role narrows the own scope", own: "email-api", roles: []string{"r-denyonly"},
			allowed: []op{list, secret}, denied: []op{send, del, unkOp, unknown}},
		{name: "unknown operation: a whole-service role allows it", own: "", roles: []string{"r-billing", "r-nosecret"},
			allowed: []op{{"billing-api", "", ""}}, denied: []op{unknown}},
		{name: "unknown operation: a kind-wide role allows an unknown operation of its kind only", own: "", roles: []string{"r-read"},
			allowed: []op{{"email-api", "query", ""}}, denied: []op{unknown, unkOp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := compileWithRoles(t, tt.own, tt.roles...)
			for _, o := range tt.allowed {
				if !k.Scope().Allows(o.service, o.kind, o.operation) {
					t.Errorf("%v denied, want allowed (effective scope %q)", o, k.Scope())
				}
			}
			for _, o := range tt.denied {
				if k.Scope().Allows(o.service, o.kind, o.operation) {
					t.Errorf("%v allowed, want denied (effective scope %q)", o, k.Scope())
				}
			}
			if got := k.OwnScope().String(); got != strings.Join(strings.Fields(tt.own), " ") {
				t.Errorf("own scope %q, want %q", got, tt.own)
			}
			if got := len(k.Roles()); got != len(tt.roles) {
				t.Errorf("%d roles, want %d", got, len(tt.roles))
			}
		})
	}
}

// TestCompileRolesErrors: a key naming a role the set does not hold (or
// twice) is refused, never compiled without it.
func TestCompileRolesErrors(t *testing.T) {
	tests := []struct {
		name  string
		roles []string
		set   authz.RoleSet
		want  string
	}{
		{name: "unknown role", roles: []string{"r-read", "r-gone"}, set: testRoles, want: `roles: [1] "r-gone": no such role`},
		{name: "no role set", roles: []string{"r-read"}, want: `roles: [0] "r-read": no such role`},
		{name: "listed twice", roles: []string{"r-read", "r-read"}, set: testRoles, want: `roles: [1] "r-read" is listed twice`},
		{name: "empty id", roles: []string{""}, set: testRoles, want: `roles: [0] is empty`},
		{name: "a role with an empty scope", roles: []string{"r-empty"}, set: authz.RoleMap{"r-empty": {ID: "r-empty", Name: "e", Scope: " "}},
			want: `the role's scope is empty`},
		{name: "a role with a bad scope", roles: []string{"r-bad"}, set: authz.RoleMap{"r-bad": {ID: "r-bad", Name: "b", Scope: "a:b:c:d"}},
			want: `the role's scope: pattern 1 "a:b:c:d"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := serviceKey("")
			spec.Hash = hasher.HashString("a-custom-secret-0001")
			spec.Roles = tt.roles
			_, err := authz.Compile(spec, authz.CompileOptions{Roles: tt.set})
			var fe *authz.FieldError
			if err == nil || !errors.As(err, &fe) || fe.Field != "roles" || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a roles error with %q", err, tt.want)
			}
		})
	}
}

func TestCheckRole(t *testing.T) {
	tests := []struct {
		name string
		role authz.Role
		want string // "" = valid
	}{
		{name: "valid", role: authz.Role{ID: "r", Name: "readers", Scope: "email-api:query:*"}},
		{name: "deny patterns allowed", role: authz.Role{ID: "r", Name: "n", Scope: "email-api !email-api:mutation:*"}},
		{name: "no id", role: authz.Role{Name: "n", Scope: "email-api"}, want: "id: required"},
		{name: "no name", role: authz.Role{ID: "r", Scope: "email-api"}, want: "name: required"},
		{name: "bidi name", role: authz.Role{ID: "r", Name: "a\u202eb", Scope: "email-api"}, want: "name: contains a bidirectional"},
		{name: "empty scope", role: authz.Role{ID: "r", Name: "n", Scope: ""}, want: "scope: required"},
		{name: "invalid scope", role: authz.Role{ID: "r", Name: "n", Scope: "email api:*x"}, want: `scope: pattern 2 "api:*x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := authz.CheckRole(&tt.role)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

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

// TestRolesAndDenialsDoNotAllocate: the engine's decision for a key with
// three roles and a tenant with ten denials allocates nothing, allowed or
// denied.
func TestRolesAndDenialsDoNotAllocate(t *testing.T) {
	e, req, _ := rolesDenialsEngine(t)
	ctx := context.Background()
	if d := e.Check(ctx, req); d.Reason != authz.OK {
		t.Fatalf("reason %s", d.Reason)
	}
	if n := testing.AllocsPerRun(200, func() { _ = e.Check(ctx, req) }); n != 0 {
		t.Fatalf("Check allocates %v times", n)
	}
	e.Routes = &fakeRouter{target: authz.Target{Service: "email-api", Kind: "mutation", Operation: "op9", Accepts: emailRd.Accepts}}
	if d := e.Check(ctx, req); d.Reason != authz.AccessDenied {
		t.Fatalf("reason %s, want access_denied", d.Reason)
	}
	if n := testing.AllocsPerRun(200, func() { _ = e.Check(ctx, req) }); n != 0 {
		t.Fatalf("a denied Check allocates %v times", n)
	}
}

// rolesDenialsEngine is a key with three roles (and an own scope) of a
// tenant with ten denials of other operations, behind a map store.
func rolesDenialsEngine(t testing.TB) (*authz.Engine, *authz.Request, *authz.Key) {
	secret := mustGenerate(t, apikey.KindService)
	spec := serviceKey(secret)
	spec.Scope = "sms-api:query:*"
	spec.Roles = []string{"r-read", "r-nosecret", "r-billing"}
	spec.IPFilters = []string{"10.0.0.0/8"}
	k, err := authz.Compile(spec, authz.CompileOptions{Roles: testRoles})
	if err != nil {
		t.Fatal(err)
	}
	var ds []*authz.CompiledDenial
	for i := range 10 {
		ds = append(ds, mustDenial(t, authz.Denial{ID: "d-" + string(rune('a'+i)), AccountID: "default", TenantID: "acme", AppID: "billing",
			Scope: "email-api:mutation:op" + string(rune('0'+i)), Reason: "blocked"}))
	}
	e := &authz.Engine{Keys: &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}},
		Routes: &fakeRouter{target: emailRd}, Hasher: hasher, Denials: authz.NewDenialIndex(ds...),
		Counts: authz.NewUsageCounter(0)}
	return e, &authz.Request{Key: secret, KeyCount: 1, ClientIP: netip.MustParseAddr("10.9.8.7")}, k
}

// BenchmarkCheckEngineRolesDenials is BenchmarkEngineCheck for a key with
// three roles, its tenant holding ten denials (none covering the call).
func BenchmarkCheckEngineRolesDenials(b *testing.B) {
	e, req, _ := rolesDenialsEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Check(ctx, req); d.Reason != authz.OK {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkCheckEngine is BenchmarkEngineCheck under the BenchmarkCheck
// prefix, to compare with BenchmarkCheckEngineRolesDenials.
func BenchmarkCheckEngine(b *testing.B) { BenchmarkEngineCheck(b) }

// FuzzEffectiveScope checks a key's compiled effective scope (own scope
// and up to three roles) against a reference built pattern by pattern:
// allowed iff every part is empty, or some allow pattern of some part
// matches and no deny pattern of any part does. It also checks a denial's
// Covers against the deny reading of its patterns.
func FuzzEffectiveScope(f *testing.F) {
	f.Add("", "email-api:query:*", "", "", "email-api", "query", "listEmails")
	f.Add("email-api", "!email-api:mutation:*", "billing-api", "", "email-api", "mutation", "")
	f.Add("", "!a", "", "", "a", "", "")
	f.Add("a:b* !a:bc", "c", "a:*:x", "!c:d", "a", "bcd", "x")
	f.Fuzz(func(t *testing.T, own, r1, r2, r3, service, kind, operation string) {
		roles := authz.RoleMap{}
		var ids []string
		parts := []string{own}
		for i, sc := range []string{r1, r2, r3} {
			if strings.TrimSpace(sc) == "" {
				continue
			}
			id := "r" + string(rune('0'+i))
			roles[id] = &authz.Role{ID: id, Name: id, Scope: sc}
			ids = append(ids, id)
			parts = append(parts, sc)
		}
		spec := serviceKey("")
		spec.Hash = hasher.HashString("a-custom-secret-0001")
		spec.Scope, spec.Roles = own, ids
		k, err := authz.Compile(spec, authz.CompileOptions{Roles: roles})
		valid := true
		for _, p := range parts {
			if _, perr := scope.Parse(p); perr != nil {
				valid = false
			}
		}
		if (err == nil) != valid {
			t.Fatalf("compile err %v, parts valid %v", err, valid)
		}
		if err != nil {
			return
		}
		want, any := reference(t, parts, service, kind, operation)
		if got := k.Scope().Allows(service, kind, operation); got != want {
			t.Fatalf("effective %q allows(%q,%q,%q) = %v, reference %v (patterns: %v)", k.Scope(), service, kind, operation, got, want, any)
		}
		// A denial over the allow patterns of the parts covers exactly what
		// their deny reading matches.
		for _, p := range parts {
			sc, _ := scope.Parse(p)
			for _, w := range strings.Fields(sc.String()) {
				if strings.HasPrefix(w, "!") {
					continue
				}
				d, err := authz.CompileDenial(authz.Denial{ID: "d", AccountID: "a", TenantID: "t", AppID: "p", Scope: w, Reason: "r"})
				if err != nil {
					t.Fatalf("denial %q: %v", w, err)
				}
				deny, _ := scope.Parse("* !" + w)
				if got, want := d.Covers(service, kind, operation), !deny.Allows(service, kind, operation); got != want {
					t.Fatalf("denial %q covers(%q,%q,%q) = %v, want %v", w, service, kind, operation, got, want)
				}
			}
		}
	})
}

// reference decides an operation against several scopes' patterns one
// pattern at a time.
func reference(t *testing.T, parts []string, service, kind, operation string) (bool, int) {
	allowed, denied, n := false, false, 0
	for _, p := range parts {
		sc, err := scope.Parse(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range strings.Fields(sc.String()) {
			n++
			if rest, ok := strings.CutPrefix(w, "!"); ok {
				one, _ := scope.Parse("* !" + rest)
				denied = denied || !one.Allows(service, kind, operation)
				continue
			}
			one, _ := scope.Parse(w)
			allowed = allowed || one.Allows(service, kind, operation)
		}
	}
	if n == 0 {
		return true, 0
	}
	return allowed && !denied, n
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

// TestScopeCacheSharesUnions: keys with the same own scope and roles share
// one compiled effective scope when compiled with a ScopeCache; other
// combinations get their own.
func TestScopeCacheSharesUnions(t *testing.T) {
	cache := &authz.ScopeCache{}
	compile := func(id, own string, roles ...string) *authz.Key {
		spec := serviceKey("")
		spec.ID, spec.Hash = id, hasher.HashString("a-custom-secret-"+id+"-0001")
		spec.Scope, spec.Roles = own, roles
		k, err := authz.Compile(spec, authz.CompileOptions{Roles: testRoles, Scopes: cache})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b := compile("a", "sms-api", "r-read", "r-send"), compile("b", "sms-api", "r-read", "r-send")
	c, d := compile("c", "sms-api", "r-send", "r-read"), compile("d", "", "r-read", "r-send")
	if a.Scope() != b.Scope() {
		t.Error("same own scope and roles: not shared")
	}
	if a.Scope() == c.Scope() || a.Scope() == d.Scope() {
		t.Error("another combination shares a union")
	}
	if got := d.Scope().String(); got != "email-api:query:* email-api:mutation:sendEmail" {
		t.Errorf("d's union %q", got)
	}
	if plain := compile("e", "sms-api"); plain.Scope() != plain.OwnScope() {
		t.Error("a key without roles does not use its own scope")
	}
}

// TestScopeCacheSharesOwnersAndAccess: keys of one tenant share one owner,
// keys with one scope and the same role records one access (KeyInfo); a
// role replaced by an edit is a new record, so a key compiled against it
// gets an access of its own, with the edited scope, while the keys
// compiled before keep theirs.
func TestScopeCacheSharesOwnersAndAccess(t *testing.T) {
	cache := &authz.ScopeCache{}
	compile := func(id, tenant string, roles authz.RoleMap, ids ...string) *authz.Key {
		spec := serviceKey("")
		spec.ID, spec.Hash = id, hasher.HashString("a-custom-secret-"+id+"-0001")
		spec.TenantID, spec.Scope, spec.Roles = tenant, "sms-api", ids
		k, err := authz.Compile(spec, authz.CompileOptions{Roles: roles, Scopes: cache})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b := compile("a", "acme", testRoles, "r-read"), compile("b", "acme", testRoles, "r-read")
	other := compile("c", "globex", testRoles, "r-read")
	if a.Spec.KeyOwner != b.Spec.KeyOwner || a.Spec.KeyAccess != b.Spec.KeyAccess {
		t.Error("same tenant, scope and roles: owner or access not shared")
	}
	if a.Spec.KeyOwner == other.Spec.KeyOwner || other.Spec.TenantID != "globex" {
		t.Errorf("another tenant shares an owner (tenant %q)", other.Spec.TenantID)
	}
	if a.Spec.KeyAccess != other.Spec.KeyAccess {
		t.Error("same scope and roles in another tenant: access not shared")
	}

	edited := authz.RoleMap{}
	for id, r := range testRoles {
		edited[id] = r
	}
	read := *testRoles["r-read"]
	read.Scope = "users-api:query:*"
	edited["r-read"] = &read
	after := compile("d", "acme", edited, "r-read")
	if after.Spec.KeyAccess == a.Spec.KeyAccess {
		t.Fatal("a key compiled against an edited role shares the access of one compiled before")
	}
	if !after.Scope().Allows("users-api", "query", "listUsers") || after.Scope().Allows("email-api", "query", "listEmails") {
		t.Errorf("compiled against the edited role: effective scope %q", after.Scope())
	}
	if !a.Scope().Allows("email-api", "query", "listEmails") {
		t.Errorf("compiled before the edit: effective scope %q changed", a.Scope())
	}
	if got := a.Spec.KeySpec().Roles; len(got) != 1 || got[0] != "r-read" {
		t.Errorf("KeySpec().Roles %q", got)
	}
}

// TestScopeCacheAccessNotSpelledByScope: a stored scope that is not valid
// (here holding NUL, which no valid scope does) fails to compile through
// the data plane's cache even when its text spells the cache's name for
// another key's scope and roles; it never gets their access.
func TestScopeCacheAccessNotSpelledByScope(t *testing.T) {
	cache := &authz.ScopeCache{}
	spec := serviceKey("")
	spec.Hash, spec.Scope, spec.Roles = hasher.HashString("a-custom-secret-with-roles-0001"), "sms-api", []string{"r-read"}
	withRoles, err := authz.Compile(spec, authz.CompileOptions{Roles: testRoles, Scopes: cache})
	if err != nil {
		t.Fatal(err)
	}
	for _, forged := range []string{
		"sms-api\x00r-read\x00" + fmt.Sprintf("%p", testRoles["r-read"]),
		"7\x00sms-api\x00r-read\x00" + fmt.Sprintf("%p", testRoles["r-read"]),
	} {
		spec := serviceKey("")
		spec.ID, spec.Hash, spec.Scope = "forged", hasher.HashString("a-custom-secret-forged-0001"), forged
		k, _, err := authz.CompileStored(spec, authz.CompileOptions{Roles: testRoles, Scopes: cache})
		if err == nil {
			t.Errorf("scope %q compiled (effective %q, shared: %v)", forged, k.Scope(), k.Spec.KeyAccess == withRoles.Spec.KeyAccess)
		}
	}
}
