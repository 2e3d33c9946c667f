package graphql

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A small, strict JSON scanner for the request body. It reads only the top
// level of a GraphQL request (query, operationName, extensions) and skips
// every other value without building it, which keeps variables free. Being
// strict costs nothing here: a body a real server would accept is valid JSON,
// and anything else is denied.

// maxJSONDepth bounds how deeply the body's JSON may nest (variables are
// the only deep part of a GraphQL request).
const maxJSONDepth = 256

type scanner struct {
	b []byte
	i int
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("request body is not valid JSON at offset %d: %s", s.i, fmt.Sprintf(format, args...))
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.unexpected(fmt.Sprintf("%q", c))
	}
	s.i++
	return nil
}

func (s *scanner) unexpected(want string) error {
	if s.i >= len(s.b) {
		return s.errorf("unexpected end, want %s", want)
	}
	return s.errorf("unexpected %q, want %s", s.b[s.i], want)
}

// str reads a string and returns its raw contents (between the quotes) and
// whether they hold an escape.
func (s *scanner) str() (raw []byte, escaped bool, err error) {
	if err := s.expect('"'); err != nil {
		return nil, false, err
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				s.i = len(s.b)
				return nil, false, s.errorf("unterminated string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return nil, false, s.errorf(`malformed \u escape`)
				}
				s.i += 6
			default:
				return nil, false, s.errorf("invalid escape %q", s.b[s.i:s.i+2])
			}
		case c < 0x20:
			return nil, false, s.errorf("control character %#x in a string", c)
		default:
			s.i++
		}
	}
	return nil, false, s.errorf("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// unescape decodes the raw contents of a string str accepted. A lone
// surrogate becomes U+FFFD, as in encoding/json.
func unescape(raw []byte, escaped bool) string {
	if !escaped {
		return string(raw)
	}
	var sb strings.Builder
	sb.Grow(len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			sb.Write(raw[i:j])
			i = j
			continue
		}
		switch raw[i+1] {
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hex4(raw[i+2 : i+6])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			sb.WriteRune(r)
			continue
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		default: // " \ /
			sb.WriteByte(raw[i+1])
		}
		i += 2
	}
	return sb.String()
}

// keyIs compares a raw key with a plain ASCII name without allocating.
func keyIs(raw []byte, escaped bool, name string) bool {
	if !escaped {
		return string(raw) == name
	}
	return unescape(raw, true) == name
}

// skip reads one value of any kind, checking its syntax.
func (s *scanner) skip(depth int) error {
	switch c := s.peek(); {
	case c == '"':
		_, _, err := s.str()
		return err
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return s.errorf("nested deeper than %d levels", maxJSONDepth)
		}
		s.i++
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		if s.peek() == closing {
			s.i++
			return nil
		}
		for {
			if c == '{' {
				if _, _, err := s.str(); err != nil {
					return err
				}
				if err := s.expect(':'); err != nil {
					return err
				}
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.i++
			case closing:
				s.i++
				return nil
			default:
				return s.unexpected(fmt.Sprintf("',' or %q", closing))
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return s.unexpected("a value")
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.unexpected(lit)
	}
	s.i += len(lit)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return s.unexpected("a digit")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return s.unexpected("a digit")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return s.unexpected("a digit")
		}
	}
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// end checks that nothing but white space follows the top-level value.
func (s *scanner) end() error {
	if s.peek() != 0 || s.i < len(s.b) {
		return s.errorf("data after the top-level value")
	}
	return nil
}

// object reads an object, calling field for each key with the scanner
// positioned at the value; field must consume the value.
func (s *scanner) object(depth int, field func(raw []byte, escaped bool) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		raw, escaped, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := field(raw, escaped); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.unexpected(`',' or '}'`)
		}
	}
}

var errNotString = errors.New("not a string")

// rawStringOrNull reads a string value, or null (""), without decoding
// it: the raw contents alias the body, and escaped says whether unescape
// is needed.
func (s *scanner) rawStringOrNull() (raw string, escaped bool, err error) {
	switch s.peek() {
	case '"':
		b, escaped, err := s.str()
		return bytesToString(b), escaped, err
	case 'n':
		return "", false, s.literal("null")
	}
	if err := s.skip(1); err != nil {
		return "", false, err
	}
	return "", false, errNotString
}
