package authz

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/scope"
	"github.com/keygate/keygate/pkg/weakmap"
)

// KeySpec is a key as a store holds it: plain values, nothing compiled.
type KeySpec struct {
	ID   string
	Name string
	Type KeyType
	// Active sits beside Type: two bytes in one word, not two (a million
	// records are a million words).
	Active     bool
	AccountID  string
	AppID      string
	AppName    string
	TenantID   string
	TenantName string
	Hash       string // stored hash form, "sha256:<hex>" or "hmac-sha256:<hex>"
	Scope      string
	// Roles are the ids of the roles the key holds (SPEC §11), in the
	// order given; Compile resolves them with CompileOptions.Roles.
	Roles       []string
	NotBefore   time.Time // zero: valid at once
	ExpiresAt   time.Time // zero: never expires
	IPFilters   []string
	Group       string
	Description string
	// ResponseHeaders are added to the downstream response on allow.
	ResponseHeaders []HeaderSpec
	// PreviousHash is the hash of the secret a rotation replaced; it stays
	// valid until PreviousValidUntil (the grace period), then never again.
	PreviousHash       string
	PreviousValidUntil time.Time
	// RateLimit is the key's own rate limit (SPEC §12), zero for none;
	// it wins over its roles'. Envoy enforces it (Key.RateLimit).
	RateLimit RateLimit
	// Quota is the key's own quota (SPEC §12), daily or monthly; zero for
	// none. TenantQuota is its tenant's monthly quota, loaded with the key
	// like TenantName (0 for none): row 10 checks both.
	Quota       Quota
	TenantQuota int64
}

// KeyInfo is what a compiled record keeps of its KeySpec: what decisions,
// answers and logs read. The rest — the hash texts, the IP filter texts,
// the response header specs, the description — is compiled into the
// record's own forms or not needed by the data plane, and is not kept: a
// replica holding a million records would carry 96 bytes of it, empty or
// not, in each (stores of record keep the whole KeySpec).
type KeyInfo struct {
	ID   string
	Name string
	Type KeyType
	// Active sits beside Type: two bytes in one word, not two.
	Active bool
	// The key's owner (account, app, tenant) and access (scope, roles)
	// are shared by every key that has the same ones (their fields read
	// as the KeyInfo's own): the collector follows each pointer a record
	// holds on every cycle, and a round robin over many keys is paced by
	// it. Never nil in a compiled record; never modified once shared.
	*KeyOwner
	*KeyAccess
	notBefore          unixTime
	expiresAt          unixTime
	Group              string
	previousValidUntil unixTime
	RateLimit          RateLimit
	Quota              Quota
}

// KeyOwner is whom a key belongs to: its account, app and tenant, with
// their names and the tenant's quota (KeySpec's fields of the same
// names).
type KeyOwner struct {
	AccountID   string
	AppID       string
	AppName     string
	TenantID    string
	TenantName  string
	TenantQuota int64
}

// KeyAccess is what a key may call: its own scope and the roles it holds
// (KeySpec's Scope and Roles), with their compiled forms.
type KeyAccess struct {
	Scope string
	Roles []string
	// own is the key's own scope, compiled; effective is its union with
	// the roles' (SPEC §11), what requests are checked against; roles are
	// the roles it was compiled with, in the order of Roles.
	own, effective *scope.Scope
	roles          []*Role
}

// info is what a record keeps of s, its owner and access shared through
// c (new ones without c).
func (s *KeySpec) info(c *ScopeCache, access *KeyAccess) KeyInfo {
	return KeyInfo{ID: s.ID, Name: s.Name, Type: s.Type, Active: s.Active,
		KeyOwner: c.owner(KeyOwner{AccountID: s.AccountID, AppID: s.AppID, AppName: s.AppName, TenantID: s.TenantID,
			TenantName: s.TenantName, TenantQuota: s.TenantQuota}),
		KeyAccess: access, notBefore: unixTimeOf(s.NotBefore, true), expiresAt: unixTimeOf(s.ExpiresAt, false),
		Group: s.Group, previousValidUntil: unixTimeOf(s.PreviousValidUntil, false), RateLimit: s.RateLimit, Quota: s.Quota}
}

