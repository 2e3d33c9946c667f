package authz_test

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

// weakSecrets records the keys Engine.WeakSecrets was told of.
type weakSecrets struct{ ids []string }

func (w *weakSecrets) WeakSecret(k *authz.Key) { w.ids = append(w.ids, k.Spec.ID) }

// TestWeakSecretReportedOncePerRecord: a key answering to a custom secret
// the import rules now refuse keeps being allowed and is reported once per
// record however often it is used; a strong custom secret, a generated one
// and a request that is not the key's are never reported; a new record (a
// reload) is reported again.
func TestWeakSecretReportedOncePerRecord(t *testing.T) {
	const weak, strong = "abcdefghijklmnopqrst", "correct-horse-battery-staple-42"
	generated := mustGenerate(t, apikey.KindService)
	keys := map[apikey.Digest]*authz.Key{}
	add := func(id, secret string) *authz.Key {
		spec := serviceKey(secret)
		spec.ID = id
		k := mustCompile(t, spec)
		keys[k.Digest] = k
		return k
	}
	add("k-weak", weak)
	add("k-strong", strong)
	add("k-generated", generated)
	var seen weakSecrets
	e := &authz.Engine{Keys: &fakeStore{keys: keys}, Routes: &fakeRouter{target: emailRd}, Hasher: hasher,
		Now: func() time.Time { return t0 }, WeakSecrets: &seen}
	for range 3 {
		for _, s := range []string{weak, strong, generated, "not-a-key-of-this-store-0"} {
			d := e.Check(context.Background(), &authz.Request{Key: s, KeyCount: 1})
			if s != "not-a-key-of-this-store-0" && !d.Allowed() {
				t.Fatalf("%s: %s", s[:4], d.Reason)
			}
		}
	}
	if len(seen.ids) != 1 || seen.ids[0] != "k-weak" {
		t.Fatalf("reported %v, want [k-weak] once", seen.ids)
	}
	add("k-weak", weak) // the record replaced, as a reload does
	e.Check(context.Background(), &authz.Request{Key: weak, KeyCount: 1})
	if len(seen.ids) != 2 {
		t.Fatalf("a new record was not reported again: %v", seen.ids)
	}
	// Once vetted, a record's check costs a load and allocates nothing.
	req, ctx := &authz.Request{Key: weak, KeyCount: 1}, context.Background()
	if n := testing.AllocsPerRun(100, func() { e.Check(ctx, req) }); n != 0 {
		t.Fatalf("a vetted record's check allocates %v times", n)
	}
}
