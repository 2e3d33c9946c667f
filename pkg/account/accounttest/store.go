// Package accounttest has test helpers for the Account API: an in-memory
// store.Accounts that is also an authz.KeyStore, and a running Account API
// server on a loopback port with a bootstrap account key.
//
// It is for tests only: the store keeps everything in maps behind one
// mutex and does what the PostgreSQL store does — same errors and
// messages, orders, keyset page tokens and audit records — which
// storetest's contract suite checks (store_test.go).
package accounttest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// Store is an in-memory store.Accounts and store.UsageWriter. Every key
// it is asked to store (created, updated, rotated) is compiled again with
// authz.Compile; a key that does not compile is refused with
// store.ErrInvalid and, unless RefuseInvalidKeys was called, fails the
// test: the Account API must never hand a store a key the data plane could
// not load.
type Store struct {
	tb      testing.TB
	compile authz.CompileOptions
	now     func() time.Time

	mu       sync.Mutex
	accounts map[string]store.Account
	apps     *owners
	tenants  *owners           // in their store.App form
	keys     map[ref]store.Key // by account and id: key ids are unique per account
	roles    map[ref]store.Role
	denials  map[ref]store.Denial
	audit    []store.AuditEvent
	// defaults and overrides are the accounts' quotas (limits.go).
	defaults  store.Limits
	overrides map[string]store.LimitOverrides
	// lenient: a key that does not compile is only refused.
	lenient bool
	// Fail, when set, is returned by every call (and LookupKey).
	fail error
	// lookupFail is returned by LookupKey only.
	lookupFail error
	// lookupServes: fail is not returned by LookupKey (SetAccountsFail).
	lookupServes bool

	// seq is the change feed's head: one entry per audited change of a
	// key, app, tenant, role or denial; keySeq a key's last (replicas.go).
	seq      int64
	keySeq   map[ref]int64
	replicas map[string]store.Replica
	// usage are the hourly usage counts (usage.go).
	usage map[store.UsageRow]int64
}

type ref struct{ account, id string }

var (
	_ store.Accounts    = (*Store)(nil)
	_ store.UsageWriter = (*Store)(nil)
	_ store.UsageCounts = (*Store)(nil)
	_ store.UsageReader = (*Store)(nil)
	_ authz.KeyStore    = (*Store)(nil)
)

// NewStore returns an empty store. now is its clock (nil: time.Now); opts
// are what it re-compiles keys with.
func NewStore(tb testing.TB, opts authz.CompileOptions, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		tb: tb, compile: opts, now: now,
		accounts: map[string]store.Account{},
		apps: &owners{kind: "app", m: map[ref]store.App{},
			owns: func(k store.Key, id string) bool { return k.Spec.AppID == id }},
		tenants: &owners{kind: "tenant", m: map[ref]store.App{},
			owns: func(k store.Key, id string) bool { return k.Spec.TenantID == id }},
		keys:  map[ref]store.Key{},
		roles: map[ref]store.Role{}, denials: map[ref]store.Denial{},
		defaults: store.DefaultLimits, overrides: map[string]store.LimitOverrides{},
		keySeq: map[ref]int64{}, replicas: map[string]store.Replica{},
	}
}

// RefuseInvalidKeys makes the store answer a key that does not compile
// with store.ErrInvalid only, as PostgreSQL does, without failing the test
// (for the contract suite, which checks that refusal).
func (s *Store) RefuseInvalidKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lenient = true
}

// SetFail makes every call return err (nil: back to normal).
func (s *Store) SetFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.lookupServes = err, false
}

// SetAccountsFail makes every store.Accounts call return err (nil: back
// to normal) while LookupKey still answers: a database outage seen by the
// Account API, whose callers the data plane's cache still authenticates.
// store.ErrUnavailable (wrapped) is what the PostgreSQL store returns
// when it cannot reach the database.
func (s *Store) SetAccountsFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.lookupServes = err, true
}

// SetLookupFail makes LookupKey return err (nil: back to normal).
func (s *Store) SetLookupFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookupFail = err
}