// KeySpec is a KeySpec with the fields i keeps; the hash texts, IP
// filters, response headers and description are empty.
func (i *KeyInfo) KeySpec() KeySpec {
	return KeySpec{ID: i.ID, Name: i.Name, Type: i.Type, Active: i.Active, AccountID: i.AccountID,
		AppID: i.AppID, AppName: i.AppName, TenantID: i.TenantID, TenantName: i.TenantName, Scope: i.Scope,
		Roles: slices.Clone(i.Roles), NotBefore: i.NotBefore(), ExpiresAt: i.ExpiresAt(), Group: i.Group,
		PreviousValidUntil: i.PreviousValidUntil(), RateLimit: i.RateLimit, Quota: i.Quota, TenantQuota: i.TenantQuota}
}

// NotBefore is when the key becomes valid; zero: at once.
func (i *KeyInfo) NotBefore() time.Time { return i.notBefore.time() }

// ExpiresAt is when the key expires; zero: never.
func (i *KeyInfo) ExpiresAt() time.Time { return i.expiresAt.time() }

// PreviousValidUntil ends a rotated-out secret's grace period.
func (i *KeyInfo) PreviousValidUntil() time.Time { return i.previousValidUntil.time() }

// unixTime is a point in time as Unix microseconds (PostgreSQL's
// precision), 8 bytes where a time.Time takes 24: a record holds three.
// 0 stands for the zero time.Time (no bound).
type unixTime int64

// unixTimeOf is t in microseconds: rounded up when up is set (a not-before
// time), else down (an expiry, a grace period's end), so that a time finer
// than a microsecond never widens what a key may do.
func unixTimeOf(t time.Time, up bool) unixTime {
	if t.IsZero() {
		return 0
	}
	n := t.UnixMicro()
	if up && t.Nanosecond()%1000 != 0 {
		n++
	}
	if n == 0 {
		n = -1 // the epoch itself, one microsecond before: never the zero time
	}
	return unixTime(n)
}

func (u unixTime) time() time.Time {
	if u == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(u)).UTC()
}

// after reports whether u is after now (Unix microseconds); false when
// u is the zero time.
func (u unixTime) after(now int64) bool { return u != 0 && now < int64(u) }

// HeaderSpec is one response header of a key: a fixed value or a template.
type HeaderSpec struct {
	Name     string
	Value    string
	Disabled bool
}

// Key is a compiled key record: everything a decision needs, built once when
// the key is loaded so that a check allocates nothing.
type Key struct {
	Spec   KeyInfo
	Digest apikey.Digest
	// previous is the digest of a rotated-out secret in its grace window
	// (HasPrevious; PreviousDigest), apart from the record: few keys are
	// in a grace window at a time. Stores index the key under both.
	previous    *apikey.Digest
	HasPrevious bool
	// hasQuota: a quota binds the key (its own or its tenant's), so that
	// row 10 costs one load for the many keys without one. Beside
	// HasPrevious, in its word's padding.
	hasQuota bool
	// alg is the hash algorithm, an index into algorithms (Algorithm).
	alg uint8

	ips     IPFilter
	headers []headerTemplate
	// rateLimit is the effective rate limit (own, else the roles').
	rateLimit RateLimit

	// adapterData lets a transport adapter keep its own ready-made form of
	// the key (e.g. header messages) with the record, built once. Records are
	// immutable and replaced on change, so the memo never goes stale.
	adapterData atomic.Value

	// size is Size, computed by Compile.
	size int64
	// unloadable says why a record stands for a key that cannot be loaded
	// (Unloadable); nil for every compiled key.
	unloadable *string

	// usedMinute is the Unix minute of the key's last recorded use
	// (MarkUsed), kept on the record so that recording a use costs one
	// atomic load on the hot path, not a lookup by id.
	usedMinute atomic.Int64
	// found is set once a lookup has found the record in a cache
	// (MarkFound): a record the cache's warm load guessed at and nobody
	// has asked for gives way first to one a miss loads.
	found atomic.Bool
	// usageOps are the services and operations this key was last counted
	// for, with their interned indexes (UsageCounter), so that counting
	// one of them again compares strings instead of hashing them.
	usageOps [2]atomic.Pointer[usageOp]
	// usageCells are the usage cells this key was last counted in, so
	// that counting in one again is one atomic add (UsageCounter.Count).
	usageCells [2]atomic.Pointer[usageCount]
	// quotaCells are the quota cells the key was last counted in (its
	// tenant's, its own), so that admission finds them without a lookup.
	quotaCells [2]atomic.Pointer[QuotaCell]
}

// algorithms are the hash algorithms a record can name (Key.alg).
var algorithms = [...]apikey.Algorithm{apikey.SHA256, apikey.HMACSHA256}

