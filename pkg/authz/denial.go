package authz

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/keygate/keygate/pkg/scope"
)

// MaxDenialReasonBytes bounds a denial's reason text (SPEC §11), which is
// sent to every caller it blocks.
const MaxDenialReasonBytes = 500

// Denial is a service access denial as a store holds it (SPEC §11): for
// one tenant of one app of an account (both required), a scope of
// allow-form patterns saying what it blocks, and the reason text the
// blocked caller reads as the deny body's error.
type Denial struct {
	ID        string
	AccountID string
	TenantID  string
	AppID     string
	Scope     string
	Reason    string
}

// CompiledDenial is a checked denial with its scope compiled, as the
// decision reads it. It is immutable once compiled (a change is a new
// record), so adapters may keep a ready-made answer with it.
type CompiledDenial struct {
	Denial
	scope *scope.Scope
	// adapterData lets a transport adapter keep its ready-made deny
	// answer with the record, built once (see Key.SetAdapterData).
	adapterData atomic.Value
}

// AdapterData returns what an adapter stored with SetAdapterData, or nil.
func (d *CompiledDenial) AdapterData() any { return d.adapterData.Load() }

// SetAdapterData stores an adapter's ready-made form of the denial's
// answer. Every caller must store the same concrete type.
func (d *CompiledDenial) SetAdapterData(v any) { d.adapterData.Store(v) }

// Covers reports whether the denial blocks the operation. An unknown
// (empty) kind or operation is covered by any pattern naming the service
// (SPEC §9).
func (d *CompiledDenial) Covers(service, kind, operation string) bool {
	return d.scope.Covers(service, kind, operation)
}

// CompileDenial checks a denial and compiles it. The error joins one
// FieldError per problem (fields id, account, tenant, app, scope, reason).
func CompileDenial(d Denial) (*CompiledDenial, error) {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, &FieldError{Field: field, Err: err}) }
	if d.ID == "" {
		bad("id", errors.New("required"))
	}
	if d.AccountID == "" {
		bad("account", errors.New("required"))
	}
	if d.TenantID == "" {
		bad("tenant", errors.New("required: a denial is for one tenant of one app (there are no app-wide denials)"))
	}
	if d.AppID == "" {
		bad("app", errors.New("required: a denial is for one tenant of one app"))
	}
	sc, err := scope.Parse(d.Scope)
	switch {
	case err != nil:
		bad("scope", err)
	case sc.IsEmpty():
		bad("scope", errors.New("required: say what the denial blocks, e.g. email-api or email-api:mutation:sendEmail"))
	case sc.HasDeny():
		bad("scope", errors.New("deny (!) patterns are not allowed: a denial's scope lists what it blocks"))
	}
	if err := CheckDenialReason(d.Reason); err != nil {
		bad("reason", err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &CompiledDenial{Denial: d, scope: sc}, nil
}

// ErrDenialReasonTooLong is CheckDenialReason's error for a reason past
// MaxDenialReasonBytes (a size limit: the Account API answers it
// ResourceExhausted).
var ErrDenialReasonTooLong = fmt.Errorf("at most %d", MaxDenialReasonBytes)

// CheckDenialReason is the one rule for a denial's reason text (SPEC §11),
// which every caller the denial blocks reads as the deny body's error: the
// Account API (every transport), the keys file and the data plane
// (CompileDenial) all apply it, so that what one accepts the others do.
// A reason is required, at most MaxDenialReasonBytes bytes of UTF-8, and
// holds no character that would make it read differently from what it
// says (control characters other than newline and tab, bidirectional or
// invisible ones; named by code point, never echoed). A reason too long
// wraps ErrDenialReasonTooLong.
func CheckDenialReason(reason string) error {
	switch {
	case reason == "":
		return errors.New(`required: the text the blocked caller reads, e.g. "Payment overdue: contact billing@example.com"`)
	case len(reason) > MaxDenialReasonBytes:
		return fmt.Errorf("%d bytes, %w", len(reason), ErrDenialReasonTooLong)
	}
	return checkReasonText(reason)
}

// StoredDenialReason is the reason text given in place of a stored
// denial's own when CheckDenialReason refuses that (a row written before
// the rule, or past the Account API): the denial still blocks what its
// scope names, no more, and the caller reads this instead.
const StoredDenialReason = "Access is denied by a service access denial of this tenant and app; ask the account's administrator for the reason"

// UnloadableDenialReason is the reason text of a stored denial that does
// not compile for another cause than its reason (no usable scope): it then
// blocks every operation of its tenant and app, fail closed, rather than
// none.
const UnloadableDenialReason = "Access is denied: a service access denial of this tenant and app could not be loaded; ask the account's administrator"

// StoredDenialFallback says how CompileStoredDenial had to read a stored
// denial.
type StoredDenialFallback uint8

const (
	// StoredDenialAsWritten: the denial compiled as stored.
	StoredDenialAsWritten StoredDenialFallback = iota
	// StoredDenialGenericReason: only the reason was refused; the denial
	// blocks its own scope with StoredDenialReason as its text.
	StoredDenialGenericReason
	// StoredDenialBlocksAll: the denial does not compile otherwise; it
	// blocks every operation of its tenant and app with
	// UnloadableDenialReason.
	StoredDenialBlocksAll
)

// CompileStoredDenial compiles a denial read from a store as the data
// plane must, failing closed without widening: a denial whose only fault
// is its reason (see CheckDenialReason) blocks what its scope names, with
// StoredDenialReason; one that does not compile otherwise blocks
// everything of its tenant and app (UnloadableDenialReason), since
// skipping it would let through what it was written to block. err is the
// compile error to log when the fallback is not StoredDenialAsWritten;
// the record is nil only for a denial without a tenant or an app, which
// could block nothing.
func CompileStoredDenial(d Denial) (*CompiledDenial, StoredDenialFallback, error) {
	cd, err := CompileDenial(d)
	if err == nil {
		return cd, StoredDenialAsWritten, nil
	}
	reasonErr := CheckDenialReason(d.Reason)
	if reasonErr != nil {
		d.Reason = StoredDenialReason
		if cd, err2 := CompileDenial(d); err2 == nil {
			return cd, StoredDenialGenericReason, err
		}
	}
	d.Scope, d.Reason = "*", UnloadableDenialReason
	if cd, err2 := CompileDenial(d); err2 == nil {
		return cd, StoredDenialBlocksAll, err
	}
	return nil, StoredDenialBlocksAll, err
}

// checkReasonText refuses text that would read differently from what it
// says once shown (bidirectional, invisible or control characters, as in
// names), except that a reason may hold newlines and tabs.
func checkReasonText(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' && c != '\t' {
			return fmt.Errorf("has control character 0x%02x", c)
		}
	}
	return CheckLabelText(stripLayout(s))
}