// clock reads the store's clock as PostgreSQL would store it: UTC, to the
// microsecond.
func (s *Store) clock() time.Time { return dbTime(s.now()) }

// dbTime is t as a timestamptz column keeps it.
func dbTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// newID is a random (version 4) UUID, as gen_random_uuid makes.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// The CHECK constraints of the schema on ids, names and descriptions, with
// the messages the PostgreSQL store maps them to.
var (
	idOK   = regexp.MustCompile(`^[^\p{Cc}\s]{1,128}$`)
	nameOK = regexp.MustCompile(`^[^\p{Cc}]{1,256}$`)
)

func checkID(id string) error {
	if !idOK.MatchString(id) {
		return invalid("id: 1 to 128 characters, no spaces or control characters")
	}
	return nil
}

func checkName(name string) error {
	if !nameOK.MatchString(name) || strings.TrimSpace(name) != name {
		return invalid("name: 1 to 256 characters, no control characters or surrounding spaces")
	}
	return nil
}

func checkOwner(a store.App) error {
	if err := checkID(a.ID); err != nil {
		return err
	}
	if err := checkName(a.Name); err != nil {
		return err
	}
	if len([]rune(a.Description)) > 4096 {
		return invalid("description: at most 4096 characters")
	}
	return nil
}

// storeErr has its own message (naming the field, as the PostgreSQL
// store's do) and matches a store sentinel.
type storeErr struct {
	msg  string
	kind error
}

func (e *storeErr) Error() string { return e.msg }
func (e *storeErr) Unwrap() error { return e.kind }

func invalid(format string, args ...any) error {
	return &storeErr{msg: fmt.Sprintf(format, args...), kind: store.ErrInvalid}
}

func exists(format string, args ...any) error {
	return &storeErr{msg: fmt.Sprintf(format, args...), kind: store.ErrAlreadyExists}
}

func notFound(format string, args ...any) error {
	return &storeErr{msg: fmt.Sprintf(format, args...), kind: store.ErrNotFound}
}