// setAlgorithm records a in k; an algorithm ParseHash does not return is
// recorded as the first (ParseHash only returns these).
func (k *Key) setAlgorithm(a apikey.Algorithm) {
	for i, x := range algorithms {
		if x == a {
			k.alg = uint8(i)
		}
	}
}

// PreviousDigest is the digest of the secret a rotation replaced, while it
// is in its grace window (HasPrevious); the zero digest otherwise.
func (k *Key) PreviousDigest() apikey.Digest {
	if k.previous == nil {
		return apikey.Digest{}
	}
	return *k.previous
}

// Algorithm is the algorithm of the key's stored hashes.
func (k *Key) Algorithm() apikey.Algorithm { return algorithms[k.alg] }

// ExpiresAtText is ExpiresAt in RFC 3339 (UTC), or "" when the key never
// expires. It is formatted on each call: headers that show it are rendered
// at load, and explain is not a hot path.
func (k *Key) ExpiresAtText() string {
	if k.Spec.expiresAt == 0 {
		return ""
	}
	return k.Spec.ExpiresAt().Format(time.RFC3339)
}

// MarkUsed advances the key's last recorded minute to minute and reports
// whether this call did (false when the minute was already recorded, by
// this call's predecessor or a racing one). A record replaced after a
// change starts afresh, which records one more use at most.
func (k *Key) MarkUsed(minute int64) bool {
	prev := k.usedMinute.Load()
	return prev < minute && k.usedMinute.CompareAndSwap(prev, minute)
}

// MarkFound notes that a lookup found the record in a cache; Found
// reports it. Read before written, so that after the first lookup the
// record's cache line stays shared between cores.
func (k *Key) MarkFound() {
	if !k.found.Load() {
		k.found.Store(true)
	}
}

// Found reports whether MarkFound was called on this record.
func (k *Key) Found() bool { return k.found.Load() }

// AdapterData returns what an adapter stored with SetAdapterData, or nil.
func (k *Key) AdapterData() any { return k.adapterData.Load() }

// SetAdapterData stores an adapter's ready-made form of the key. Every
// caller must store the same concrete type.
func (k *Key) SetAdapterData(v any) { k.adapterData.Store(v) }

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

// ScopeCache shares compiled scopes by their text. Scopes are immutable
// once parsed, so sharing is safe; the cache itself is safe for
// concurrent use. It holds scopes weakly (pkg/weakmap): one that no key
// holds any more leaves it, so a store keeps one for its whole life and
// every key with the same scope (or the same scope and roles) shares one,
// whether a bulk load or a single lookup compiled it.
type ScopeCache struct {
	m weakmap.Map[string, scope.Scope]
	// owners and access share what keys of one tenant, or with one scope
	// and roles, have in common (KeyInfo).
	owners weakmap.Map[KeyOwner, KeyOwner]
	access weakmap.Map[string, KeyAccess]
	// lastOwner and lastAccess are the ones returned last: a bulk load
	// meets the keys of one tenant, and of one scope and roles, in runs,
	// and ten million lookups in the maps (a lock and a hash each) would
	// cost seconds of the warm load.
	lastOwner  atomic.Pointer[KeyOwner]
	lastAccess atomic.Pointer[KeyAccess]
}

// owner returns o, shared with the keys that have the same.
func (c *ScopeCache) owner(o KeyOwner) *KeyOwner {
	if c == nil {
		p := o
		return &p
	}
	if last := c.lastOwner.Load(); last != nil && *last == o {
		return last
	}
	return c.newOwner(o)
}

// newOwner is owner past its memo, apart so that the memo's hit copies
// nothing to the heap.
func (c *ScopeCache) newOwner(o KeyOwner) *KeyOwner {
	v, _ := c.owners.LoadOrMake(o, func() (*KeyOwner, error) {
		p := o
		return &p, nil
	})
	c.lastOwner.Store(v)
	return v
}

// is reports whether a was compiled from text and roles.
func (a *KeyAccess) is(text string, roles []*Role) bool {
	return a.Scope == text && slices.Equal(a.roles, roles)
}

