package keyfile

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

// TestRefusesBadNamesAndResponseHeaders: names (of keys, apps, tenants and
// roles) and groups with bidirectional, invisible or control characters,
// and response headers that break SPEC §9's rules, are refused naming
// file, line, entry and field — and a character by its code point, never
// as itself.
func TestRefusesBadNamesAndResponseHeaders(t *testing.T) {
	opts := testOpts
	opts.Compile = authz.CompileOptions{
		ReservedHeaders:  []string{"x-api-key", "x-keygate-key-id", "x-keygate-tenant-id"},
		ReservedPrefixes: []string{"x-keygate-"},
	}
	keyNamed := func(name, extra string) string {
		return "apps: [{id: billing, name: Billing}]\ntenants: [{id: acme, name: ACME}]\nkeys:\n" +
			"  - {id: k-1, name: " + name + ", type: service, app: billing, tenant: acme, hash: \"$H1\"" + extra + "}\n"
	}
	key := func(extra string) string { return keyNamed("one", extra) }
	tests := []struct {
		name, file, want string
	}{
		{"key name with RLO", keyNamed(`"invoice\u202Etxt.exe"`, ""),
			`keys.yaml:4: keys[0] (id "k-1"): name: contains a bidirectional control character (U+202E), which is not allowed`},
		{"key name with zero-width space", keyNamed(`"admin\u200B"`, ""),
			`keys.yaml:4: keys[0] (id "k-1"): name: contains an invisible character (U+200B), which is not allowed`},
		{"group with soft hyphen", key(`, group: "part\u00ADners"`),
			`keys.yaml:4: keys[0] (id "k-1"): group: contains an invisible character (U+00AD), which is not allowed`},
		{"app name with isolate", "apps: [{id: billing, name: \"Bill\\u2067ing\"}]\nkeys: []\n",
			`keys.yaml:1: apps[0] (id "billing"): name: contains a bidirectional control character (U+2067), which is not allowed`},
		{"tenant name with BOM", "tenants: [{id: acme, name: \"\\uFEFFACME\"}]\nkeys: []\n",
			`keys.yaml:1: tenants[0] (id "acme"): name: contains an invisible character (U+FEFF), which is not allowed`},
		{"tenant name with C1 control", "tenants: [{id: acme, name: \"A\\x85CME\"}]\nkeys: []\n",
			`keys.yaml:1: tenants[0] (id "acme"): name: contains a C1 control character (U+0085), which is not allowed`},
		{"role name with RLO", "roles: [{id: r-read, name: \"read\\u202Eers\", scope: \"email-api\"}]\nkeys: []\n",
			`keys.yaml:1: roles[0] (id "r-read"): name: contains a bidirectional control character (U+202E), which is not allowed`},
		{"set-cookie", key(`, response_headers: [{name: set-cookie, value: "s=1"}]`),
			`keys.yaml:4: keys[0] (id "k-1"): response_headers: [0] "set-cookie": name must start with x-`},
		{"x-envoy", key(`, response_headers: [{name: x-envoy-auth-headers-to-remove, value: "${operation}"}]`),
			`keys.yaml:4: keys[0] (id "k-1"): response_headers: [0] "x-envoy-auth-headers-to-remove": name is reserved: it may not start with x-envoy-`},
		{"identity prefix", key(`, response_headers: [{name: x-keygate-role, value: admin}]`),
			`keys.yaml:4: keys[0] (id "k-1"): response_headers: [0] "x-keygate-role": name is reserved for keygate's identity headers (prefix x-keygate-)`},
		{"x-forwarded", key(`, response_headers: [{name: x-forwarded-for, value: 1.2.3.4}]`),
			`keys.yaml:4: keys[0] (id "k-1"): response_headers: [0] "x-forwarded-for": name is reserved: it may not start with x-forwarded-`},
		{"value over 1 KiB", key(`, response_headers: [{name: x-a, value: "` + strings.Repeat("v", 1025) + `"}]`),
			`keys.yaml:4: keys[0] (id "k-1"): response_headers: [0] "x-a": value longer than 1024 bytes once rendered for this key`},
		{"tenant variable on an app key",
			"apps: [{id: billing, name: Billing}]\nkeys:\n  - {id: k-1, name: one, type: app, app: billing, hash: \"$H1\", response_headers: [{name: x-t, value: \"${tenant.id}\"}]}\n",
			`keys.yaml:3: keys[0] (id "k-1"): response_headers: [0] "x-t": uses a tenant variable but app keys have no tenant`},
		{"21 headers", key(`, response_headers: [` + strings.Repeat(`{name: x-a, value: v}, `, 21) + `]`),
			`keys.yaml:4: keys[0] (id "k-1"): response_headers: 21 headers, more than the 20 a key may have`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse([]byte(fill(t, tt.file)), "keys.yaml", opts)
			if err == nil {
				t.Fatal("parsed")
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n got %s\nwant %s", err, tt.want)
			}
			for _, r := range err.Error() {
				if r < 0x20 || r > 0x7e {
					t.Fatalf("error echoes %U", r)
				}
			}
		})
	}
}

// TestAccountNeverEmpty: a file without an account, or with an empty one,
// puts its keys in account "default", which every allow names.
func TestAccountNeverEmpty(t *testing.T) {
	body := "apps: [{id: billing, name: Billing}]\nkeys:\n  - {id: k-1, name: one, type: app, app: billing, hash: \"$H1\"}\n"
	for name, file := range map[string]string{
		"absent": body, "empty": "account: \"\"\n" + body, "null": "account:\n" + body, "named": "account: acme-prod\n" + body,
	} {
		t.Run(name, func(t *testing.T) {
			set, _, err := Parse([]byte(fill(t, file)), "keys.yaml", testOpts)
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultAccount
			if name == "named" {
				want = "acme-prod"
			}
			if got := set.Keys()[0].Spec.AccountID; got != want || set.Account() != want {
				t.Fatalf("account %q (set %q), want %q", got, set.Account(), want)
			}
		})
	}
}
