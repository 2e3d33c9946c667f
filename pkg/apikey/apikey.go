// Package apikey is keygate's secret format: generating, checking and hashing
// API key secrets (SPEC §2, §9 "Keys").
//
// A generated secret looks like
//
//	kg_<kind>_<30 base62 random characters><6 base62 characters of CRC-32>
//
// The fixed "kg_<kind>_" prefix lets secret scanners recognise leaked keys,
// and the checksum lets the request path refuse a mistyped or invented key
// before it costs a cache or database lookup. Custom secrets (imported by
// their owners) are any printable ASCII that does not claim the "kg_" prefix.
package apikey

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unsafe"
)

// Kind is the type prefix of a generated secret: "sak", "alsak", "aak".
type Kind string

const (
	KindService Kind = "sak"
	KindApp     Kind = "alsak"
	KindAccount Kind = "aak"
)

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindService, KindApp, KindAccount:
		return true
	}
	return false
}

// Algorithm names a stored hash form.
type Algorithm string

const (
	SHA256     Algorithm = "sha256"
	HMACSHA256 Algorithm = "hmac-sha256"
)

// Digest is the 32-byte hash of a secret; stores index keys by it.
type Digest [32]byte

const (
	// Prefix starts every generated secret and no custom one.
	Prefix = "kg_"
	// MinLen and MaxLen bound every acceptable secret, generated or custom.
	MinLen = 16
	MaxLen = 512

	// randomLen base62 characters carry 30·log2(62) ≈ 178.6 bits, above the
	// 160 that SPEC §2 asks for.
	randomLen = 30
	// checksumLen base62 characters hold any uint32: 62^6 > 2^32 > 62^5.
	checksumLen = 6
	bodyLen     = randomLen + checksumLen
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// base62Value maps a byte to its base62 digit value, or -1.
var base62Value = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(base62); i++ {
		t[base62[i]] = int8(i)
	}
	return t
}()

// ErrMalformed is wrapped by every Validate and ValidateCustom error.
var ErrMalformed = errors.New("malformed key")

// The fixed failures are preallocated so that refusing sprayed garbage costs
// no allocation either. None of the messages quotes the secret: they may end
// up in logs and API responses.
var (
	errEmpty       = fmt.Errorf("%w: empty", ErrMalformed)
	errTooLong     = fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLen)
	errTooShort    = fmt.Errorf("%w: shorter than %d bytes", ErrMalformed, MinLen)
	errUnknownKind = fmt.Errorf("%w: unknown type prefix", ErrMalformed)
	errLength      = fmt.Errorf("%w: wrong length for a generated key", ErrMalformed)
	errChecksum    = fmt.Errorf("%w: bad checksum", ErrMalformed)
	errReserved    = fmt.Errorf("%w: custom secrets may not start with the generated-key prefix", ErrMalformed)
	errComma       = fmt.Errorf("%w: custom secrets may not contain a comma (proxies join repeated headers with commas)", ErrMalformed)
)

// AllowedBytes says which characters a secret may hold, closing every
// message about one it may not: the fix is then in the message.
const AllowedBytes = "a key holds printable ASCII only: letters, digits and punctuation (0x21-0x7E), no spaces"

func errBadByte(c byte, i int) error {
	return fmt.Errorf("%w: contains %s at byte %d; %s", ErrMalformed, byteName(c), i, AllowedBytes)
}

// byteName names a byte that no secret may hold by its class, never by its
// value: nothing in a message may tell what the secret is.
func byteName(c byte) string {
	switch {
	case c == ' ':
		return "a space"
	case c == '\t':
		return "a tab"
	case c == '\n' || c == '\r':
		return "a line break"
	case c < 0x20 || c == 0x7f:
		return "a control character"
	default:
		return "a non-ASCII character"
	}
}

func errNotBase62(i int) error {
	return fmt.Errorf("%w: generated key has a non-base62 character at byte %d", ErrMalformed, i)
}

// Generate returns a new random secret of the given kind.
func Generate(kind Kind) (string, error) {
	if !kind.Valid() {
		return "", fmt.Errorf("apikey: unknown key kind %q", string(kind))
	}
	head := len(Prefix) + len(kind) + 1
	buf := make([]byte, head, head+bodyLen)
	copy(buf, Prefix)
	copy(buf[len(Prefix):], kind)
	buf[head-1] = '_'

	// Keep 6 bits of each random byte and reject 62 and 63: every base62
	// digit is then equally likely, which a modulo would not give.
	var pool [64]byte
	for len(buf) < head+randomLen {
		if _, err := rand.Read(pool[:]); err != nil {
			return "", fmt.Errorf("apikey: reading randomness: %w", err)
		}
		for _, b := range pool {
			if b &= 63; b < 62 {
				buf = append(buf, base62[b])
				if len(buf) == head+randomLen {
					break
				}
			}
		}
	}
	buf = buf[:len(buf)+checksumLen]
	putChecksum(buf[len(buf)-checksumLen:], crc32.ChecksumIEEE(buf[:len(buf)-checksumLen]))
	return string(buf), nil
}

