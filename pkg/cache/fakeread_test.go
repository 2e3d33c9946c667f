// fakeSource's store.Source and store.AccessSource methods: what the
// cache reads (lookups, roles, denials, the snapshot, the change feed and
// its listener), honouring the faults injected in fakefaults_test.go.

package cache

import (
	"context"
	"fmt"
	"slices"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

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
func (f *fakeSource) LookupKeysByID(ctx context.Context, refs []store.KeyRef) ([]*authz.Key, error) {
	f.mu.Lock()
	gate, in := f.byIDGate, f.byIDIn
	f.mu.Unlock()
	if gate != nil {
		in <- len(refs)
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	if after := f.afterByID; after != nil {
		f.afterByID = nil
		defer after() // after the unlock below
	}
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

func (f *fakeSource) RevocationsSince(_ context.Context, seq int64, limit int) ([]store.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Change
	for _, ch := range f.changes {
		if ch.Seq > seq && ch.Revokes && (ch.Kind == store.ChangeKey || ch.Kind == store.ChangeDenial) && len(out) < limit {
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