// keyAccess compiles a key's own scope and roles, shared with the keys
// that have the same scope text and the same role records (a role edit
// makes new records, so keys compiled against it get an access of their
// own).
// The errors are FieldErrors of the scope and the roles.
func (c *ScopeCache) keyAccess(text string, ids []string, opts *CompileOptions) (*KeyAccess, []error) {
	roles, roleScopes, rolesErr := compileRoles(ids, opts)
	if rolesErr != nil {
		errs := []error{&FieldError{Field: "roles", Err: rolesErr}}
		if _, err := c.parse(text); err != nil {
			errs = slices.Insert(errs, 0, error(&FieldError{Field: "scope", Err: err}))
		}
		return nil, errs
	}
	build := func() (*KeyAccess, error) {
		own, err := c.parse(text)
		if err != nil {
			return nil, &FieldError{Field: "scope", Err: err}
		}
		return &KeyAccess{Scope: text, Roles: ids, own: own, effective: c.union(own, roleScopes), roles: roles}, nil
	}
	if c == nil {
		a, err := build()
		if err != nil {
			return nil, []error{err}
		}
		return a, nil
	}
	if last := c.lastAccess.Load(); last != nil && last.is(text, roles) {
		return last, nil
	}
	// The text's length first: a scope stored under other rules (or
	// written past the Account API) that holds NUL could otherwise spell
	// another key's roles and get their access instead of failing to
	// parse. Then each role's record address: while the access holds a
	// role, no other role record can have it.
	var key strings.Builder
	fmt.Fprintf(&key, "%d\x00%s", len(text), text)
	for _, r := range roles {
		fmt.Fprintf(&key, "\x00%s\x00%p", r.ID, r)
	}
	a, err := c.access.LoadOrMake(key.String(), build)
	if err != nil {
		return nil, []error{err}
	}
	c.lastAccess.Store(a)
	return a, nil
}

func (c *ScopeCache) parse(text string) (*scope.Scope, error) {
	if c == nil {
		return scope.Parse(text)
	}
	return c.m.LoadOrMake(text, func() (*scope.Scope, error) { return scope.Parse(text) })
}

// Len is the number of scopes the cache names (for tests).
func (c *ScopeCache) Len() int { return c.m.Len() }

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
		k.previous, k.HasPrevious = &prev, true
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
	if k.ips, err = ParseIPFilters(spec.IPFilters); err != nil {
		bad("ip_filters", err)
	}
	if !spec.NotBefore.IsZero() && !spec.ExpiresAt.IsZero() && spec.NotBefore.After(spec.ExpiresAt) {
		bad("not_before", fmt.Errorf("%s is after expires_at %s",
			spec.NotBefore.Format(time.RFC3339), spec.ExpiresAt.Format(time.RFC3339)))
	}
	var dropped []string
	k.headers, dropped, err = compileHeaders(k, spec.ResponseHeaders, opts, lenient)
	if err != nil {
		bad("response_headers", err)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	k.size = k.computeSize()
	return k, dropped, nil
}

// union is effectiveScope shared, like parse, between keys with the same
// own scope and roles (a bulk load gives many keys the same roles).
func (c *ScopeCache) union(own *scope.Scope, roles []*scope.Scope) *scope.Scope {
	if c == nil || len(roles) == 0 {
		return effectiveScope(own, roles)
	}
	texts := make([]string, 0, len(roles)+2)
	texts = append(texts, "\x00roles", own.String())
	for _, r := range roles {
		texts = append(texts, r.String())
	}
	// NUL never appears in a valid scope, so the key cannot collide with
	// a scope's own text or another combination.
	key := strings.Join(texts, "\x00")
	sc, _ := c.m.LoadOrMake(key, func() (*scope.Scope, error) { return effectiveScope(own, roles), nil })
	return sc
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

// Scope returns the compiled effective scope (own scope and roles'): what
// the key is checked against, and what it can give (the escalation rule).
func (k *Key) Scope() *scope.Scope { return k.Spec.effective }

// Matches reports whether d is one of the key's valid digests at now: the
// current one, or the previous one inside its grace window.
func (k *Key) Matches(d apikey.Digest, now time.Time) bool {
	if d == k.Digest {
		return true
	}
	return k.HasPrevious && d == *k.previous && k.Spec.previousValidUntil.after(now.UnixMicro())
}

// Status is row 4 of the decision: active, then not-before, then expiry.
func (k *Key) Status(now time.Time) Reason {
	t := now.UnixMicro()
	switch {
	case !k.Spec.Active:
		return InactiveKey
	case k.Spec.notBefore.after(t):
		return NotYetValid
	case k.Spec.expiresAt != 0 && !k.Spec.expiresAt.after(t):
		return ExpiredKey
	}
	return OK
}

// Authorize is rows 6–8 for a routed request: key type, the service's
// accounts, client IP, scope. On scope_denied it also names the refused
// operation.
func (k *Key) Authorize(t *Target, r *Request) (Reason, string) {
	if !t.Accepts.Has(k.Spec.Type) {
		return WrongKeyType, ""
	}
	if t.Accounts != nil && !slices.Contains(t.Accounts, k.Spec.AccountID) {
		return AccountNotAllowed, ""
	}
	if !k.ips.Allows(r.ClientIP) {
		return IPNotAllowed, ""
	}
	if !k.Spec.effective.Allows(t.Service, t.Kind, t.Operation) {
		return ScopeDenied, t.Operation
	}
	for i := range t.More {
		if op := &t.More[i]; !k.Spec.effective.Allows(t.Service, op.Kind, op.Name) {
			return ScopeDenied, op.Name
		}
	}
	return OK, ""
}

// IPFilter is a compiled set of IP filters; empty allows any client.
type IPFilter struct {
	prefixes []netip.Prefix
}

// ParseIPFilters compiles filters written as CIDR ("10.0.0.0/8",
// "2001:db8::/32", host bits masked), a bare address (/32 or /128), or IPv4
// address/netmask ("192.168.178.1/255.255.255.0", contiguous masks only).
func ParseIPFilters(filters []string) (IPFilter, error) {
	var f IPFilter
	var errs []error
	for i, s := range filters {
		p, err := parseIPFilter(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d] %q: %w; %s", i, s, err, IPFilterForms))
			continue
		}
		f.prefixes = append(f.prefixes, p)
	}
	if len(errs) > 0 {
		return IPFilter{}, errors.Join(errs...)
	}
	return f, nil
}

