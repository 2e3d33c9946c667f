package console

import (
	"net/url"
	"reflect"
	"strconv"
	"testing"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/scope"
)

// testCatalogue is a route catalogue of two services.
var testCatalogue = []account.ServiceInfo{
	{Name: "email-api", KeyTypes: []string{"service"}, Kinds: []account.KindInfo{
		{Name: "query", Operations: []string{"listEmails", "getEmail"}},
		{Name: "mutation", Operations: []string{"sendEmail"}},
	}},
	{Name: "billing-api", KeyTypes: []string{"service"}, Kinds: []account.KindInfo{
		{Name: "query", Operations: []string{"getInvoice"}},
	}},
}

// The picker's fields as a form posts them without the script: the
// scope field's patterns, then the ticked boxes', then the ticked deny
// toggles' with "!", each once, as the scope grammar writes them.
func TestScopeFieldFromPicker(t *testing.T) {
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"nothing", url.Values{}, ""},
		{"text only", url.Values{"scope": {"  email-api   !email-api:mutation "}}, "email-api !email-api:mutation"},
		{"allow boxes", url.Values{"perm": {"email-api:query:listEmails", "billing-api"}}, "email-api:query:listEmails billing-api"},
		{"deny an operation", url.Values{"perm": {"email-api"}, "deny": {"email-api:mutation:sendEmail"}}, "email-api !email-api:mutation:sendEmail"},
		{"deny a kind", url.Values{"perm": {"email-api"}, "deny": {"email-api:mutation"}}, "email-api !email-api:mutation"},
		{"deny a service", url.Values{"perm": {"email-api:query"}, "deny": {"billing-api"}}, "email-api:query !billing-api"},
		{"deny alone", url.Values{"deny": {"email-api:query:getEmail"}}, "!email-api:query:getEmail"},
		{"text then boxes then denies", url.Values{"scope": {"billing-api"}, "perm": {"email-api"}, "deny": {"email-api:query:getEmail"}},
			"billing-api email-api !email-api:query:getEmail"},
		{"typed deny and ticked deny: once", url.Values{"scope": {"email-api !email-api:mutation:sendEmail"}, "deny": {"email-api:mutation:sendEmail"}},
			"email-api !email-api:mutation:sendEmail"},
		{"a deny posted with its !", url.Values{"deny": {"!email-api:mutation", "!!billing-api"}}, "!email-api:mutation !billing-api"},
		{"a toggle's value of two patterns: two denies", url.Values{"deny": {"email-api billing-api"}}, "!email-api !billing-api"},
		{"empty and bare ! toggles add nothing", url.Values{"perm": {""}, "deny": {"", "!", " "}}, ""},
		{"allow and deny of one pattern: both (the deny wins)", url.Values{"perm": {"email-api:query"}, "deny": {"email-api:query"}},
			"email-api:query !email-api:query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := scopeField(tc.form)
			if got != tc.want {
				t.Fatalf("scope %q, want %q", got, tc.want)
			}
			if got == "" {
				return
			}
			sc, err := scope.Parse(got)
			if err != nil {
				t.Fatalf("%q does not parse: %v", got, err)
			}
			if sc.String() != got {
				t.Errorf("%q is not canonical: %q", got, sc.String())
			}
		})
	}
}

// pickerFields are the fields a picker posts as it is ticked (no script,
// an empty scope field).
func pickerFields(pk *picker) url.Values {
	f := url.Values{}
	tick := func(v string, allow, deny bool) {
		if allow {
			f.Add("perm", v)
		}
		if deny {
			f.Add("deny", v)
		}
	}
	for _, s := range pk.Services {
		tick(s.Value, s.Checked, s.Denied)
		for _, k := range s.Kinds {
			tick(k.Value, k.Checked, k.Denied)
			for _, op := range k.Ops {
				tick(op.Value, op.Checked, op.Denied)
			}
		}
	}
	return f
}

