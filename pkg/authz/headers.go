package authz

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Header is one header name and value an adapter sends.
type Header struct {
	Name, Value string
}

// Template variables a response header value may use (SPEC §5).
const (
	varKeyID = iota
	varKeyName
	varAppID
	varAppName
	varTenantID
	varTenantName
	varAccountID
	varService
	varOperation
	varKeyExpiresAt
)

var templateVars = map[string]int{
	"key.id":         varKeyID,
	"key.name":       varKeyName,
	"app.id":         varAppID,
	"app.name":       varAppName,
	"tenant.id":      varTenantID,
	"tenant.name":    varTenantName,
	"account.id":     varAccountID,
	"service":        varService,
	"operation":      varOperation,
	"key.expires_at": varKeyExpiresAt,
}

// templatePart is a literal (v < 0) or a variable.
type templatePart struct {
	lit string
	v   int
}

// headerTemplate is a compiled response header. When its value depends only
// on the key it is rendered once at load (static); otherwise parts are
// filled per request with the service and operation.
type headerTemplate struct {
	name   string
	static string
	parts  []templatePart // nil when static
}

// ParseTemplate compiles a header value template: "${var}" is a variable,
// "$$" a literal "$". It reports unknown variables and stray "$".
func ParseTemplate(s string) ([]templatePart, error) {
	var parts []templatePart
	var lit strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			lit.WriteByte(c)
			i++
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "$$"):
			lit.WriteByte('$')
			i += 2
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ${ at offset %d", i)
			}
			name := s[i+2 : i+2+end]
			v, ok := templateVars[name]
			if !ok {
				return nil, fmt.Errorf("unknown variable ${%s} (known: key.id, key.name, app.id, app.name, tenant.id, tenant.name, account.id, service, operation, key.expires_at)", name)
			}
			if lit.Len() > 0 {
				parts = append(parts, templatePart{lit: lit.String(), v: -1})
				lit.Reset()
			}
			parts = append(parts, templatePart{v: v})
			i += 2 + end + 1
		default:
			return nil, fmt.Errorf("stray $ at offset %d (write $$ for a literal $)", i)
		}
	}
	if lit.Len() > 0 || len(parts) == 0 {
		parts = append(parts, templatePart{lit: lit.String(), v: -1})
	}
	return parts, nil
}

// Response header rules (SPEC §9 "Responses").
const (
	// MaxResponseHeaders is how many response headers a key may have.
	MaxResponseHeaders = 20
	// MaxHeaderNameLen is the longest response header name.
	MaxHeaderNameLen = 64
	// MaxHeaderValueLen is the longest response header value once
	// rendered. What the key fixes is checked when the key is saved;
	// ${service} and ${operation} are filled per request, and a value
	// they would take past the bound is cut there (at a UTF-8 boundary).
	MaxHeaderValueLen = 1024
)

// ErrHeaderValueTooLong is a response header whose value, rendered for
// its key, passes MaxHeaderValueLen: a size limit (SPEC §10), which the
// Account API answers ResourceExhausted rather than InvalidArgument.
var ErrHeaderValueTooLong = fmt.Errorf("value longer than %d bytes once rendered for this key", MaxHeaderValueLen)

// reservedPrefixes are the prefixes no response header may start with:
// names proxies and upstreams read as the proxy's own.
var reservedPrefixes = []string{"x-envoy-", "x-forwarded-", "x-real-ip", "x-request-id"}

// IdentityPrefix is the prefix the identity header names share, up to and
// including its last "-" ("x-keygate-" for the defaults), or "" when they
// share nothing more specific than "x-": response headers may not start
// with it, so that a key can never pose as keygate's own headers.
func IdentityPrefix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	p := strings.ToLower(names[0])
	for _, n := range names[1:] {
		n = strings.ToLower(n)
		i := 0
		for i < len(p) && i < len(n) && p[i] == n[i] {
			i++
		}
		p = p[:i]
	}
	cut := strings.LastIndexByte(p, '-')
	if cut < 0 {
		return ""
	}
	p = p[:cut+1]
	if p == "x-" || p == "-" {
		return ""
	}
	return p
}

// checkHeaderName applies SPEC §9's name rules to a lower-cased name.
func checkHeaderName(name string, opts *CompileOptions) error {
	if name == "" {
		return errors.New("name required")
	}
	if len(name) > MaxHeaderNameLen {
		return fmt.Errorf("name longer than %d bytes", MaxHeaderNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return errors.New("not a valid header name: only a-z, 0-9 and - are allowed")
		}
	}
	if !strings.HasPrefix(name, "x-") {
		return errors.New("name must start with x-")
	}
	for _, r := range opts.ReservedHeaders {
		if strings.EqualFold(name, r) {
			return errors.New("name is reserved for keygate's identity or key header")
		}
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("name is reserved: it may not start with %s", p)
		}
	}
	for _, p := range opts.ReservedPrefixes {
		if p != "" && strings.HasPrefix(name, strings.ToLower(p)) {
			return fmt.Errorf("name is reserved for keygate's identity headers (prefix %s)", p)
		}
	}
	return nil
}

