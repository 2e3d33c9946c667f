package postgres

import (
	"math/big"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// arrayTextStrings are texts array_in would misread if they were not
// quoted and escaped (TestArrayTextRoundTrip sends the same).
var arrayTextStrings = []string{"", "plain", "NULL", "null", `"`, `\`, `\"`, `a"b\c`, "{}", "{a,b}", "a,b", " lead", "trail ",
	"tab\there", "new\nline", "ünïcödé ✓", "'single'", `{"x":1}`, "()", "[1:2]"}

// FuzzArrayText: any valid UTF-8 texts (PostgreSQL's text holds no NUL)
// survive the array's text form. Parsed here as array_in does for quoted
// elements, so that it runs without a database; TestArrayTextRoundTrip
// holds the parser to PostgreSQL's.
func FuzzArrayText(f *testing.F) {
	for _, s := range arrayTextStrings {
		f.Add(s, "second")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) || strings.ContainsRune(a+b, 0) {
			return
		}
		at := newArrayText(2, 4)
		at.Text(a)
		at.Text(b)
		text := string(at.Bytes())
		got, ok := parseQuotedArray(text)
		if !ok || !slices.Equal(got, []string{a, b}) {
			t.Fatalf("%q, %q → %q → %q (%v)", a, b, text, got, ok)
		}
	})
}

// parseQuotedArray reads {"…","…"} as array_in reads quoted elements.
func parseQuotedArray(s string) ([]string, bool) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, false
	}
	s = s[1 : len(s)-1]
	var out []string
	for len(s) > 0 {
		if s[0] != '"' {
			return nil, false
		}
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' {
				i++
				if i == len(s) {
					return nil, false
				}
			}
			b.WriteByte(s[i])
		}
		if i == len(s) {
			return nil, false
		}
		out = append(out, b.String())
		s = s[i+1:]
		if len(s) > 0 {
			if s[0] != ',' {
				return nil, false
			}
			s = s[1:]
		}
	}
	return out, true
}

// FuzzTextColumns holds the readers of result columns in the text format
// to PostgreSQL's forms: a bigint as strconv formats it, a boolean as t
// or f; anything else is an error, never a number or a truth.
func FuzzTextColumns(f *testing.F) {
	for _, s := range []string{"0", "-1", "9223372036854775807", "-9223372036854775808", "t", "f", "", " 1", "1.0", "true", "9223372036854775808"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, isInt := new(big.Int).SetString(string(b), 10)
		isInt = isInt && want.IsInt64() && strings.Trim(string(b), "+-0123456789") == ""
		if n, err := textInt(b); (err == nil) != isInt || (isInt && n != want.Int64()) {
			t.Fatalf("textInt(%q) = %d, %v", b, n, err)
		}
		v, err := textBool(b)
		switch string(b) {
		case "t", "f":
			if err != nil || v != (string(b) == "t") {
				t.Fatalf("textBool(%q) = %v, %v", b, v, err)
			}
		default:
			if err == nil {
				t.Fatalf("textBool(%q) = %v, want an error", b, v)
			}
		}
	})
}
