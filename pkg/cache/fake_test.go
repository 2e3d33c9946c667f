package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

// deadline bounds every wait for the feed goroutine; it is not a timing
// assertion.
const deadline = 5 * time.Second

// digestOf is the digest of a test secret (plain SHA-256).
func digestOf(secret string) apikey.Digest { return sha256.Sum256([]byte(secret)) }

// newKey compiles an active app key whose secret is secret.
func newKey(t testing.TB, id, secret string, edit ...func(*authz.KeySpec)) *authz.Key {
	t.Helper()
	spec := authz.KeySpec{
		ID:     id,
		Name:   "name-" + id,
		Type:   authz.KeyTypeApp,
		AppID:  "app-1",
		Hash:   apikey.FormatHash(apikey.SHA256, digestOf(secret)),
		Scope:  "billing:*",
		Active: true,
	}
	for _, e := range edit {
		e(&spec)
	}
	k, err := authz.Compile(spec, authz.CompileOptions{})
	if err != nil {
		t.Fatalf("compile %s: %v", id, err)
	}
	return k
}

// rotated is k with a new secret; the old one stays valid until grace
// (zero: not at all).
func rotated(t testing.TB, k *authz.Key, secret string, grace time.Time) *authz.Key {
	t.Helper()
	return newKey(t, k.Spec.ID, secret, func(s *authz.KeySpec) {
		*s = k.Spec.KeySpec()
		s.Hash = apikey.FormatHash(apikey.SHA256, digestOf(secret))
		s.PreviousHash, s.PreviousValidUntil = "", time.Time{}
		if !grace.IsZero() {
			s.PreviousHash = apikey.FormatHash(k.Algorithm(), k.Digest)
			s.PreviousValidUntil = grace
		}
	})
}

// edited is k compiled again after edit.
func edited(t testing.TB, k *authz.Key, edit func(*authz.KeySpec)) *authz.Key {
	t.Helper()
	return newKey(t, k.Spec.ID, "", func(s *authz.KeySpec) {
		*s = k.Spec.KeySpec()
		s.Hash = apikey.FormatHash(k.Algorithm(), k.Digest)
		if k.HasPrevious {
			s.PreviousHash = apikey.FormatHash(k.Algorithm(), k.PreviousDigest())
		}
		edit(s)
	})
}

func digestsOf(k *authz.Key) []apikey.Digest {
	if k.HasPrevious {
		return []apikey.Digest{k.Digest, k.PreviousDigest()}
	}
	return []apikey.Digest{k.Digest}
}

// fakeSource is a hand-written store.Source: keys in a map, a change log,
// injectable errors and a gate that holds LookupKey calls.
type fakeSource struct {
	mu       sync.Mutex
	keys     map[string]*authz.Key
	byDigest map[apikey.Digest]string
	changes  []store.Change
	seq      int64

	// Injected failures (guarded by mu): the next n calls fail.
	lookupErr    error
	loadAllErr   error
	changesFails int
	truncated    bool           // the next ChangesSince answers store.ErrFeedTruncated
	byIDFails    map[string]int // key id → failures left
	parentFails  int
	parentGate   chan struct{} // when set, LookupKeysOfParent waits for it after reading
	parentIn     chan string   // told the parent id of each held call
	at           time.Time     // commit time of the changes logged next

	// gate, when set, holds every LookupKey call after it has read the
	// store, until the channel is closed; entered is told about each.
	gate    chan struct{}
	entered chan apikey.Digest

	lookups     atomic.Int64
	changeCalls atomic.Int64
	byIDCalls   []string // ids, in call order (guarded by mu)
	byIDBatches int      // LookupKeysByID calls (guarded by mu)
	parentCalls []string // app or tenant ids, in call order (guarded by mu)
	order       []string // "keys" and "parent <id>" batches, in call order (guarded by mu)

	// Roles and denials (store.AccessSource), by id; the tests' are of
	// one account. denialFails makes the next n LookupDenial calls fail.
	roles       map[string]store.Role
	denials     map[string]store.Denial
	denialFails int
	denialCalls []string // LookupDenial ids, in call order (guarded by mu)

	// Listen's callbacks, for the test to drive.
	notifyFn  func()
	stateFn   func(bool)
	listening chan struct{} // closed by the first Listen
	listenRet chan error    // when set, Listen returns what it receives
}

