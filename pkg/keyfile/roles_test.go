package keyfile

import (
	"context"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

// rolesFile is a file with roles, denials and a key holding roles.
const rolesFile = `apps: [{id: billing, name: Billing}, {id: crm, name: CRM}]
tenants: [{id: acme, name: ACME}]
roles:
  - {id: r-read, name: readers, scope: "email-api:query:*", description: "read mail"}
  - {id: r-nosend, name: no-send, scope: "email-api !email-api:mutation:sendEmail"}
denials:
  - {id: d-1, tenant: acme, app: billing, scope: "billing-api:mutation", reason: "Payment overdue: contact billing@example.com"}
keys:
  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: "$H1", roles: [r-read, r-nosend]}
  - {id: k-2, name: two, type: service, app: billing, tenant: acme, hash: "$H2", scope: "billing-api"}
  - {id: k-3, name: three, type: app, app: billing, hash: "$H3", scope: "billing-api"}
`

func TestParseRolesAndDenials(t *testing.T) {
	set, _, err := Parse([]byte(fill(t, rolesFile)), "keys.yaml", testOpts)
	if err != nil {
		t.Fatal(err)
	}
	roles := set.Roles()
	if len(roles) != 2 || roles[0].ID != "r-read" || roles[0].Name != "readers" || roles[0].Description != "read mail" ||
		roles[1].Scope != "email-api !email-api:mutation:sendEmail" || roles[0].AccountID != DefaultAccount {
		t.Fatalf("roles = %+v", roles)
	}
	ds := set.Denials()
	if len(ds) != 1 || ds[0].ID != "d-1" || ds[0].TenantID != "acme" || ds[0].AppID != "billing" ||
		ds[0].Reason != "Payment overdue: contact billing@example.com" || ds[0].AccountID != DefaultAccount {
		t.Fatalf("denials = %+v", ds)
	}
	k1 := set.Keys()[0]
	if got := k1.Scope().String(); got != "email-api:query:* email-api !email-api:mutation:sendEmail" {
		t.Errorf("k-1 effective scope %q", got)
	}
	if !k1.Scope().Allows("email-api", "mutation", "deleteEmail") || k1.Scope().Allows("email-api", "mutation", "sendEmail") {
		t.Error("k-1: the roles' union is wrong")
	}
	if got := k1.Spec.Roles; len(got) != 2 || got[0] != "r-read" {
		t.Errorf("k-1 roles %v", got)
	}
}

// TestParseRolesAndDenialsErrors: every problem named by file, line, entry
// and field.
func TestParseRolesAndDenialsErrors(t *testing.T) {
	const top = "apps: [{id: billing, name: Billing}]\ntenants: [{id: acme, name: ACME}]\n"
	const key = "keys:\n  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: \"$H1\"}\n"
	tests := []struct {
		name string
		file string
		want []string
	}{
		{
			name: "unknown role on a key",
			file: top + "roles: [{id: r-1, name: one, scope: email-api}]\nkeys:\n" +
				"  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: \"$H1\", roles: [r-1, r-2]}\n",
			want: []string{`keys.yaml:5: keys[0] (id "k-1"): roles: [1] "r-2": no such role`},
		},
		{
			name: "a role id that is not a string",
			file: top + "roles: [{id: r-1, name: one, scope: email-api}]\nkeys:\n" +
				"  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: \"$H1\", roles: [[r-1]]}\n",
			want: []string{`keys.yaml:5: keys[0] (id "k-1"): roles[0]: …`},
		},
		{
			name: "duplicate role id and name",
			file: top + "roles:\n  - {id: r-1, name: one, scope: email-api}\n  - {id: r-1, name: one, scope: sms-api}\n" + key,
			want: []string{
				`keys.yaml:5: roles[1] (id "r-1"): id: "r-1" is also the id of roles[0] (id "r-1") (line 4)`,
				`keys.yaml:5: roles[1] (id "r-1"): name: "one" is also the name of roles[0] (id "r-1") (line 4)`,
			},
		},
		{
			name: "empty role scope",
			file: top + "roles:\n  - id: r-1\n    name: one\n    scope: \"\"\n" + key,
			want: []string{`keys.yaml:6: roles[0] (id "r-1"): scope: required: a role's scope may not be empty (an empty scope would allow everything)`},
		},
		{
			name: "role without scope, name or id",
			file: top + "roles:\n  - {description: x}\n" + key,
			want: []string{
				`keys.yaml:4: roles[0]: id: required`,
				`keys.yaml:4: roles[0]: name: required`,
				`keys.yaml:4: roles[0]: scope: required: …`,
			},
		},
		{
			name: "invalid role pattern",
			file: top + "roles:\n  - id: r-1\n    name: one\n    scope: \"email-api:a:b:c\"\n" + key,
			want: []string{`keys.yaml:6: roles[0] (id "r-1"): scope: pattern 1 "email-api:a:b:c": 4 segments, at most 3 (service:kind:operation)`},
		},
		{
			name: "unknown field in a role",
			file: top + "roles:\n  - {id: r-1, name: one, scope: a, scopes: b}\n" + key,
			want: []string{`keys.yaml:4: roles[0] (id "r-1"): unknown field "scopes" (known: id, name, scope, description, rate_limit)`},
		},
		{
			name: "denial without tenant or app",
			file: top + "denials:\n  - {id: d-1, scope: email-api, reason: r}\n" + key,
			want: []string{
				`keys.yaml:4: denials[0] (id "d-1"): tenant: required: a denial is for one tenant of one app (there are no app-wide denials)`,
				`keys.yaml:4: denials[0] (id "d-1"): app: required: a denial is for one tenant of one app`,
			},
		},
		{
			name: "denial naming a tenant and app the file does not list",
			file: top + "denials:\n  - id: d-1\n    tenant: globex\n    app: crm\n    scope: email-api\n    reason: r\n" + key,
			want: []string{
				`keys.yaml:5: denials[0] (id "d-1"): tenant: "globex" is not listed in tenants`,
				`keys.yaml:6: denials[0] (id "d-1"): app: "crm" is not listed in apps`,
			},
		},
		{
			name: "deny pattern in a denial",
			file: top + "denials:\n  - id: d-1\n    tenant: acme\n    app: billing\n    scope: \"email-api !email-api:query\"\n    reason: r\n" + key,
			want: []string{`keys.yaml:7: denials[0] (id "d-1"): scope: deny (!) patterns are not allowed: a denial's scope lists what it blocks`},
		},
		{
			name: "reason over 500 bytes, and a duplicate id",
			file: top + "denials:\n  - {id: d-1, tenant: acme, app: billing, scope: a, reason: r}\n" +
				"  - {id: d-1, tenant: acme, app: billing, scope: a, reason: " + strings.Repeat("x", 501) + "}\n" + key,
			want: []string{
				`keys.yaml:5: denials[1] (id "d-1"): reason: 501 bytes, at most 500`,
				`keys.yaml:5: denials[1] (id "d-1"): id: "d-1" is also the id of denials[0] (id "d-1") (line 4)`,
			},
		},
		{
			name: "denial with empty scope and no reason",
			file: top + "denials:\n  - {id: d-1, tenant: acme, app: billing}\n" + key,
			want: []string{
				`keys.yaml:4: denials[0] (id "d-1"): scope: required: …`,
				`keys.yaml:4: denials[0] (id "d-1"): reason: required: the text the blocked caller reads, e.g. "Payment overdue: contact billing@example.com"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, _, err := Parse([]byte(fill(t, tt.file)), "keys.yaml", testOpts)
			if err == nil || set != nil {
				t.Fatalf("no error (set %v)", set)
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
		})
	}
}

func TestRolesAndDenialsWarnUndeclaredServices(t *testing.T) {
	opts := testOpts
	opts.HasService = func(s string) bool { return s == "email-api" }
	_, warnings, err := Parse([]byte(fill(t, rolesFile)), "keys.yaml", opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`keys.yaml:7: denials[0] (id "d-1"): scope: service "billing-api" is not declared`,
		`keys.yaml:10: keys[1] (id "k-2"): scope: service "billing-api" is not declared`,
		`keys.yaml:11: keys[2] (id "k-3"): scope: service "billing-api" is not declared`,
	}
	if strings.Join(warnings, "\n") != strings.Join(want, "\n") {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(warnings, "\n"), strings.Join(want, "\n"))
	}
}

// TestReloadRolesAndDenials: the store's denial index follows reloads; a
// reload with a broken role keeps the last good file, denials included.
func TestReloadRolesAndDenials(t *testing.T) {
	s, path, _ := open(t, fill(t, rolesFile))
	k2, err := s.LookupKey(context.Background(), plain.Sum(secret(2)))
	if err != nil {
		t.Fatal(err)
	}
	pay := &authz.Target{Service: "billing-api", Kind: "mutation", Operation: "pay"}
	if d := s.Denials().MatchDenial(k2, pay); d == nil || d.ID != "d-1" {
		t.Fatalf("denial = %v, want d-1", d)
	}
	k3, _ := s.LookupKey(context.Background(), plain.Sum(secret(3)))
	if d := s.Denials().MatchDenial(k3, pay); d != nil {
		t.Fatalf("app key denied by %s", d.ID)
	}
	// A broken role: refused, the last good file (with its denial) stays.
	writeFile(t, path, strings.Replace(fill(t, rolesFile), `scope: "email-api:query:*"`, `scope: ""`, 1))
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "roles[0]") {
		t.Fatalf("reload of a broken role: %v", err)
	}
	if d := s.Denials().MatchDenial(k2, pay); d == nil {
		t.Fatal("the denial went with a refused reload")
	}
	// The denial deleted: access restored.
	writeFile(t, path, strings.Replace(fill(t, rolesFile),
		`  - {id: d-1, tenant: acme, app: billing, scope: "billing-api:mutation", reason: "Payment overdue: contact billing@example.com"}`+"\n", "", 1))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	k2, _ = s.LookupKey(context.Background(), plain.Sum(secret(2)))
	if d := s.Denials().MatchDenial(k2, pay); d != nil {
		t.Fatalf("still denied by %s after the denial was deleted", d.ID)
	}
}