// validHeaderValue refuses control characters (CR/LF would split headers).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// compileHeaders checks the key's response headers against SPEC §9's rules
// and compiles them. Strict (lenient false), every problem is an error.
// Lenient, as for keys already stored, a header that breaks a rule is
// dropped instead and its name returned in dropped (disabled ones, never
// sent, are dropped without a word); headers past the limit are dropped
// too, the first MaxResponseHeaders kept.
func compileHeaders(k *Key, specs []HeaderSpec, opts *CompileOptions, lenient bool) (out []headerTemplate, dropped []string, err error) {
	var errs []error
	if len(specs) > MaxResponseHeaders {
		if !lenient {
			return nil, nil, fmt.Errorf("%d headers, more than the %d a key may have", len(specs), MaxResponseHeaders)
		}
		for _, h := range specs[MaxResponseHeaders:] {
			if !h.Disabled {
				dropped = append(dropped, h.Name)
			}
		}
		specs = specs[:MaxResponseHeaders]
	}
	seen := map[string]bool{}
	for i, h := range specs {
		t, err := compileHeader(k, h, opts, seen)
		if err != nil {
			if lenient {
				if !h.Disabled {
					dropped = append(dropped, h.Name)
				}
				continue
			}
			errs = append(errs, fmt.Errorf("[%d] %q: %w", i, h.Name, err))
			continue
		}
		if !h.Disabled {
			out = append(out, t)
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return out, dropped, nil
}

// compileHeader checks and compiles one response header; seen holds the
// names before it.
func compileHeader(k *Key, h HeaderSpec, opts *CompileOptions, seen map[string]bool) (headerTemplate, error) {
	name := strings.ToLower(h.Name)
	if err := checkHeaderName(name, opts); err != nil {
		return headerTemplate{}, err
	}
	if seen[name] {
		return headerTemplate{}, errors.New("duplicate header name")
	}
	seen[name] = true
	parts, err := ParseTemplate(h.Value)
	if err != nil {
		return headerTemplate{}, err
	}
	dynamic := false
	fixed := 0 // bytes of the value the key fixes
	for _, p := range parts {
		switch p.v {
		case varTenantID, varTenantName:
			if k.Spec.TenantID == "" {
				return headerTemplate{}, fmt.Errorf("uses a tenant variable but %s keys have no tenant", k.Spec.Type)
			}
		case varAppID, varAppName:
			if k.Spec.AppID == "" {
				return headerTemplate{}, fmt.Errorf("uses an app variable but %s keys have no app", k.Spec.Type)
			}
		case varService, varOperation:
			dynamic = true
			continue
		}
		if p.v < 0 && !validHeaderValue(p.lit) {
			return headerTemplate{}, errors.New("value contains control characters")
		}
		fixed += len(value(p, k, nil))
	}
	if fixed > MaxHeaderValueLen {
		return headerTemplate{}, ErrHeaderValueTooLong
	}
	t := headerTemplate{name: name}
	if dynamic {
		t.parts = parts
	} else {
		t.static = render(parts, k, nil)
	}
	return t, nil
}

func render(parts []templatePart, k *Key, t *Target) string {
	if len(parts) == 1 && parts[0].v < 0 {
		return parts[0].lit
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(value(p, k, t))
	}
	return truncateValue(b.String())
}

// truncateValue cuts a rendered value to MaxHeaderValueLen bytes, at a
// UTF-8 boundary. Only ${service} and ${operation}, filled per request, can
// take a value there: what the key fixes was bounded when it was saved.
func truncateValue(s string) string {
	if len(s) <= MaxHeaderValueLen {
		return s
	}
	n := MaxHeaderValueLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func value(p templatePart, k *Key, t *Target) string {
	switch p.v {
	case varKeyID:
		return k.Spec.ID
	case varKeyName:
		return k.Spec.Name
	case varAppID:
		return k.Spec.AppID
	case varAppName:
		return k.Spec.AppName
	case varTenantID:
		return k.Spec.TenantID
	case varTenantName:
		return k.Spec.TenantName
	case varAccountID:
		return k.Spec.AccountID
	case varKeyExpiresAt:
		return k.ExpiresAtText()
	case varService:
		if t != nil {
			return t.Service
		}
	case varOperation:
		if t != nil {
			return t.Operation
		}
	default:
		return p.lit
	}
	return ""
}

// AppendResponseHeaders appends the key's enabled response headers for a
// request to target t. Headers that depend only on the key were rendered at
// load; only ${service} and ${operation} are filled here.
func (k *Key) AppendResponseHeaders(dst []Header, t *Target) []Header {
	headers := k.templates()
	for i := range headers {
		h := &headers[i]
		v := h.static
		if h.parts != nil {
			v = render(h.parts, k, t)
		}
		dst = append(dst, Header{Name: h.name, Value: v})
	}
	return dst
}

// ResponseHeaderCount is the number of headers AppendResponseHeaders adds.
func (k *Key) ResponseHeaderCount() int { return len(k.templates()) }

// ResponseHeadersVary reports whether some response header depends on the
// request (${service} or ${operation}), so that an adapter can build the
// others once per key.
func (k *Key) ResponseHeadersVary() bool {
	for _, h := range k.templates() {
		if h.parts != nil {
			return true
		}
	}
	return false
}
