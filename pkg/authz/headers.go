package authz

import (
	"errors"
	"fmt"
	"strings"
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

// validHeaderName reports whether s is an HTTP token (RFC 9110 tchar) in
// lower case, as Envoy sends header names.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
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

func compileHeaders(k *Key, reserved []string) ([]headerTemplate, error) {
	var errs []error
	var out []headerTemplate
	seen := map[string]bool{}
	for i, h := range k.Spec.ResponseHeaders {
		name := strings.ToLower(h.Name)
		bad := func(err error) { errs = append(errs, fmt.Errorf("[%d] %q: %w", i, h.Name, err)) }
		if !validHeaderName(name) {
			bad(errors.New("not a valid header name"))
			continue
		}
		if seen[name] {
			bad(errors.New("duplicate header name"))
			continue
		}
		seen[name] = true
		if isReserved(name, reserved) {
			bad(errors.New("name is reserved for keygate's identity or key header"))
			continue
		}
		parts, err := ParseTemplate(h.Value)
		if err != nil {
			bad(err)
			continue
		}
		dynamic := false
		for _, p := range parts {
			switch p.v {
			case varTenantID, varTenantName:
				if k.Spec.TenantID == "" {
					bad(fmt.Errorf("uses a tenant variable but %s keys have no tenant", k.Spec.Type))
				}
			case varService, varOperation:
				dynamic = true
			}
			if p.v < 0 && !validHeaderValue(p.lit) {
				bad(errors.New("value contains control characters"))
			}
		}
		if h.Disabled {
			continue // checked, but never sent
		}
		t := headerTemplate{name: name}
		if dynamic {
			t.parts = parts
		} else {
			t.static = render(parts, k, nil)
		}
		out = append(out, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func isReserved(name string, reserved []string) bool {
	for _, r := range reserved {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

func render(parts []templatePart, k *Key, t *Target) string {
	if len(parts) == 1 && parts[0].v < 0 {
		return parts[0].lit
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(value(p, k, t))
	}
	return b.String()
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
		return k.ExpiresAtText
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
	for i := range k.headers {
		h := &k.headers[i]
		v := h.static
		if h.parts != nil {
			v = render(h.parts, k, t)
		}
		dst = append(dst, Header{Name: h.name, Value: v})
	}
	return dst
}

// ResponseHeaderCount is the number of headers AppendResponseHeaders adds.
func (k *Key) ResponseHeaderCount() int { return len(k.headers) }

// ResponseHeadersVary reports whether some response header depends on the
// request (${service} or ${operation}), so that an adapter can build the
// others once per key.
func (k *Key) ResponseHeadersVary() bool {
	for i := range k.headers {
		if k.headers[i].parts != nil {
			return true
		}
	}
	return false
}
