package authz_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// fakeStore is a hand-written KeyStore: a map, or a fixed error.
type fakeStore struct {
	keys map[apikey.Digest]*authz.Key
	err  error
}

func (s *fakeStore) LookupKey(_ context.Context, d apikey.Digest) (*authz.Key, error) {
	if s.err != nil {
		return nil, s.err
	}
	if k, ok := s.keys[d]; ok {
		return k, nil
	}
	return nil, authz.ErrKeyNotFound
}

// fakeRouter answers a fixed target, or a fixed reason.
type fakeRouter struct {
	target authz.Target
	reason authz.Reason
}

func (r *fakeRouter) Resolve(*authz.RouteInput) (authz.Target, authz.Reason) {
	return r.target, r.reason
}

var (
	t0      = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	hasher  = apikey.NewHasher(nil)
	emailRd = authz.Target{Service: "email-api", Kind: "query", Operation: "listEmails",
		Accepts: authz.KeyTypes(0).With(authz.KeyTypeService)}
)

func mustGenerate(t testing.TB, kind apikey.Kind) string {
	t.Helper()
	s, err := apikey.Generate(kind)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func withAccounts(t authz.Target, accounts ...string) authz.Target {
	t.Accounts = accounts
	return t
}

func mustCompile(t testing.TB, spec authz.KeySpec) *authz.Key {
	t.Helper()
	k, err := authz.Compile(spec, authz.CompileOptions{})
	if err != nil {
		t.Fatalf("compile %s: %v", spec.ID, err)
	}
	return k
}

// serviceKey is a valid, active service key; tests change one thing each.
func serviceKey(secret string) authz.KeySpec {
	return authz.KeySpec{
		ID: "k-1", Name: "acme-billing", Type: authz.KeyTypeService,
		AccountID: "default", AppID: "billing", AppName: "Billing", TenantID: "acme", TenantName: "ACME Corp",
		Hash: hasher.HashString(secret), Active: true,
	}
}

// TestDecisionTable covers every row of SPEC §5, in order, by name.
func TestDecisionTable(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	other := mustGenerate(t, apikey.KindService)
	appSecret := mustGenerate(t, apikey.KindApp)

	v4 := netip.MustParseAddr("10.1.2.3")
	cases := []struct {
		name   string
		spec   func(authz.KeySpec) authz.KeySpec // nil: the default key
		req    authz.Request
		router *fakeRouter
		err    error // store error
		want   authz.Reason
	}{
		{name: "row1 missing_key: no key header", req: authz.Request{}, want: authz.MissingKey},
		{name: "row2 malformed_key: present but empty", req: authz.Request{Key: "", KeyCount: 1}, want: authz.MalformedKey},
		{name: "row2 malformed_key: several values", req: authz.Request{Key: secret, KeyCount: 2}, want: authz.MalformedKey},
		{name: "row2 malformed_key: wrong checksum", req: authz.Request{Key: flipLast(secret), KeyCount: 1}, want: authz.MalformedKey},
		{name: "row2 malformed_key: over 512 bytes", req: authz.Request{Key: strings.Repeat("a", 513), KeyCount: 1}, want: authz.MalformedKey},
		{name: "row2 malformed_key: control character", req: authz.Request{Key: "abcdefghijklmnop\x01", KeyCount: 1}, want: authz.MalformedKey},
		{name: "row2 malformed_key: DEL", req: authz.Request{Key: "abcdefghijklmnop\x7f", KeyCount: 1}, want: authz.MalformedKey},
		{name: "row2 malformed before store outage", req: authz.Request{Key: flipLast(secret), KeyCount: 1}, err: errors.New("db down"), want: authz.MalformedKey},
		{name: "row3 unknown_key: well formed, not stored", req: authz.Request{Key: other, KeyCount: 1}, want: authz.UnknownKey},
		{name: "row3 unknown_key: custom shape, not stored", req: authz.Request{Key: "legacy-key-0123456789", KeyCount: 1}, want: authz.UnknownKey},
		{name: "store_unavailable: store error", req: authz.Request{Key: secret, KeyCount: 1}, err: errors.New("db down"), want: authz.StoreUnavailable},
		{name: "row4 inactive_key", spec: func(s authz.KeySpec) authz.KeySpec { s.Active = false; return s }, want: authz.InactiveKey},
		{name: "row4 inactive wins over not_yet_valid and expired", spec: func(s authz.KeySpec) authz.KeySpec {
			s.Active = false
			s.NotBefore = t0.Add(time.Hour)
			s.ExpiresAt = t0.Add(2 * time.Hour)
			return s
		}, want: authz.InactiveKey},
		{name: "row4 not_yet_valid", spec: func(s authz.KeySpec) authz.KeySpec { s.NotBefore = t0.Add(time.Second); return s }, want: authz.NotYetValid},
		{name: "row4 valid from exactly not_before", spec: func(s authz.KeySpec) authz.KeySpec { s.NotBefore = t0; return s }, want: authz.OK},
		{name: "row4 expired_key", spec: func(s authz.KeySpec) authz.KeySpec { s.ExpiresAt = t0.Add(-time.Second); return s }, want: authz.ExpiredKey},
		{name: "row4 expired at exactly expires_at", spec: func(s authz.KeySpec) authz.KeySpec { s.ExpiresAt = t0; return s }, want: authz.ExpiredKey},
		{name: "row4 not yet expired", spec: func(s authz.KeySpec) authz.KeySpec { s.ExpiresAt = t0.Add(time.Microsecond); return s }, want: authz.OK},
		// Records keep times in microseconds (PostgreSQL's precision),
		// rounded so that a finer time never widens what a key may do: an
		// expiry rounds down, a not-before up.
		{name: "row4 expiry finer than a microsecond rounds down", spec: func(s authz.KeySpec) authz.KeySpec { s.ExpiresAt = t0.Add(time.Nanosecond); return s }, want: authz.ExpiredKey},
		{name: "row4 not-before finer than a microsecond rounds up", spec: func(s authz.KeySpec) authz.KeySpec { s.NotBefore = t0.Add(time.Nanosecond); return s }, want: authz.NotYetValid},
		{name: "row4 before row5: expired key on unknown route", spec: func(s authz.KeySpec) authz.KeySpec { s.ExpiresAt = t0; return s },
			router: &fakeRouter{reason: authz.UnknownRoute}, want: authz.ExpiredKey},
		{name: "row5 unknown_route", router: &fakeRouter{reason: authz.UnknownRoute}, want: authz.UnknownRoute},
		{name: "row5 invalid_path", router: &fakeRouter{reason: authz.InvalidPath}, want: authz.InvalidPath},
		{name: "row6 wrong_key_type: app key on a service-key API", req: authz.Request{Key: appSecret, KeyCount: 1}, want: authz.WrongKeyType},
		{name: "row6 before row7: wrong type and wrong IP", spec: func(s authz.KeySpec) authz.KeySpec { s.IPFilters = []string{"192.0.2.0/24"}; return s },
			router: &fakeRouter{target: authz.Target{Service: "users-api", Accepts: authz.KeyTypes(0).With(authz.KeyTypeApp)}}, want: authz.WrongKeyType},
		{name: "row6a account_not_allowed: the service lists other accounts", router: &fakeRouter{target: withAccounts(emailRd, "acme", "globex")}, want: authz.AccountNotAllowed},
		{name: "row6a allowed: the service lists the key's account", router: &fakeRouter{target: withAccounts(emailRd, "acme", "default")}, want: authz.OK},
		{name: "row6 before row6a: wrong type and wrong account", req: authz.Request{Key: appSecret, KeyCount: 1},
			router: &fakeRouter{target: withAccounts(emailRd, "acme")}, want: authz.WrongKeyType},
		{name: "row6a before row7: wrong account and wrong IP", spec: withIPs("192.0.2.0/24"), req: authz.Request{ClientIP: v4},
			router: &fakeRouter{target: withAccounts(emailRd, "acme")}, want: authz.AccountNotAllowed},
		{name: "row5 invalid_request: method override", router: &fakeRouter{reason: authz.InvalidRequest}, want: authz.InvalidRequest},
		{name: "row8 unknown operation meets a deny pattern", spec: withScope("email-api !email-api:mutation:sendEmail"),
			router: &fakeRouter{target: authz.Target{Service: "email-api", Accepts: emailRd.Accepts}}, want: authz.ScopeDenied},
		{name: "row8 unknown operation allowed by a whole-service scope", spec: withScope("email-api"),
			router: &fakeRouter{target: authz.Target{Service: "email-api", Accepts: emailRd.Accepts}}, want: authz.OK},
		{name: "row8 unknown operation not allowed by a kind's literal operations", spec: withScope("email-api:query:listEmails"),
			router: &fakeRouter{target: authz.Target{Service: "email-api", Kind: "query", Accepts: emailRd.Accepts}}, want: authz.ScopeDenied},
		{name: "row7 ip_not_allowed: outside CIDR", spec: withIPs("192.0.2.0/24"), req: authz.Request{ClientIP: v4}, want: authz.IPNotAllowed},
		{name: "row7 allowed inside CIDR", spec: withIPs("10.0.0.0/8"), req: authz.Request{ClientIP: v4}, want: authz.OK},
		{name: "row7 allowed inside address/netmask", spec: withIPs("10.1.2.99/255.255.255.0"), req: authz.Request{ClientIP: v4}, want: authz.OK},
		{name: "row7 ip_not_allowed outside address/netmask", spec: withIPs("10.1.3.1/255.255.255.0"), req: authz.Request{ClientIP: v4}, want: authz.IPNotAllowed},
		{name: "row7 allowed inside IPv6 CIDR", spec: withIPs("10.0.0.0/8", "2001:db8::/32"), req: authz.Request{ClientIP: netip.MustParseAddr("2001:db8::7")}, want: authz.OK},
		{name: "row7 ip_not_allowed outside IPv6 CIDR", spec: withIPs("2001:db8::/32"), req: authz.Request{ClientIP: netip.MustParseAddr("2001:db9::7")}, want: authz.IPNotAllowed},
		{name: "row7 IPv4-mapped IPv6 source is unmapped", spec: withIPs("10.0.0.0/8"), req: authz.Request{ClientIP: netip.MustParseAddr("::ffff:10.1.2.3")}, want: authz.OK},
		{name: "row7 IPv4 source never matches an IPv6 filter", spec: withIPs("::/0"), req: authz.Request{ClientIP: v4}, want: authz.IPNotAllowed},
		{name: "row7 IPv6 source never matches an IPv4 filter", spec: withIPs("0.0.0.0/0"), req: authz.Request{ClientIP: netip.MustParseAddr("2001:db8::1")}, want: authz.IPNotAllowed},
		{name: "row7 zone ignored", spec: withIPs("fe80::/10"), req: authz.Request{ClientIP: netip.MustParseAddr("fe80::1%eth0")}, want: authz.OK},
		{name: "row7 unknown client IP fails closed with filters", spec: withIPs("0.0.0.0/0"), req: authz.Request{}, want: authz.IPNotAllowed},
		{name: "row7 unknown client IP without filters is fine", req: authz.Request{}, want: authz.OK},
		{name: "row8 scope_denied", spec: withScope("email-api:mutation:*"), want: authz.ScopeDenied},
		{name: "row8 scope allows", spec: withScope("email-api:query:list*"), want: authz.OK},
		{name: "row8 every further operation must be allowed", spec: withScope("email-api:query:listEmails"),
			router: &fakeRouter{target: withMore(emailRd, authz.Operation{Kind: "query", Name: "secrets"})}, want: authz.ScopeDenied},
		{name: "row7 before row8: wrong IP and out of scope", spec: func(s authz.KeySpec) authz.KeySpec {
			s.IPFilters = []string{"192.0.2.0/24"}
			s.Scope = "other-api"
			return s
		}, req: authz.Request{ClientIP: v4}, want: authz.IPNotAllowed},
		{name: "allow: everything holds", req: authz.Request{ClientIP: v4}, want: authz.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := serviceKey(secret)
			if tc.spec != nil {
				spec = tc.spec(spec)
			}
			appSpec := authz.KeySpec{ID: "k-app", Name: "billing-app", Type: authz.KeyTypeApp, AppID: "billing",
				Hash: hasher.HashString(appSecret), Active: true}
			store := &fakeStore{err: tc.err, keys: map[apikey.Digest]*authz.Key{}}
			for _, s := range []authz.KeySpec{spec, appSpec} {
				k := mustCompile(t, s)
				store.keys[k.Digest] = k
			}
			router := tc.router
			if router == nil {
				router = &fakeRouter{target: emailRd}
			}
			e := &authz.Engine{Keys: store, Routes: router, Hasher: hasher, Now: func() time.Time { return t0 }}
			req := tc.req
			if req.Key == "" && req.KeyCount == 0 && tc.name != "row1 missing_key: no key header" {
				req.Key, req.KeyCount = secret, 1
			}
			d := e.Check(context.Background(), &req)
			if d.Reason != tc.want {
				t.Fatalf("reason = %s, want %s (err %v)", d.Reason, tc.want, d.Err)
			}
			if d.Allowed() != (tc.want == authz.OK) {
				t.Fatalf("Allowed() = %v for %s", d.Allowed(), d.Reason)
			}
		})
	}
}

