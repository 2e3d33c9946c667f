package authz_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

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
		k, err := authz.Compile(spec, authz.CompileOptions{})
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
	})
}
