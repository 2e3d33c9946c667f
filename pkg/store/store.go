// Package store holds the records of keygate's system of record — accounts,
// apps, tenants, keys, audit events — and the interfaces the Account API
// (writes) and the cache (reads, change feed) need from a store. It knows no
// database; pkg/store/postgres implements it.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// Sentinel errors every implementation returns (wrapped) so that callers
// can map them to API status codes.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrSecretInUse is the ErrAlreadyExists of a key whose hash another
	// key (of any account) already has. Callers must not tell which key
	// or account holds it: an account could learn that way which secrets
	// work elsewhere.
	ErrSecretInUse = fmt.Errorf("%w: the secret is in use", ErrAlreadyExists)
	// ErrInvalid wraps a refusal by the store's own constraints (a row that
	// would break SPEC §1); the message names the field.
	ErrInvalid = errors.New("invalid")
	// ErrFeedTruncated is what ChangesSince returns when the changes after
	// the asked sequence were pruned: the reader must load every key again.
	ErrFeedTruncated = errors.New("the change feed no longer holds every change after this sequence number; load all keys again")
	// ErrHasKeys is what deleting an app or tenant that still has keys
	// returns without cascade (*HasKeysError says how many).
	ErrHasKeys = errors.New("has keys")
	// ErrUnavailable wraps a failure to reach the database (connection
	// refused or lost, the server shutting down): nothing was written, and
	// the same call may succeed later.
	ErrUnavailable = errors.New("store unavailable")
)

// HasKeysError is a delete of an app or tenant refused because keys still
// belong to it: deleting it would delete them, which only a cascade may.
type HasKeysError struct {
	Object string // "app" or "tenant"
	ID     string
	Keys   int
}

func (e *HasKeysError) Error() string {
	return fmt.Sprintf("%s %q has %d keys", e.Object, e.ID, e.Keys)
}

func (e *HasKeysError) Unwrap() error { return ErrHasKeys }

// Origin says where a key's secret came from.
type Origin string

const (
	OriginGenerated Origin = "generated" // keygate made the secret
	OriginCustom    Origin = "custom"    // the owner supplied it (ImportKey)
)

