package authz_test

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/authz"
)

func TestCheckLabelText(t *testing.T) {
	cases := []struct {
		name, text string
		want       string // "" = accepted
	}{
		{"plain", "ACME Corp", ""},
		{"accents and CJK", "Café 東京", ""},
		{"emoji", "billing 🚀", ""},
		{"right-to-left override", "invoice\u202Egnp.exe", "a bidirectional control character (U+202E)"},
		{"left-to-right embedding", "a\u202Ab", "U+202A"},
		{"pop directional", "a\u202Cb", "U+202C"},
		{"isolate", "a\u2066b", "U+2066"},
		{"pop isolate", "a\u2069b", "U+2069"},
		{"LRM", "a\u200Eb", "U+200E"},
		{"RLM", "a\u200Fb", "U+200F"},
		{"Arabic letter mark", "a\u061Cb", "U+061C"},
		{"zero-width space", "admin\u200B", "an invisible character (U+200B)"},
		{"zero-width joiner", "a\u200Db", "U+200D"},
		{"word joiner", "a\u2060b", "U+2060"},
		{"BOM", "\uFEFFacme", "U+FEFF"},
		{"soft hyphen", "ac\u00ADme", "U+00AD"},
		{"NUL", "a\x00b", "a control character (U+0000)"},
		{"newline", "a\nb", "U+000A"},
		{"DEL", "a\x7fb", "U+007F"},
		{"C1 NEL", "a\u0085b", "a C1 control character (U+0085)"},
		{"invalid UTF-8", "a\xffb", "not valid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := authz.CheckLabelText(tc.text)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("accepted")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if err != nil {
				for _, r := range err.Error() {
					if r > 0x7e || r < 0x20 {
						t.Fatalf("error %q echoes a non-ASCII character %U", err, r)
					}
				}
			}
		})
	}
}
