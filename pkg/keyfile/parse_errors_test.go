// TestParseErrors: the table of keys files Parse refuses, each with every
// message it gives, in order, as file:line: entry: field.

package keyfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		opts *Options
		// want is every message, in order. A message ending in "…" is
		// matched as a prefix: its tail is another package's wording.
		want []string
	}{
		{
			name: "tenant required for service keys",
			file: head + `  - id: k-1
    name: one
    type: service
    app: billing
    hash: "$H1"
`,
			want: []string{`keys.yaml:4: keys[0] (id "k-1"): tenant: required for service keys`},
		},
		{
			name: "app required for service and app keys",
			file: head + `  - {id: k-1, name: one, type: service, tenant: acme, hash: "$H1"}
  - {id: k-2, name: two, type: app, hash: "$H2"}
`,
			want: []string{
				`keys.yaml:4: keys[0] (id "k-1"): app: required for service keys`,
				`keys.yaml:5: keys[1] (id "k-2"): app: required for app keys`,
			},
		},
		{
			name: "tenant forbidden on app and account keys",
			file: head + `  - id: k-1
    name: one
    type: app
    app: billing
    tenant: acme
    hash: "$H1"
  - {id: k-2, name: two, type: account, app: billing, hash: "$H2"}
`,
			want: []string{
				`keys.yaml:8: keys[0] (id "k-1"): tenant: not allowed for app keys`,
				`keys.yaml:10: keys[1] (id "k-2"): app: not allowed for account keys`,
			},
		},
		{
			name: "unknown type",
			file: head + `  - {id: k-1, name: one, type: admin, hash: "$H1"}
`,
			want: []string{`keys.yaml:4: keys[0] (id "k-1"): type: unknown key type "admin" (want service, app or account)`},
		},
		{
			name: "missing type, id and name",
			file: head + `  - hash: "$H1"
`,
			want: []string{
				`keys.yaml:4: keys[0]: id: required`,
				`keys.yaml:4: keys[0]: name: required`,
				`keys.yaml:4: keys[0]: type: required: service, app or account`,
			},
		},
		{
			name: "duplicate id, name and hash",
			file: head + `  - {id: k-1, name: one, type: app, app: billing, hash: "$H1"}
  - {id: k-2, name: two, type: app, app: billing, hash: "$H2"}
  - id: k-1
    name: two
    type: app
    app: billing
    hash: "$H1"
`,
			want: []string{
				`keys.yaml:6: keys[2] (id "k-1"): id: "k-1" is also the id of keys[0] (id "k-1") (line 4)`,
				`keys.yaml:7: keys[2] (id "k-1"): name: "two" is also the name of keys[1] (id "k-2") (line 5)`,
				`keys.yaml:10: keys[2] (id "k-1"): hash: same hash as keys[0] (id "k-1") (line 4)`,
			},
		},
		{
			name: "app and tenant must be listed",
			file: head + `  - id: k-1
    name: one
    type: service
    app: payroll
    tenant: globex
    hash: "$H1"
`,
			want: []string{
				`keys.yaml:7: keys[0] (id "k-1"): app: "payroll" is not listed in apps`,
				`keys.yaml:8: keys[0] (id "k-1"): tenant: "globex" is not listed in tenants`,
			},
		},
		{
			name: "duplicate and missing app and tenant ids",
			file: `apps:
  - {id: billing, name: Billing}
  - {id: billing, name: Billing again}
  - {name: Nameless}
tenants:
  - {id: acme}
  - id: acme
keys: []
`,
			want: []string{
				`keys.yaml:3: apps[1] (id "billing"): id: "billing" is also the id of apps[0] (id "billing") (line 2)`,
				`keys.yaml:4: apps[2]: id: required`,
				`keys.yaml:7: tenants[1] (id "acme"): id: "acme" is also the id of tenants[0] (id "acme") (line 6)`,
			},
		},
		{
			name: "timestamps must be RFC 3339",
			file: head + `  - id: k-1
    name: one
    type: app
    app: billing
    hash: "$H1"
    not_before: 2026-01-01
    expires_at: "next year"
  - {id: k-2, name: two, type: app, app: billing, hash: "$H2", expires_at: 2026-01-01 10:00:00}
`,
			want: []string{
				`keys.yaml:9: keys[0] (id "k-1"): not_before: "2026-01-01" is not an RFC 3339 timestamp (like 2026-01-01T00:00:00Z)`,
				`keys.yaml:10: keys[0] (id "k-1"): expires_at: "next year" is not an RFC 3339 timestamp (like 2026-01-01T00:00:00Z)`,
				`keys.yaml:11: keys[1] (id "k-2"): expires_at: "2026-01-01 10:00:00" is not an RFC 3339 timestamp (like 2026-01-01T00:00:00Z)`,
			},
		},
		{
			name: "not_before after expires_at",
			file: head + `  - id: k-1
    name: one
    type: app
    app: billing
    hash: "$H1"
    expires_at: 2026-01-01T00:00:00Z
    not_before: 2027-01-01T00:00:00Z
`,
			want: []string{`keys.yaml:10: keys[0] (id "k-1"): not_before: 2027-01-01T00:00:00Z is after expires_at 2026-01-01T00:00:00Z`},
		},
		{
			name: "active must be a boolean",
			file: head + `  - {id: k-1, name: one, type: app, app: billing, hash: "$H1", active: yes}
  - {id: k-2, name: two, type: app, app: billing, hash: "$H2", active: }
`,
			want: []string{
				`keys.yaml:4: keys[0] (id "k-1"): active: want true or false, got "yes"`,
				`keys.yaml:5: keys[1] (id "k-2"): active: want true or false`,
			},
		},
		{
			name: "hash from another algorithm",
			file: head + `  - {id: k-1, name: one, type: app, app: billing, hash: "$P1"}
`,
			want: []string{`keys.yaml:4: keys[0] (id "k-1"): hash: hmac-sha256 but the server hashes with sha256 (no pepper is configured)`},
		},
		{
			name: "sha256 hash on a peppered server",
			file: head + `  - {id: k-1, name: one, type: app, app: billing, hash: "$H1"}
`,
			opts: &Options{Algorithm: apikey.HMACSHA256},
			want: []string{`keys.yaml:4: keys[0] (id "k-1"): hash: sha256 but the server hashes with hmac-sha256 (a pepper is configured)`},
		},
		{
			name: "malformed and missing hash",
			file: head + `  - {id: k-1, name: one, type: app, app: billing, hash: "md5:abc"}
  - {id: k-2, name: two, type: app, app: billing}
`,
			want: []string{
				`keys.yaml:4: keys[0] (id "k-1"): hash: want sha256:<64 hex> or hmac-sha256:<64 hex>`,
				`keys.yaml:5: keys[1] (id "k-2"): hash: want sha256:<64 hex> or hmac-sha256:<64 hex>`,
			},
		},
		{
			name: "a secret where the hash goes is not echoed",
			file: head + `  - id: k-1
    name: one
    type: app
    app: billing
    hash: $S1
`,
			want: []string{"keys.yaml:8: keys[0] (id \"k-1\"): hash: this is a secret key, not its hash; store the output of `keygate hash`"},
		},
		{
			name: "scope, ip filters and response headers checked by authz",
			file: head + `  - id: k-1
    name: one
    type: app
    app: billing
    hash: "$H1"
    scope: "email-api:query:a:b"
    ip_filters: ["10.0.0.0/8", "10.0.0.300", "192.168.0.1/255.0.255.0"]
    response_headers:
      - {name: x-api-key, value: v}
      - {name: x-t, value: "${tenant.id}"}
      - name: x-u
        value: "${nope}"
`,
			want: []string{
				`keys.yaml:9: keys[0] (id "k-1"): scope: pattern 1 "email-api:query:a:b": …`,
				`keys.yaml:10: keys[0] (id "k-1"): ip_filters: [1] "10.0.0.300": …`,
				`keys.yaml:10: keys[0] (id "k-1"): ip_filters: [2] "192.168.0.1/255.0.255.0": …`,
				`keys.yaml:12: keys[0] (id "k-1"): response_headers: [0] "x-api-key": …`,
				`keys.yaml:13: keys[0] (id "k-1"): response_headers: [1] "x-t": …`,
				`keys.yaml:14: keys[0] (id "k-1"): response_headers: [2] "x-u": unknown variable ${nope} …`,
			},
		},
		{
			name: "unknown fields everywhere",
			file: `account: a
owner: me
apps: [{id: billing, label: B}]
keys:
  - id: k-1
    name: one
    type: app
    app: billing
    hash: "$H1"
    scopes: "email-api"
    response_headers: [{name: x-a, value: b, append: true}]
`,
			want: []string{
				`keys.yaml:2: unknown field "owner" (known: account, apps, tenants, roles, denials, keys)`,
				`keys.yaml:3: apps[0] (id "billing"): unknown field "label" (known: id, name)`,
				`keys.yaml:10: keys[0] (id "k-1"): unknown field "scopes" (known: id, name, type, app, tenant, hash, scope, roles, active, not_before, expires_at, ip_filters, group, description, response_headers, rate_limit, quota)`,
				`keys.yaml:11: keys[0] (id "k-1"): response_headers[0]: unknown field "append" (known: name, value, disabled)`,
			},
		},
		{
			name: "field given twice",
			file: head + `  - id: k-1
    name: one
    type: app
    app: billing
    hash: "$H1"
    name: uno
`,
			want: []string{`keys.yaml:9: keys[0] (id "k-1"): name: given twice (first on line 5)`},
		},
		{
			// Merge keys are read as in a routes file: what a merged
			// mapping sets counts, at the line where it is written.
			name: "merge keys bring their fields",
			file: head + `  - &base {id: k-1, name: one, type: app, app: billing, hash: "$H1"}
  - <<: *base
    id: k-2
    scopes: x
`,
			want: []string{
				`keys.yaml:4: keys[1] (id "k-2"): name: "one" is also the name of keys[0] (id "k-1") (line 4)`,
				`keys.yaml:4: keys[1] (id "k-2"): hash: same hash as keys[0] (id "k-1") (line 4)`,
				`keys.yaml:7: keys[1] (id "k-2"): unknown field "scopes" (known: id, name, type, app, tenant, hash, scope, roles, active, not_before, expires_at, ip_filters, group, description, response_headers, rate_limit, quota)`,
			},
		},
		{
			name: "wrong shapes",
			file: `account: [a]
apps: {id: billing}
keys:
  - just-a-string
  - id: k-1
    name: [one]
    ip_filters: "10.0.0.0/8"
    response_headers: [x-a]
`,
			want: []string{
				`keys.yaml:1: account: want a string`,
				`keys.yaml:2: apps: want a list`,
				`keys.yaml:4: keys[0]: want a mapping with id, name, type, hash, …`,
				`keys.yaml:5: keys[1] (id "k-1"): type: required: service, app or account`,
				`keys.yaml:5: keys[1] (id "k-1"): hash: want sha256:<64 hex> or hmac-sha256:<64 hex>`,
				`keys.yaml:6: keys[1] (id "k-1"): name: want a string`,
				`keys.yaml:7: keys[1] (id "k-1"): ip_filters: want a list`,
				`keys.yaml:8: keys[1] (id "k-1"): response_headers[0]: want a mapping with name, value and disabled`,
			},
		},
		{
			name: "malformed list items",
			file: head + `  - id: k-1
    name: one
    type: app
    app: billing
    hash: "$H1"
    ip_filters: [[10.0.0.0/8], "10.0.0.300"]
    response_headers:
      - {name: x-a, value: [a]}
      - {name: x-api-key, value: v, disabled: 1}
`,
			want: []string{
				`keys.yaml:9: keys[0] (id "k-1"): ip_filters[0]: want a string`,
				`keys.yaml:11: keys[0] (id "k-1"): response_headers[0].value: want a string`,
				`keys.yaml:12: keys[0] (id "k-1"): response_headers[1].disabled: want true or false, got "1"`,
			},
		},
		{
			name: "not a mapping at the top",
			file: "- id: k-1\n",
			want: []string{`keys.yaml:1: want a mapping with account, apps, tenants, roles, denials and keys`},
		},
		{
			name: "keys not a list",
			file: "keys: {id: k-1}\n",
			want: []string{`keys.yaml:1: keys: want a list`},
		},
		{
			name: "YAML syntax error",
			// Where the file breaks, not where its block began.
			file: "keys:\n  - id: [k-1\n",
			want: []string{`keys.yaml:2:10: did not find expected ',' or ']'`},
		},
		{
			name: "two documents",
			file: "keys: []\n---\nkeys: []\n",
			want: []string{`keys.yaml:2: a second YAML document (---); the file must hold exactly one`},
		},
		{
			name: "all problems at once, in line order",
			file: head + `  - {id: k-1, name: one, type: service, app: billing, hash: "$H1"}
  - {id: k-2, name: one, type: wrong, hash: "$H2"}
  - {id: k-3, name: three, type: app, app: nope, hash: "$H1"}
`,
			want: []string{
				`keys.yaml:4: keys[0] (id "k-1"): tenant: required for service keys`,
				`keys.yaml:5: keys[1] (id "k-2"): type: unknown key type "wrong" (want service, app or account)`,
				`keys.yaml:5: keys[1] (id "k-2"): name: "one" is also the name of keys[0] (id "k-1") (line 4)`,
				`keys.yaml:6: keys[2] (id "k-3"): app: "nope" is not listed in apps`,
				`keys.yaml:6: keys[2] (id "k-3"): hash: same hash as keys[0] (id "k-1") (line 4)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOpts
			if tt.opts != nil {
				opts = *tt.opts
			}
			set, _, err := Parse([]byte(fill(t, tt.file)), "keys.yaml", opts)
			if err == nil {
				t.Fatalf("no error; parsed %d keys", set.Len())
			}
			if set != nil {
				t.Error("a Set came back with the error")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tt.want) {
				t.Fatalf("got %d messages, want %d:\n%s", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				if p, ok := strings.CutSuffix(w, "…"); ok {
					if !strings.HasPrefix(got[i], p) {
						t.Errorf("message %d:\n got %s\nwant %s", i, got[i], w)
					}
				} else if got[i] != w {
					t.Errorf("message %d:\n got %s\nwant %s", i, got[i], w)
				}
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "keys.yaml" {
				t.Errorf("errors.As(*Error) = %v, %+v", errors.As(err, &e), e)
			}
		})
	}
}