// Account isolates everything below it.
type Account struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// App is an application whose APIs are protected. Tenant has the same shape.
type App struct {
	AccountID   string
	ID          string
	Name        string
	Description string
	// Active false denies every key of the app.
	Active bool
	// Quota is a tenant's monthly request quota (SPEC §12), 0 for none;
	// apps have none.
	Quota     int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Tenant is a customer of an app.
type Tenant App

// TenantsOf converts records read with the App shape (stores keep apps and
// tenants alike) to tenants; nil stays nil.
func TenantsOf(as []App) []Tenant {
	if as == nil {
		return nil
	}
	ts := make([]Tenant, len(as))
	for i, a := range as {
		ts[i] = Tenant(a)
	}
	return ts
}

// Key is a key record as stored: its spec (hash only, never the secret)
// plus bookkeeping. Spec.AppName/TenantName are filled on reads.
type Key struct {
	Spec       authz.KeySpec
	Origin     Origin
	CreatedAt  time.Time
	UpdatedAt  time.Time
	LastUsedAt time.Time // zero: never used (or not yet flushed)
	// RoleIDs are the roles the key holds (SPEC §11), sorted; nil for none.
	RoleIDs []string
}

// Actor is who made a change, for the audit log.
type Actor struct {
	KeyID   string // the account key that called the API; "" for bootstrap
	KeyName string
}

// KeyUpdate lists the fields UpdateKey changes; nil fields stay as they are.
// A zero time in NotBefore/ExpiresAt clears it.
type KeyUpdate struct {
	Name            *string
	Description     *string
	Group           *string
	Scope           *string
	Active          *bool
	NotBefore       *time.Time
	ExpiresAt       *time.Time
	IPFilters       *[]string
	ResponseHeaders *[]authz.HeaderSpec
	// RoleIDs replaces the roles the key holds (an empty list: none).
	RoleIDs *[]string
	// RateLimit replaces the key's own rate limit (the zero value: none).
	RateLimit *authz.RateLimit
	// Quota replaces the key's own quota (the zero value: none).
	Quota *authz.Quota
}

// Apply returns spec with the fields u sets changed; the lists are copied,
// so spec's are never shared with the result.
func (u *KeyUpdate) Apply(spec authz.KeySpec) authz.KeySpec {
	setIf(&spec.Name, u.Name)
	setIf(&spec.Description, u.Description)
	setIf(&spec.Group, u.Group)
	setIf(&spec.Scope, u.Scope)
	setIf(&spec.Active, u.Active)
	setIf(&spec.NotBefore, u.NotBefore)
	setIf(&spec.ExpiresAt, u.ExpiresAt)
	setIf(&spec.RateLimit, u.RateLimit)
	setIf(&spec.Quota, u.Quota)
	if u.IPFilters != nil {
		spec.IPFilters = slices.Clone(*u.IPFilters)
	}
	if u.ResponseHeaders != nil {
		spec.ResponseHeaders = slices.Clone(*u.ResponseHeaders)
	}
	return spec
}

// Rotate gives k the hash newHash, the rule every store's RotateKey
// follows: the old hash stays valid until graceUntil when that is after
// now; a zero or past graceUntil drops it (and any older previous hash) at
// once. It reports false, changing nothing, when newHash is k's current
// hash.
func (k *Key) Rotate(newHash string, graceUntil, now time.Time) bool {
	if newHash == k.Spec.Hash {
		return false
	}
	k.Spec.PreviousHash, k.Spec.PreviousValidUntil = "", time.Time{}
	if graceUntil.After(now) {
		k.Spec.PreviousHash, k.Spec.PreviousValidUntil = k.Spec.Hash, graceUntil
	}
	k.Spec.Hash = newHash
	return true
}

// AppUpdate lists the fields UpdateApp/UpdateTenant change.
type AppUpdate struct {
	Name        *string
	Description *string
	Active      *bool
	// Quota replaces a tenant's monthly quota (0: none).
	Quota *int64
}

// Apply returns a with the fields u sets changed (an app's or a tenant's:
// Tenant converts to App and back).
func (u *AppUpdate) Apply(a App) App {
	setIf(&a.Name, u.Name)
	setIf(&a.Description, u.Description)
	setIf(&a.Active, u.Active)
	setIf(&a.Quota, u.Quota)
	return a
}

// setIf sets *dst to *v when an update sets v.
func setIf[T any](dst, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Page asks for one page of a list. Token is what the previous page
// returned as next ("" = first page); Size <= 0 means the default (100),
// capped at 1000.
type Page struct {
	Size  int
	Token string
}

// AuditEvent is one change, as the audit log keeps it. Before and After are
// JSON objects of the record without any secret or hash; nil when absent.
type AuditEvent struct {
	ID         int64
	AccountID  string
	At         time.Time
	Actor      Actor
	Action     string // e.g. "app.create", "key.update", "key.regenerate"
	ObjectType string // "account", "app", "tenant", "key"
	ObjectID   string
	Before     json.RawMessage
	After      json.RawMessage
	// Outcome is OutcomeAllowed for a change that was made, OutcomeDenied
	// for a call the Account API refused (RecordDenied); Reason says why
	// a call was refused ("" for allowed changes).
	Outcome string
	Reason  string
}

// Audit event outcomes.
const (
	OutcomeAllowed = "allowed"
	OutcomeDenied  = "denied"
)

// AuditFilter narrows ListAuditEvents; zero fields do not filter, set
// fields must all match.
type AuditFilter struct {
	// KeyID: events about that key (object type "key", object id KeyID).
	KeyID string
	// ActorKeyID: events made (or attempted) by that account key.
	ActorKeyID string
	// Action: events of exactly that action ("key.update").
	Action string
	// ActionGroup: events whose action is ActionGroup.<anything>
	// ("key" selects key.create, key.update, …).
	ActionGroup string
	// Outcome: OutcomeAllowed or OutcomeDenied events.
	Outcome string
	// Since and Until select events with Since <= At < Until.
	Since, Until time.Time
}

// Matches reports whether e passes f: the rule every store's
// ListAuditEvents filters by.
func (f *AuditFilter) Matches(e *AuditEvent) bool {
	group, _, _ := strings.Cut(e.Action, ".")
	return (f.KeyID == "" || e.ObjectType == "key" && e.ObjectID == f.KeyID) &&
		(f.ActorKeyID == "" || e.Actor.KeyID == f.ActorKeyID) &&
		(f.Action == "" || e.Action == f.Action) &&
		(f.ActionGroup == "" || group == f.ActionGroup) &&
		(f.Outcome == "" || e.Outcome == f.Outcome) &&
		(f.Since.IsZero() || !e.At.Before(f.Since)) &&
		(f.Until.IsZero() || e.At.Before(f.Until))
}

// DeniedEvent is a call the Account API refused, as RecordDenied writes
// it: the action it attempted on which object, why it was refused, and
// the key as it is (Before) and as the call would have made it (After),
// nil when none. Never a secret or a hash: KeyAudit has neither.
type DeniedEvent struct {
	Action, ObjectType, ObjectID string
	Reason                       string
	Before, After                *KeyAudit
}

// AuditToken is the page token after event e of an audit listing, which
// runs newest first in (At, ID) order.
func AuditToken(e AuditEvent) string {
	return PageToken{CreatedAt: e.At.UnixMicro(), Seq: e.ID}.String()
}

// Accounts is what the Account API and bootstrap write and read. Every
// write runs in one transaction that also writes its audit event and
// notifies the change feed. IDs are caller-chosen when non-empty, else
// generated (UUID).
type Accounts interface {
	CreateAccount(ctx context.Context, actor Actor, a Account) (Account, error)
	GetAccount(ctx context.Context, id string) (Account, error)

	CreateApp(ctx context.Context, actor Actor, a App) (App, error)
	GetApp(ctx context.Context, accountID, id string) (App, error)
	ListApps(ctx context.Context, accountID string, p Page) ([]App, string, error)
	// CountApps is how many apps the account has (0 for an unknown
	// account), CountTenants how many tenants.
	CountApps(ctx context.Context, accountID string) (int, error)
	UpdateApp(ctx context.Context, actor Actor, accountID, id string, u AppUpdate) (App, error)
	// DeleteApp deletes an app. While keys belong to it, it refuses with
	// a *HasKeysError unless cascade is set: then the keys go with it in
	// the same transaction, each audited as "key.delete".
	DeleteApp(ctx context.Context, actor Actor, accountID, id string, cascade bool) error

	CreateTenant(ctx context.Context, actor Actor, t Tenant) (Tenant, error)
	GetTenant(ctx context.Context, accountID, id string) (Tenant, error)
	ListTenants(ctx context.Context, accountID string, p Page) ([]Tenant, string, error)
	CountTenants(ctx context.Context, accountID string) (int, error)
	UpdateTenant(ctx context.Context, actor Actor, accountID, id string, u AppUpdate) (Tenant, error)
	// DeleteTenant deletes a tenant, as DeleteApp an app.
	DeleteTenant(ctx context.Context, actor Actor, accountID, id string, cascade bool) error

	// CreateKey stores a new key; k.Spec.Hash must be set, the secret never
	// reaches the store. Duplicate name in the account: ErrAlreadyExists.
	CreateKey(ctx context.Context, actor Actor, k Key) (Key, error)
	GetKey(ctx context.Context, accountID, id string) (Key, error)
	ListKeys(ctx context.Context, accountID string, f KeyFilter, p Page) ([]Key, string, error)
	// CountKeys is how many keys of the account pass f (its Order
	// ignored): what listing them all would return, in one read.
	CountKeys(ctx context.Context, accountID string, f KeyFilter) (int, error)
	UpdateKey(ctx context.Context, actor Actor, accountID, id string, u KeyUpdate) (Key, error)
	// RotateKey replaces the key's hash; the old one stays valid until
	// graceUntil (zero: not at all).
	RotateKey(ctx context.Context, actor Actor, accountID, id, newHash string, graceUntil time.Time) (Key, error)
	DeleteKey(ctx context.Context, actor Actor, accountID, id string) error
	// UpdateKeys applies u to every key of the account that passes f, in
	// one transaction: the matching keys are locked (in creation order)
	// and given to check, whose error aborts the whole change; then each
	// key is changed and audited ("key.update") as UpdateKey does. It
	// returns the keys as updated. A key that would not compile fails the
	// whole change with ErrInvalid naming it.
	UpdateKeys(ctx context.Context, actor Actor, accountID string, f KeyFilter, u KeyUpdate, check func(matched []Key) error) ([]Key, error)

	// ListAuditEvents lists the account's events that pass f, newest
	// first: in descending (At, ID) order.
	ListAuditEvents(ctx context.Context, accountID string, f AuditFilter, p Page) ([]AuditEvent, string, error)
	// RecordDenied writes an audit event with outcome OutcomeDenied: a
	// refused call, which changed nothing else.
	RecordDenied(ctx context.Context, actor Actor, accountID string, e DeniedEvent) error

	Roles
}

// KeyRef names a key: ids are unique within their account, not across
// accounts (SPEC §9), so a key is always named with its account.
type KeyRef struct {
	AccountID string
	ID        string
}

// ChangeKind is what a change-feed entry names.
type ChangeKind string

const (
	ChangeKey    ChangeKind = "key"    // a key was created, updated, rotated or deleted
	ChangeApp    ChangeKind = "app"    // an app's name or active flag changed
	ChangeTenant ChangeKind = "tenant" // a tenant's name or active flag changed
	// ChangeRole: a role was created, renamed, its scope changed or it
	// was deleted: one entry whatever the number of keys holding it;
	// LookupKeysOfParent(ChangeRole) reads them. Revokes when its scope
	// changed or it was deleted.
	ChangeRole ChangeKind = "role"
	// ChangeDenial: a denial was created, changed or deleted. A new or
	// changed denial revokes (it is applied ahead of the bulk); a deleted
	// one does not.
	ChangeDenial ChangeKind = "denial"
)

// Change is one entry of the change feed. A key change names the key and
// the digests under which it was valid before the change — the current one
// and, during a rotation grace period, the previous one — so a cache can
// drop them before loading the key again. An app or tenant change is one
// entry whatever its number of keys (SPEC §10): it names the parent, whose
// keys the cache reads again together.
type Change struct {
	Seq       int64
	AccountID string
	Kind      ChangeKind
	ID        string // the key's, app's or tenant's id
	OldDigest []apikey.Digest
	// Revokes is set by the store when the change may make keys less
	// valid (a key updated or deleted, an app or tenant deactivated), so
	// that a reader can apply it ahead of the bulk.
	Revokes bool
	// At is when the change was committed, by the store's clock; zero when
	// unknown. It measures propagation lag.
	At time.Time
}

// Ref is the key a key change names.
func (c *Change) Ref() KeyRef { return KeyRef{AccountID: c.AccountID, ID: c.ID} }

// Source is what the cache reads: compiled keys and the change feed.
type Source interface {
	// LookupKey finds a key by a digest of its current or previous secret;
	// authz.ErrKeyNotFound when none. Keys of inactive apps or tenants come
	// back with Spec.Active false.
	LookupKey(ctx context.Context, d apikey.Digest) (*authz.Key, error)
	// LookupKeyByID is LookupKey by account and key id;
	// authz.ErrKeyNotFound when the key no longer exists.
	LookupKeyByID(ctx context.Context, accountID, id string) (*authz.Key, error)
	// LookupKeysByID is LookupKeyByID for many keys in one round trip: the
	// keys that exist, in no particular order (a missing one was deleted).
	LookupKeysByID(ctx context.Context, refs []KeyRef) ([]*authz.Key, error)
	// LookupKeysOfParent returns every key of an app or tenant (kind
	// ChangeApp or ChangeTenant), compiled, in one round trip.
	LookupKeysOfParent(ctx context.Context, accountID string, kind ChangeKind, id string) ([]*authz.Key, error)
	// LoadAll calls fn for every key, compiled, from one consistent
	// snapshot, one call at a time from a single goroutine, and returns the
	// change-feed sequence that snapshot includes.
	LoadAll(ctx context.Context, fn func(*authz.Key) error) (seq int64, err error)
	// ChangesSince returns the changes after seq, in order, at most limit.
	ChangesSince(ctx context.Context, seq int64, limit int) ([]Change, error)
	// RevocationsSince returns only the key and denial changes after seq
	// that may revoke (Revokes set), in order, at most limit: what a
	// reader working through a long backlog applies ahead of it (SPEC
	// §10). A pruned feed is ChangesSince's to report; this may return
	// what is left.
	RevocationsSince(ctx context.Context, seq int64, limit int) ([]Change, error)
	// FeedHead is the highest committed change-feed sequence (0 when the
	// feed is empty), for the backlog and lag a reader reports.
	FeedHead(ctx context.Context) (int64, error)
	// Listen blocks until ctx is done, calling notify (without blocking)
	// whenever the change feed may have new entries, and onState with
	// false when the listening connection is lost and true when it is
	// (re)established; after a reconnect the caller catches up with
	// ChangesSince, so a lost notification is never a lost change.
	Listen(ctx context.Context, notify func(), onState func(connected bool)) error
}

// UsageWriter persists last-used times, batched by its caller.
// TouchKeys must neither keep nor modify the map: a failed batch is retried.
type UsageWriter interface {
	TouchKeys(ctx context.Context, used map[KeyRef]time.Time) error
}
