package apikey

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
)

const (
	// SHA-256("abc"), FIPS 180-2 appendix B.1.
	sha256ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	// HMAC-SHA256(key "Jefe", "what do ya want for nothing?"), RFC 4231 test case 2.
	hmacJefe = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
)

func TestParseHash(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantAlg Algorithm
		wantHex string
		wantErr string // exact error text; "" means valid
	}{
		{"sha256", "sha256:" + sha256ABC, SHA256, sha256ABC, ""},
		{"hmac-sha256", "hmac-sha256:" + hmacJefe, HMACSHA256, hmacJefe, ""},
		{"all zero", "sha256:" + strings.Repeat("0", 64), SHA256, strings.Repeat("0", 64), ""},
		{"empty", "", "", "", "want sha256:<64 hex> or hmac-sha256:<64 hex>"},
		{"no algorithm", sha256ABC, "", "", "want sha256:<64 hex> or hmac-sha256:<64 hex>"},
		{"unknown algorithm", "md5:" + sha256ABC, "", "", "want sha256:<64 hex> or hmac-sha256:<64 hex>"},
		{"uppercase algorithm", "SHA256:" + sha256ABC, "", "", "want sha256:<64 hex> or hmac-sha256:<64 hex>"},
		{"leading space", " sha256:" + sha256ABC, "", "", "want sha256:<64 hex> or hmac-sha256:<64 hex>"},
		{"a secret pasted as hash is not echoed", vectorService, "", "", "want sha256:<64 hex> or hmac-sha256:<64 hex>"},
		{"short", "sha256:" + sha256ABC[:62], "", "", "62 hex digits, want 64"},
		{"long", "hmac-sha256:" + hmacJefe + "00", "", "", "66 hex digits, want 64"},
		{"no digits", "sha256:", "", "", "0 hex digits, want 64"},
		{"uppercase hex", "sha256:" + strings.ToUpper(sha256ABC), "", "", "uppercase hex, want lowercase"},
		{"non-hex", "sha256:" + sha256ABC[:10] + "g" + sha256ABC[11:], "", "", `character 11 after "sha256:" is not a hex digit`},
		{"trailing newline", "sha256:" + sha256ABC + "\n", "", "", `character 65 after "sha256:" is not a hex digit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, d, err := ParseHash(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseHash error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHash: %v", err)
			}
			if a != tt.wantAlg || hex.EncodeToString(d[:]) != tt.wantHex {
				t.Fatalf("ParseHash = %q, %x; want %q, %s", a, d, tt.wantAlg, tt.wantHex)
			}
			if got := FormatHash(a, d); got != tt.in {
				t.Fatalf("FormatHash = %q, want %q", got, tt.in)
			}
		})
	}
}

func TestHasher(t *testing.T) {
	abc, _ := hex.DecodeString(sha256ABC)
	jefe, _ := hex.DecodeString(hmacJefe)
	tests := []struct {
		name   string
		h      *Hasher
		secret string
		alg    Algorithm
		want   []byte
	}{
		{"nil pepper is SHA-256", NewHasher(nil), "abc", SHA256, abc},
		{"empty pepper is SHA-256", NewHasher([]byte{}), "abc", SHA256, abc},
		{"nil hasher is SHA-256", nil, "abc", SHA256, abc},
		{"pepper is HMAC-SHA256", NewHasher([]byte("Jefe")), "what do ya want for nothing?", HMACSHA256, jefe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.Algorithm(); got != tt.alg {
				t.Fatalf("Algorithm = %q, want %q", got, tt.alg)
			}
			// Twice: the second HMAC sum comes from a reused, reset state.
			for range 2 {
				if got := tt.h.Sum(tt.secret); string(got[:]) != string(tt.want) {
					t.Fatalf("Sum = %x, want %x", got, tt.want)
				}
			}
			if got, want := tt.h.HashString(tt.secret), string(tt.alg)+":"+hex.EncodeToString(tt.want); got != want {
				t.Fatalf("HashString = %q, want %q", got, want)
			}
		})
	}

	t.Run("empty secret", func(t *testing.T) {
		if got, want := NewHasher(nil).Sum(""), sha256.Sum256(nil); got != Digest(want) {
			t.Fatalf("Sum(\"\") = %x, want %x", got, want)
		}
		mac := hmac.New(sha256.New, []byte("pepper"))
		if got, want := NewHasher([]byte("pepper")).Sum(""), mac.Sum(nil); string(got[:]) != string(want) {
			t.Fatalf("HMAC Sum(\"\") = %x, want %x", got, want)
		}
	})

	t.Run("pepper is copied", func(t *testing.T) {
		pepper := []byte("Jefe")
		h := NewHasher(pepper)
		copy(pepper, "XXXX")
		if got := h.Sum("what do ya want for nothing?"); string(got[:]) != string(jefe) {
			t.Fatalf("Sum after the caller changed its pepper = %x, want %x", got, jefe)
		}
	})

	t.Run("different peppers differ", func(t *testing.T) {
		if NewHasher([]byte("a")).Sum("secret") == NewHasher([]byte("b")).Sum("secret") {
			t.Fatal("two peppers gave the same digest")
		}
	})

	t.Run("concurrent use", func(t *testing.T) {
		h := NewHasher([]byte("pepper"))
		secrets := []string{vectorService, vectorApp, "abcdefghijklmnop", ""}
		want := make([]Digest, len(secrets))
		for i, s := range secrets {
			mac := hmac.New(sha256.New, []byte("pepper"))
			mac.Write([]byte(s))
			want[i] = Digest(mac.Sum(nil))
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for n := range 500 {
					i := (g + n) % len(secrets)
					if got := h.Sum(secrets[i]); got != want[i] {
						t.Errorf("concurrent Sum(%q) = %x, want %x", secrets[i], got, want[i])
						return
					}
				}
			})
		}
		wg.Wait()
	})
}

func TestFormatHashRoundTrip(t *testing.T) {
	for _, a := range []Algorithm{SHA256, HMACSHA256} {
		t.Run(string(a), func(t *testing.T) {
			d := NewHasher(nil).Sum(string(a))
			s := FormatHash(a, d)
			ga, gd, err := ParseHash(s)
			if err != nil || ga != a || gd != d {
				t.Fatalf("ParseHash(FormatHash) = %q, %x, %v; want %q, %x", ga, gd, err, a, d)
			}
		})
	}
}
