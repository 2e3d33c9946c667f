package apikey

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// errorTemplates are every Validate message with byte positions written as
// N. Fuzzing checks that each message is one of them: the only thing a
// message may take from the secret is a position.
var errorTemplates = []string{
	"malformed key: empty",
	"malformed key: longer than N bytes",
	"malformed key: contains a space at byte N; " + AllowedBytes,
	"malformed key: contains a tab at byte N; " + AllowedBytes,
	"malformed key: contains a line break at byte N; " + AllowedBytes,
	"malformed key: contains a control character at byte N; " + AllowedBytes,
	"malformed key: contains a non-ASCII character at byte N; " + AllowedBytes,
	"malformed key: shorter than N bytes",
	"malformed key: unknown type prefix",
	"malformed key: wrong length for a generated key",
	"malformed key: generated key has a non-base62 character at byte N",
	"malformed key: bad checksum",
}

var digitRuns = regexp.MustCompile(`\b[0-9]+\b`)

func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		"", "a", "abcdefghijklmnop", "abcdefghijklmno", "kg_", "kg_sak_",
		vectorService, vectorApp, replaceAt(vectorService, 7, '1'),
		vectorService[:len(vectorService)-6] + "zzzzzz", "kg_xyz_" + vectorService[7:],
		"abcdefg\x01ijklmnop", "abcdéfghijklmnop", "abc\xffdefghijklmnop", " " + vectorApp,
		strings.Repeat("a", MaxLen), strings.Repeat("a", MaxLen+1),
		// Inputs that are substrings of the fixed messages, which the
		// echo check must tell apart from real echoes.
		"ASCII character at byte 5", "byte", "malformed key: bad checksum",
	} {
		f.Add(s, uint8(0))
	}
	kinds := []Kind{KindService, KindApp, KindAccount}
	f.Fuzz(func(t *testing.T, in string, kindSel uint8) {
		gen, err := Generate(kinds[int(kindSel)%len(kinds)])
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(gen); err != nil {
			t.Fatalf("generated %q refused: %v", gen, err)
		}

		err = Validate(in)
		kind, ok := KindOf(in)
		if ok != (err == nil && strings.HasPrefix(in, Prefix)) || ok != kind.Valid() {
			t.Fatalf("KindOf(%q) = %q, %v disagrees with Validate error %v", in, kind, ok, err)
		}
		if customErr := ValidateCustom(in); customErr == nil && err != nil {
			t.Fatalf("ValidateCustom accepts %q that Validate refuses: %v", in, err)
		} else if customErr != nil && !errors.Is(customErr, ErrMalformed) {
			t.Fatalf("ValidateCustom error %q does not wrap ErrMalformed", customErr)
		}
		if err == nil {
			return
		}
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %q does not wrap ErrMalformed", err)
		}
		msg := err.Error()
		if !slices.Contains(errorTemplates, digitRuns.ReplaceAllString(msg, "N")) {
			t.Fatalf("unexpected error message %q", msg)
		}
		if len(in) >= 4 && strings.Contains(msg, in) &&
			!strings.Contains(strings.Join(errorTemplates, "\n"), digitRuns.ReplaceAllString(in, "N")) {
			t.Fatalf("error %q echoes the input", msg)
		}
	})
}

func FuzzParseHash(f *testing.F) {
	for _, s := range []string{
		"", "sha256:", "sha256:" + sha256ABC, "hmac-sha256:" + hmacJefe,
		"sha256:" + strings.ToUpper(sha256ABC), "sha256:" + sha256ABC[:62], "md5:00",
		"hmac-sha256:" + hmacJefe + "\n",
	} {
		f.Add(s, []byte("digest"), false)
	}
	f.Fuzz(func(t *testing.T, s string, raw []byte, hmacAlg bool) {
		if a, d, err := ParseHash(s); err == nil {
			if got := FormatHash(a, d); got != s {
				t.Fatalf("FormatHash(ParseHash(%q)) = %q", s, got)
			}
		}

		var d Digest
		copy(d[:], raw)
		a := SHA256
		if hmacAlg {
			a = HMACSHA256
		}
		s = FormatHash(a, d)
		ga, gd, err := ParseHash(s)
		if err != nil || ga != a || gd != d {
			t.Fatalf("ParseHash(FormatHash(%q, %x)) = %q, %x, %v", a, d, ga, gd, err)
		}
	})
}
