package keyfile_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/keyfile"
)

// TestMarshalRoundTrip: what Marshal writes, Parse reads back as the same
// apps, tenants and keys, awkward values (YAML keywords, numbers, quotes,
// sub-second times) included.
func TestMarshalRoundTrip(t *testing.T) {
	t0 := time.Date(2027, 1, 2, 3, 4, 5, 123456000, time.UTC)
	f := keyfile.File{
		Account: "acct-1",
		Apps:    []keyfile.Owner{{ID: "billing", Name: "Billing"}, {ID: "true", Name: "123"}},
		Tenants: []keyfile.Owner{{ID: "acme", Name: "ACME: \"Corp\" # not a comment"}},
		Keys: []authz.KeySpec{
			{ID: "k-1", Name: "null", Type: authz.KeyTypeService, AppID: "billing", TenantID: "acme",
				Hash: "sha256:" + strings.Repeat("a", 64), Scope: "email-api:query:* !email-api:mutation:send",
				Active: true, NotBefore: t0, ExpiresAt: t0.Add(time.Hour), IPFilters: []string{"10.0.0.0/8", "::1/128"},
				Group: "partners", Description: "line one\nline two",
				ResponseHeaders: []authz.HeaderSpec{{Name: "x-tier", Value: "${key.name}"}, {Name: "x-off", Value: "1", Disabled: true}}},
			{ID: "k-2", Name: "app key", Type: authz.KeyTypeApp, AppID: "true", Hash: "sha256:" + strings.Repeat("b", 64), Active: false},
			{ID: "k-3", Name: "acct", Type: authz.KeyTypeAccount, Hash: "sha256:" + strings.Repeat("c", 64),
				Scope: "account-api:query:*", Active: true},
		},
	}
	data, err := keyfile.Marshal(f, "exported\nhashes only")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# exported\n# hashes only\n") {
		t.Errorf("header missing:\n%s", data)
	}
	set, warnings, err := keyfile.Parse(data, "out.yaml", keyfile.Options{})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Parse: %v %v\n%s", err, warnings, data)
	}
	got := keyfile.File{Account: set.Account(), Apps: set.Apps(), Tenants: set.Tenants()}
	for _, sp := range set.Specs() {
		sp.AccountID, sp.AppName, sp.TenantName = "", "", ""
		got.Keys = append(got.Keys, sp)
	}
	if d := cmp.Diff(f, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s\n%s", d, data)
	}
}

// TestMarshalEmpty: an account without keys is a file of `keys: []`,
// which Parse takes as no keys (not as a truncated file).
func TestMarshalEmpty(t *testing.T) {
	data, err := keyfile.Marshal(keyfile.File{Account: "a"}, "")
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := keyfile.Parse(data, "out.yaml", keyfile.Options{})
	if err != nil || set.Len() != 0 {
		t.Fatalf("Parse: %v\n%s", err, data)
	}
}

// rolesAndDenials is a hand-written keys file with roles (one of deny
// patterns only, one with awkward text), denials and keys holding roles.
const rolesAndDenials = `account: acct-1
apps: [{id: billing, name: Billing}, {id: crm, name: CRM}]
tenants: [{id: acme, name: ACME}, {id: globex, name: Globex}]
roles:
  - {id: r-read, name: readers, scope: "email-api:query:*", description: "read: mail # not a comment"}
  - {id: r-nodelete, name: "null", scope: "!email-api:mutation:deleteEmail"}
  - {id: "123", name: "yes", scope: "billing-api email-api:mutation:*"}
denials:
  - id: d-1
    tenant: acme
    app: billing
    scope: "email-api:mutation:sendEmail billing-api"
    reason: "Sending is suspended: invoice \"42\" is overdue.\nContact billing@example.com"
  - {id: d-2, tenant: globex, app: crm, scope: "email-api", reason: "true"}
keys:
  - {id: k-1, name: one, type: service, app: billing, tenant: acme, hash: "sha256:1111111111111111111111111111111111111111111111111111111111111111", roles: [r-read, r-nodelete]}
  - {id: k-2, name: two, type: service, app: billing, tenant: acme, hash: "sha256:2222222222222222222222222222222222222222222222222222222222222222", scope: "email-api:mutation:sendEmail", roles: ["123"]}
  - {id: k-3, name: three, type: app, app: billing, hash: "sha256:3333333333333333333333333333333333333333333333333333333333333333", roles: [r-read]}
  - {id: k-4, name: four, type: service, app: crm, tenant: globex, hash: "sha256:4444444444444444444444444444444444444444444444444444444444444444", scope: "email-api"}
  - {id: k-5, name: five, type: service, app: crm, tenant: acme, hash: "sha256:5555555555555555555555555555555555555555555555555555555555555555"}
`

