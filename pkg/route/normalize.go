package route

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidPath is wrapped by every error NormalizePath returns.
var ErrInvalidPath = errors.New("invalid path")

// pathErr says why a path cannot be normalised. Resolve only needs the
// class, so it is kept apart from the error text to keep bad requests from
// allocating.
type pathErr uint8

const (
	pathOK pathErr = iota
	pathEmpty
	pathRelative
	pathBadEscape
	// The rest are paths an upstream could read with other segments than
	// keygate does (SPEC §9): refused unless the routes file opts in.
	pathEncodedSlash     // %2F, unless allowed
	pathEncodedBackslash // %5C
	pathBackslash        // a raw \
	pathEncodedPercent   // %25: decoded twice it is another escape
	pathBadUTF8          // escapes that decode to invalid UTF-8 (%c0%ae)
	pathBadByte          // a raw byte outside printable ASCII, or a space
)

// NormalizePath puts a request path (without its query string) in the form
// routes are matched on (SPEC §4, §9): duplicate slashes merged,
// percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) decoded, the
// hex digits of the remaining escapes upper-cased, then "." and ".."
// segments removed as RFC 3986 §5.2.4 does.
//
// The order of the steps is SPEC §9's. Decoding before dot segments are
// removed is what stops "%2e%2e" from passing as a name rather than as "..".
//
// A path that an upstream could split into other segments than keygate is
// refused: an encoded slash or backslash, a raw backslash, an encoded
// percent (decoded twice, "%252e" is a dot), escapes that decode to invalid
// UTF-8 ("%c0%ae", an overlong dot some decoders accept), or a raw byte
// outside printable ASCII. NormalizePathAllowingSlashes keeps "%2F" as part
// of its segment instead.
//
// A path that is already normal is returned as is, without allocating.
// The error wraps ErrInvalidPath.
func NormalizePath(p string) (string, error) {
	return normalizePath(p, false)
}

// NormalizePathAllowingSlashes is NormalizePath for a routes file that sets
// allow_encoded_slashes: "%2F" stays encoded, inside its segment.
func NormalizePathAllowingSlashes(p string) (string, error) {
	return normalizePath(p, true)
}

func normalizePath(p string, allowSlashes bool) (string, error) {
	n, e, at := normalize(p, allowSlashes)
	if e == pathOK {
		return n, nil
	}
	return "", pathError(p, e, at)
}

// pathError says what is wrong with p at byte at, and what to do.
func pathError(p string, e pathErr, at int) error {
	esc := func() string { return p[at:min(at+3, len(p))] }
	switch e {
	case pathEmpty:
		return fmt.Errorf("%w: empty", ErrInvalidPath)
	case pathRelative:
		return fmt.Errorf("%w: does not start with \"/\"", ErrInvalidPath)
	case pathBadEscape:
		return fmt.Errorf("%w: malformed percent-escape %q at byte %d", ErrInvalidPath, esc(), at)
	case pathEncodedSlash:
		return fmt.Errorf("%w: encoded slash %q at byte %d: upstreams that decode it see another path (set allow_encoded_slashes: true in the routes file if the API needs it)", ErrInvalidPath, esc(), at)
	case pathEncodedBackslash:
		return fmt.Errorf("%w: encoded backslash %q at byte %d: some upstreams read it as a slash", ErrInvalidPath, esc(), at)
	case pathBackslash:
		return fmt.Errorf("%w: backslash at byte %d: some upstreams read it as a slash", ErrInvalidPath, at)
	case pathEncodedPercent:
		return fmt.Errorf("%w: encoded percent %q at byte %d: decoded twice it is another character", ErrInvalidPath, esc(), at)
	case pathBadUTF8:
		return fmt.Errorf("%w: percent-escapes at byte %d decode to invalid UTF-8", ErrInvalidPath, at)
	case pathBadByte:
		return fmt.Errorf("%w: byte %#x at byte %d: only printable ASCII may appear unencoded", ErrInvalidPath, p[at], at)
	}
	return ErrInvalidPath
}

// normalize is NormalizePath without the error text; at is the byte offset
// of what is wrong.
func normalize(p string, allowSlashes bool) (_ string, _ pathErr, at int) {
	switch {
	case p == "":
		return "", pathEmpty, 0
	case p[0] != '/':
		return "", pathRelative, 0
	case isNormal(p):
		return p, pathOK, 0
	}
	return rewrite(p, allowSlashes)
}