var (
	_ store.Source       = (*fakeSource)(nil)
	_ store.AccessSource = (*fakeSource)(nil)
)

func newFakeSource(keys ...*authz.Key) *fakeSource {
	f := &fakeSource{
		keys:      make(map[string]*authz.Key),
		byDigest:  make(map[apikey.Digest]string),
		byIDFails: make(map[string]int),
		listening: make(chan struct{}),
		roles:     make(map[string]store.Role),
		denials:   make(map[string]store.Denial),
	}
	for _, k := range keys {
		f.index(k)
	}
	return f
}

func (f *fakeSource) index(k *authz.Key) {
	f.keys[k.Spec.ID] = k
	for _, d := range digestsOf(k) {
		f.byDigest[d] = k.Spec.ID
	}
}

func (f *fakeSource) unindex(id string) []apikey.Digest {
	old, ok := f.keys[id]
	if !ok {
		return nil
	}
	delete(f.keys, id)
	ds := digestsOf(old)
	for _, d := range ds {
		delete(f.byDigest, d)
	}
	return ds
}

// put creates or replaces a key and logs the change; it returns its seq.
func (f *fakeSource) put(k *authz.Key) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.unindex(k.Spec.ID)
	f.index(k)
	return f.logChange(k.Spec.ID, old)
}

// remove deletes a key and logs the change.
func (f *fakeSource) remove(id string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logChange(id, f.unindex(id))
}

// prune changes the keys without logging changes, as a replica cut off for
// longer than the feed keeps changes would find them: the next
// ChangesSince says the feed was truncated.
func (f *fakeSource) prune(remove string, add *authz.Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unindex(remove)
	f.index(add)
	f.truncated = true
}

// forget deletes a key without logging a change: a set entry goes stale.
func (f *fakeSource) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unindex(id)
}

func (f *fakeSource) logChange(id string, old []apikey.Digest) int64 {
	f.seq++
	f.changes = append(f.changes, store.Change{Seq: f.seq, Kind: store.ChangeKey, ID: id, OldDigest: old,
		Revokes: old != nil, At: f.at})
	return f.seq
}

// editApp edits every key of an app as a rename or (de)activation of the
// app would, and logs one change for the app, as the store's feed does.
func (f *fakeSource) editApp(appID string, revokes bool, edit func(*authz.Key) *authz.Key) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, k := range f.keys {
		if k.Spec.AppID == appID {
			f.keys[id] = edit(k)
		}
	}
	f.seq++
	f.changes = append(f.changes, store.Change{Seq: f.seq, Kind: store.ChangeApp, ID: appID, Revokes: revokes, At: f.at})
	return f.seq
}

// setCommitTime sets the commit time of the changes logged from now on.
func (f *fakeSource) setCommitTime(at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at = at
}

// failForever makes every LookupKeysOfParent call fail until failParents(0):
// Run kicks its catch-up twice at start (once itself, once when Listen
// connects), so a single failure may be retried at once, before a test
// looks at the state the failure left.
const failForever = 1 << 30

// failParents makes the next n LookupKeysOfParent calls fail.
func (f *fakeSource) failParents(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parentFails = n
}

// calls returns how many batched lookups by id and by parent were made.
func (f *fakeSource) calls() (byID, byParent int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byIDBatches, len(f.parentCalls)
}

func (f *fakeSource) setLookupErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookupErr = err
}

func (f *fakeSource) failChanges(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changesFails = n
}

func (f *fakeSource) failByID(id string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byIDFails[id] = n
}

// hold makes the next LookupKey calls wait until the returned release is
// called; entered receives the digest of each held call. unhold stops
// holding new calls (the held ones stay held until release).
func (f *fakeSource) hold() (entered <-chan apikey.Digest, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	ch := make(chan apikey.Digest, 100)
	f.gate, f.entered = gate, ch
	var once sync.Once
	return ch, func() { once.Do(func() { close(gate) }) }
}

func (f *fakeSource) unhold() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate, f.entered = nil, nil
}

// callOrder is the batched lookups made, in order.
func (f *fakeSource) callOrder() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.order)
}