// putChecksum writes c as fixed-width, zero-padded base62, most significant
// digit first.
func putChecksum(dst []byte, c uint32) {
	v := uint64(c)
	for i := checksumLen - 1; i >= 0; i-- {
		dst[i] = base62[v%62]
		v /= 62
	}
}

// Validate reports whether a presented secret is well-formed (SPEC §5 row 2).
// It is on the request path, so it must decide without any lookup and
// without allocating when the secret is fine. A secret without the "kg_"
// prefix that passes the byte rules is a possible custom secret: only the
// lookup can tell.
func Validate(secret string) error {
	if err := checkBytes(secret); err != nil {
		return err
	}
	if !strings.HasPrefix(secret, Prefix) {
		return nil
	}
	_, err := parseGenerated(secret)
	return err
}

// ValidateCustom checks a caller-chosen secret before it is imported.
func ValidateCustom(secret string) error {
	if err := checkBytes(secret); err != nil {
		return err
	}
	if strings.HasPrefix(secret, Prefix) {
		// A custom secret in the generated namespace would confuse secret
		// scanners and could fail the checksum check on the request path.
		return errReserved
	}
	if strings.IndexByte(secret, ',') >= 0 {
		// Proxies join repeated headers with commas, so a comma in a key
		// header reads as several keys (malformed_key): such a secret could
		// never be used.
		return errComma
	}
	return nil
}

// Rules of secrets imported from now on (SPEC §9): long and varied enough
// that guessing one is as hopeless as guessing a generated one is.
const (
	MinImportLen      = 24
	MinImportDistinct = 10
)

// ValidateImport checks a secret about to be imported: ValidateCustom, and
// at least MinImportLen bytes of at least MinImportDistinct distinct
// characters. Secrets imported before these rules keep working (the
// request path checks ValidateCustom's rules only). The errors never quote
// the secret.
func ValidateImport(secret string) error {
	if err := ValidateCustom(secret); err != nil {
		return err
	}
	return importStrength(secret)
}

// importStrength is the import rules' length and variety, apart from
// ValidateCustom's.
func importStrength(secret string) error {
	if len(secret) < MinImportLen {
		return fmt.Errorf("%d bytes: an imported secret needs at least %d", len(secret), MinImportLen)
	}
	if distinct := distinctBytes(secret); distinct < MinImportDistinct {
		return fmt.Errorf("%d distinct characters: an imported secret needs at least %d", distinct, MinImportDistinct)
	}
	return nil
}

// WeakCustomSecret reports whether secret, which a key answered to, is a
// custom secret the import rules would now refuse (too short or too
// uniform): one imported before the rules, which keeps working with a
// warning. A generated secret is never weak.
func WeakCustomSecret(secret string) bool {
	if _, generated := KindOf(secret); generated {
		return false
	}
	return len(secret) < MinImportLen || distinctBytes(secret) < MinImportDistinct
}

// distinctBytes counts the different bytes of s.
func distinctBytes(s string) int {
	var seen [256]bool
	n := 0
	for i := 0; i < len(s); i++ {
		if !seen[s[i]] {
			seen[s[i]] = true
			n++
		}
	}
	return n
}

// KindOf returns the kind of a well-formed generated secret.
func KindOf(secret string) (Kind, bool) {
	if checkBytes(secret) != nil || !strings.HasPrefix(secret, Prefix) {
		return "", false
	}
	k, err := parseGenerated(secret)
	return k, err == nil
}

// checkBytes applies the rules shared by every secret. There is no trimming:
// neither generated nor custom secrets contain spaces or control characters,
// so a secret that does is a wrong one.
func checkBytes(s string) error {
	switch {
	case len(s) == 0:
		return errEmpty
	case len(s) > MaxLen:
		return errTooLong
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return errBadByte(c, i)
		}
	}
	if len(s) < MinLen {
		return errTooShort
	}
	return nil
}

// parseGenerated checks a secret that starts with Prefix and returns its kind.
func parseGenerated(s string) (Kind, error) {
	rest := s[len(Prefix):]
	i := strings.IndexByte(rest, '_')
	if i < 0 {
		return "", errUnknownKind
	}
	var kind Kind
	// Return the constants rather than a substring so that a Kind never
	// keeps the secret's memory alive.
	switch rest[:i] {
	case string(KindService):
		kind = KindService
	case string(KindApp):
		kind = KindApp
	case string(KindAccount):
		kind = KindAccount
	default:
		return "", errUnknownKind
	}
	start := len(Prefix) + i + 1
	if len(s)-start != bodyLen {
		return "", errLength
	}
	for j := start; j < len(s); j++ {
		if base62Value[s[j]] < 0 {
			return "", errNotBase62(j)
		}
	}
	var sum uint64
	for j := len(s) - checksumLen; j < len(s); j++ {
		sum = sum*62 + uint64(base62Value[s[j]])
	}
	if sum != uint64(crc32.ChecksumIEEE(bytesOf(s[:len(s)-checksumLen]))) {
		return "", errChecksum
	}
	return kind, nil
}

// bytesOf views a string's bytes without copying them, which keeps the hot
// path allocation-free. The result must never be written to.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
