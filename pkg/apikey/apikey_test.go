package apikey

import (
	"errors"
	"strings"
	"testing"
)

// Vectors computed outside Go (Python's zlib.crc32 and a separate base62
// encoder), so that the format is pinned independently of this package.
const (
	vectorService = "kg_sak_0000000000000000000000000000002mBwzH"
	// The checksum of this one is below 62^5: it pins the zero padding.
	vectorApp = "kg_alsak_abcdefghijABCDEFGHIJ01234567890QVEpm"
)

func mustGenerate(t testing.TB, k Kind) string {
	t.Helper()
	s, err := Generate(k)
	if err != nil {
		t.Fatalf("Generate(%q): %v", k, err)
	}
	return s
}

// replaceAt returns s with the byte at i replaced by c.
func replaceAt(s string, i int, c byte) string {
	b := []byte(s)
	b[i] = c
	return string(b)
}

func TestGenerate(t *testing.T) {
	for _, k := range []Kind{KindService, KindApp, KindAccount} {
		t.Run(string(k), func(t *testing.T) {
			s := mustGenerate(t, k)
			head := "kg_" + string(k) + "_"
			if !strings.HasPrefix(s, head) {
				t.Fatalf("%q does not start with %q", s, head)
			}
			if got, want := len(s), len(head)+36; got != want {
				t.Fatalf("len = %d, want %d", got, want)
			}
			for i := len(head); i < len(s); i++ {
				if !strings.ContainsRune(base62, rune(s[i])) {
					t.Fatalf("byte %d of %q is not base62", i, s)
				}
			}
			if err := Validate(s); err != nil {
				t.Fatalf("Validate(generated): %v", err)
			}
			if got, ok := KindOf(s); !ok || got != k {
				t.Fatalf("KindOf = %q, %v; want %q, true", got, ok, k)
			}
			if s2 := mustGenerate(t, k); s2 == s {
				t.Fatalf("two generated secrets are equal: %q", s)
			}
		})
	}
	for _, k := range []Kind{"", "SAK", "xyz", "sak_"} {
		t.Run("unknown kind "+string(k), func(t *testing.T) {
			if s, err := Generate(k); err == nil {
				t.Fatalf("Generate(%q) = %q, want error", k, s)
			}
		})
	}
}

// TestGenerateUsesWholeAlphabet catches an encoder that never emits some
// digits (an off-by-one in the rejection bound, say). With 30,000 draws the
// chance that a fair generator misses a digit is about 62·e^-484.
func TestGenerateUsesWholeAlphabet(t *testing.T) {
	seen := map[byte]int{}
	for range 1000 {
		s := mustGenerate(t, KindService)
		for i := len("kg_sak_"); i < len(s)-6; i++ {
			seen[s[i]]++
		}
	}
	if len(seen) != 62 {
		t.Fatalf("random part used %d distinct digits, want 62", len(seen))
	}
}

func TestValidate(t *testing.T) {
	gen := mustGenerate(t, KindService)
	long := strings.Repeat("a", MaxLen)
	tests := []struct {
		name    string
		in      string
		wantErr string // substring of the error; "" means valid
	}{
		{"generated sak vector", vectorService, ""},
		{"generated alsak vector with zero-padded checksum", vectorApp, ""},
		{"generated fresh", gen, ""},
		{"generated aak", mustGenerate(t, KindAccount), ""},
		{"custom minimal length", "abcdefghijklmnop", ""},
		{"custom with punctuation", `!"#$%&'()*+,-./:;<=>?@[\]^_{|}~`, ""},
		{"custom at max length", long, ""},
		{"custom uppercase KG_ prefix is not generated", "KG_sak_whatever_goes_here", ""},
		{"custom kg without underscore", "kgsak_0000000000000000000", ""},

		{"empty", "", "malformed key: empty"},
		{"over max length", long + "a", "malformed key: longer than 512 bytes"},
		{"control character", "abcdefg\x01ijklmnop", "malformed key: contains a control character at byte 7; " + AllowedBytes},
		{"NUL", "abcdefghijklmnop\x00", "a control character at byte 16"},
		{"DEL", "\x7fbcdefghijklmnop", "a control character at byte 0"},
		{"inner space", "abcdefgh ijklmnop", "a space at byte 8; a key holds printable ASCII only"},
		{"leading space is not trimmed", " " + gen, "a space at byte 0"},
		{"trailing newline is not trimmed", gen + "\n", "a line break at byte 43"},
		{"tab", "abcdefgh\tijklmnop", "a tab at byte 8"},
		{"non-ASCII UTF-8", "abcdéfghijklmnop", "a non-ASCII character at byte 4"},
		{"invalid UTF-8", "abcdefghijklmno\xff", "a non-ASCII character at byte 15"},
		{"bad byte reported before short length", "ab\x01", "a control character at byte 2"},
		{"too short", "abcdefghijklmno", "malformed key: shorter than 16 bytes"},
		{"too short generated-looking", "kg_sak_abc", "shorter than 16 bytes"},

		{"unknown kind", "kg_xyz_" + gen[len("kg_sak_"):], "malformed key: unknown type prefix"},
		{"uppercase kind", "kg_SAK_" + gen[len("kg_sak_"):], "unknown type prefix"},
		{"no kind separator", "kg_sak" + gen[len("kg_sak_"):], "unknown type prefix"},
		{"empty kind", "kg__" + gen[len("kg_sak_"):], "unknown type prefix"},
		{"one character short", gen[:len(gen)-1], "malformed key: wrong length for a generated key"},
		{"one character long", gen + "0", "wrong length for a generated key"},
		{"non-base62 in random part", replaceAt(gen, 10, '-'), "malformed key: generated key has a non-base62 character at byte 10"},
		{"underscore in checksum", replaceAt(gen, len(gen)-1, '_'), "non-base62 character at byte 42"},
		{"mistyped random character", replaceAt(vectorService, 7, '1'), "malformed key: bad checksum"},
		{"mistyped checksum character", replaceAt(vectorService, len(vectorService)-1, 'I'), "bad checksum"},
		{"checksum above 2^32", vectorService[:len(vectorService)-6] + "zzzzzz", "bad checksum"},
		{"kind swapped for one of equal length", "kg_aak_" + vectorService[len("kg_sak_"):], "bad checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMalformed(t, Validate(tt.in), tt.in, tt.wantErr)
		})
	}
}

