package telemetry

import (
	"log/slog"
	"net/url"
	"slices"
	"strings"
)

// Redacted replaces the value of a secret header or query parameter.
const Redacted = "[redacted]"

// sensitiveHeaders are redacted whatever keygate's configuration says.
var sensitiveHeaders = []string{"x-api-key", "authorization", "proxy-authorization", "cookie", "set-cookie"}

// sensitiveParts redact any header whose name contains one of them
// (x-auth-token, x-client-secret, x-session-id, …).
var sensitiveParts = []string{"token", "secret", "password", "passwd", "api-key", "apikey", "api_key", "credential", "session", "cookie"}

// SensitiveHeader reports whether a header's value must not be logged:
// the key header and the ones named in extra, x-api-key, authorization,
// proxy-authorization, cookie, set-cookie, and any name containing token,
// secret, password, api-key, credential, session or cookie. Names
// are compared without case.
func SensitiveHeader(name string, extra ...string) bool {
	name = strings.ToLower(name)
	if slices.Contains(sensitiveHeaders, name) {
		return true
	}
	for _, e := range extra {
		if e != "" && strings.EqualFold(name, e) {
			return true
		}
	}
	for _, p := range sensitiveParts {
		if strings.Contains(name, p) {
			return true
		}
	}
	return false
}

// RedactHeaders returns a copy of h fit for a log: every sensitive header
// (see SensitiveHeader; pass the configured key header in extra) keeps
// its name, so a log still shows that it was sent, with its value replaced
// by Redacted. h is not modified.
func RedactHeaders(h map[string]string, extra ...string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if SensitiveHeader(k, extra...) {
			v = Redacted
		}
		out[k] = v
	}
	return out
}

// LogHeaders logs request headers redacted, as a group sorted by name:
//
//	log.Debug("request", "headers", telemetry.LogHeaders{Headers: h, KeyHeader: cfg.KeyHeader})
//
// The redaction happens only if the record is written.
type LogHeaders struct {
	Headers   map[string]string
	KeyHeader string
}

// LogValue implements slog.LogValuer.
func (l LogHeaders) LogValue() slog.Value {
	names := make([]string, 0, len(l.Headers))
	for k := range l.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	attrs := make([]slog.Attr, 0, len(names))
	for _, k := range names {
		v := l.Headers[k]
		if SensitiveHeader(k, l.KeyHeader) {
			v = Redacted
		}
		attrs = append(attrs, slog.String(k, v))
	}
	return slog.GroupValue(attrs...)
}

// RedactPath returns a request target with the values of the named query
// parameters (the configured key query parameter) replaced by Redacted,
// for logs. A target whose query cannot be parsed loses its whole query.
func RedactPath(path string, params ...string) string {
	base, query, ok := strings.Cut(path, "?")
	if !ok || len(params) == 0 {
		return path
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	parts := strings.Split(query, "&")
	for i, part := range parts {
		name, _, _ := strings.Cut(part, "=")
		n, err := url.QueryUnescape(name)
		if err != nil {
			return base + "?" + Redacted
		}
		for _, p := range params {
			if p != "" && n == p {
				parts[i] = name + "=" + Redacted
			}
		}
	}
	out := base + "?" + strings.Join(parts, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}
