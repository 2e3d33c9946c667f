// The store.Source reads the cache makes besides the feed: a key by its
// digest, keys by id, the whole snapshot (LoadAll), and TouchKeys, the
// last-used times written back.

package postgres_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
)

func TestLookupKey(t *testing.T) {
	e := newEnv(t)
	k := serviceKey("k")
	k.Spec.ResponseHeaders = []authz.HeaderSpec{{Name: "x-who", Value: "${tenant.name}/${key.name}"}}
	created := e.mustCreateKey(k)

	got, err := e.store.LookupKey(e.ctx, digestOf("secret-k"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.ID != created.Spec.ID || got.Spec.AccountID != "acct" || got.Spec.TenantName != "Tenant One" || got.Digest != digestOf("secret-k") {
		t.Fatalf("LookupKey: %+v", got.Spec)
	}
	hs := got.AppendResponseHeaders(nil, &authz.Target{})
	if len(hs) != 1 || hs[0].Value != "Tenant One/k" {
		t.Fatalf("compiled headers %+v", hs)
	}
	if _, err := e.store.LookupKey(e.ctx, digestOf("unknown")); !errors.Is(err, authz.ErrKeyNotFound) {
		t.Fatalf("unknown digest: %v", err)
	}
	if _, err := e.store.LookupKeyByID(e.ctx, "acct", "ghost"); !errors.Is(err, authz.ErrKeyNotFound) {
		t.Fatalf("unknown id: %v", err)
	}

	// Rotation with grace: both secrets find the key; the old one matches
	// only until the deadline.
	grace := time.Now().Add(time.Hour)
	if _, err := e.store.RotateKey(e.ctx, e.actor, "acct", created.Spec.ID, hashOf("new"), grace); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"new", "secret-k"} {
		got, err := e.store.LookupKey(e.ctx, digestOf(secret))
		if err != nil || got.Spec.ID != created.Spec.ID || !got.Matches(digestOf(secret), time.Now()) {
			t.Fatalf("lookup by %s within grace: %+v, %v", secret, got, err)
		}
		if secret == "secret-k" && got.Matches(digestOf(secret), grace) {
			t.Fatal("the old secret matches at its deadline")
		}
	}
	if _, err := e.store.RotateKey(e.ctx, e.actor, "acct", created.Spec.ID, hashOf("newer"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"new", "secret-k"} {
		if _, err := e.store.LookupKey(e.ctx, digestOf(secret)); !errors.Is(err, authz.ErrKeyNotFound) {
			t.Fatalf("lookup by %s after rotation without grace: %v", secret, err)
		}
	}

	// A stored key that no longer compiles is neither "not found" nor
	// skipped: it is an unloadable record (denied store_unavailable), and
	// it does not fail LoadAll (TestUnloadableKeysAreDeniedNotFatal).
	if err := e.exec(`UPDATE keys SET scope = 'a:b:c:d' WHERE id = $1`, created.Spec.ID); err != nil {
		t.Fatal(err)
	}
	got, err = e.store.LookupKeyByID(e.ctx, "acct", created.Spec.ID)
	if err != nil || got.Unloadable() == "" {
		t.Fatalf("uncompilable key: %+v, %v; want an unloadable record", got, err)
	}
	unloadable := 0
	if _, err := e.store.LoadAll(e.ctx, func(k *authz.Key) error {
		if k.Unloadable() != "" {
			unloadable++
		}
		return nil
	}); err != nil || unloadable != 1 {
		t.Fatalf("LoadAll: %v, %d unloadable records; want nil, 1", err, unloadable)
	}
}

func TestLoadAll(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"a", "b", "c"} {
		e.mustCreateKey(serviceKey(n))
	}
	if _, err := e.store.UpdateTenant(e.ctx, e.actor, "acct", "ten1", store.AppUpdate{Active: new(false)}); err != nil {
		t.Fatal(err)
	}
	var names []string
	seq, err := e.store.LoadAll(e.ctx, func(k *authz.Key) error {
		if k.Spec.Active {
			t.Errorf("key %s of an inactive tenant loaded active", k.Spec.Name)
		}
		names = append(names, k.Spec.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if seq != e.lastSeq() || slices.Compare(names, []string{"a", "b", "c"}) != 0 {
		t.Fatalf("LoadAll: seq %d (want %d), keys %v", seq, e.lastSeq(), names)
	}
	stop := errors.New("stop")
	calls := 0
	if _, err := e.store.LoadAll(e.ctx, func(*authz.Key) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("LoadAll with a failing fn: %v after %d calls", err, calls)
	}
}

// TestLoadAllSnapshot checks that LoadAll's keys and seq come from one
// snapshot: a key committed while LoadAll streams is neither loaded nor
// covered by the returned seq.
func TestLoadAllSnapshot(t *testing.T) {
	e := newEnv(t)
	e.mustCreateKey(serviceKey("before"))
	var loaded []string
	seq, err := e.store.LoadAll(e.ctx, func(k *authz.Key) error {
		if len(loaded) == 0 {
			e.mustCreateKey(serviceKey("during"))
		}
		loaded = append(loaded, k.Spec.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cs := e.changes(seq)
	if slices.Compare(loaded, []string{"before"}) != 0 || len(cs) != 1 {
		t.Fatalf("loaded %v, then changes %+v", loaded, cs)
	}
	if k, _ := e.store.LookupKeyByID(e.ctx, "acct", cs[0].ID); k == nil || k.Spec.Name != "during" {
		t.Fatalf("the change after the snapshot is not the key written during it")
	}
}

func TestTouchKeys(t *testing.T) {
	e := newEnv(t)
	a := e.mustCreateKey(serviceKey("a"))
	b := e.mustCreateKey(serviceKey("b"))
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	if err := e.store.TouchKeys(e.ctx, acctRefs(map[string]time.Time{a.Spec.ID: t0, b.Spec.ID: t0, "ghost": t0})); err != nil {
		t.Fatal(err)
	}
	// Older times never win.
	if err := e.store.TouchKeys(e.ctx, acctRefs(map[string]time.Time{a.Spec.ID: t0.Add(time.Minute), b.Spec.ID: t0.Add(-time.Minute)})); err != nil {
		t.Fatal(err)
	}
	if err := e.store.TouchKeys(e.ctx, nil); err != nil {
		t.Fatal(err)
	}
	ga, _ := e.store.GetKey(e.ctx, "acct", a.Spec.ID)
	gb, _ := e.store.GetKey(e.ctx, "acct", b.Spec.ID)
	if !ga.LastUsedAt.Equal(t0.Add(time.Minute)) || !gb.LastUsedAt.Equal(t0) || !ga.UpdatedAt.Equal(a.UpdatedAt) {
		t.Fatalf("last used a %v b %v (updated_at %v -> %v)", ga.LastUsedAt, gb.LastUsedAt, a.UpdatedAt, ga.UpdatedAt)
	}
	if n := e.count(`SELECT count(*) FROM key_usage`); n != 2 {
		t.Fatalf("%d usage rows", n)
	}
	// Usage goes with the key.
	if err := e.store.DeleteKey(e.ctx, e.actor, "acct", a.Spec.ID); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM key_usage`); n != 1 {
		t.Fatalf("%d usage rows after delete", n)
	}
}

// TestLookupKeysByID: one statement for many keys, each named with its
// account: two accounts may hold the same key id (SPEC §9).
func TestLookupKeysByID(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.CreateAccount(e.ctx, e.actor, store.Account{ID: "other", Name: "Other"}); err != nil {
		t.Fatal(err)
	}
	mine := serviceKey("read")
	mine.Spec.ID = "read"
	e.mustCreateKey(mine)
	theirs := store.Key{Spec: authz.KeySpec{AccountID: "other", ID: "read", Name: "read", Type: authz.KeyTypeAccount,
		Hash: hashOf("theirs"), Scope: authz.AccountAPIService, Active: true}}
	e.mustCreateKey(theirs)

	keys, err := e.store.LookupKeysByID(e.ctx, []store.KeyRef{
		{AccountID: "acct", ID: "read"}, {AccountID: "other", ID: "read"}, {AccountID: "acct", ID: "ghost"}, {AccountID: "nobody", ID: "read"},
	})
	if err != nil || len(keys) != 2 {
		t.Fatalf("LookupKeysByID: %d keys, %v; want 2", len(keys), err)
	}
	byAccount := map[string]apikey.Digest{}
	for _, k := range keys {
		byAccount[k.Spec.AccountID] = k.Digest
	}
	if byAccount["acct"] != digestOf("secret-read") || byAccount["other"] != digestOf("theirs") {
		t.Errorf("LookupKeysByID answered the wrong keys: %v", byAccount)
	}
	if k, err := e.store.LookupKeyByID(e.ctx, "other", "read"); err != nil || k.Digest != digestOf("theirs") {
		t.Errorf("LookupKeyByID(other, read): %v, %v", k, err)
	}
	if keys, err := e.store.LookupKeysByID(e.ctx, nil); err != nil || keys != nil {
		t.Errorf("LookupKeysByID(nil): %v, %v", keys, err)
	}
	if head, err := e.store.FeedHead(e.ctx); err != nil || head != e.lastSeq() {
		t.Errorf("FeedHead: %d, %v; want %d", head, err, e.lastSeq())
	}
}
