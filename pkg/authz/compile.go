// Compiling a key: from the plain KeySpec a store holds to the Key the
// engine decides with, checking every field against the server's
// settings (CompileOptions) and the roles the key holds.

package authz

import (
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/scope"
)

// CompileOptions are the server settings a key is checked against.
type CompileOptions struct {
	// ReservedHeaders are header names a key's response headers may not
	// use: the identity headers and the key header.
	ReservedHeaders []string
	// ReservedPrefixes are prefixes a key's response header names may not
	// start with besides SPEC §9's fixed ones: the identity headers'
	// common prefix (IdentityPrefix), "x-keygate-" by default.
	ReservedPrefixes []string
	// Scopes, when set, shares compiled scopes between keys with the same
	// scope text (a bulk load of a million keys has few distinct scopes).
	Scopes *ScopeCache
	// Roles finds the roles keys hold (KeySpec.Roles): the roles of the
	// key's account. A key holding a role it does not find is an error.
	Roles RoleSet
}

// FieldError names the field of a key that is wrong.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// Compile checks a key spec and builds its record. The error joins one
// FieldError per problem, so a caller can report them all at once. It is
// how a key about to be saved is checked.
func Compile(spec KeySpec, opts CompileOptions) (*Key, error) {
	k, _, err := compile(spec, &opts, false)
	return k, err
}

// CompileStored is Compile for a key already stored, saved under older or
// other rules: a response header that breaks SPEC §9's rules is dropped
// rather than failing the key, which keeps working without it. dropped
// names the headers dropped (names only; a caller logs and counts them).
// Every other problem is still an error.
func CompileStored(spec KeySpec, opts CompileOptions) (k *Key, dropped []string, err error) {
	return compile(spec, &opts, true)
}

func compile(spec KeySpec, opts *CompileOptions, lenient bool) (*Key, []string, error) {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, &FieldError{Field: field, Err: err}) }
	access, accessErrs := opts.Scopes.keyAccess(spec.Scope, spec.Roles, opts)
	if accessErrs != nil {
		errs = append(errs, accessErrs...)
		access = &KeyAccess{Scope: spec.Scope, Roles: spec.Roles}
	}
	k := &Key{Spec: spec.info(opts.Scopes, access)}

	if spec.ID == "" {
		bad("id", errors.New("required"))
	}
	if spec.Name == "" {
		bad("name", errors.New("required"))
	}
	switch spec.Type {
	case KeyTypeService:
		if spec.AppID == "" {
			bad("app", errors.New("required for service keys"))
		}
		if spec.TenantID == "" {
			bad("tenant", errors.New("required for service keys"))
		}
	case KeyTypeApp:
		if spec.AppID == "" {
			bad("app", errors.New("required for app keys"))
		}
		if spec.TenantID != "" {
			bad("tenant", errors.New("not allowed for app keys"))
		}
	case KeyTypeAccount:
		if spec.AppID != "" {
			bad("app", errors.New("not allowed for account keys"))
		}
		if spec.TenantID != "" {
			bad("tenant", errors.New("not allowed for account keys"))
		}
	default:
		bad("type", errors.New("required: service, app or account"))
	}
	var err error
	var alg apikey.Algorithm
	if alg, k.Digest, err = apikey.ParseHash(spec.Hash); err != nil {
		bad("hash", err)
	}
	k.setAlgorithm(alg)
	if spec.PreviousHash != "" {
		var prevAlg apikey.Algorithm
		var prev apikey.Digest
		if prevAlg, prev, err = apikey.ParseHash(spec.PreviousHash); err != nil {
			bad("previous_hash", err)
		} else if prevAlg != alg {
			bad("previous_hash", fmt.Errorf("algorithm %s differs from the hash's %s", prevAlg, alg))
		}
		if spec.PreviousValidUntil.IsZero() {
			bad("previous_valid_until", errors.New("required with previous_hash"))
		}
		k.more().previous, k.HasPrevious = prev, true
	}
	if err := spec.RateLimit.Check(); err != nil {
		bad("rate_limit", err)
	}
	k.rateLimit = effectiveRateLimit(spec.RateLimit, access.roles)
	if err := spec.Quota.Check(); err != nil {
		bad("quota", err)
	}
	if spec.TenantQuota < 0 || spec.TenantQuota > MaxQuotaRequests {
		bad("tenant_quota", fmt.Errorf("%d is not between 1 and %d (0 for none)", spec.TenantQuota, int64(MaxQuotaRequests)))
	}
	_, n := spec.BoundQuotas()
	k.hasQuota = n > 0
	if ips, err := ParseIPFilters(spec.IPFilters); err != nil {
		bad("ip_filters", err)
	} else if ips.Len() > 0 {
		k.more().ips = ips
	}
	if !spec.NotBefore.IsZero() && !spec.ExpiresAt.IsZero() && spec.NotBefore.After(spec.ExpiresAt) {
		bad("not_before", fmt.Errorf("%s is after expires_at %s",
			spec.NotBefore.Format(time.RFC3339), spec.ExpiresAt.Format(time.RFC3339)))
	}
	var dropped []string
	headers, dropped, err := compileHeaders(k, spec.ResponseHeaders, opts, lenient)
	if err != nil {
		bad("response_headers", err)
	} else if len(headers) > 0 {
		k.more().headers = headers
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	k.size = k.computeSize()
	return k, dropped, nil
}

// effectiveScope is SPEC §11's effective scope: the union of the allow
// patterns of the key's own scope and of its roles, with every deny
// pattern of any of them. Without roles it is the own scope itself
// (shared through the ScopeCache); an empty own scope with roles allows
// what the roles allow.
func effectiveScope(own *scope.Scope, roles []*scope.Scope) *scope.Scope {
	if len(roles) == 0 {
		return own
	}
	return scope.Union(append([]*scope.Scope{own}, roles...)...)
}