// isNormal reports whether normalising p would leave it unchanged and
// accept it. It errs towards false (a malformed or refused escape, an
// encoded slash even where allowed, is "not normal"), leaving the
// diagnosis to rewrite. It looks for the few byte sequences that need work
// with the strings package's vectorised searches, which beats a byte loop
// on the paths every request brings; only the check for bytes outside
// printable ASCII is a loop, over a path that is short.
func isNormal(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	if strings.Contains(p, "//") {
		return false
	}
	for i := strings.Index(p, "/."); i >= 0; {
		if isDotSegment(p[i+1:]) {
			return false
		}
		j := strings.Index(p[i+2:], "/.")
		if j < 0 {
			break
		}
		i += 2 + j
	}
	for i := strings.IndexByte(p, '%'); i >= 0; {
		if i+2 >= len(p) {
			return false
		}
		hi, lo := p[i+1], p[i+2]
		if !isUpperHex(hi) || !isUpperHex(lo) {
			return false
		}
		next := i + 3
		switch v := unhex(hi)<<4 | unhex(lo); {
		case isUnreserved(v) || v == '/' || v == '\\' || v == '%':
			return false
		case v >= 0x80:
			// Non-ASCII text, escaped: normal when it is valid UTF-8
			// written in upper-case hex.
			n, e := utf8Escapes(p[i:])
			if e != pathOK || hasLowerHex(p[i:i+n]) {
				return false
			}
			next = i + n
		}
		j := strings.IndexByte(p[next:], '%')
		if j < 0 {
			break
		}
		i = next + j
	}
	return true
}

// isDotSegment reports whether rest (what follows a "/") starts with a "."
// or ".." segment.
func isDotSegment(rest string) bool {
	switch {
	case rest == "." || rest == "..":
		return true
	case strings.HasPrefix(rest, "./"), strings.HasPrefix(rest, "../"):
		return true
	}
	return false
}

// rewrite is the slow path: one buffer, first filled with the decoded,
// slash-merged path, then compacted in place while dot segments are
// removed (the write index never passes the read index).
func rewrite(p string, allowSlashes bool) (string, pathErr, int) {
	buf := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			if len(buf) > 0 && buf[len(buf)-1] == '/' {
				continue
			}
		case c == '\\':
			return "", pathBackslash, i
		case c <= ' ' || c >= 0x7f:
			return "", pathBadByte, i
		case c == '%':
			v, ok := escapeAt(p, i)
			if !ok {
				return "", pathBadEscape, i
			}
			switch {
			case isUnreserved(v):
				buf = append(buf, v)
				i += 2
				continue
			case v == '/' && !allowSlashes:
				return "", pathEncodedSlash, i
			case v == '\\':
				return "", pathEncodedBackslash, i
			case v == '%':
				return "", pathEncodedPercent, i
			case v >= 0x80:
				n, e := utf8Escapes(p[i:])
				if e != pathOK {
					return "", e, i
				}
				for end := i + n; i < end; i += 3 {
					v, _ := escapeAt(p, i)
					buf = append(buf, '%', upperHex[v>>4], upperHex[v&0xf])
				}
				i-- // the loop's i++
				continue
			}
			buf = append(buf, '%', upperHex[v>>4], upperHex[v&0xf])
			i += 2
			continue
		}
		buf = append(buf, c)
	}

	w := 0 // buf[:w] is the output: "/seg" repeated
	for r := 1; ; {
		end := len(buf)
		if j := bytes.IndexByte(buf[r:], '/'); j >= 0 {
			end = r + j
		}
		seg := buf[r:end]
		last := end == len(buf)
		switch {
		case len(seg) == 1 && seg[0] == '.':
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			w = max(bytes.LastIndexByte(buf[:w], '/'), 0)
		default:
			buf[w] = '/'
			w += 1 + copy(buf[w+1:], seg)
			if last {
				return string(buf[:w]), pathOK, 0
			}
			r = end + 1
			continue
		}
		// A dot segment at the end leaves the directory it names: "/a/.."
		// is "/", "/a/b/." is "/a/b/".
		if last {
			buf[w] = '/'
			return string(buf[:w+1]), pathOK, 0
		}
		r = end + 1
	}
}

// escapeAt decodes the percent-escape at p[i] ("%41").
func escapeAt(p string, i int) (byte, bool) {
	if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
		return 0, false
	}
	return unhex(p[i+1])<<4 | unhex(p[i+2]), true
}

// utf8Escapes reads the run of escapes of non-ASCII bytes at the start of
// p and reports its length in bytes of p, or why it is refused: a run
// that does not decode to valid UTF-8 ("%c0%ae", an overlong "." that
// lenient decoders accept) or holds a malformed escape.
func utf8Escapes(p string) (int, pathErr) {
	var dec [4]byte
	n, i := 0, 0
	for i < len(p) && p[i] == '%' {
		v, ok := escapeAt(p, i)
		if !ok {
			return 0, pathBadEscape
		}
		if v < 0x80 {
			break
		}
		dec[n] = v
		n++
		i += 3
		if utf8.FullRune(dec[:n]) {
			if r, size := utf8.DecodeRune(dec[:n]); r == utf8.RuneError && size <= 1 {
				return 0, pathBadUTF8
			}
			n = 0
		}
	}
	if n != 0 {
		return 0, pathBadUTF8 // a sequence cut short
	}
	return i, pathOK
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hasLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'f' {
			return true
		}
	}
	return false
}

func isUpperHex(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// isUnreserved is RFC 3986's unreserved set, the only characters whose
// escaped and literal forms mean the same thing to every server.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
