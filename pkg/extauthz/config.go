// Package extauthz adapts keygate's decision (pkg/authz) to Envoy's
// ext_authz v3 protocol: a CheckRequest becomes an authz.Request, and a
// Decision becomes a CheckResponse. It is the only place that maps reason
// codes to gRPC codes, HTTP statuses and deny bodies.
package extauthz

import (
	"errors"
	"fmt"
	"strings"

	"github.com/keygate/keygate/pkg/authz"
)

// IdentityHeaders are the names of the headers keygate sets upstream on
// allow, overwriting whatever a client sent.
type IdentityHeaders struct {
	KeyID     string
	KeyName   string
	AppID     string
	TenantID  string
	AccountID string
}

// DefaultIdentityHeaders are SPEC §5's default names.
var DefaultIdentityHeaders = IdentityHeaders{
	KeyID:     "x-keygate-key-id",
	KeyName:   "x-keygate-key-name",
	AppID:     "x-keygate-app-id",
	TenantID:  "x-keygate-tenant-id",
	AccountID: "x-keygate-account-id",
}

// Names lists the identity header names.
func (h IdentityHeaders) Names() []string {
	return []string{h.KeyID, h.KeyName, h.AppID, h.TenantID, h.AccountID}
}

// Config is how the adapter reads requests and shapes responses.
type Config struct {
	// KeyHeader is the header that carries the API key (default x-api-key).
	KeyHeader string
	// KeyQueryParam, when set, is a query parameter that may carry the key
	// instead; off by default because query strings end up in logs.
	KeyQueryParam string
	// XFFTrustedHops is how many proxies in front of Envoy append to
	// x-forwarded-for; 0 means the client IP is Envoy's direct peer.
	XFFTrustedHops int
	Identity       IdentityHeaders
	// GenericKeyErrors replaces the reason code of every key failure
	// (missing, malformed, unknown, inactive, not yet valid, expired) in
	// deny bodies with one generic message, so a caller cannot probe keys.
	GenericKeyErrors bool
	// KeptAllowBytes bounds the bytes the gRPC path keeps of keys' allows
	// in their wire form (allowslabs.go), in slabs of 1 MiB: past it the
	// oldest slab's keys encode theirs again. 0: 64 MiB.
	KeptAllowBytes int64
}

// WithDefaults fills unset fields with their defaults and lower-cases
// header names the way Envoy sends them.
func (c Config) WithDefaults() Config {
	if c.KeyHeader == "" {
		c.KeyHeader = "x-api-key"
	}
	if c.KeptAllowBytes <= 0 {
		c.KeptAllowBytes = defaultKeptAllowBytes
	}
	c.KeyHeader = strings.ToLower(c.KeyHeader)
	d := DefaultIdentityHeaders
	for _, f := range []struct {
		dst *string
		def string
	}{
		{&c.Identity.KeyID, d.KeyID}, {&c.Identity.KeyName, d.KeyName}, {&c.Identity.AppID, d.AppID},
		{&c.Identity.TenantID, d.TenantID}, {&c.Identity.AccountID, d.AccountID},
	} {
		if *f.dst == "" {
			*f.dst = f.def
		}
		*f.dst = strings.ToLower(*f.dst)
	}
	return c
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.XFFTrustedHops < 0 {
		errs = append(errs, fmt.Errorf("xff-trusted-hops: %d is negative", c.XFFTrustedHops))
	}
	names := append([]string{c.KeyHeader}, c.Identity.Names()...)
	seen := map[string]bool{}
	for _, n := range names {
		if !validHeaderName(n) {
			errs = append(errs, fmt.Errorf("header name %q is not a valid lower-case HTTP header name", n))
		}
		if seen[n] {
			errs = append(errs, fmt.Errorf("header name %q is used twice (key header and identity headers must differ)", n))
		}
		seen[n] = true
	}
	return errors.Join(errs...)
}

// ReservedHeaders are the names a key's response headers may not use.
func (c Config) ReservedHeaders() []string {
	return append([]string{c.KeyHeader}, c.Identity.Names()...)
}

// ReservedPrefixes are the prefixes a key's response header names may not
// start with besides SPEC §9's fixed ones: the identity headers' common
// prefix ("x-keygate-" by default), when they share one.
func (c Config) ReservedPrefixes() []string {
	if p := authz.IdentityPrefix(c.Identity.Names()); p != "" {
		return []string{p}
	}
	return nil
}

// CompileOptions are the options keys are compiled with for this
// configuration: its reserved header names and prefixes. c should have
// its defaults filled (WithDefaults).
func (c Config) CompileOptions() authz.CompileOptions {
	return authz.CompileOptions{ReservedHeaders: c.ReservedHeaders(), ReservedPrefixes: c.ReservedPrefixes()}
}

// protectedHeaders are the request header names a client must not be able
// to pass off upstream under another spelling: the key header and the
// identity headers, lower-cased.
func (c Config) protectedHeaders() []string {
	return append([]string{strings.ToLower(c.KeyHeader)}, lowerAll(c.Identity.Names())...)
}

func lowerAll(names []string) []string {
	for i, n := range names {
		names[i] = strings.ToLower(n)
	}
	return names
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
