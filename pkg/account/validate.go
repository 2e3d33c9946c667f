package account

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/store"
)

// Bounds on request fields. They keep records printable and rows small;
// authz.Compile checks what the fields mean. The size limits of SPEC §10
// (names, descriptions, groups, scopes, IP filters, response headers) keep
// what every replica holds per key bounded: past one, a request is
// ResourceExhausted naming the field and the limit. Records stored under
// older, larger bounds keep working; only new values are held to these.
const (
	MaxIDLen          = 128
	MaxNameLen        = 200
	MaxDescriptionLen = 1024
	MaxGroupLen       = 200
	MaxScopeLen       = 4096
	// MaxScopePatterns is below scope.MaxPatterns, which the data plane
	// loads stored scopes with: scopes saved before this bound still load.
	MaxScopePatterns   = 200
	MaxIPFilters       = 100
	MaxIPFilterLen     = 100
	MaxResponseHeaders = authz.MaxResponseHeaders
	// The header bounds are the data plane's (SPEC §9): what it would
	// drop at load is refused when saved. The value bound applies to the
	// template as written, and authz.Compile to it once rendered.
	MaxHeaderNameLen      = authz.MaxHeaderNameLen
	MaxHeaderValueLen     = authz.MaxHeaderValueLen
	MaxPageTokenLen       = 1024
	defaultIDRandomLength = 16
)

// Violations collects every problem of a request, each naming its field,
// so that one InvalidArgument reports them all. Adapters use it too, for
// what only they can check (a timestamp their wire format cannot hold).
type Violations struct {
	list []Violation
	// size are the fields past a size limit (SPEC §10): the request is
	// then ResourceExhausted rather than InvalidArgument.
	size []Violation
}