func TestCancelledCheckIsNeverAllowed(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	k := mustCompile(t, serviceKey(secret))
	e := &authz.Engine{Keys: &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}},
		Routes: &fakeRouter{target: emailRd}, Hasher: hasher}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := e.Check(ctx, &authz.Request{Key: secret, KeyCount: 1})
	if d.Allowed() {
		t.Fatal("a cancelled check was allowed")
	}
}

func TestScopeDeniedNamesTheOperation(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	spec := serviceKey(secret)
	spec.Scope = "email-api !email-api:mutation:sendEmail"
	k := mustCompile(t, spec)
	target := authz.Target{Service: "email-api", Kind: "query", Operation: "listEmails", Accepts: emailRd.Accepts,
		More: []authz.Operation{{Kind: "mutation", Name: "sendEmail"}}}
	e := &authz.Engine{Keys: &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}},
		Routes: &fakeRouter{target: target}, Hasher: hasher, Now: func() time.Time { return t0 }}
	d := e.Check(context.Background(), &authz.Request{Key: secret, KeyCount: 1})
	if d.Reason != authz.ScopeDenied || d.Denied != "sendEmail" {
		t.Fatalf("got %s denied=%q, want scope_denied denied=sendEmail", d.Reason, d.Denied)
	}
}

// TestScopeExamples runs every scope example of SPEC §3 through the decision.
func TestScopeExamples(t *testing.T) {
	type call struct {
		service, kind, op string
		want              authz.Reason
	}
	cases := []struct {
		name  string
		scope string
		calls []call
	}{
		{"email-api (whole service)", "email-api", []call{
			{"email-api", "query", "listEmails", authz.OK},
			{"email-api", "mutation", "sendEmail", authz.OK},
			{"other-api", "query", "x", authz.ScopeDenied},
		}},
		{"authorization-api queries and mutations", "authorization-api:query:* authorization-api:mutation:*", []call{
			{"authorization-api", "query", "getUser", authz.OK},
			{"authorization-api", "mutation", "setRole", authz.OK},
			{"authorization-api", "subscription", "onChange", authz.ScopeDenied},
		}},
		{"account-api queries only", "account-api:query:*", []call{
			{"account-api", "query", "listKeys", authz.OK},
			{"account-api", "mutation", "generateServiceAccessKey", authz.ScopeDenied},
		}},
		{"read but never send", "email-api !email-api:mutation:sendEmail", []call{
			{"email-api", "query", "listEmails", authz.OK},
			{"email-api", "mutation", "deleteEmail", authz.OK},
			{"email-api", "mutation", "sendEmail", authz.ScopeDenied},
		}},
		{"empty scope allows every operation", "", []call{
			{"email-api", "mutation", "sendEmail", authz.OK},
			{"anything", "", "", authz.OK},
		}},
		{"deny patterns only allow nothing", "!email-api:mutation:sendEmail", []call{
			{"email-api", "query", "listEmails", authz.ScopeDenied},
		}},
	}
	secret := mustGenerate(t, apikey.KindService)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := serviceKey(secret)
			spec.Scope = tc.scope
			k := mustCompile(t, spec)
			for _, c := range tc.calls {
				target := authz.Target{Service: c.service, Kind: c.kind, Operation: c.op, Accepts: emailRd.Accepts}
				if got, _ := k.Authorize(&target, &authz.Request{}); got != c.want {
					t.Errorf("%s:%s:%s = %s, want %s", c.service, c.kind, c.op, got, c.want)
				}
			}
		})
	}
}