func (f *fakeSource) byIDLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.byIDCalls)
}

// notify and setConnected act as the Listen connection would.
func (f *fakeSource) notify() {
	f.mu.Lock()
	fn := f.notifyFn
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (f *fakeSource) setConnected(up bool) {
	f.mu.Lock()
	fn := f.stateFn
	f.mu.Unlock()
	fn(up)
}

var errDown = errors.New("fake: connection refused")

func (f *fakeSource) LookupKey(ctx context.Context, d apikey.Digest) (*authz.Key, error) {
	f.lookups.Add(1)
	f.mu.Lock()
	err := f.lookupErr
	k, ok := f.keys[f.byDigest[d]]
	gate, entered := f.gate, f.entered
	f.mu.Unlock()
	// What was read above is returned even if the store changes while the
	// call is held: a slow query that answered with the old row.
	if entered != nil {
		entered <- d
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, authz.ErrKeyNotFound
	}
	return k, nil
}

func (f *fakeSource) LookupKeyByID(ctx context.Context, accountID, id string) (*authz.Key, error) {
	ks, err := f.LookupKeysByID(ctx, []store.KeyRef{{AccountID: accountID, ID: id}})
	switch {
	case err != nil:
		return nil, err
	case len(ks) == 0:
		return nil, fmt.Errorf("key %s: %w", id, store.ErrNotFound)
	}
	return ks[0], nil
}

// LookupKeysByID fails as a whole when any of its keys is set to fail.
func (f *fakeSource) LookupKeysByID(_ context.Context, refs []store.KeyRef) ([]*authz.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byIDBatches++
	f.order = append(f.order, "keys")
	var failed bool
	for _, r := range refs {
		f.byIDCalls = append(f.byIDCalls, r.ID)
		if f.byIDFails[r.ID] > 0 {
			f.byIDFails[r.ID]--
			failed = true
		}
	}
	if failed {
		return nil, errDown
	}
	var out []*authz.Key
	for _, r := range refs {
		if k, ok := f.keys[r.ID]; ok && k.Spec.AccountID == r.AccountID {
			out = append(out, k)
		}
	}
	return out, nil
}

// putDenial creates or replaces a denial and logs its change (revoking,
// as the store's feed does for a create or an edit).
func (f *fakeSource) putDenial(d store.Denial) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denials[d.ID] = d
	f.seq++
	f.changes = append(f.changes, store.Change{Seq: f.seq, AccountID: d.AccountID, Kind: store.ChangeDenial, ID: d.ID, Revokes: true, At: f.at})
	return f.seq
}

// removeDenial deletes a denial and logs its change (not revoking).
func (f *fakeSource) removeDenial(accountID, id string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.denials, id)
	f.seq++
	f.changes = append(f.changes, store.Change{Seq: f.seq, AccountID: accountID, Kind: store.ChangeDenial, ID: id, At: f.at})
	return f.seq
}

// setDenialsUnlogged replaces the denials without logging changes, as a
// replica cut off past the feed's pruning would find them.
func (f *fakeSource) setDenialsUnlogged(ds ...store.Denial) {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.denials)
	for _, d := range ds {
		f.denials[d.ID] = d
	}
	f.truncated = true
}

// editRole stores a role and recompiles every key holding it with edit,
// logging one change for the role, as the store's feed does.
func (f *fakeSource) editRole(r store.Role, revokes bool, edit func(*authz.Key) *authz.Key) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roles[r.ID] = r
	for id, k := range f.keys {
		if k.HoldsRole(r.ID) {
			f.keys[id] = edit(k)
		}
	}
	f.seq++
	f.changes = append(f.changes, store.Change{Seq: f.seq, AccountID: r.AccountID, Kind: store.ChangeRole, ID: r.ID, Revokes: revokes, At: f.at})
	return f.seq
}

func (f *fakeSource) failDenials(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denialFails = n
}

func (f *fakeSource) denialLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.denialCalls)
}

