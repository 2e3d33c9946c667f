package route

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
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
)

// NormalizePath puts a request path (without its query string) in the form
// routes are matched on (SPEC §4, §9): duplicate slashes merged,
// percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) decoded, the
// hex digits of the remaining escapes upper-cased, then "." and ".."
// segments removed as RFC 3986 §5.2.4 does. "%2F" stays encoded, so it never
// splits a segment.
//
// The order of the steps is SPEC §9's. Decoding before dot segments are
// removed is what stops "%2e%2e" from passing as a name rather than as "..".
//
// A path that is already normal is returned as is, without allocating.
// The error wraps ErrInvalidPath.
func NormalizePath(p string) (string, error) {
	n, e, at := normalize(p)
	switch e {
	case pathEmpty:
		return "", fmt.Errorf("%w: empty", ErrInvalidPath)
	case pathRelative:
		return "", fmt.Errorf("%w: does not start with \"/\"", ErrInvalidPath)
	case pathBadEscape:
		end := min(at+3, len(p))
		return "", fmt.Errorf("%w: malformed percent-escape %q at byte %d", ErrInvalidPath, p[at:end], at)
	}
	return n, nil
}

// normalize is NormalizePath without the error text; at is the byte offset
// of a malformed escape.
func normalize(p string) (_ string, _ pathErr, at int) {
	switch {
	case p == "":
		return "", pathEmpty, 0
	case p[0] != '/':
		return "", pathRelative, 0
	case isNormal(p):
		return p, pathOK, 0
	}
	return rewrite(p)
}

// isNormal reports whether normalising p would leave it unchanged. It errs
// towards false (a malformed escape is "not normal"), leaving the
// diagnosis to rewrite. It looks for the few byte sequences that need work
// with the strings package's vectorised searches, which beats a byte loop
// on the paths every request brings.
func isNormal(p string) bool {
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
		if !isUpperHex(hi) || !isUpperHex(lo) || isUnreserved(unhex(hi)<<4|unhex(lo)) {
			return false
		}
		j := strings.IndexByte(p[i+3:], '%')
		if j < 0 {
			break
		}
		i += 3 + j
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
func rewrite(p string) (string, pathErr, int) {
	buf := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '/':
			if len(buf) > 0 && buf[len(buf)-1] == '/' {
				continue
			}
		case '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", pathBadEscape, i
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			if isUnreserved(v) {
				buf = append(buf, v)
			} else {
				buf = append(buf, '%', upperHex[v>>4], upperHex[v&0xf])
			}
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

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
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
