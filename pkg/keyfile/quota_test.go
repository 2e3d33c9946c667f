package keyfile

import (
	"strings"
	"testing"
)

const quotaFile = `apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME, quota: {requests: 1000, period: month}}, {id: free, name: Free}]
keys:
  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: "$H1", quota: {requests: 50, period: day}}
  - {id: k-2, name: two, type: service, app: billing, tenant: free, hash: "$H2", quota: {requests: 7, period: month}}
  - {id: k-3, name: three, type: app, app: billing, hash: "$H3"}
`

// TestParseQuota: quota on tenants (monthly) and keys (daily or monthly),
// SPEC §12; each key carries its tenant's; Marshal writes them back.
func TestParseQuota(t *testing.T) {
	set, _, err := Parse([]byte(fill(t, quotaFile)), "keys.yaml", testOpts)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		own    string
		tenant int64
	}
	wants := map[string]want{"k-1": {"50/day", 1000}, "k-2": {"7/month", 0}, "k-3": {"", 0}}
	check := func(set *Set, when string) {
		for _, k := range set.Keys() {
			if w := wants[k.Spec.ID]; k.Spec.Quota.String() != w.own || k.Spec.TenantQuota != w.tenant {
				t.Errorf("%s %s: quota %q tenant %d, want %q, %d", when, k.Spec.ID, k.Spec.Quota, k.Spec.TenantQuota, w.own, w.tenant)
			}
		}
	}
	check(set, "parsed")
	if ts := set.Tenants(); ts[0].Quota != 1000 || ts[1].Quota != 0 {
		t.Errorf("tenants %+v", ts)
	}
	data, err := Marshal(set.File(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"quota: {requests: 1000, period: month}", "quota: {requests: 50, period: day}"} {
		if !strings.Contains(string(data), line) {
			t.Errorf("Marshal output lacks %q:\n%s", line, data)
		}
	}
	again, _, err := Parse(data, "out.yaml", testOpts)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	check(again, "after the round trip")
}

func TestParseQuotaErrors(t *testing.T) {
	const key = "apps: [{id: billing, name: Billing}]\ntenants: [{id: acme, name: ACME%s}]\nkeys:\n" +
		"  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: \"$H1\"%s}\n"
	for _, tc := range []struct{ tenant, key, want string }{
		{"", ", quota: {requests: 0, period: day}", `keys.yaml:4: keys[0] (id "k-1"): quota.requests: want a whole number from 1 to 1000000000000000`},
		{"", ", quota: {requests: 5, period: week}", `quota.period: period "week": want day or month`},
		{"", ", quota: {requests: 5}", `quota.period: required`},
		{"", ", quota: {period: day}", `quota.requests: required`},
		{"", ", quota: 1000", `quota: want a mapping {requests: N, period: day|month}`},
		{", quota: {requests: 5, period: day}", "", `tenants[0] (id "acme"): quota.period: a tenant's quota is monthly`},
		{", quota: {requests: -1, period: month}", "", `quota.requests: want a whole number`},
	} {
		doc := strings.Replace(strings.Replace(key, "%s", tc.tenant, 1), "%s", tc.key, 1)
		_, _, err := Parse([]byte(fill(t, doc)), "keys.yaml", testOpts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tenant%s key%s: error %v, want %q", tc.tenant, tc.key, err, tc.want)
		}
	}
	// Apps have no quota.
	_, _, err := Parse([]byte("apps: [{id: billing, name: Billing, quota: {requests: 5, period: month}}]\nkeys: []\n"), "keys.yaml", testOpts)
	if err == nil || !strings.Contains(err.Error(), `unknown field "quota"`) {
		t.Errorf("an app with a quota: %v", err)
	}
}