// ticked lists a picker's ticked boxes and toggles as patterns.
func ticked(pk *picker) []string {
	var out []string
	add := func(v string, allow, deny bool) {
		if allow {
			out = append(out, v)
		}
		if deny {
			out = append(out, "!"+v)
		}
	}
	for _, s := range pk.Services {
		add(s.Value, s.Checked, s.Denied)
		for _, k := range s.Kinds {
			add(k.Value, k.Checked, k.Denied)
			for _, op := range k.Ops {
				add(op.Value, op.Checked, op.Denied)
			}
		}
	}
	return out
}

// Scope text → picker → the picker's fields → the same scope text (in
// the canonical order the picker posts: allows, then denies): a typed
// "!svc:kind:op" ticks its deny toggle when the picker is built from the
// text, and the ticked picker posts the text back.
func TestPickerDenyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		scope  string
		ticked []string
		open   []bool // per service of testCatalogue
	}{
		{"", nil, []bool{true, true}},
		{"email-api !email-api:mutation:sendEmail", []string{"email-api", "!email-api:mutation:sendEmail"}, []bool{true, true}},
		{"email-api:query billing-api !email-api:query:getEmail",
			[]string{"email-api:query", "!email-api:query:getEmail", "billing-api"}, []bool{true, true}},
		{"email-api !email-api:mutation", []string{"email-api", "!email-api:mutation"}, []bool{true, true}},
		{"email-api:query:listEmails !billing-api", []string{"email-api:query:listEmails", "!billing-api"}, []bool{true, true}},
		{"!email-api:query:listEmails !email-api:query:getEmail", []string{"!email-api:query:listEmails", "!email-api:query:getEmail"}, []bool{true, true}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			pk := newPicker(testCatalogue, tc.scope)
			if got := ticked(pk); !reflect.DeepEqual(got, tc.ticked) {
				t.Errorf("ticked %q, want %q", got, tc.ticked)
			}
			for i, s := range pk.Services {
				if s.Open != tc.open[i] {
					t.Errorf("service %s open %v", s.Name, s.Open)
				}
			}
			if got := scopeField(pickerFields(pk)); got != tc.scope {
				t.Errorf("posted back as %q, want %q", got, tc.scope)
			}
		})
	}
	// A pattern the catalogue has no box for stays in the text field
	// alone: the picker ticks nothing for it.
	pk := newPicker(testCatalogue, "!email-api:query:get* other-api")
	if got := ticked(pk); len(got) != 0 {
		t.Errorf("ticked %q for patterns without a box", got)
	}
	// The Account API's long list is folded unless something in it is
	// ticked, a deny as well as an allow.
	cat := append([]account.ServiceInfo{{Name: "account-api", KeyTypes: []string{"account"},
		Kinds: []account.KindInfo{{Name: "query", Operations: []string{"keys"}}}}}, testCatalogue...)
	for sc, open := range map[string]bool{"": false, "account-api:query:keys": true, "email-api !account-api:query:keys": true, "!account-api": true} {
		if got := newPicker(cat, sc).Services[0].Open; got != open {
			t.Errorf("scope %q: the Account API open %v, want %v", sc, got, open)
		}
	}
}

// BenchmarkScopeFieldLargeForm is scopeField over the largest form a
// post can bring to it: Go's form parser refuses more than 10,000 values
// (GODEBUG urlmaxqueryparams), so 10,000 distinct perm values, as an
// account holder with a create-key permission can post. Each pattern is
// looked up once (a set), where a search of the list per value compared
// every pair.
func BenchmarkScopeFieldLargeForm(b *testing.B) {
	pf := url.Values{}
	for i := range 10_000 {
		pf.Add("perm", "billing-api:query:op"+strconv.Itoa(i))
	}
	for b.Loop() {
		if scopeField(pf) == "" {
			b.Fatal("no scope")
		}
	}
}
