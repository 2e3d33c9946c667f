// The cache tests' fakes: keys and their digests, fakeSource (a store.Source
// in memory) with the edits a test makes to it, a clock and a usage writer.
// Its faults are in fakefaults_test.go, what the cache reads in
// fakeread_test.go.

package cache

import (
	"context"
	"crypto/sha256"
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
	byIDGate     chan struct{} // when set, LookupKeysByID waits for it before reading
	byIDIn       chan int      // told the number of keys of each held call
	// afterByID, when set, runs once after the next LookupKeysByID has
	// read (outside the lock): a change committed right after the read.
	afterByID func()
	at        time.Time // commit time of the changes logged next

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

// touch replaces a key and logs a change that does not revoke, as the
// store logs a change of a key's name, description or group only.
func (f *fakeSource) touch(k *authz.Key) int64 {
	seq := f.put(k)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes[len(f.changes)-1].Revokes = false
	return seq
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
