package authz_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

func TestCompileRefuses(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	cases := []struct {
		name string
		edit func(*authz.KeySpec)
		want string // substring of the error
	}{
		{"missing id", func(s *authz.KeySpec) { s.ID = "" }, "id: required"},
		{"missing name", func(s *authz.KeySpec) { s.Name = "" }, "name: required"},
		{"missing type", func(s *authz.KeySpec) { s.Type = authz.KeyTypeUnknown }, "type: required"},
		{"service key without tenant", func(s *authz.KeySpec) { s.TenantID = "" }, "tenant: required for service keys"},
		{"service key without app", func(s *authz.KeySpec) { s.AppID = "" }, "app: required for service keys"},
		{"app key with tenant", func(s *authz.KeySpec) { s.Type = authz.KeyTypeApp }, "tenant: not allowed for app keys"},
		{"account key with app", func(s *authz.KeySpec) { s.Type = authz.KeyTypeAccount; s.TenantID = "" }, "app: not allowed for account keys"},
		{"bad hash", func(s *authz.KeySpec) { s.Hash = "md5:abc" }, "hash:"},
		{"bad scope", func(s *authz.KeySpec) { s.Scope = "email-api::x" }, "scope:"},
		{"bad CIDR", func(s *authz.KeySpec) { s.IPFilters = []string{"10.0.0.0/33"} }, `ip_filters: [0] "10.0.0.0/33"`},
		{"not an address", func(s *authz.KeySpec) { s.IPFilters = []string{"10.0.0.256"} }, "not an IPv4 or IPv6 address"},
		{"non-contiguous netmask", func(s *authz.KeySpec) { s.IPFilters = []string{"10.0.0.0/255.0.255.0"} }, "not contiguous"},
		{"netmask on IPv6", func(s *authz.KeySpec) { s.IPFilters = []string{"2001:db8::/255.255.0.0"} }, "only allowed with an IPv4"},
		{"comma-separated filters", func(s *authz.KeySpec) { s.IPFilters = []string{"10.0.0.0/8,10.1.0.0/16"} }, `ip_filters: [0] "10.0.0.0/8,10.1.0.0/16": a comma-separated list: give one address or CIDR per filter; accepted forms: a CIDR (10.0.0.0/8`},
		{"bad filter names the accepted forms", func(s *authz.KeySpec) { s.IPFilters = []string{"nope"} }, `"nope": not an IPv4 or IPv6 address; accepted forms: `},
		{"zone in filter", func(s *authz.KeySpec) { s.IPFilters = []string{"fe80::1%eth0"} }, "zone"},
		{"not_before after expires_at", func(s *authz.KeySpec) {
			s.NotBefore = t0.Add(time.Hour)
			s.ExpiresAt = t0
		}, "not_before: 2026-06-01T13:00:00Z is after expires_at"},
		{"unknown template variable", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: "${key.secret}"}}
		}, "unknown variable ${key.secret}"},
		{"unterminated template", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: "${key.id"}}
		}, "unterminated"},
		{"stray dollar", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: "cost $5"}}
		}, "stray $"},
		{"tenant variable on an app key", func(s *authz.KeySpec) {
			s.Type, s.TenantID = authz.KeyTypeApp, ""
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: "${tenant.id}"}}
		}, "tenant variable"},
		{"duplicate header names", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: "1"}, {Name: "X-A", Value: "2"}}
		}, "duplicate header name"},
		{"reserved header name", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-keygate-key-id", Value: "1"}}
		}, "reserved"},
		{"invalid header name", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x a", Value: "1"}}
		}, "not a valid header name"},
		{"app variable on an account key", func(s *authz.KeySpec) {
			s.Type, s.AppID, s.TenantID = authz.KeyTypeAccount, "", ""
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: "${app.name}"}}
		}, "app variable"},
		{"tenant variable on an account key", func(s *authz.KeySpec) {
			s.Type, s.AppID, s.TenantID = authz.KeyTypeAccount, "", ""
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: "${tenant.name}"}}
		}, "tenant variable"},
		{"header value with newline", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: "a\r\nx-evil: 1"}}
		}, "control characters"},
	}
	opts := authz.CompileOptions{ReservedHeaders: []string{"x-api-key", "x-keygate-key-id"}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := serviceKey(secret)
			tc.edit(&spec)
			_, err := authz.Compile(spec, opts)
			if err == nil {
				t.Fatal("compiled, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatal("error contains the secret")
			}
		})
	}
}

