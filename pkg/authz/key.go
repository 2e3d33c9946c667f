// A key: KeySpec as a store holds it, the compiled Key the engine decides
// with, what keys share (KeyInfo), and the key's own checks (status,
// scope, authorize). Compiling is in compile.go, the scope cache in
// scopecache.go, IP filters in ipfilter.go.

package authz

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/scope"
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
	// The fields that hold pointers come first (the strings, the shared
	// owner and access), so that in a Key, after the record's own
	// pointers, every word the collector reads lies in the record's first
	// 96 bytes (Key).
	ID   string
	Name string
	// The key's owner (account, app, tenant) and access (scope, roles)
	// are shared by every key that has the same ones (their fields read
	// as the KeyInfo's own): the collector follows each pointer a record
	// holds on every cycle, and a round robin over many keys is paced by
	// it. Never nil in a compiled record; never modified once shared.
	*KeyOwner
	*KeyAccess
	Group string
	Type  KeyType
	// Active sits beside Type: two bytes in one word, not two.
	Active             bool
	notBefore          unixTime
	expiresAt          unixTime
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
	// The record's own pointers come first, Spec's strings and shared
	// parts right after them: the collector scans an object only up to
	// its type's last pointer word, so on every cycle it reads 96 bytes
	// of each record (two cache lines at most) instead of nearly all
	// 344, as it did when these were spread through the record. A round
	// robin over many keys is paced by that scan.
	//
	// extra holds what few keys have (keyExtra), nil for the others.
	extra *keyExtra
	// usageOps are the services and operations this key was last counted
	// for, with their interned indexes (UsageCounter), so that counting
	// one of them again compares strings instead of hashing them.
	usageOps [2]atomic.Pointer[usageOp]
	// adapterData lets a transport adapter keep its own ready-made form of
	// the key (e.g. header messages) with the record, built once. Records are
	// immutable and replaced on change, so the memo never goes stale.
	adapterData atomic.Value

	Spec   KeyInfo
	Digest apikey.Digest
	// HasPrevious: the key has a rotated-out secret in its grace window
	// (PreviousDigest, in extra; a record built with it set and no extra
	// has no previous digest). Stores index the key under both.
	HasPrevious bool
	// hasQuota: a quota binds the key (its own or its tenant's), so that
	// row 10 costs one load for the many keys without one. Beside
	// HasPrevious, in its word's padding.
	hasQuota bool
	// alg is the hash algorithm, an index into algorithms (Algorithm).
	alg uint8
	// secretVetted: Engine.Check has looked at a secret this record
	// answered to (Engine.WeakSecrets), so that it looks once per record.
	// In the same word's padding.
	secretVetted atomic.Bool
	// usageListed: the key is on its UsageCounter's list of keys with
	// counts in usage, to be drained. In the same word's padding.
	usageListed atomic.Bool

	// rateLimit is the effective rate limit (own, else the roles').
	rateLimit RateLimit

	// adapterRef is a number an adapter keeps with the record: where its
	// ready-made form of the key is in a store of its own (extauthz: the
	// key's last allow in its kept-allow slabs). A number, not a pointer,
	// so that the collector has nothing to follow for it: a round robin
	// over many keys keeps one for each.
	adapterRef atomic.Uint64

	// size is Size, computed by Compile.
	size int64

	// usedMinute is the Unix minute of the key's last recorded use
	// (MarkUsed), kept on the record so that recording a use costs one
	// atomic load on the hot path, not a lookup by id.
	usedMinute atomic.Int64
	// found is set once a lookup has found the record in a cache
	// (MarkFound): a record the cache's warm load guessed at and nobody
	// has asked for gives way first to one a miss loads.
	found atomic.Bool
	// pendingUse is where a cache lists the key's last recorded use until
	// it writes it (Key.PendingUse), in found's word's padding.
	pendingUse atomic.Uint32
	// usage holds the key's counts of its two latest combinations
	// (operation, outcome, hour) since the last drain, in the record
	// itself (UsageCounter.countInRecord): counting one is one
	// compare-and-swap, and a used key gathers no cell object for the
	// collector to find. usageOwner is the UsageCounter whose counts they
	// are (its id; 0: none yet).
	usage      [2]atomic.Uint64
	usageOwner atomic.Uint64
	// quotaCells are the quota cells the key was last counted in (its
	// tenant's, its own), so that admission finds them without a lookup:
	// numbers in its table (Quotas.keyCell), not pointers, so that the
	// collector has nothing to follow for them.
	quotaCells [2]atomic.Uint64
}

// keyExtra is what few records have: a rotated-out secret's digest in its
// grace window, IP filters, response headers, or why the key cannot be
// loaded. Apart from the record, behind one pointer, so that a record
// without any (most of a fleet's) is 64 bytes smaller (the 288-byte size
// class, not the 352-byte one) and holds one nil word where it held four
// pointers and two slices. Written by Compile and Unloadable only, before
// the record is published; never modified after.
type keyExtra struct {
	previous   apikey.Digest
	ips        IPFilter
	headers    []headerTemplate
	unloadable string
}

// more returns k's extra part, made on first use; for Compile and
// Unloadable, before k is published.
func (k *Key) more() *keyExtra {
	if k.extra == nil {
		k.extra = new(keyExtra)
	}
	return k.extra
}

// templates are the key's compiled response headers (nil: none).
func (k *Key) templates() []headerTemplate {
	if k.extra == nil {
		return nil
	}
	return k.extra.headers
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
	if e := k.extra; e != nil && k.HasPrevious {
		return e.previous
	}
	return apikey.Digest{}
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

// PendingUse is the number a cache gave the key's last recorded use in
// its list of uses to write (SetPendingUse), 0 if none: the list's entry
// for the key is found without a map. The cache checks that the entry it
// names is the key's.
func (k *Key) PendingUse() uint32 { return k.pendingUse.Load() }

// SetPendingUse records n as PendingUse.
func (k *Key) SetPendingUse(n uint32) { k.pendingUse.Store(n) }

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

// AdapterRef returns the number an adapter stored with SetAdapterRef, or 0.
func (k *Key) AdapterRef() uint64 { return k.adapterRef.Load() }

// SetAdapterRef stores an adapter's number for the key (see adapterRef).
func (k *Key) SetAdapterRef(v uint64) { k.adapterRef.Store(v) }

// Scope returns the compiled effective scope (own scope and roles'): what
// the key is checked against, and what it can give (the escalation rule).
func (k *Key) Scope() *scope.Scope { return k.Spec.effective }

// Matches reports whether d is one of the key's valid digests at now: the
// current one, or the previous one inside its grace window.
func (k *Key) Matches(d apikey.Digest, now time.Time) bool {
	if d == k.Digest {
		return true
	}
	e := k.extra
	return k.HasPrevious && e != nil && d == e.previous && k.Spec.previousValidUntil.after(now.UnixMicro())
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
	if e := k.extra; e != nil && !e.ips.Allows(r.ClientIP) {
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
