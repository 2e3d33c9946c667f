package integration

import (
	"fmt"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestCLIRateLimits: rate limits through the real CLI, server and
// PostgreSQL (SPEC §12): a role and a key created with --rate-limit, shown
// by get, returned in the dynamic metadata of an allow (the key's own
// first, its role's once --clear-rate-limit removes it, none once the
// role's is cleared too); bad values refused with what to write.
func TestCLIRateLimits(t *testing.T) {
	env := newDBEnv(t)
	srv := env.serve(t)
	waitReady(t, srv)
	cli := cliAgainst(t, env, srv)
	must := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("keygate %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	must("apps", "create", "--id", "billing", "--name", "Billing")
	must("tenants", "create", "--id", "acme", "--name", "ACME")
	if out := must("roles", "create", "--id", "slow", "--name", "Slow", "--scope", "email-api", "--rate-limit", "60/m"); !strings.Contains(out, "60/minute") {
		t.Fatalf("roles create --rate-limit 60/m:\n%s", out)
	}
	out := must("keys", "generate", "--type", "service", "--app", "billing", "--tenant", "acme", "--id", "k1",
		"--scope", "email-api", "--role", "slow", "--rate-limit", "5/s")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	if !strings.Contains(out, "RATE LIMIT") || !strings.Contains(out, "5/second") {
		t.Fatalf("keys generate --rate-limit 5/s:\n%s", out)
	}
	if out := must("keys", "get", "k1", "-o", "json"); !strings.Contains(out, `"rate_limit"`) || !strings.Contains(out, `"requests_per_unit": 5`) {
		t.Fatalf("keys get -o json:\n%s", out)
	}

	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	limitOf := func() string {
		o, resp := call(t, authz, checkReq("GET", "/email/inbox", secret, nil))
		if o.status != 200 {
			t.Fatalf("k1 denied: %+v", o)
		}
		rl, ok := resp.GetDynamicMetadata().GetFields()["rate_limit"]
		if !ok {
			return "none"
		}
		f := rl.GetStructValue().GetFields()
		return fmt.Sprintf("%v/%s", f["requests_per_unit"].GetNumberValue(), f["unit"].GetStringValue())
	}
	eventually(t, "k1's own rate limit in the metadata", func() bool { return limitOf() == "5/SECOND" })

	if out := must("keys", "update", "k1", "--clear-rate-limit"); strings.Contains(out, "5/second") {
		t.Fatalf("keys update --clear-rate-limit:\n%s", out)
	}
	eventually(t, "the role's rate limit once the key's is cleared", func() bool { return limitOf() == "60/MINUTE" })
	must("roles", "update", "slow", "--rate-limit", "10/hour")
	eventually(t, "the role's new rate limit", func() bool { return limitOf() == "10/HOUR" })
	must("roles", "update", "slow", "--clear-rate-limit")
	eventually(t, "no rate limit", func() bool { return limitOf() == "none" })
	must("keys", "update", "k1", "--rate-limit", "100/day")
	eventually(t, "k1's new rate limit", func() bool { return limitOf() == "100/DAY" })

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keys", "update", "k1", "--rate-limit", "0/s"}, `--rate-limit: rate limit "0/s": requests_per_unit must be positive`},
		{[]string{"keys", "update", "k1", "--rate-limit", "5/week"}, `want second, minute, hour or day`},
		{[]string{"keys", "update", "k1", "--rate-limit", "5"}, `want N/unit, e.g. 5/s or 100/minute`},
		{[]string{"keys", "update", "k1", "--rate-limit", "5/s", "--clear-rate-limit"}, "--rate-limit and --clear-rate-limit exclude each other"},
		{[]string{"roles", "create", "--name", "Bad", "--scope", "x", "--rate-limit", "2000000000/s"}, "over the maximum 1000000000"},
	} {
		if _, err := cli(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("keygate %s: %v, want an error saying %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}