// Add records that field is wrong.
func (v *Violations) Add(field, format string, args ...any) {
	v.list = append(v.list, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (v *Violations) add(field, format string, args ...any) { v.Add(field, format, args...) }

// tooLarge records that field is past a size limit.
func (v *Violations) tooLarge(field, format string, args ...any) {
	v.size = append(v.size, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (v *Violations) empty() bool { return len(v.list) == 0 && len(v.size) == 0 }

// Err is nil when nothing was recorded; else a ResourceExhausted *Error
// naming every field past a size limit when there is one (the size is
// what the caller must change first), or an InvalidArgument naming every
// violation.
func (v *Violations) Err() error {
	switch {
	case len(v.size) > 0:
		return tooLarge(v.size)
	case len(v.list) > 0:
		return invalid(v.list)
	}
	return nil
}

func (v *Violations) err() error { return v.Err() }

// compileErrors adds authz.Compile's field errors, named as the request
// names them (app → app_id, tenant → tenant_id). prefix is prepended to the
// field name (for nested request fields).
func (v *Violations) compileErrors(err error) {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	for _, e := range list {
		var fe *authz.FieldError
		switch {
		case !errors.As(e, &fe):
			v.add("key", "%s", oneLine(e.Error()))
		case errors.Is(fe.Err, authz.ErrHeaderValueTooLong):
			v.tooLarge(requestField(fe.Field), "%s", oneLine(fe.Err.Error()))
		default:
			v.add(requestField(fe.Field), "%s", oneLine(fe.Err.Error()))
		}
	}
}

func requestField(compileField string) string {
	switch compileField {
	case "app":
		return "app_id"
	case "tenant":
		return "tenant_id"
	}
	return compileField
}

// oneLine joins the lines of a multi-line (errors.Join) message.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// hasControl reports a C0 control character, DEL or another Unicode control
// character, except those allowed.
func hasControl(s, allowed string) bool {
	for _, r := range s {
		if unicode.IsControl(r) && !strings.ContainsRune(allowed, r) {
			return true
		}
	}
	return false
}

// checkID checks a caller-chosen id: 1–128 characters of letters, digits
// and "._~-", starting with a letter or digit (ids end up in headers, URLs
// and command lines). Empty is fine when optional (keygate picks one).
func (v *Violations) checkID(field, id string, required bool) {
	if id == "" {
		if required {
			v.add(field, "required")
		}
		return
	}
	if len(id) > MaxIDLen {
		v.add(field, "longer than %d bytes", MaxIDLen)
		return
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && strings.IndexByte("._~-", c) >= 0:
		default:
			v.add(field, "may contain only letters, digits and . _ ~ - (starting with a letter or digit)")
			return
		}
	}
}

// checkRef checks the id of an existing object: present and not absurdly
// long (anything else simply is not found).
func (v *Violations) checkRef(field, id string) {
	switch {
	case id == "":
		v.add(field, "required")
	case len(id) > MaxIDLen:
		v.add(field, "longer than %d bytes", MaxIDLen)
	}
}

// checkName checks a name: 1–200 bytes, no control, bidirectional or
// invisible characters, no leading or trailing white space.
func (v *Violations) checkName(field, name string, required bool) {
	v.checkLabel(field, name, MaxNameLen, required)
}

// checkLabel checks a one-line label (a name, a group): at most max bytes,
// no control characters nor bidirectional or invisible ones (named by code
// point, never echoed: authz.CheckLabelText), no leading or trailing white
// space. Names of apps, tenants and keys and groups share it.
func (v *Violations) checkLabel(field, name string, max int, required bool) {
	if name == "" {
		if required {
			v.add(field, "required")
		}
		return
	}
	if len(name) > max {
		v.tooLarge(field, "longer than %d bytes", max)
		return
	}
	if err := authz.CheckLabelText(name); err != nil {
		v.add(field, "%s", err)
		return
	}
	if strings.TrimSpace(name) != name {
		v.add(field, "starts or ends with white space")
	}
}

func (v *Violations) checkDescription(field, d string) {
	switch {
	case len(d) > MaxDescriptionLen:
		v.tooLarge(field, "longer than %d bytes", MaxDescriptionLen)
	case hasControl(d, "\n\t"):
		v.add(field, "contains a control character other than newline or tab")
	}
}

func (v *Violations) checkGroup(field, g string) {
	v.checkLabel(field, g, MaxGroupLen, false)
}

func (v *Violations) checkScope(field, s string) {
	if len(s) > MaxScopeLen {
		v.tooLarge(field, "longer than %d bytes", MaxScopeLen)
	} else if n := scope.CountPatterns(s); n > MaxScopePatterns {
		v.tooLarge(field, "%d patterns, more than %d", n, MaxScopePatterns)
	}
}

func (v *Violations) checkIPFilters(field string, f []string) {
	if len(f) > MaxIPFilters {
		v.tooLarge(field, "more than %d filters", MaxIPFilters)
		return
	}
	for i, s := range f {
		if len(s) > MaxIPFilterLen {
			v.tooLarge(field, "[%d]: longer than %d bytes", i, MaxIPFilterLen)
		}
	}
}

func (v *Violations) checkHeaders(field string, hs []authz.HeaderSpec) {
	if len(hs) > MaxResponseHeaders {
		v.tooLarge(field, "%d headers, more than %d", len(hs), MaxResponseHeaders)
		return
	}
	for i, h := range hs {
		if len(h.Name) > MaxHeaderNameLen {
			v.tooLarge(field, "[%d]: name longer than %d bytes", i, MaxHeaderNameLen)
		}
		if len(h.Value) > MaxHeaderValueLen {
			v.tooLarge(field, "[%d]: value longer than %d bytes", i, MaxHeaderValueLen)
		}
	}
}

func (v *Violations) checkPage(size int, token string) {
	if size < 0 {
		v.add("page_size", "must not be negative")
	} else if size > store.MaxPageSize {
		v.add("page_size", "at most %d", store.MaxPageSize)
	}
	if len(token) > MaxPageTokenLen {
		v.add("page_token", "longer than %d bytes", MaxPageTokenLen)
	}
}

// checkTime refuses the zero time written out: it is the store's
// "unset", and taking it for a value would silently clear the field.
func (v *Violations) checkTime(field string, t *time.Time) {
	if t != nil && t.IsZero() {
		v.add(field, "must be after 0001-01-01T00:00:00Z")
	}
}

// newID returns a random id (RFC 4122 version 4 UUID form), for keys whose
// caller did not choose one.
func newID() (string, error) {
	var b [defaultIDRandomLength]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:]), nil
}