// TestResponseHeaderNameRules is SPEC §9's name rules for a key's
// response headers, with the default identity headers' prefix reserved.
func TestResponseHeaderNameRules(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	opts := authz.CompileOptions{
		ReservedHeaders:  []string{"x-api-key", "x-keygate-key-id", "x-keygate-tenant-id"},
		ReservedPrefixes: []string{"x-keygate-"},
	}
	long := "x-" + strings.Repeat("a", authz.MaxHeaderNameLen-2)
	cases := []struct {
		name, header string
		want         string // "" = accepted
	}{
		{"plain", "x-tier", ""},
		{"upper case folds", "X-Tier", ""},
		{"64 bytes", long, ""},
		{"65 bytes", long + "a", "longer than 64"},
		{"no x- prefix", "tier", "must start with x-"},
		{"set-cookie", "set-cookie", "must start with x-"},
		{"content-type", "content-type", "must start with x-"},
		{"transfer-encoding", "transfer-encoding", "must start with x-"},
		{"host", "host", "must start with x-"},
		{"access-control", "access-control-allow-origin", "must start with x-"},
		{"underscore", "x_tier", "only a-z, 0-9 and -"},
		{"dot", "x-ti.er", "only a-z, 0-9 and -"},
		{"non-ASCII", "x-tïer", "only a-z, 0-9 and -"},
		{"empty", "", "name required"},
		{"x-envoy", "x-envoy-auth-headers-to-remove", "x-envoy-"},
		{"x-envoy upper", "X-Envoy-Upstream-Rq-Timeout-Ms", "x-envoy-"},
		{"x-forwarded", "x-forwarded-for", "x-forwarded-"},
		{"x-real-ip", "x-real-ip", "x-real-ip"},
		{"x-request-id", "x-request-id", "x-request-id"},
		{"x-request-id suffix", "x-request-id-2", "x-request-id"},
		{"identity header", "x-keygate-tenant-id", "reserved"},
		{"identity prefix", "x-keygate-anything", "x-keygate-"},
		{"key header", "x-api-key", "reserved"},
		{"x-keygateway is not the prefix", "x-keygateway", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := serviceKey(secret)
			spec.ResponseHeaders = []authz.HeaderSpec{{Name: tc.header, Value: "v"}}
			_, err := authz.Compile(spec, opts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("accepted, want an error")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			// A stored key with the header keeps working without it.
			k, dropped, err := authz.CompileStored(spec, opts)
			if err != nil {
				t.Fatalf("CompileStored: %v", err)
			}
			if tc.want != "" && (len(dropped) != 1 || dropped[0] != tc.header || k.ResponseHeaderCount() != 0) {
				t.Fatalf("CompileStored dropped %q with %d headers left, want %q dropped", dropped, k.ResponseHeaderCount(), tc.header)
			}
			if tc.want == "" && (len(dropped) != 0 || k.ResponseHeaderCount() != 1) {
				t.Fatalf("CompileStored dropped %q", dropped)
			}
		})
	}
}

