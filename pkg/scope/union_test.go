package scope

import "testing"

func TestUnion(t *testing.T) {
	if Union() != nil || Union(nil, mustParse(t, " ")) != nil {
		t.Fatal("the union of empty scopes is not the empty scope")
	}
	u := Union(mustParse(t, ""), mustParse(t, "a:query:* b"), mustParse(t, "!a:query:secret c"))
	if got := u.String(); got != "a:query:* b !a:query:secret c" {
		t.Fatalf("text %q", got)
	}
	for _, tc := range []struct {
		s, k, o string
		want    bool
	}{
		{"a", "query", "list", true},
		{"a", "query", "secret", false},
		{"b", "x", "y", true},
		{"c", "", "", true},
		{"a", "", "", false}, // unknown kind: a:query:* does not allow it
		{"d", "q", "o", false},
	} {
		if got := u.Allows(tc.s, tc.k, tc.o); got != tc.want {
			t.Errorf("Allows(%q,%q,%q) = %v, want %v", tc.s, tc.k, tc.o, got, tc.want)
		}
	}
	if got := u.Services(); len(got) != 3 {
		t.Errorf("services %v", got)
	}
	if !u.HasDeny() || u.IsEmpty() || mustParse(t, "a").HasDeny() || !mustParse(t, "").IsEmpty() {
		t.Error("HasDeny/IsEmpty")
	}
}

func TestCovers(t *testing.T) {
	d := mustParse(t, "email-api:mutation:sendEmail billing:query:get*")
	for _, tc := range []struct {
		s, k, o string
		want    bool
	}{
		{"email-api", "mutation", "sendEmail", true},
		{"email-api", "mutation", "deleteEmail", false},
		{"email-api", "", "", true},         // unknown operation meets a denial naming one (SPEC §9)
		{"email-api", "mutation", "", true}, // unknown operation of the kind
		{"email-api", "query", "", false},
		{"billing", "query", "getInvoice", true},
		{"billing", "query", "list", false},
		{"other", "", "", false},
	} {
		if got := d.Covers(tc.s, tc.k, tc.o); got != tc.want {
			t.Errorf("Covers(%q,%q,%q) = %v, want %v", tc.s, tc.k, tc.o, got, tc.want)
		}
	}
	if (*Scope)(nil).Covers("a", "b", "c") || mustParse(t, "!a").Covers("a", "b", "c") {
		t.Error("an empty or deny-only scope covers something")
	}
}