func stripLayout(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\t' {
			b[i] = ' '
		}
	}
	return string(b)
}

// DenialIndex holds compiled denials by account, tenant and app: what
// row 9 checks (Engine.Denials). Readers load an immutable
// snapshot (one atomic load, two map lookups, no lock, no allocation);
// writers (Replace, Apply, Put, Delete) build the next snapshot, copying
// only the outer map and the account they change, and swap it in
// atomically. The zero value is an empty index, ready to use.
type DenialIndex struct {
	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[denialSnapshot]
}

type denialSnapshot struct {
	accounts map[string]*accountDenials
	n        int
}

// accountDenials are one account's denials. Immutable once published.
type accountDenials struct {
	byID map[string]*CompiledDenial
	// byTarget lists the denials of each tenant and app, by id.
	byTarget map[tenantApp][]*CompiledDenial
}

type tenantApp struct{ tenant, app string }

// DenialRef names a denial to delete.
type DenialRef struct{ AccountID, ID string }

// NewDenialIndex returns an index holding ds.
func NewDenialIndex(ds ...*CompiledDenial) *DenialIndex {
	x := &DenialIndex{}
	x.Replace(ds)
	return x
}

// Replace swaps in exactly ds (a full load). A later denial with the same
// account and id replaces an earlier one.
func (x *DenialIndex) Replace(ds []*CompiledDenial) {
	x.mu.Lock()
	defer x.mu.Unlock()
	next := &denialSnapshot{accounts: map[string]*accountDenials{}}
	next.apply(ds, nil)
	x.snap.Store(next)
}

// Apply puts and deletes denials in one step: readers see all of it or
// none. A put replaces the denial with the same account and id, wherever
// its tenant and app were; deleting an unknown denial is not an error.
func (x *DenialIndex) Apply(put []*CompiledDenial, del []DenialRef) {
	x.mu.Lock()
	defer x.mu.Unlock()
	cur := x.snap.Load()
	next := &denialSnapshot{accounts: map[string]*accountDenials{}}
	if cur != nil {
		next.accounts, next.n = maps.Clone(cur.accounts), cur.n
	}
	next.apply(put, del)
	x.snap.Store(next)
}

// Put adds or replaces one denial.
func (x *DenialIndex) Put(d *CompiledDenial) { x.Apply([]*CompiledDenial{d}, nil) }

// Delete removes one denial.
func (x *DenialIndex) Delete(accountID, id string) {
	x.Apply(nil, []DenialRef{{AccountID: accountID, ID: id}})
}

