// Parse's tests on whole keys files: the example, the valid forms and a
// file without a keys list, with the helpers (fill, example, head) the
// other test files here build their files from. The refused files are in
// parse_errors_test.go.

package keyfile

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// secret returns a fixed custom secret, so that hashes in test files are
// stable across runs.
func secret(n int) string { return fmt.Sprintf("test-secret-%04d-for-keyfile", n) }

var (
	plain    = apikey.NewHasher(nil)
	peppered = apikey.NewHasher([]byte("test-pepper"))
)

func hash(n int) string { return plain.HashString(secret(n)) }

var testOpts = Options{
	Algorithm: apikey.SHA256,
	Compile:   authz.CompileOptions{ReservedHeaders: []string{"x-api-key", "x-keygate-key-id"}},
}

// fill replaces $H1…$H9 with real hashes, $P1 with a peppered one and $S1
// with a generated secret.
func fill(t testing.TB, s string) string {
	t.Helper()
	for i := 9; i >= 1; i-- {
		s = strings.ReplaceAll(s, fmt.Sprintf("$H%d", i), hash(i))
	}
	if strings.Contains(s, "$S1") {
		sec, err := apikey.Generate(apikey.KindService)
		if err != nil {
			t.Fatal(err)
		}
		s = strings.ReplaceAll(s, "$S1", sec)
	}
	return strings.ReplaceAll(s, "$P1", peppered.HashString(secret(1)))
}

// example is the file from the issue, with real hashes.
const example = `account: default                 # optional; the account id all keys belong to (default "default")
apps:    [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME Corp}]
keys:
  - id: k-1                      # unique
    name: acme-billing           # unique
    type: service                # service | app | account
    app: billing                 # required for service and app keys (must be listed in apps)
    tenant: acme                 # required for service keys, forbidden otherwise (must be listed in tenants)
    hash: "$H1"                  # from keygate keygen or keygate hash
    scope: "email-api:query:* email-api:mutation:sendEmail"
    active: true                 # default true
    not_before: 2026-01-01T00:00:00Z   # optional, RFC 3339
    expires_at: 2027-01-01T00:00:00Z   # optional; absent = never
    ip_filters: ["10.0.0.0/8", "2001:db8::/32", "192.168.178.1/255.255.255.0"]
    group: partners              # optional
    description: "Billing access for ACME"
    response_headers:
      - {name: x-tier, value: gold}
      - {name: x-who, value: "${key.name}@${tenant.id}", disabled: false}
`

