// Package scope is keygate's scope grammar (SPEC §3, §9).
//
// A scope is a whitespace-separated list of patterns
//
//	[!]service[:kind[:operation]]
//
// where a missing segment means "*", and a segment is a literal, "*", or a
// literal ending in "*" that matches by prefix. An empty scope allows
// everything; otherwise an operation is allowed iff some allow pattern
// matches it and no "!" (deny) pattern does.
package scope

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Input bounds: scopes arrive through the Account API and key files, and
// each pattern is tried on every request, so neither may grow unboundedly.
const (
	MaxBytes    = 4096
	MaxPatterns = 256
)

// PatternError is a pattern Parse refused. It names the pattern so that the
// Account API and key-file loader can point at it.
type PatternError struct {
	Index   int    // 1-based position among the scope's patterns
	Pattern string // the pattern as written
	Reason  string
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("pattern %d %q: %s", e.Index, e.Pattern, e.Reason)
}

// segment is one compiled segment. Allows only ever compares strings, which
// is what keeps it allocation-free.
type segment struct {
	lit    string
	prefix bool // lit followed by "*"
	any    bool // "*" or a missing segment
}

// match reports whether the segment matches v. An empty v is unknown (a
// route or context_extensions that name no kind or operation), and SPEC §9
// reads it the way that never opens more than the scope says: an allow
// segment matches it only when it is "*" (or missing), a deny segment
// always — so "!email-api:mutation:sendEmail" denies a request to
// email-api whose operation is unknown, and "email-api:query:*" does not
// allow it.
func (g *segment) match(v string, deny bool) bool {
	switch {
	case g.any:
		return true
	case v == "":
		return deny
	case g.prefix:
		return strings.HasPrefix(v, g.lit)
	}
	return v == g.lit
}

type pattern [3]segment

func (p *pattern) match(service, kind, operation string, deny bool) bool {
	return p[0].match(service, deny) && p[1].match(kind, deny) && p[2].match(operation, deny)
}

// Scope is a compiled scope. A nil *Scope is the empty scope. A Scope is
// immutable and safe for concurrent use.
type Scope struct {
	allow, deny []pattern
	services    []string
	text        string
}

// Parse compiles a scope.
func Parse(s string) (*Scope, error) {
	if len(s) > MaxBytes {
		return nil, fmt.Errorf("scope: %d bytes, at most %d", len(s), MaxBytes)
	}
	words := fields(s)
	if len(words) > MaxPatterns {
		return nil, fmt.Errorf("scope: %d patterns, at most %d", len(words), MaxPatterns)
	}
	sc := &Scope{text: strings.Join(words, " ")}
	for i, w := range words {
		deny, p, err := parsePattern(w)
		if err != nil {
			return nil, &PatternError{Index: i + 1, Pattern: w, Reason: err.Error()}
		}
		if deny {
			sc.deny = append(sc.deny, p)
		} else {
			sc.allow = append(sc.allow, p)
		}
		if svc := p[0]; !svc.any && !svc.prefix && !slices.Contains(sc.services, svc.lit) {
			sc.services = append(sc.services, svc.lit)
		}
	}
	return sc, nil
}

// CountPatterns is how many patterns s has, as Parse splits them (the
// Account API holds new scopes to fewer than MaxPatterns).
func CountPatterns(s string) int { return len(fields(s)) }

// fields splits on runs of ASCII whitespace only. strings.Fields would also
// split on Unicode spaces, silently accepting characters the grammar
// forbids; here they reach parsePattern and are reported.
func fields(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		start := i
		for i < len(s) && !isSpace(s[i]) {
			i++
		}
		if i > start {
			out = append(out, s[start:i])
		}
	}
	return out
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

func parsePattern(w string) (deny bool, p pattern, err error) {
	if rest, ok := strings.CutPrefix(w, "!"); ok {
		if rest == "" {
			return false, p, errors.New("! must be followed by service[:kind[:operation]]")
		}
		deny, w = true, rest
	}
	if n := strings.Count(w, ":") + 1; n > len(p) {
		return false, p, fmt.Errorf("%d segments, at most 3 (service:kind:operation)", n)
	}
	for i := range p {
		p[i].any = true
	}
	for i := 0; w != ""; i++ {
		seg, rest, more := strings.Cut(w, ":")
		if p[i], err = parseSegment(seg); err != nil {
			return false, p, fmt.Errorf("segment %d %w", i+1, err)
		}
		if more && rest == "" {
			// "a:" would otherwise silently mean "a:*".
			return false, p, fmt.Errorf("segment %d is empty", i+2)
		}
		w = rest
	}
	return deny, p, nil
}