func TestResponseHeaderLimits(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	headers := func(n int) []authz.HeaderSpec {
		var hs []authz.HeaderSpec
		for i := range n {
			hs = append(hs, authz.HeaderSpec{Name: fmt.Sprintf("x-h%d", i), Value: "v"})
		}
		return hs
	}
	cases := []struct {
		name    string
		edit    func(*authz.KeySpec)
		want    string   // Compile's error, "" = accepted
		dropped []string // CompileStored's
		kept    int
	}{
		{"20 headers", func(s *authz.KeySpec) { s.ResponseHeaders = headers(20) }, "", nil, 20},
		{"21 headers", func(s *authz.KeySpec) { s.ResponseHeaders = headers(21) }, "more than the 20", []string{"x-h20"}, 20},
		{"21 with the last disabled", func(s *authz.KeySpec) {
			s.ResponseHeaders = headers(21)
			s.ResponseHeaders[20].Disabled = true
		}, "more than the 20", nil, 20},
		{"1 KiB value", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: strings.Repeat("v", 1024)}}
		}, "", nil, 1},
		{"value over 1 KiB", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: strings.Repeat("v", 1025)}}
		}, "longer than 1024", []string{"x-a"}, 0},
		{"value over 1 KiB once rendered", func(s *authz.KeySpec) {
			s.Name = strings.Repeat("n", 600)
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: "${key.name}${key.name}"}}
		}, "longer than 1024 bytes once rendered", []string{"x-a"}, 0},
		{"dynamic value whose fixed part is over 1 KiB", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: strings.Repeat("v", 1025) + "${operation}"}}
		}, "longer than 1024", []string{"x-a"}, 0},
		{"duplicate keeps the first", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-a", Value: "1"}, {Name: "x-A", Value: "2"}}
		}, "duplicate", []string{"x-A"}, 1},
		{"bad disabled header dropped silently", func(s *authz.KeySpec) {
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "set-cookie", Value: "1", Disabled: true}, {Name: "x-a", Value: "2"}}
		}, "must start with x-", nil, 1},
		{"tenant variable on an app key", func(s *authz.KeySpec) {
			s.Type, s.TenantID = authz.KeyTypeApp, ""
			s.ResponseHeaders = []authz.HeaderSpec{{Name: "x-t", Value: "${tenant.id}"}, {Name: "x-a", Value: "${app.id}"}}
		}, "tenant variable", []string{"x-t"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := serviceKey(secret)
			tc.edit(&spec)
			_, err := authz.Compile(spec, authz.CompileOptions{})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			k, dropped, err := authz.CompileStored(spec, authz.CompileOptions{})
			if err != nil {
				t.Fatalf("CompileStored: %v", err)
			}
			if !slices.Equal(dropped, tc.dropped) || k.ResponseHeaderCount() != tc.kept {
				t.Fatalf("CompileStored dropped %q kept %d, want %q and %d", dropped, k.ResponseHeaderCount(), tc.dropped, tc.kept)
			}
		})
	}
}

// TestDynamicValueCutAtRender: ${operation} can make a value longer than
// 1 KiB only per request; it is cut there, at a UTF-8 boundary.
func TestDynamicValueCutAtRender(t *testing.T) {
	spec := serviceKey(mustGenerate(t, apikey.KindService))
	spec.ResponseHeaders = []authz.HeaderSpec{{Name: "x-op", Value: strings.Repeat("v", 1022) + "${operation}"}}
	k := mustCompile(t, spec)
	h := k.AppendResponseHeaders(nil, &authz.Target{Service: "s", Operation: "éé"})
	if got := h[0].Value; len(got) != 1024 || got != strings.Repeat("v", 1022)+"é" {
		t.Fatalf("rendered %d bytes ending %q, want 1024 ending in one é", len(got), got[len(got)-4:])
	}
}