func withIPs(f ...string) func(authz.KeySpec) authz.KeySpec {
	return func(s authz.KeySpec) authz.KeySpec { s.IPFilters = f; return s }
}

func withScope(sc string) func(authz.KeySpec) authz.KeySpec {
	return func(s authz.KeySpec) authz.KeySpec { s.Scope = sc; return s }
}

func withMore(t authz.Target, ops ...authz.Operation) authz.Target {
	t.More = ops
	return t
}

// flipLast changes the last character so the checksum no longer matches.
func flipLast(s string) string {
	b := []byte(s)
	if b[len(b)-1] == 'A' {
		b[len(b)-1] = 'B'
	} else {
		b[len(b)-1] = 'A'
	}
	return string(b)
}

// TestRotationGrace: after a rotation both secrets answer until the grace
// deadline; from then on only the new one.
func TestRotationGrace(t *testing.T) {
	oldSecret := mustGenerate(t, apikey.KindService)
	newSecret := mustGenerate(t, apikey.KindService)
	spec := serviceKey(newSecret)
	spec.PreviousHash = hasher.HashString(oldSecret)
	spec.PreviousValidUntil = t0.Add(time.Minute)
	k := mustCompile(t, spec)
	store := &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k, k.PreviousDigest(): k}}
	cases := []struct {
		name   string
		secret string
		now    time.Time
		want   authz.Reason
	}{
		{"new secret", newSecret, t0, authz.OK},
		{"old secret inside the grace period", oldSecret, t0.Add(59 * time.Second), authz.OK},
		{"old secret at the grace deadline", oldSecret, t0.Add(time.Minute), authz.UnknownKey},
		{"new secret after the grace deadline", newSecret, t0.Add(time.Hour), authz.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &authz.Engine{Keys: store, Routes: &fakeRouter{target: emailRd}, Hasher: hasher,
				Now: func() time.Time { return tc.now }}
			if d := e.Check(context.Background(), &authz.Request{Key: tc.secret, KeyCount: 1}); d.Reason != tc.want {
				t.Fatalf("got %s, want %s", d.Reason, tc.want)
			}
		})
	}
}