func TestValidateCustom(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"minimal length", "abcdefghijklmnop", ""},
		{"max length", strings.Repeat("x", MaxLen), ""},
		{"printable punctuation", "~!@#$%^&*()_+{}|:<>?", ""},
		{"legacy key of another vendor", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", ""},
		{"uppercase KG_ is allowed", "KG_abcdefghijklmnop", ""},
		{"empty", "", "malformed key: empty"},
		{"too short", "abcdefghijklmno", "malformed key: shorter than 16 bytes"},
		{"too long", strings.Repeat("x", MaxLen+1), "malformed key: longer than 512 bytes"},
		{"space", "abcdefgh ijklmnop", "a space at byte 8; a key holds printable ASCII only"},
		{"control", "\x1babcdefghijklmnop", "character at byte 0"},
		{"non-ASCII", "pässwordpassword", "character at byte 1"},
		{"reserved prefix", "kg_my_own_secret_value", "malformed key: custom secrets may not start with the generated-key prefix"},
		{"a generated secret cannot be imported as custom", vectorService, "may not start with the generated-key prefix"},
		{"comma", "abcdefgh,ijklmnop", "may not contain a comma"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMalformed(t, ValidateCustom(tt.in), tt.in, tt.wantErr)
		})
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   Kind
		wantOK bool
	}{
		{"service vector", vectorService, KindService, true},
		{"app vector", vectorApp, KindApp, true},
		{"account generated", mustGenerate(t, KindAccount), KindAccount, true},
		{"custom secret", "abcdefghijklmnop", "", false},
		{"bad checksum", replaceAt(vectorService, 7, '1'), "", false},
		{"control character", vectorService + "\n", "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := KindOf(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("KindOf = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestKindValid(t *testing.T) {
	for k, want := range map[Kind]bool{KindService: true, KindApp: true, KindAccount: true, "": false, "SAK": false, "ak": false} {
		t.Run(string(k), func(t *testing.T) {
			if got := k.Valid(); got != want {
				t.Fatalf("Valid = %v, want %v", got, want)
			}
		})
	}
}

// checkMalformed asserts err is nil when wantErr is empty, and otherwise a
// malformed-key error containing wantErr that does not echo the input.
func checkMalformed(t *testing.T, err error, in, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got nil, want an error containing %q", wantErr)
	}
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("error %q does not wrap ErrMalformed", err)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Errorf("error %q does not contain %q", err, wantErr)
	}
	if len(in) >= 4 && strings.Contains(err.Error(), in) {
		t.Errorf("error %q echoes the secret", err)
	}
}

// TestValidateImport: SPEC §9's rules for secrets imported from now on.
func TestValidateImport(t *testing.T) {
	for _, tc := range []struct {
		name, secret string
		ok           bool
	}{
		{"24 bytes, 24 distinct", "abcdefghijklmnopqrstuvwx", true},
		{"long, 10 distinct", strings.Repeat("0123456789", 3), true},
		{"16 times a", strings.Repeat("a", 16), false},
		{"23 bytes", "abcdefghijklmnopqrstuvw", false},
		{"9 distinct", strings.Repeat("abcdefghi", 4), false},
		{"generated prefix", "kg_" + strings.Repeat("0123456789", 3), false},
	} {
		err := ValidateImport(tc.secret)
		if (err == nil) != tc.ok {
			t.Errorf("%s: ValidateImport = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), tc.secret) {
			t.Errorf("%s: the error quotes the secret", tc.name)
		}
	}
}

// TestWeakCustomSecret: what the data plane warns about — custom secrets
// the import rules would now refuse — and never a generated secret.
func TestWeakCustomSecret(t *testing.T) {
	generated, err := Generate(KindService)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, secret string
		weak         bool
	}{
		{"16 bytes", "abcdefghijklmnop", true},
		{"23 bytes", "abcdefghijklmnopqrstuvw", true},
		{"24 bytes of 9 characters", "abcdefghiabcdefghiabcdef", true},
		{"24 bytes of 10 characters", "abcdefghijabcdefghijabcd", false},
		{"a passphrase", "correct-horse-battery-staple-42", false},
		{"generated", generated, false},
	} {
		if got := WeakCustomSecret(tc.secret); got != tc.weak {
			t.Errorf("%s: WeakCustomSecret = %v, want %v", tc.name, got, tc.weak)
		}
		// The import rule and the warning agree on custom secrets.
		if tc.name != "generated" && (ValidateImport(tc.secret) != nil) != tc.weak {
			t.Errorf("%s: ValidateImport and WeakCustomSecret disagree", tc.name)
		}
	}
}
