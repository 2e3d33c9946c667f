package authz

import (
	"fmt"
	"unicode/utf8"
)

// CheckLabelText refuses, in a name or a group (of an app, tenant or key),
// the characters that make one text look like another or hide part of it
// (SPEC issue 13, point 11c): every C0 and C1 control character and DEL,
// the bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E,
// U+2066–U+2069) and the zero-width or invisible ones (U+00AD,
// U+200B–U+200D, U+2060, U+FEFF), and invalid UTF-8. The error names the
// first such code point as U+XXXX, never the character itself, so that a
// message cannot be turned around or hidden by what it quotes.
func CheckLabelText(s string) error {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return fmt.Errorf("is not valid UTF-8 (at byte %d)", i)
			}
		}
		if kind := forbiddenRune(r); kind != "" {
			return fmt.Errorf("contains %s (%U), which is not allowed", kind, r)
		}
	}
	return nil
}

// forbiddenRune says what kind of forbidden character r is, "" when r is
// allowed.
func forbiddenRune(r rune) string {
	switch {
	case r < 0x20 || r == 0x7f:
		return "a control character"
	case r >= 0x80 && r <= 0x9f:
		return "a C1 control character"
	case r == 0x061c, r == 0x200e, r == 0x200f,
		r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return "a bidirectional control character"
	case r == 0x00ad, r >= 0x200b && r <= 0x200d, r == 0x2060, r == 0xfeff:
		return "an invisible character"
	}
	return ""
}