func TestParseExample(t *testing.T) {
	set, warnings, err := Parse([]byte(fill(t, example)), "keys.yaml", testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	if set.Len() != 1 || set.Account() != "default" {
		t.Fatalf("Len %d, Account %q; want 1, default", set.Len(), set.Account())
	}
	k := set.Keys()[0]
	want := authz.KeySpec{
		ID:          "k-1",
		Name:        "acme-billing",
		Type:        authz.KeyTypeService,
		AccountID:   "default",
		AppID:       "billing",
		AppName:     "Billing",
		TenantID:    "acme",
		TenantName:  "ACME Corp",
		Hash:        hash(1),
		Scope:       "email-api:query:* email-api:mutation:sendEmail",
		Active:      true,
		NotBefore:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		ExpiresAt:   time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		IPFilters:   []string{"10.0.0.0/8", "2001:db8::/32", "192.168.178.1/255.255.255.0"},
		Group:       "partners",
		Description: "Billing access for ACME",
		ResponseHeaders: []authz.HeaderSpec{
			{Name: "x-tier", Value: "gold"},
			{Name: "x-who", Value: "${key.name}@${tenant.id}"},
		},
	}
	if diff := cmp.Diff(want, set.Specs()[0]); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	kept := want // what the record keeps: no hash text, filters, description or headers
	kept.Hash, kept.IPFilters, kept.Description, kept.ResponseHeaders = "", nil, "", nil
	if diff := cmp.Diff(kept, k.Spec.KeySpec()); diff != "" {
		t.Errorf("the record's KeyInfo (-want +got):\n%s", diff)
	}
	if k.Digest != plain.Sum(secret(1)) || k.Algorithm() != apikey.SHA256 {
		t.Errorf("digest/algorithm do not match the secret's hash")
	}
	got := k.AppendResponseHeaders(nil, &authz.Target{})
	wantHeaders := []authz.Header{{Name: "x-tier", Value: "gold"}, {Name: "x-who", Value: "acme-billing@acme"}}
	if diff := cmp.Diff(wantHeaders, got); diff != "" {
		t.Errorf("response headers (-want +got):\n%s", diff)
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []authz.KeySpec // compared on the fields set here
	}{
		{name: "keys empty", file: "keys: []\n"},
		{name: "keys empty in flow style, with apps", file: "apps: [{id: billing}]\nkeys: [ ]\n"},
		{
			name: "defaults: account, active, no times",
			file: `apps: [{id: billing}]
keys:
  - {id: k-1, name: one, type: app, app: billing, hash: "$H1"}
`,
			want: []authz.KeySpec{{ID: "k-1", Name: "one", Type: authz.KeyTypeApp, AccountID: "default", AppID: "billing", Hash: hash(1), Active: true}},
		},
		{
			name: "account key, inactive, quoted timestamps with offset, numeric id",
			file: `account: acme-prod
keys:
  - id: 007
    name: ops
    type: account
    hash: "$H1"
    active: false
    not_before: "2026-01-01T01:00:00+01:00"
    expires_at: '2026-06-01T00:00:00.5Z'
`,
			want: []authz.KeySpec{{ID: "007", Name: "ops", Type: authz.KeyTypeAccount, AccountID: "acme-prod", Hash: hash(1),
				NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 6, 1, 0, 0, 0, 5e8, time.UTC)}},
		},
		{
			name: "merge keys: fields written in the mapping win, the first merged mapping next",
			file: `apps: [{id: a}]
keys:
  - <<: [&defaults {type: app, app: a, ip_filters: ["10.0.0.0/8"], active: false}, {ip_filters: ["192.0.2.0/24"], group: partners}]
    id: k-1
    name: one
    hash: "$H1"
    active: true
  - {<<: *defaults, id: k-2, name: two, hash: "$H2"}
`,
			want: []authz.KeySpec{
				{ID: "k-1", Name: "one", Type: authz.KeyTypeApp, AccountID: "default", AppID: "a", Hash: hash(1), Active: true,
					IPFilters: []string{"10.0.0.0/8"}, Group: "partners"},
				{ID: "k-2", Name: "two", Type: authz.KeyTypeApp, AccountID: "default", AppID: "a", Hash: hash(2), Active: false,
					IPFilters: []string{"10.0.0.0/8"}},
			},
		},
		{
			name: "file order kept; anchors followed",
			file: `apps: [{id: a}]
keys:
  - {id: k-2, name: two, type: app, app: a, hash: "$H2", ip_filters: &office ["10.0.0.0/8"]}
  - {id: k-1, name: one, type: app, app: a, hash: "$H1", ip_filters: *office}
`,
			want: []authz.KeySpec{
				{ID: "k-2", Name: "two", Type: authz.KeyTypeApp, AccountID: "default", AppID: "a", Hash: hash(2), Active: true, IPFilters: []string{"10.0.0.0/8"}},
				{ID: "k-1", Name: "one", Type: authz.KeyTypeApp, AccountID: "default", AppID: "a", Hash: hash(1), Active: true, IPFilters: []string{"10.0.0.0/8"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, warnings, err := Parse([]byte(fill(t, tt.file)), "keys.yaml", testOpts)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
			got := set.Specs()
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if set.Len() != len(tt.want) {
				t.Errorf("Len %d, want %d", set.Len(), len(tt.want))
			}
		})
	}
}

// head declares the app and tenant most cases use; its three lines shift
// every line number below by three.
const head = `apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME Corp}]
keys:
`

// TestParseRefusesNoKeysList: a file without a keys list (empty, comments
// only, cut short before `keys:`, or `keys:` with nothing after it) is an
// error naming the file and the remedy, not zero keys; a file cut short in
// the middle of a key is an error too.
func TestParseRefusesNoKeysList(t *testing.T) {
	const remedy = "keys: the file has no keys list (empty or truncated?): restore the file, or write `keys: []` to serve no keys"
	tests := []struct {
		name, file, want string
	}{
		{"empty file", "", "keys.yaml: " + remedy},
		{"whitespace only", "\n  \n", "keys.yaml: " + remedy},
		{"comments only", "# no keys yet\n# keys:\n", "keys.yaml: " + remedy},
		{"truncated before keys", "account: acme\napps: [{id: billing, name: Billing}]\n", "keys.yaml:1: " + remedy},
		{"keys null", "apps: [{id: billing}]\nkeys:\n", "keys.yaml:2: " + remedy},
		{"keys tilde", "keys: ~\n", "keys.yaml:1: " + remedy},
		{"truncated mid-key", "apps: [{id: billing}]\nkeys:\n  - {id: k-1, name: one, type: app, app: billing, hash: \"$H1\"}\n  - id: k-2\n    name: tw",
			`keys.yaml:4: keys[1] (id "k-2"): type: required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, _, err := Parse([]byte(fill(t, tt.file)), "keys.yaml", testOpts)
			if err == nil {
				t.Fatalf("parsed %d keys", set.Len())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}
