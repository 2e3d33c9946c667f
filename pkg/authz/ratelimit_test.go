package authz_test

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

func TestParseRateLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want authz.RateLimit
		err  string
	}{
		{"5/s", authz.RateLimit{RequestsPerUnit: 5, Unit: authz.RateUnitSecond}, ""},
		{"5/second", authz.RateLimit{RequestsPerUnit: 5, Unit: authz.RateUnitSecond}, ""},
		{" 100 / Minute ", authz.RateLimit{RequestsPerUnit: 100, Unit: authz.RateUnitMinute}, ""},
		{"1000/h", authz.RateLimit{RequestsPerUnit: 1000, Unit: authz.RateUnitHour}, ""},
		{"10/day", authz.RateLimit{RequestsPerUnit: 10, Unit: authz.RateUnitDay}, ""},
		{"1000000000/d", authz.RateLimit{RequestsPerUnit: authz.MaxRequestsPerUnit, Unit: authz.RateUnitDay}, ""},
		{"1000000001/d", authz.RateLimit{}, "over the maximum"},
		{"0/s", authz.RateLimit{}, "must be positive"},
		{"-1/s", authz.RateLimit{}, "not a positive whole number"},
		{"5", authz.RateLimit{}, "want N/unit"},
		{"", authz.RateLimit{}, "want N/unit"},
		{"5/week", authz.RateLimit{}, "want second, minute, hour or day"},
		{"x/s", authz.RateLimit{}, "not a positive whole number"},
		{"99999999999/s", authz.RateLimit{}, "not a positive whole number"},
	} {
		got, err := authz.ParseRateLimit(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseRateLimit(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if again, err := authz.ParseRateLimit(got.String()); err != nil || again != got {
				t.Errorf("ParseRateLimit(%q.String()=%q) = %+v, %v", tc.in, got.String(), again, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseRateLimit(%q) error %v, want %q", tc.in, err, tc.err)
		}
	}
}

func FuzzParseRateLimit(f *testing.F) {
	for _, s := range []string{"5/s", "100/minute", "0/h", "1/day", "/", "4294967296/s", "1/S "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := authz.ParseRateLimit(s)
		if err != nil {
			return
		}
		if r.Check() != nil || r.IsZero() {
			t.Fatalf("ParseRateLimit(%q) = %+v passes but does not check", s, r)
		}
		if again, err := authz.ParseRateLimit(r.String()); err != nil || again != r {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}

// TestEffectiveRateLimit: a key's own rate_limit wins over its roles';
// among roles the most restrictive (lowest rate) wins; none = no limit.
func TestEffectiveRateLimit(t *testing.T) {
	rl := func(n uint32, u authz.RateUnit) authz.RateLimit { return authz.RateLimit{RequestsPerUnit: n, Unit: u} }
	roles := authz.RoleMap{
		"fast":   {ID: "fast", AccountID: "default", Name: "fast", Scope: "email-api", RateLimit: rl(100, authz.RateUnitSecond)},
		"slow":   {ID: "slow", AccountID: "default", Name: "slow", Scope: "email-api", RateLimit: rl(60, authz.RateUnitMinute)},
		"slow2":  {ID: "slow2", AccountID: "default", Name: "slow2", Scope: "email-api", RateLimit: rl(1, authz.RateUnitSecond)},
		"hourly": {ID: "hourly", AccountID: "default", Name: "hourly", Scope: "email-api", RateLimit: rl(3000, authz.RateUnitHour)},
		"none":   {ID: "none", AccountID: "default", Name: "none", Scope: "email-api"},
	}
	for _, tc := range []struct {
		name  string
		own   authz.RateLimit
		roles []string
		want  authz.RateLimit
	}{
		{"nothing", authz.RateLimit{}, nil, authz.RateLimit{}},
		{"own only", rl(5, authz.RateUnitSecond), nil, rl(5, authz.RateUnitSecond)},
		{"own wins over a stricter role", rl(500, authz.RateUnitSecond), []string{"slow"}, rl(500, authz.RateUnitSecond)},
		{"role without limit", authz.RateLimit{}, []string{"none"}, authz.RateLimit{}},
		{"one role", authz.RateLimit{}, []string{"none", "fast"}, rl(100, authz.RateUnitSecond)},
		{"most restrictive role", authz.RateLimit{}, []string{"fast", "hourly", "none"}, rl(3000, authz.RateUnitHour)},
		{"same rate: shorter unit", authz.RateLimit{}, []string{"slow", "slow2"}, rl(1, authz.RateUnitSecond)},
		{"same rate, other order", authz.RateLimit{}, []string{"slow2", "slow"}, rl(1, authz.RateUnitSecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := serviceKey("kg_unused")
			spec.Hash = hasher.HashString("a-custom-secret-0001")
			spec.RateLimit, spec.Roles = tc.own, tc.roles
			k, err := authz.Compile(spec, authz.CompileOptions{Roles: roles})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := k.RateLimit()
			if got != tc.want || ok != !tc.want.IsZero() {
				t.Errorf("RateLimit() = %+v, %v; want %+v", got, ok, tc.want)
			}
		})
	}
}

func TestRateLimitChecked(t *testing.T) {
	for _, bad := range []authz.RateLimit{
		{RequestsPerUnit: 0, Unit: authz.RateUnitSecond},
		{RequestsPerUnit: 5},
		{RequestsPerUnit: 5, Unit: authz.RateUnit(9)},
		{RequestsPerUnit: authz.MaxRequestsPerUnit + 1, Unit: authz.RateUnitDay},
	} {
		spec := serviceKey("kg_unused")
		spec.Hash = hasher.HashString("a-custom-secret-0001")
		spec.RateLimit = bad
		if _, err := authz.Compile(spec, authz.CompileOptions{}); err == nil || !strings.Contains(err.Error(), "rate_limit: ") {
			t.Errorf("key rate_limit %+v: %v", bad, err)
		}
		r := &authz.Role{ID: "r", Name: "r", Scope: "email-api", RateLimit: bad}
		if err := authz.CheckRole(r); err == nil || !strings.Contains(err.Error(), "rate_limit: ") {
			t.Errorf("role rate_limit %+v: %v", bad, err)
		}
	}
	if got := (authz.RateLimit{RequestsPerUnit: 5, Unit: authz.RateUnitSecond}).Unit.EnvoyName(); got != "SECOND" {
		t.Errorf("EnvoyName = %q", got)
	}
}
