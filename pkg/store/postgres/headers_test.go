package postgres_test

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/logbuf"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
)

type headerCounter struct {
	mu sync.Mutex
	n  []int
}

func (c *headerCounter) ObserveDroppedResponseHeaders(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = append(c.n, n)
}

func (c *headerCounter) calls() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.n...)
}

// TestStoredBadResponseHeadersAreDropped: a key whose stored response
// headers break SPEC §9's rules (written before the rules, here by SQL)
// loads without them — by digest, by id and in LoadAll — each dropped
// header logged by key id and name and counted once per record loaded;
// the key can still be updated without touching them, but not given new
// bad ones.
func TestStoredBadResponseHeadersAreDropped(t *testing.T) {
	e := newEnv(t)
	k := e.mustCreateKey(serviceKey("legacy"))
	err := e.exec(`UPDATE keys SET response_headers = $2 WHERE id = $1`, k.Spec.ID,
		`[{"name": "set-cookie", "value": "session=abc"}, {"name": "x-tier", "value": "gold"},
		  {"name": "x-envoy-auth-headers-to-remove", "value": "x-nothing"}, {"name": "x-keygate-tenant", "value": "victim"},
		  {"name": "x-gone", "value": "1", "disabled": true}, {"name": "x-t", "value": "${tenant.id}"}]`)
	if err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	counter := &headerCounter{}
	pool, err := pgxpool.New(e.ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	opts := reserved
	opts.ReservedPrefixes = []string{"x-keygate-"}
	st := postgres.New(e.ctx, pool, postgres.Options{Compile: opts, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Headers: counter})

	wantHeaders := func(what string, key *authz.Key) {
		t.Helper()
		got := key.AppendResponseHeaders(nil, &authz.Target{Service: "email-api"})
		want := []authz.Header{{Name: "x-tier", Value: "gold"}, {Name: "x-t", Value: "ten1"}}
		if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("%s: response headers %v, want %v", what, got, want)
		}
	}
	key, err := st.LookupKey(e.ctx, digestOf("secret-legacy"))
	if err != nil {
		t.Fatalf("LookupKey: %v", err)
	}
	wantHeaders("LookupKey", key)
	key, err = st.LookupKeyByID(e.ctx, "acct", k.Spec.ID)
	if err != nil {
		t.Fatalf("LookupKeyByID: %v", err)
	}
	wantHeaders("LookupKeyByID", key)
	n := 0
	if _, err := st.LoadAll(e.ctx, func(key *authz.Key) error {
		if key.Spec.ID == k.Spec.ID {
			wantHeaders("LoadAll", key)
			n++
		}
		return nil
	}); err != nil || n != 1 {
		t.Fatalf("LoadAll: %v, %d records", err, n)
	}
	if got := counter.calls(); len(got) != 3 || got[0] != 3 || got[1] != 3 || got[2] != 3 {
		t.Fatalf("counted %v, want 3 headers for each of 3 loads", got)
	}
	out := logs.String()
	for _, name := range []string{"set-cookie", "x-envoy-auth-headers-to-remove", "x-keygate-tenant"} {
		if c := strings.Count(out, "header="+name); c != 3 {
			t.Errorf("header %s logged %d times, want 3:\n%s", name, c, out)
		}
	}
	if !strings.Contains(out, "key_id="+k.Spec.ID) {
		t.Errorf("log does not name the key:\n%s", out)
	}
	for _, v := range []string{"session=abc", "victim", "x-nothing", "x-gone"} {
		if strings.Contains(out, v) {
			t.Errorf("log holds %q (a value or an unsent header):\n%s", v, out)
		}
	}

	// An update that keeps the stored headers goes through; one that
	// writes a bad header does not.
	off := false
	if _, err := st.UpdateKey(e.ctx, e.actor, "acct", k.Spec.ID, store.KeyUpdate{Active: &off}); err != nil {
		t.Fatalf("deactivating the key: %v", err)
	}
	bad := []authz.HeaderSpec{{Name: "set-cookie", Value: "x"}}
	_, err = st.UpdateKey(e.ctx, e.actor, "acct", k.Spec.ID, store.KeyUpdate{ResponseHeaders: &bad})
	wantErr(t, err, store.ErrInvalid, "set-cookie", "must start with x-")
}
