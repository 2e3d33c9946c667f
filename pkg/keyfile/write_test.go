package keyfile_test

import (
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
	for _, k := range set.Keys() {
		sp := k.Spec
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