// apply changes s, whose accounts map is its own but whose account
// entries may be shared with the previous snapshot: an account it changes
// is copied first.
func (s *denialSnapshot) apply(put []*CompiledDenial, del []DenialRef) {
	copied := map[string]*accountDenials{}
	account := func(id string) *accountDenials {
		if a, ok := copied[id]; ok {
			return a
		}
		a := &accountDenials{byID: map[string]*CompiledDenial{}, byTarget: map[tenantApp][]*CompiledDenial{}}
		if old, ok := s.accounts[id]; ok {
			a.byID, a.byTarget = maps.Clone(old.byID), maps.Clone(old.byTarget)
		}
		copied[id], s.accounts[id] = a, a
		return a
	}
	remove := func(a *accountDenials, id string) {
		old, ok := a.byID[id]
		if !ok {
			return
		}
		delete(a.byID, id)
		s.n--
		k := tenantApp{old.TenantID, old.AppID}
		list := slices.DeleteFunc(slices.Clone(a.byTarget[k]), func(d *CompiledDenial) bool { return d.ID == id })
		if len(list) == 0 {
			delete(a.byTarget, k)
		} else {
			a.byTarget[k] = list
		}
	}
	for _, r := range del {
		if _, ok := s.accounts[r.AccountID]; ok {
			remove(account(r.AccountID), r.ID)
		}
	}
	for _, d := range put {
		if d == nil {
			continue
		}
		a := account(d.AccountID)
		remove(a, d.ID)
		a.byID[d.ID] = d
		s.n++
		k := tenantApp{d.TenantID, d.AppID}
		list := append(slices.Clone(a.byTarget[k]), d)
		slices.SortFunc(list, func(x, y *CompiledDenial) int { return cmp.Compare(x.ID, y.ID) })
		a.byTarget[k] = list
	}
	for id, a := range copied {
		if len(a.byID) == 0 {
			delete(s.accounts, id)
		}
	}
}

// MatchDenial is row 9 (SPEC §5, §11): the first denial, by id, of the
// key's account, tenant and app that covers the target's operation or any
// of its further operations (a GraphQL document's other root fields); nil
// when none does. A key without a tenant (app and account keys) is never
// denied by a denial. It does not allocate.
func (x *DenialIndex) MatchDenial(k *Key, t *Target) *CompiledDenial {
	if k.Spec.TenantID == "" {
		return nil
	}
	s := x.load()
	if s == nil || s.n == 0 {
		return nil
	}
	a, ok := s.accounts[k.Spec.AccountID]
	if !ok {
		return nil
	}
	for _, d := range a.byTarget[tenantApp{k.Spec.TenantID, k.Spec.AppID}] {
		if coversTarget(d, t) {
			return d
		}
	}
	return nil
}

func coversTarget(d *CompiledDenial, t *Target) bool {
	if d.Covers(t.Service, t.Kind, t.Operation) {
		return true
	}
	for i := range t.More {
		if d.Covers(t.Service, t.More[i].Kind, t.More[i].Name) {
			return true
		}
	}
	return false
}

// For returns the denials of one tenant and app of an account, by id (for
// explain). The caller owns the slice, not the denials.
func (x *DenialIndex) For(accountID, tenantID, appID string) []*CompiledDenial {
	s := x.load()
	if s == nil {
		return nil
	}
	a, ok := s.accounts[accountID]
	if !ok {
		return nil
	}
	return slices.Clone(a.byTarget[tenantApp{tenantID, appID}])
}

// Get returns one denial.
func (x *DenialIndex) Get(accountID, id string) (*CompiledDenial, bool) {
	s := x.load()
	if s == nil {
		return nil, false
	}
	a, ok := s.accounts[accountID]
	if !ok {
		return nil, false
	}
	d, ok := a.byID[id]
	return d, ok
}

// All returns every denial, by account then id.
func (x *DenialIndex) All() []*CompiledDenial {
	s := x.load()
	if s == nil {
		return nil
	}
	var out []*CompiledDenial
	for _, a := range s.accounts {
		for _, d := range a.byID {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(x, y *CompiledDenial) int {
		return cmp.Or(cmp.Compare(x.AccountID, y.AccountID), cmp.Compare(x.ID, y.ID))
	})
	return out
}

// load is the current snapshot; nil for a nil or empty index.
func (x *DenialIndex) load() *denialSnapshot {
	if x == nil {
		return nil
	}
	return x.snap.Load()
}

// Len is the number of denials held.
func (x *DenialIndex) Len() int {
	if s := x.load(); s != nil {
		return s.n
	}
	return 0
}