func TestIdentityPrefix(t *testing.T) {
	cases := []struct {
		names []string
		want  string
	}{
		{[]string{"x-keygate-key-id", "x-keygate-key-name", "x-keygate-app-id", "x-keygate-tenant-id", "x-keygate-account-id"}, "x-keygate-"},
		{[]string{"x-kg-key", "x-kg-kname"}, "x-kg-"},
		{[]string{"X-KG-Key", "x-kg-app"}, "x-kg-"},
		{[]string{"x-key-id", "x-app-id"}, ""}, // nothing more specific than x-
		{[]string{"key-id", "app-id"}, ""},
		{[]string{"x-only-one-id"}, "x-only-one-"},
		{nil, ""},
	}
	for _, tc := range cases {
		if got := authz.IdentityPrefix(tc.names); got != tc.want {
			t.Errorf("IdentityPrefix(%q) = %q, want %q", tc.names, got, tc.want)
		}
	}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	spec := authz.KeySpec{Type: authz.KeyTypeService, Hash: "nope", Scope: "a::b", IPFilters: []string{"x"}}
	_, err := authz.Compile(spec, authz.CompileOptions{})
	for _, field := range []string{"id:", "name:", "app:", "tenant:", "hash:", "scope:", "ip_filters:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
}

func TestIPFilterForms(t *testing.T) {
	cases := []struct {
		filter string
		ip     string
		want   bool
	}{
		{"192.168.178.1/255.255.255.0", "192.168.178.200", true},
		{"192.168.178.1/255.255.255.0", "192.168.179.1", false},
		{"192.168.178.1/24", "192.168.178.77", true}, // host bits masked
		{"192.168.178.1", "192.168.178.1", true},     // bare address is /32
		{"192.168.178.1", "192.168.178.2", false},
		{"2001:db8::1", "2001:db8::1", true}, // bare address is /128
		{"2001:db8::1", "2001:db8::2", false},
		{"0.0.0.0/0.0.0.0", "8.8.8.8", true},
		{"10.0.0.0/255.255.255.255", "10.0.0.0", true},
	}
	for _, tc := range cases {
		t.Run(tc.filter+" "+tc.ip, func(t *testing.T) {
			f, err := authz.ParseIPFilters([]string{tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Allows(netip.MustParseAddr(tc.ip)); got != tc.want {
				t.Fatalf("Allows = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestResponseHeaderTemplates(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	spec := serviceKey(secret)
	spec.ExpiresAt = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	spec.ResponseHeaders = []authz.HeaderSpec{
		{Name: "X-Tier", Value: "gold"},
		{Name: "x-who", Value: "${key.name}@${tenant.id}"},
		{Name: "x-id", Value: "secret", Disabled: true},
		{Name: "x-price", Value: "$$5 for ${app.name}/${tenant.name}/${account.id}/${key.id}/${app.id}"},
		{Name: "x-op", Value: "${service}:${operation}"},
		{Name: "x-exp", Value: "${key.expires_at}"},
	}
	k := mustCompile(t, spec)
	got := k.AppendResponseHeaders(nil, &emailRd)
	want := []authz.Header{
		{Name: "x-tier", Value: "gold"},
		{Name: "x-who", Value: "acme-billing@acme"},
		{Name: "x-price", Value: "$5 for Billing/ACME Corp/default/k-1/billing"},
		{Name: "x-op", Value: "email-api:listEmails"},
		{Name: "x-exp", Value: "2027-01-01T00:00:00Z"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d headers %v, want %v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("header %d = %v, want %v", i, got[i], want[i])
		}
	}
	if !k.ResponseHeadersVary() {
		t.Error("ResponseHeadersVary = false with ${service} in a header")
	}
	spec.ExpiresAt = time.Time{}
	spec.ResponseHeaders = []authz.HeaderSpec{{Name: "x-exp", Value: "[${key.expires_at}]"}}
	if h := mustCompile(t, spec).AppendResponseHeaders(nil, &emailRd); h[0].Value != "[]" {
		t.Errorf("never-expiring key: %q, want []", h[0].Value)
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"", "gold", "${key.name}@${tenant.id}", "$$", "$", "${", "${}", "${key.id", "a$b", "$${key.id}", "${service}${operation}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec := authz.KeySpec{ID: "k", Name: "n", Type: authz.KeyTypeService, AppID: "a", TenantID: "t", Active: true,
			Hash: "sha256:" + strings.Repeat("0", 64), ResponseHeaders: []authz.HeaderSpec{{Name: "x-f", Value: s}}}
		opts := authz.CompileOptions{ReservedPrefixes: []string{"x-keygate-"}}
		// A stored key never fails on its headers, and drops exactly what
		// a save refuses.
		stored, dropped, serr := authz.CompileStored(spec, opts)
		if serr != nil {
			t.Fatalf("CompileStored failed on a header: %v", serr)
		}
		k, err := authz.Compile(spec, opts)
		if (err != nil) != (len(dropped) == 1) || stored.ResponseHeaderCount()+len(dropped) != 1 {
			t.Fatalf("Compile: %v; CompileStored dropped %q, kept %d", err, dropped, stored.ResponseHeaderCount())
		}
		if err != nil {
			return
		}
		h := k.AppendResponseHeaders(nil, &authz.Target{Service: "svc", Operation: "op"})
		if len(h) != 1 {
			t.Fatalf("%d headers", len(h))
		}
		if !strings.Contains(s, "$") && h[0].Value != s {
			t.Fatalf("literal %q rendered as %q", s, h[0].Value)
		}
		if len(h[0].Value) > authz.MaxHeaderValueLen || !utf8.ValidString(h[0].Value) && utf8.ValidString(s) {
			t.Fatalf("rendered %d bytes (valid UTF-8 %v)", len(h[0].Value), utf8.ValidString(h[0].Value))
		}
	})
}
