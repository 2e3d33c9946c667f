package postgres_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/cache"
	"github.com/keygate/keygate/pkg/logbuf"
	"github.com/keygate/keygate/pkg/store/postgres"
)

// TestUnloadableKeysAreDeniedNotFatal: keys whose stored fields do not
// compile (written by SQL past the API: a scope and an IP filter the
// grammar refuses, response headers that are not headers) do not fail the
// warm load. The replica warms and serves the good key; each bad one is
// denied store_unavailable (not unknown_key: its digest stays in the set),
// logged once by account and id without its hash, counted, and named on
// /readyz; a lookup by digest or id answers the same record, and a change
// to a bad key (here: fixing it) is applied, not retried forever.
func TestUnloadableKeysAreDeniedNotFatal(t *testing.T) {
	e := newEnv(t)
	good := e.mustCreateKey(serviceKey("good"))
	bad := map[string]string{
		"bad-scope":     `UPDATE keys SET scope = 'email-api:a:b:c' WHERE id = $1`,
		"bad-ip-filter": `UPDATE keys SET ip_filters = '{not-an-address}' WHERE id = $1`,
		"bad-headers":   `UPDATE keys SET response_headers = '[1, "two"]' WHERE id = $1`,
	}
	ids := map[string]string{}
	for name, sql := range bad {
		k := e.mustCreateKey(serviceKey(name))
		ids[name] = k.Spec.ID
		if err := e.exec(sql, k.Spec.ID); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	var log logbuf.Buffer
	st := postgres.New(e.ctx, e.pool, postgres.Options{Compile: reserved})
	kc, err := cache.New(st, cache.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	if err := kc.Warm(e.ctx); err != nil {
		t.Fatalf("Warm: %v", err)
	}
	engine := &authz.Engine{Keys: kc, Hasher: apikey.NewHasher(nil)}
	if k, err := kc.LookupKey(e.ctx, digestOf("secret-good")); err != nil || k.Unloadable() != "" || k.Spec.ID != good.Spec.ID {
		t.Fatalf("good key: %+v, %v", k, err)
	}
	for name := range bad {
		d := engine.Check(e.ctx, &authz.Request{Key: "secret-" + name, KeyCount: 1})
		if d.Reason != authz.StoreUnavailable || !errors.Is(d.Err, authz.ErrKeyUnloadable) {
			t.Errorf("%s: decided %s (%v), want store_unavailable", name, d.Reason, d.Err)
		}
		k, err := st.LookupKeyByID(e.ctx, "acct", ids[name])
		if err != nil || k.Unloadable() == "" {
			t.Errorf("%s: LookupKeyByID = %+v, %v; want an unloadable record", name, k, err)
		}
	}
	if s := kc.Stats(); s.KeysUnloadable != len(bad) {
		t.Errorf("KeysUnloadable = %d, want %d", s.KeysUnloadable, len(bad))
	}
	ok, detail := kc.Ready()
	if !ok || !strings.Contains(detail, "3 stored keys cannot be loaded") || !strings.Contains(detail, "acct/"+ids["bad-ip-filter"]) {
		t.Errorf("Ready = %v, %q", ok, detail)
	}
	text := log.String()
	for name, id := range ids {
		if n := strings.Count(text, "key_id="+id); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", name, n, text)
		}
	}
	for _, reason := range []string{"reason=\"does not compile: scope\"", "reason=\"does not compile: ip_filters\"",
		"reason=\"does not compile: response_headers\""} {
		if !strings.Contains(text, reason) {
			t.Errorf("log lacks %s:\n%s", reason, text)
		}
	}
	if strings.Contains(text, "sha256:") || strings.Contains(text, "secret-") {
		t.Errorf("log shows key material:\n%s", text)
	}

	// Fixed by SQL: the change feed brings the compiled key.
	ran := make(chan struct{})
	go func() { defer close(ran); _ = kc.Run(e.ctx) }()
	t.Cleanup(func() { <-ran }) // before kc.Close: Run returns once the test's context ends
	if err := e.exec(`UPDATE keys SET ip_filters = '{10.0.0.0/8}' WHERE id = $1`, ids["bad-ip-filter"]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fixed key to load", func() bool {
		k, err := kc.LookupKey(e.ctx, digestOf("secret-bad-ip-filter"))
		return err == nil && k.Unloadable() == "" && kc.Stats().KeysUnloadable == len(bad)-1
	})
}

// TestUnloadableKeyCompilePanics: a compile that panics (a bug, not bad
// data) is recovered into an unloadable record for that key alone.
func TestUnloadableKeyCompilePanics(t *testing.T) {
	e := newEnv(t)
	e.mustCreateKey(serviceKey("good"))
	k := e.mustCreateKey(serviceKey("boom"))
	st := postgres.New(e.ctx, e.pool, postgres.Options{Compile: reserved})
	postgres.SetCompileHook(t, func(spec authz.KeySpec) {
		if spec.ID == k.Spec.ID {
			panic("compile bug")
		}
	})
	var n, broken int
	if _, err := st.LoadAll(e.ctx, func(k *authz.Key) error {
		n++
		if k.Unloadable() != "" {
			broken++
		}
		return nil
	}); err != nil || n != 2 || broken != 1 {
		t.Fatalf("LoadAll: %d keys, %d unloadable, %v; want 2, 1, nil", n, broken, err)
	}
	got, err := st.LookupKey(e.ctx, digestOf("secret-boom"))
	if err != nil || got.Unloadable() != "does not compile: unknown fields" {
		t.Fatalf("LookupKey = %+v, %v", got, err)
	}
}
