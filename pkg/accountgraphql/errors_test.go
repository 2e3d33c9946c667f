package accountgraphql

import "testing"

// TestRedactValues: the messages of GraphQL's validation that quote a
// request's value lose the value, the others stay as they are.
func TestRedactValues(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"String cannot represent a non string value: kg_sak_x", "String cannot represent a non string value (the value is not shown)"},
		{`Expected value of type "ImportKeyInput!", found {privateKey:s3cret}.`, `Expected value of type "ImportKeyInput!", found another value (not shown).`},
		{`Value "s3cret" does not exist in "KeyType!" enum.`, `The value given does not exist in "KeyType!" enum.`},
		{"s3cret is not a valid KeyType", "the value given is not a valid KeyType"},
		{`Unexpected Name "s3cret"`, "Unexpected Name"},
		{`Cannot query field "nope" on type "KeyPayload".`, `Cannot query field "nope" on type "KeyPayload".`},
	} {
		if got := redactValues(tc.in); got != tc.want {
			t.Errorf("redactValues(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