func (f *fakeSource) LoadRoles(_ context.Context, fn func(store.Role) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.roles {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSource) LoadDenials(_ context.Context, fn func(store.Denial) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loadAllErr != nil {
		return f.loadAllErr
	}
	for _, d := range f.denials {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSource) LookupRole(_ context.Context, accountID, id string) (store.Role, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.roles[id]
	if !ok || r.AccountID != accountID {
		return store.Role{}, store.ErrNotFound
	}
	return r, nil
}

func (f *fakeSource) LookupDenial(_ context.Context, accountID, id string) (store.Denial, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denialCalls = append(f.denialCalls, id)
	if f.denialFails > 0 {
		f.denialFails--
		return store.Denial{}, errDown
	}
	d, ok := f.denials[id]
	if !ok || d.AccountID != accountID {
		return store.Denial{}, store.ErrNotFound
	}
	return d, nil
}

func (f *fakeSource) KeysHoldingRole(_ context.Context, accountID, roleID string) ([]store.KeyRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.KeyRef
	for _, k := range f.keys {
		if k.Spec.AccountID == accountID && k.HoldsRole(roleID) {
			out = append(out, store.KeyRef{AccountID: accountID, ID: k.Spec.ID})
		}
	}
	return out, nil
}

func (f *fakeSource) LookupKeysOfParent(ctx context.Context, accountID string, kind store.ChangeKind, id string) ([]*authz.Key, error) {
	f.mu.Lock()
	f.parentCalls = append(f.parentCalls, id)
	f.order = append(f.order, "parent "+id)
	if f.parentFails > 0 {
		f.parentFails--
		f.mu.Unlock()
		return nil, errDown
	}
	var out []*authz.Key
	for _, k := range f.keys {
		if k.Spec.AccountID != accountID {
			continue
		}
		if (kind == store.ChangeApp && k.Spec.AppID == id) || (kind == store.ChangeRole && k.HoldsRole(id)) {
			out = append(out, k)
		}
	}
	gate, in := f.parentGate, f.parentIn
	f.mu.Unlock()
	// What was read above is returned even if the keys change while the
	// call is held: a slow read of many keys.
	if gate != nil {
		in <- id
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// holdParents makes LookupKeysOfParent calls wait, after reading, until
// release is called; entered receives the parent id of each.
func (f *fakeSource) holdParents() (entered <-chan string, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate, in := make(chan struct{}), make(chan string, 100)
	f.parentGate, f.parentIn = gate, in
	var once sync.Once
	return in, func() { once.Do(func() { close(gate) }) }
}

func (f *fakeSource) FeedHead(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq, nil
}

func (f *fakeSource) LoadAll(_ context.Context, fn func(*authz.Key) error) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loadAllErr != nil {
		return 0, f.loadAllErr
	}
	ids := make([]string, 0, len(f.keys))
	for id := range f.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := fn(f.keys[id]); err != nil {
			return 0, err
		}
	}
	return f.seq, nil
}

func (f *fakeSource) ChangesSince(_ context.Context, seq int64, limit int) ([]store.Change, error) {
	f.changeCalls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changesFails > 0 {
		f.changesFails--
		return nil, errDown
	}
	if f.truncated {
		f.truncated = false
		return nil, store.ErrFeedTruncated
	}
	var out []store.Change
	for _, ch := range f.changes {
		if ch.Seq > seq && len(out) < limit {
			out = append(out, ch)
		}
	}
	return out, nil
}

func (f *fakeSource) Listen(ctx context.Context, notify func(), onState func(bool)) error {
	f.mu.Lock()
	f.notifyFn, f.stateFn = notify, onState
	first := f.listening != nil
	if first {
		close(f.listening)
		f.listening = nil
	}
	ret := f.listenRet
	f.mu.Unlock()
	onState(true)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-ret:
		onState(false)
		return err
	}
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeWriter is a store.UsageWriter that records batches and fails on
// demand.
type fakeWriter struct {
	mu      sync.Mutex
	batches []map[string]time.Time
	fails   int
	calls   int
}

// TouchKeys records batches by key id: the tests' keys are of one account.
func (w *fakeWriter) TouchKeys(_ context.Context, used map[store.KeyRef]time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.fails > 0 {
		w.fails--
		return errDown
	}
	batch := make(map[string]time.Time, len(used))
	for r, at := range used {
		batch[r.ID] = at
	}
	w.batches = append(w.batches, batch)
	return nil
}

func (w *fakeWriter) written() []map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.batches)
}