func parseSegment(s string) (segment, error) {
	if s == "" {
		return segment{}, errors.New("is empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '_', c == '-', c == '/':
		case c == '*':
			if i != len(s)-1 {
				return segment{}, errors.New("has * before its end (only a trailing * is allowed)")
			}
		default:
			return segment{}, fmt.Errorf("has invalid %s (allowed: A-Z a-z 0-9 . _ - / and a trailing *)", describe(s[i:]))
		}
	}
	switch {
	case s == "*":
		return segment{any: true}, nil
	case strings.HasSuffix(s, "*"):
		return segment{lit: s[:len(s)-1], prefix: true}, nil
	}
	return segment{lit: s}, nil
}

// describe names the first character of s in a form that is safe to print.
func describe(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[0])
	}
	return fmt.Sprintf("character %q", r)
}

// Allows reports whether the scope admits the operation. It does not
// allocate. An empty scope admits everything: which services a key type may
// call at all is decided elsewhere. An empty kind or operation is unknown:
// only an allow pattern with "*" there admits it, and a deny pattern naming
// anything there refuses it (see segment.match).
func (s *Scope) Allows(service, kind, operation string) bool {
	if s == nil || len(s.allow)+len(s.deny) == 0 {
		return true
	}
	for i := range s.deny {
		if s.deny[i].match(service, kind, operation, true) {
			return false
		}
	}
	for i := range s.allow {
		if s.allow[i].match(service, kind, operation, false) {
			return true
		}
	}
	return false
}

// Services returns the distinct literal service names the scope mentions,
// in allow and deny patterns alike, in order of first appearance. Wildcard
// and prefix services are left out: they cannot name an undeclared service.
// The caller owns the returned slice.
func (s *Scope) Services() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.services)
}

// String returns the canonical scope: the patterns as written, separated by
// single spaces. Parsing it gives an equivalent Scope.
func (s *Scope) String() string {
	if s == nil {
		return ""
	}
	return s.text
}

// Size is the approximate number of bytes the compiled scope holds: the
// struct, its patterns, its service names and its text. The cache charges
// it to every key that holds the scope, shared or not, so that its bound
// holds whatever the sharing.
func (s *Scope) Size() int64 {
	if s == nil {
		return 0
	}
	n := int64(unsafe.Sizeof(*s)) + int64(len(s.text))
	n += int64(cap(s.allow)+cap(s.deny)) * int64(unsafe.Sizeof(pattern{}))
	for _, ps := range [][]pattern{s.allow, s.deny} {
		for i := range ps {
			for _, g := range ps[i] {
				n += int64(len(g.lit))
			}
		}
	}
	n += int64(cap(s.services)) * int64(unsafe.Sizeof(""))
	for _, svc := range s.services {
		n += int64(len(svc))
	}
	return n
}

// Union is the scope SPEC §11 gives a key holding roles: the allow
// patterns of every part and every deny pattern of any of them, as if
// their texts were written one after the other. Empty (nil) parts add
// nothing, so the union of only empty parts is the empty scope (which
// allows everything), and an empty own scope with roles allows what the
// roles allow. The parts' size bounds apply to each part, not to the
// union. The result shares nothing mutable with the parts.
func Union(parts ...*Scope) *Scope {
	var u Scope
	var texts []string
	n := 0
	for _, p := range parts {
		if p == nil || len(p.allow)+len(p.deny) == 0 {
			continue
		}
		n++
		u.allow = append(u.allow, p.allow...)
		u.deny = append(u.deny, p.deny...)
		for _, svc := range p.services {
			if !slices.Contains(u.services, svc) {
				u.services = append(u.services, svc)
			}
		}
		texts = append(texts, p.text)
	}
	if n == 0 {
		return nil
	}
	u.text = strings.Join(texts, " ")
	return &u
}

// Covers reports whether some allow pattern of the scope matches the
// operation, reading unknown (empty) segments the way a deny pattern does:
// a pattern naming anything there covers them. It is how a service access
// denial, written in allow form, decides what it blocks (SPEC §9, §11: a
// denial naming any operation of a service applies to a request whose
// operation is unknown). Deny patterns are ignored; an empty scope covers
// nothing. It does not allocate.
func (s *Scope) Covers(service, kind, operation string) bool {
	if s == nil {
		return false
	}
	for i := range s.allow {
		if s.allow[i].match(service, kind, operation, true) {
			return true
		}
	}
	return false
}

// HasDeny reports whether the scope holds a deny ("!") pattern.
func (s *Scope) HasDeny() bool { return s != nil && len(s.deny) > 0 }

// IsEmpty reports whether the scope has no pattern at all (it allows
// everything).
func (s *Scope) IsEmpty() bool { return s == nil || len(s.allow)+len(s.deny) == 0 }
