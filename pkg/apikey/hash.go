package apikey

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

var errHashForm = errors.New("want sha256:<64 hex> or hmac-sha256:<64 hex>")

// ParseHash parses the stored form of a secret's hash, as FormatHash writes
// it. Only lowercase hex is accepted so that every digest has exactly one
// spelling and stored hashes compare as strings.
func ParseHash(s string) (Algorithm, Digest, error) {
	var a Algorithm
	switch {
	case strings.HasPrefix(s, string(SHA256)+":"):
		a = SHA256
	case strings.HasPrefix(s, string(HMACSHA256)+":"):
		a = HMACSHA256
	default:
		// Not quoted: someone may have pasted a secret where the hash goes.
		return "", Digest{}, errHashForm
	}
	digits := s[len(a)+1:]
	for i := 0; i < len(digits); i++ {
		switch c := digits[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			return "", Digest{}, errors.New("uppercase hex, want lowercase")
		default:
			return "", Digest{}, fmt.Errorf("character %d after %q is not a hex digit", i+1, string(a)+":")
		}
	}
	var d Digest
	if len(digits) != 2*len(d) {
		return "", Digest{}, fmt.Errorf("%d hex digits, want %d", len(digits), 2*len(d))
	}
	if _, err := hex.Decode(d[:], []byte(digits)); err != nil {
		return "", Digest{}, fmt.Errorf("%w", err) // unreachable after the checks above
	}
	return a, d, nil
}

// FormatHash is the inverse of ParseHash.
func FormatHash(a Algorithm, d Digest) string {
	var buf [len(HMACSHA256) + 1 + 2*len(d)]byte
	b := append(buf[:0], a...)
	b = append(b, ':')
	b = hex.AppendEncode(b, d[:])
	return string(b)
}

// Hasher turns secrets into the digests that stores index. It is safe for
// concurrent use. A nil *Hasher hashes with plain SHA-256.
type Hasher struct {
	alg  Algorithm
	macs *sync.Pool // of *macState; nil for SHA256
}

// macState pairs an HMAC with its output buffer: passing a stack buffer to
// the interface method Sum would make it escape, so the buffer lives here.
type macState struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

// NewHasher returns a hasher that uses HMAC-SHA256 keyed by pepper, or plain
// SHA-256 when pepper is empty. The pepper is copied.
func NewHasher(pepper []byte) *Hasher {
	if len(pepper) == 0 {
		return &Hasher{alg: SHA256}
	}
	key := bytes.Clone(pepper)
	return &Hasher{
		alg: HMACSHA256,
		// hmac.New precomputes the padded key states; pooling the result
		// keeps Sum allocation-free and shares nothing between goroutines.
		macs: &sync.Pool{New: func() any {
			return &macState{mac: hmac.New(sha256.New, key)}
		}},
	}
}

// Algorithm reports how Sum hashes.
func (h *Hasher) Algorithm() Algorithm {
	if h == nil || h.macs == nil {
		return SHA256
	}
	return h.alg
}

// Sum hashes a secret without allocating.
func (h *Hasher) Sum(secret string) Digest {
	if h == nil || h.macs == nil {
		return sha256.Sum256(bytesOf(secret))
	}
	st := h.macs.Get().(*macState)
	st.mac.Write(bytesOf(secret))
	d := Digest(st.mac.Sum(st.sum[:0]))
	// Reset now rather than on the next Get so that the tail of the secret
	// does not sit in the pooled hash's block buffer.
	st.mac.Reset()
	h.macs.Put(st)
	return d
}

// HashString returns the stored form of a secret's hash.
func (h *Hasher) HashString(secret string) string {
	return FormatHash(h.Algorithm(), h.Sum(secret))
}