// record is the audit JSON of a record; nil for none.
func record(v any) json.RawMessage {
	var r any
	switch o := v.(type) {
	case nil:
		return nil
	case store.Account:
		r = store.AccountAuditOf(o)
	case store.App:
		r = store.ParentAuditOf(o)
	case store.Key:
		r = store.KeyAuditOf(o)
	case store.LimitOverrides:
		r = store.LimitsAuditOf(o)
	case store.Role:
		r = store.RoleAuditOf(o)
	case roleHeld:
		a := store.RoleAuditOf(o.Role)
		a.HeldBy = o.keys
		r = a
	case store.Denial:
		r = store.DenialAuditOf(o)
	default:
		panic(fmt.Sprintf("accounttest: no audit record for %T", v))
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

func (s *Store) auditLocked(accountID string, actor store.Actor, action, objType, objID string, before, after any) {
	switch objType {
	case "key", "app", "tenant", "role", "denial":
		s.seq++ // a change-feed entry
		if objType == "key" {
			s.keySeq[ref{accountID, objID}] = s.seq
		}
	}
	s.audit = append(s.audit, store.AuditEvent{
		ID: int64(len(s.audit) + 1), AccountID: accountID, At: s.clock(), Actor: actor,
		Action: action, ObjectType: objType, ObjectID: objID,
		Before: record(before), After: record(after), Outcome: store.OutcomeAllowed,
	})
}

// RecordDenied writes an audit event with outcome denied.
func (s *Store) RecordDenied(_ context.Context, actor store.Actor, accountID string, e store.DeniedEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	raw := func(r *store.KeyAudit) json.RawMessage {
		if r == nil {
			return nil
		}
		b, err := json.Marshal(r)
		if err != nil {
			panic(err)
		}
		return b
	}
	s.audit = append(s.audit, store.AuditEvent{
		ID: int64(len(s.audit) + 1), AccountID: accountID, At: s.clock(), Actor: actor,
		Action: e.Action, ObjectType: e.ObjectType, ObjectID: e.ObjectID,
		Before: raw(e.Before), After: raw(e.After), Outcome: store.OutcomeDenied, Reason: e.Reason,
	})
	return nil
}

// keysetPage returns one page of all, sorted by (created_at, id): the
// items after the token's position, and the next token.
func keysetPage[T any](all []T, p store.Page, key func(T) (time.Time, string)) ([]T, string, error) {
	size, after, err := store.ReadPage(p)
	if err != nil {
		return nil, "", err
	}
	order := func(at time.Time, id string, bt time.Time, bid string) int {
		return cmp.Or(at.Compare(bt), cmp.Compare(id, bid))
	}
	slices.SortFunc(all, func(a, b T) int {
		at, aid := key(a)
		bt, bid := key(b)
		return order(at, aid, bt, bid)
	})
	var out []T
	for _, x := range all {
		at, id := key(x)
		if after != nil && order(at, id, time.UnixMicro(after.CreatedAt), after.ID) <= 0 {
			continue
		}
		out = append(out, x)
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		at, id := key(out[size-1])
		next = store.PageToken{CreatedAt: at.UnixMicro(), ID: id}.String()
	}
	return out, next, nil
}

// CreateAccount adds an account.
func (s *Store) CreateAccount(ctx context.Context, actor store.Actor, a store.Account) (store.Account, error) {
	defer s.noteChange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Account{}, s.fail
	}
	if a.ID == "" {
		a.ID = newID()
	}
	if err := checkID(a.ID); err != nil {
		return store.Account{}, err
	}
	if err := checkName(a.Name); err != nil {
		return store.Account{}, err
	}
	if _, dup := s.accounts[a.ID]; dup {
		return store.Account{}, exists("account %q already exists", a.ID)
	}
	a.CreatedAt = s.clock()
	s.accounts[a.ID] = a
	s.auditLocked(a.ID, actor, "account.create", "account", a.ID, nil, a)
	return a, nil
}

// GetAccount returns an account.
func (s *Store) GetAccount(_ context.Context, id string) (store.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.Account{}, s.fail
	}
	a, ok := s.accounts[id]
	if !ok {
		return store.Account{}, notFound("account %q not found", id)
	}
	return a, nil
}

func (s *Store) checkAccountLocked(id string) error {
	if _, ok := s.accounts[id]; !ok {
		return notFound("account %q not found", id)
	}
	return nil
}

// ListAuditEvents lists an account's audit events that pass f, newest
// first in (At, ID) order.
func (s *Store) ListAuditEvents(_ context.Context, accountID string, f store.AuditFilter, p store.Page) ([]store.AuditEvent, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, "", s.fail
	}
	size, after, err := store.ReadPage(p)
	if err != nil {
		return nil, "", err
	}
	if after != nil && after.Seq <= 0 {
		return nil, "", invalid("page_token: not a token this list returned")
	}
	var all []store.AuditEvent
	for _, e := range s.audit {
		if e.AccountID == accountID {
			all = append(all, e)
		}
	}
	newestFirst := func(a, b store.AuditEvent) int { return cmp.Or(b.At.Compare(a.At), cmp.Compare(b.ID, a.ID)) }
	slices.SortFunc(all, newestFirst)
	var pos *store.AuditEvent
	if after != nil {
		pos = &store.AuditEvent{At: after.CreatedAtTime(), ID: after.Seq}
		if after.CreatedAt == 0 { // a token of the id-ordered listing: the event it names
			i := slices.IndexFunc(all, func(e store.AuditEvent) bool { return e.ID == after.Seq })
			if i < 0 {
				return nil, "", invalid("page_token: not a token this list returned")
			}
			pos.At = all[i].At
		}
	}
	var out []store.AuditEvent
	for _, e := range all {
		if (pos == nil || newestFirst(*pos, e) < 0) && f.Matches(&e) {
			out = append(out, e)
		}
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		next = store.AuditToken(out[size-1])
	}
	return out, next, nil
}