// IPFilterForms closes every message about a filter that does not parse,
// so that it says what to write instead.
const IPFilterForms = "accepted forms: a CIDR (10.0.0.0/8, 2001:db8::/32), an address (10.1.2.3), an IPv4 address/netmask (10.0.0.0/255.0.0.0)"

// ErrIPFilterList is the error of a filter holding a comma: several
// filters written as one, which would otherwise read as a bad netmask or
// address.
var ErrIPFilterList = errors.New("a comma-separated list: give one address or CIDR per filter")

func parseIPFilter(s string) (netip.Prefix, error) {
	if strings.Contains(s, ",") {
		return netip.Prefix{}, ErrIPFilterList
	}
	addrPart, maskPart, hasMask := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(addrPart)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IPv4 or IPv6 address")
	}
	if addr.Zone() != "" {
		return netip.Prefix{}, errors.New("an address zone is not allowed")
	}
	if !hasMask {
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	if strings.Contains(maskPart, ".") || strings.Contains(maskPart, ":") {
		if !addr.Is4() {
			return netip.Prefix{}, errors.New("a netmask is only allowed with an IPv4 address; use /bits for IPv6")
		}
		mask, err := netip.ParseAddr(maskPart)
		if err != nil || !mask.Is4() {
			return netip.Prefix{}, errors.New("netmask is not an IPv4 address")
		}
		bits, ok := maskBits(mask.As4())
		if !ok {
			return netip.Prefix{}, errors.New("netmask is not contiguous")
		}
		return netip.PrefixFrom(addr, bits).Masked(), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("prefix length must be 0..%d", addr.BitLen())
	}
	return p.Masked(), nil
}

// maskBits returns the prefix length of a contiguous IPv4 netmask.
func maskBits(m [4]byte) (int, bool) {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	ones := 0
	for v&0x80000000 != 0 {
		ones++
		v <<= 1
	}
	return ones, v == 0
}

// Allows reports whether ip passes the filters. An empty filter allows any
// client, even an unknown one; a non-empty filter refuses an unknown
// (invalid) address. IPv4-mapped IPv6 sources are unmapped, zones ignored,
// and IPv4 sources never match IPv6 filters nor the reverse.
func (f *IPFilter) Allows(ip netip.Addr) bool {
	if len(f.prefixes) == 0 {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range f.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Prefixes lists the compiled filters (host bits masked, netmasks as
// lengths), in the order written: what the key is checked against, also
// once Trim has dropped the filters' text.
func (f *IPFilter) Prefixes() []netip.Prefix { return slices.Clone(f.prefixes) }

// IPFilter returns the key's compiled IP filters.
func (k *Key) IPFilter() *IPFilter { return &k.ips }

// Len is the number of filters.
func (f *IPFilter) Len() int { return len(f.prefixes) }
