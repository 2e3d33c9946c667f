package route

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// The checks of values a routes file writes: names, hosts, methods, path
// templates. The loader (parse.go) reports what they find.

// isToken is RFC 9110's token, the syntax of a method.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// compileHost lower-cases a route's host and checks it. IPv6 literals are
// kept without brackets, the form requestHost gives.
func compileHost(v string) (string, error) {
	h := strings.ToLower(v)
	if strings.HasPrefix(h, "[") {
		if !strings.HasSuffix(h, "]") {
			return "", fmt.Errorf("%q: a host must not include a port (requests are matched without theirs)", v)
		}
		h = h[1 : len(h)-1]
		if a, err := netip.ParseAddr(h); err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("%q is not an IPv6 address", v)
		}
		return h, nil
	}
	if strings.Count(h, ":") > 1 {
		if a, err := netip.ParseAddr(h); err == nil && a.Is6() && a.Zone() == "" {
			return h, nil
		}
		return "", fmt.Errorf("%q is not a host name or address", v)
	}
	if strings.Contains(h, ":") {
		return "", fmt.Errorf("%q: a host must not include a port (requests are matched without theirs)", v)
	}
	h = strings.TrimSuffix(h, ".")
	switch {
	case h == "":
		return "", errors.New("empty: leave host out to match any host")
	case h == "*":
		return "", errors.New(`"*" is any host: leave host out instead`)
	case len(h) > maxHostLen:
		return "", fmt.Errorf("%q is longer than %d bytes", v, maxHostLen)
	}
	labels := strings.Split(strings.TrimPrefix(h, "*."), ".")
	for _, label := range labels {
		if label == "" {
			return "", fmt.Errorf("%q has an empty label", v)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_':
			case c == '*':
				return "", fmt.Errorf("%q: a wildcard is a whole first label, like *.example.com", v)
			default:
				return "", fmt.Errorf("%q has invalid character %q", v, c)
			}
		}
	}
	return h, nil
}

// checkName is the charset of service names, kinds and operations: the
// characters a scope pattern can name literally.
func checkName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return fmt.Errorf("%q has invalid character %q (allowed: A-Z a-z 0-9 . _ - /)", s, s[i:i+1])
		}
	}
	return nil
}

// isGRPCServiceName is package.Service: dot-separated protobuf identifiers,
// at least one dot.
func isGRPCServiceName(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if !isIdent(p) {
			return false
		}
	}
	return true
}

// parseTemplate splits a normalised path into segments; a parameter is a
// whole segment, {name}.
func parseTemplate(p string) (segs []segment, literals int, err error) {
	seen := make(map[string]bool)
	for _, s := range strings.Split(p[1:], "/") {
		if !strings.ContainsAny(s, "{}") {
			segs = append(segs, segment{lit: s})
			literals++
			continue
		}
		if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' || strings.ContainsAny(s[1:len(s)-1], "{}") {
			return nil, 0, fmt.Errorf("segment %q: a parameter is a whole segment, like {id}", s)
		}
		name := s[1 : len(s)-1]
		switch {
		case name == "":
			return nil, 0, errors.New("empty parameter {}: name it, like {id}")
		case !isIdent(name):
			return nil, 0, fmt.Errorf("parameter name %q: use letters, digits and _", name)
		case seen[name]:
			return nil, 0, fmt.Errorf("parameter {%s} appears twice", name)
		}
		seen[name] = true
		segs = append(segs, segment{param: true})
	}
	return segs, literals, nil
}
