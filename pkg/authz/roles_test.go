// Roles (SPEC §11): the effective scope of a key's own scope and its
// roles (with a fuzz test against a reference), compile errors, role
// checks, and the cost of roles and denials on the hot path. Denials'
// own tests are in denial_test.go.

package authz_test

import (
	"context"
	"errors"
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
