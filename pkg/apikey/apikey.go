// Package apikey is keygate's secret format: generating, checking and hashing
// API key secrets. (Contract skeleton; implementation in progress.)
package apikey

import "errors"

// Kind is the type prefix of a generated secret: "sak", "alsak", "aak".
type Kind string

const (
	KindService Kind = "sak"
	KindApp     Kind = "alsak"
	KindAccount Kind = "aak"
)

// Algorithm names a stored hash form.
type Algorithm string

const (
	SHA256     Algorithm = "sha256"
	HMACSHA256 Algorithm = "hmac-sha256"
)

// Digest is the 32-byte hash of a secret; stores index keys by it.
type Digest [32]byte

// ErrMalformed is wrapped by every Validate error.
var ErrMalformed = errors.New("malformed key")

func Generate(kind Kind) (string, error)            { panic("unimplemented") }
func Validate(secret string) error                  { panic("unimplemented") }
func ValidateCustom(secret string) error            { panic("unimplemented") }
func ParseHash(s string) (Algorithm, Digest, error) { panic("unimplemented") }
func FormatHash(a Algorithm, d Digest) string       { panic("unimplemented") }

type Hasher struct{ pepper []byte }

func NewHasher(pepper []byte) *Hasher             { return &Hasher{pepper: pepper} }
func (h *Hasher) Algorithm() Algorithm            { panic("unimplemented") }
func (h *Hasher) Sum(secret string) Digest        { panic("unimplemented") }
func (h *Hasher) HashString(secret string) string { panic("unimplemented") }
