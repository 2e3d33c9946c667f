package keyfile

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

func TestAliasBlowup(t *testing.T) {
	// 1,000 aliases to a key whose ip_filters alias 1,000 filters: a million
	// filters to compile, and as many duplicate-id errors, from 20 kB.
	var b strings.Builder
	b.WriteString("apps: [{id: a}]\nfilters: &f [")
	for i := range 1000 {
		fmt.Fprintf(&b, "%q, ", fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
	}
	b.WriteString("]\nkeys:\n  - &k {id: k, name: n, type: app, app: a, hash: \"" + hash(1) + "\", ip_filters: *f}\n")
	for range 1000 {
		b.WriteString("  - *k\n")
	}
	_, _, err := Parse([]byte(b.String()), "keys.yaml", testOpts)
	if err == nil || !strings.Contains(err.Error(), "aliases expand the file more than 10-fold; write the values out") {
		t.Fatalf("err = %.300v", err)
	}
	if len(err.Error()) > 64<<10 {
		t.Errorf("the error is %d bytes long", len(err.Error()))
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	sec, err := apikey.Generate(apikey.KindApp)
	if err != nil {
		t.Fatal(err)
	}
	file := head + "  - {id: k-1, name: one, type: app, app: billing, hash: " + sec + "}\n" +
		"  - {id: k-2, name: two, type: app, app: billing, hash: \"sha256:" + sec + "\"}\n"
	_, _, err = Parse([]byte(file), "keys.yaml", testOpts)
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), sec) {
		t.Fatalf("the error quotes the secret:\n%s", err)
	}
}

func TestParseWarnings(t *testing.T) {
	file := fill(t, head+`  - id: k-1
    name: one
    type: app
    app: billing
    hash: "$H1"
    scope: "email-api:query:* sms-api !sms-api:mutation:send pay*"
`)
	declared := map[string]bool{"email-api": true}
	opts := testOpts
	opts.HasService = func(name string) bool { return declared[name] }
	set, warnings, err := Parse([]byte(file), "keys.yaml", opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`keys.yaml:9: keys[0] (id "k-1"): scope: service "sms-api" is not declared`}
	if diff := cmp.Diff(want, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if set.Len() != 1 {
		t.Errorf("a warning dropped the key: Len %d", set.Len())
	}
}

func FuzzParse(f *testing.F) {
	f.Add(fill(f, example))
	f.Add("")
	f.Add("keys: []\n")
	f.Add("keys:\n  - &a {id: a}\n  - *a\n")
	f.Add("a: &a [*a]\n")
	f.Add("f: &f [a, b, c]\ng: &g [*f, *f, *f]\nkeys: [{ip_filters: *g}, {ip_filters: *g}]\n")
	f.Add("keys: [{id: k, name: n, type: app, app: x, hash: \"sha256:00\", response_headers: [{name: 1}]}]\n")
	f.Add("keys:\n  - <<: {id: k}\n---\n")
	f.Add("apps: [{id: a}]\nkeys:\n  - {id: k, name: n, type: app, app: a, hash: \"" + hash(1) + "\", not_before: 2026-01-01T00:00:00Z, expires_at: 2025-01-01T00:00:00Z}\n")
	f.Add("apps: [{id: a, name: \"A\\u202E\"}]\nkeys:\n  - {id: k, name: \"n\\u200B\", group: \"g\\u00AD\", type: app, app: a, hash: \"" + hash(1) + "\", response_headers: [{name: set-cookie, value: x}, {name: x-envoy-a, value: y}]}\n")
	f.Add(fill(f, rolesFile))
	f.Add("apps: [{id: a}]\ntenants: [{id: t}]\nroles: [{id: r, name: r, scope: \"!x\"}, {id: r}]\ndenials: [{id: d, tenant: t, app: a, scope: \"x !y\", reason: \"\\u202e\"}]\nkeys: [{id: k, name: n, type: service, app: a, tenant: t, hash: \"" + hash(1) + "\", roles: [r, r, q]}]\n")
	f.Fuzz(func(t *testing.T, file string) {
		opts := testOpts
		opts.Compile.ReservedPrefixes = []string{"x-keygate-"}
		opts.HasService = func(string) bool { return false }
		set, _, err := Parse([]byte(file), "fuzz.yaml", opts)
		if err != nil {
			if set != nil {
				t.Fatal("a Set came back with the error")
			}
			for _, e := range flatten(err) {
				var ke *Error
				if !errors.As(e, &ke) || ke.File != "fuzz.yaml" {
					t.Fatalf("an error that does not name the file: %v", e)
				}
			}
			return
		}
		if len(set.Keys()) != set.Len() {
			t.Fatalf("Keys() has %d, Len() %d", len(set.Keys()), set.Len())
		}
		// Whatever Parse accepts, Marshal writes back as a file Parse reads
		// as the same set (roles, denials and key roles included), and
		// writes again byte for byte.
		out, err := Marshal(set.File(), "fuzz")
		if err != nil {
			t.Fatalf("Marshal of an accepted file: %v", err)
		}
		back, _, err := Parse(out, "fuzz.yaml", opts)
		if err != nil {
			t.Fatalf("Marshal wrote a file Parse refuses: %v\n%s", err, out)
		}
		if d := cmp.Diff(set.File(), back.File()); d != "" {
			t.Fatalf("round trip (-parsed +marshalled):\n%s\n%s", d, out)
		}
		for i, k := range back.Keys() {
			if a, b := set.order[i].Scope().String(), k.Scope().String(); a != b {
				t.Fatalf("key %q: effective scope %q, after the round trip %q", k.Spec.ID, a, b)
			}
		}
		if again, err := Marshal(back.File(), "fuzz"); err != nil || string(again) != string(out) {
			t.Fatalf("Marshal is not stable: %v\n%s\n---\n%s", err, out, again)
		}
		// What the file accepted of roles and denials holds SPEC §11's rules.
		roles := map[string]bool{}
		for _, r := range set.Roles() {
			if err := authz.CheckRole(r); err != nil || roles[r.ID] {
				t.Fatalf("accepted role %q: %v (duplicate %v)", r.ID, err, roles[r.ID])
			}
			roles[r.ID] = true
		}
		for _, d := range set.Denials() {
			if _, err := authz.CompileDenial(d.Denial); err != nil || d.TenantID == "" || d.AppID == "" {
				t.Fatalf("accepted denial %q: %v", d.ID, err)
			}
		}
		for _, k := range set.Keys() {
			for _, id := range k.Spec.Roles {
				if !roles[id] {
					t.Fatalf("key %q holds role %q the file does not", k.Spec.ID, id)
				}
			}
			if set.byHash[k.Digest] != k {
				t.Fatalf("key %q is not indexed by its digest", k.Spec.ID)
			}
			// What the file accepted passes the name rules.
			for _, text := range []string{k.Spec.Name, k.Spec.Group, k.Spec.AppName, k.Spec.TenantName} {
				if err := authz.CheckLabelText(text); err != nil {
					t.Fatalf("key %q: accepted a name that %v", k.Spec.ID, err)
				}
			}
			for _, h := range k.AppendResponseHeaders(nil, &authz.Target{}) {
				if !strings.HasPrefix(h.Name, "x-") || strings.HasPrefix(h.Name, "x-envoy-") || strings.HasPrefix(h.Name, "x-keygate-") ||
					len(h.Name) > authz.MaxHeaderNameLen || len(h.Value) > authz.MaxHeaderValueLen {
					t.Fatalf("key %q: accepted response header %q (%d bytes)", k.Spec.ID, h.Name, len(h.Value))
				}
			}
		}
	})
}