// TestRowsCoverEveryReason: every deny reason fails exactly one row, in
// the order of SPEC §5, so that explain and docs can place any decision.
func TestRowsCoverEveryReason(t *testing.T) {
	seen := map[authz.Reason]int{}
	for _, row := range authz.Rows {
		for _, r := range row.Reasons {
			seen[r]++
		}
	}
	for _, r := range authz.Reasons() {
		switch {
		case r == authz.OK && seen[r] != 0:
			t.Errorf("ok is listed in a row")
		case r != authz.OK && seen[r] != 1:
			t.Errorf("%s is in %d rows, want 1", r, seen[r])
		}
	}
	if authz.RowOf(authz.OK) != -1 || authz.Rows[authz.RowOf(authz.AccountNotAllowed)].Number != "6a" {
		t.Errorf("RowOf(ok) = %d, RowOf(account_not_allowed) = %d", authz.RowOf(authz.OK), authz.RowOf(authz.AccountNotAllowed))
	}
}

// TestEvaluateIsCheckFromRow4: Evaluate, for callers holding a key rather
// than its secret, decides exactly as Check does once the key is found.
func TestEvaluateIsCheckFromRow4(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	for _, tc := range []struct {
		name   string
		spec   func(authz.KeySpec) authz.KeySpec
		router *fakeRouter
		ip     netip.Addr
	}{
		{"allow", nil, nil, netip.Addr{}},
		{"inactive", func(s authz.KeySpec) authz.KeySpec { s.Active = false; return s }, nil, netip.Addr{}},
		{"unknown route", nil, &fakeRouter{reason: authz.UnknownRoute}, netip.Addr{}},
		{"account", nil, &fakeRouter{target: withAccounts(emailRd, "x")}, netip.Addr{}},
		{"ip", withIPs("10.0.0.0/8"), nil, netip.MustParseAddr("192.0.2.1")},
		{"scope", withScope("other-api"), nil, netip.Addr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := serviceKey(secret)
			if tc.spec != nil {
				spec = tc.spec(spec)
			}
			k := mustCompile(t, spec)
			router := tc.router
			if router == nil {
				router = &fakeRouter{target: emailRd}
			}
			e := &authz.Engine{Keys: &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}}, Routes: router,
				Hasher: hasher, Now: func() time.Time { return t0 }}
			req := authz.Request{Key: secret, KeyCount: 1, ClientIP: tc.ip}
			checked := e.Check(context.Background(), &req)
			evaluated := e.Evaluate(context.Background(), k, &req, t0)
			if checked.Reason != evaluated.Reason || checked.Target.Service != evaluated.Target.Service || checked.Key != evaluated.Key {
				t.Errorf("Check = %v %+v, Evaluate = %v %+v", checked.Reason, checked.Target, evaluated.Reason, evaluated.Target)
			}
		})
	}
}
