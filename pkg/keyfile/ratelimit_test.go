package keyfile

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

const rateLimitFile = `apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME}]
roles:
  - {id: r-slow, name: slow, scope: "email-api", rate_limit: {requests_per_unit: 60, unit: minute}}
keys:
  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: "$H1", rate_limit: {requests_per_unit: 5, unit: second}}
  - {id: k-2, name: two, type: service, app: billing, tenant: acme, hash: "$H2", roles: [r-slow]}
  - {id: k-3, name: three, type: service, app: billing, tenant: acme, hash: "$H3", roles: [r-slow], rate_limit: {requests_per_unit: 10, unit: day}}
  - {id: k-4, name: four, type: app, app: billing, hash: "$H4"}
`

// TestParseRateLimit: rate_limit on keys and roles (SPEC §12), the key's
// own winning over its roles', and Marshal writing them back.
func TestParseRateLimit(t *testing.T) {
	set, _, err := Parse([]byte(fill(t, rateLimitFile)), "keys.yaml", testOpts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"k-1": "5/second", "k-2": "60/minute", "k-3": "10/day", "k-4": ""}
	for _, k := range set.Keys() {
		got, _ := k.RateLimit()
		if got.String() != want[k.Spec.ID] {
			t.Errorf("%s: rate limit %q, want %q", k.Spec.ID, got, want[k.Spec.ID])
		}
	}
	if r := set.Roles()[0]; r.RateLimit != (authz.RateLimit{RequestsPerUnit: 60, Unit: authz.RateUnitMinute}) {
		t.Errorf("role rate limit %+v", r.RateLimit)
	}
	data, err := Marshal(set.File(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"rate_limit: {requests_per_unit: 5, unit: second}", "rate_limit: {requests_per_unit: 60, unit: minute}"} {
		if !strings.Contains(string(data), line) {
			t.Errorf("Marshal output lacks %q:\n%s", line, data)
		}
	}
	again, _, err := Parse(data, "out.yaml", testOpts)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	for _, k := range again.Keys() {
		if got, _ := k.RateLimit(); got.String() != want[k.Spec.ID] {
			t.Errorf("after the round trip %s: %q", k.Spec.ID, got)
		}
	}
}

func TestParseRateLimitErrors(t *testing.T) {
	const top = "apps: [{id: billing, name: Billing}]\ntenants: [{id: acme, name: ACME}]\nkeys:\n"
	const key = "  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: \"$H1\", rate_limit: %s}\n"
	for _, tc := range []struct{ value, want string }{
		{"{requests_per_unit: 0, unit: second}", `keys.yaml:4: keys[0] (id "k-1"): rate_limit.requests_per_unit: want a whole number from 1 to 1000000000`},
		{"{requests_per_unit: 5000000000, unit: second}", `rate_limit.requests_per_unit: want a whole number from 1 to 1000000000`},
		{"{requests_per_unit: 5, unit: week}", `rate_limit.unit: unit "week": want second, minute, hour or day`},
		{"{requests_per_unit: 5}", `rate_limit.unit: required`},
		{"{unit: second}", `rate_limit.requests_per_unit: required`},
		{"{requests_per_unit: 5, unit: second, burst: 2}", `unknown field "burst"`},
		{"5/s", `rate_limit: want a mapping {requests_per_unit: N, unit: second|minute|hour|day}`},
	} {
		_, _, err := Parse([]byte(fill(t, top+strings.Replace(key, "%s", tc.value, 1))), "keys.yaml", testOpts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rate_limit: %s: error %v, want %q", tc.value, err, tc.want)
		}
	}
}