// decisions is what a set decides for each of its keys on each target:
// the effective scope's answer, then the denial that blocks (row 9).
func decisions(set *keyfile.Set) []string {
	targets := []authz.Target{
		{Service: "email-api", Kind: "query", Operation: "inbox"},
		{Service: "email-api", Kind: "mutation", Operation: "sendEmail"},
		{Service: "email-api", Kind: "mutation", Operation: "deleteEmail"},
		{Service: "email-api"}, // an unknown operation
		{Service: "billing-api", Kind: "mutation", Operation: "pay"},
		{Service: "sms-api", Kind: "mutation", Operation: "send"},
	}
	idx := authz.NewDenialIndex(set.Denials()...)
	var out []string
	for _, k := range set.Keys() {
		for _, tg := range targets {
			d := "allow"
			if !k.Scope().Allows(tg.Service, tg.Kind, tg.Operation) {
				d = "scope_denied"
			} else if den := idx.MatchDenial(k, &tg); den != nil {
				d = "access_denied " + den.ID + ": " + den.Reason
			}
			out = append(out, fmt.Sprintf("%s %s:%s:%s %s", k.Spec.ID, tg.Service, tg.Kind, tg.Operation, d))
		}
	}
	return out
}

// TestMarshalRoundTripRolesAndDenials: parse → Marshal → parse gives the
// same roles, denials and key roles, and the same decisions; marshalling
// again writes the same bytes.
func TestMarshalRoundTripRolesAndDenials(t *testing.T) {
	first, warnings, err := keyfile.Parse([]byte(rolesAndDenials), "in.yaml", keyfile.Options{})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Parse: %v %v", err, warnings)
	}
	if len(first.Roles()) != 3 || len(first.Denials()) != 2 {
		t.Fatalf("the hand-written file has %d roles, %d denials", len(first.Roles()), len(first.Denials()))
	}
	data, err := keyfile.Marshal(first.File(), "")
	if err != nil {
		t.Fatal(err)
	}
	second, warnings, err := keyfile.Parse(data, "out.yaml", keyfile.Options{})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Parse of Marshal's output: %v %v\n%s", err, warnings, data)
	}
	if d := cmp.Diff(first.File(), second.File()); d != "" {
		t.Errorf("round trip (-first +second):\n%s\n%s", d, data)
	}
	for _, k := range second.Keys() {
		if k.Spec.ID == "k-1" && !slices.Equal(k.Spec.Roles, []string{"r-read", "r-nodelete"}) {
			t.Errorf("k-1 roles %v (file order kept)", k.Spec.Roles)
		}
	}
	want := decisions(first)
	if d := cmp.Diff(want, decisions(second)); d != "" {
		t.Errorf("decisions differ after the round trip (-first +second):\n%s", d)
	}
	// The decisions are the ones SPEC §11 gives (so the comparison above
	// compares something): roles widen, a role's deny holds, a denial
	// blocks its tenant and app only, never an app key.
	for _, line := range []string{
		"k-1 email-api:query:inbox allow",
		"k-1 email-api:mutation:deleteEmail scope_denied",
		"k-1 email-api:mutation:sendEmail scope_denied",
		"k-2 email-api:mutation:sendEmail access_denied d-1: Sending is suspended: invoice \"42\" is overdue.\nContact billing@example.com",
		"k-2 billing-api:mutation:pay access_denied d-1: Sending is suspended: invoice \"42\" is overdue.\nContact billing@example.com",
		"k-2 email-api:query:inbox scope_denied",
		"k-3 email-api:query:inbox allow",
		"k-4 email-api:query:inbox access_denied d-2: true",
		"k-4 email-api:: access_denied d-2: true",
		"k-5 sms-api:mutation:send allow",
	} {
		if !slices.Contains(want, line) {
			t.Errorf("decision %q missing from:\n%s", line, strings.Join(want, "\n"))
		}
	}
	again, err := keyfile.Marshal(second.File(), "")
	if err != nil || string(again) != string(data) {
		t.Errorf("Marshal is not stable: %v\n%s\n---\n%s", err, data, again)
	}
}
