package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// clock is a test clock that moves 1 ms forward on every reading, so that
// creation times are distinct and ordered.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

var reserved = authz.CompileOptions{ReservedHeaders: []string{"x-api-key", "x-keygate-key-id"}}

type env struct {
	t     *testing.T
	ctx   context.Context
	url   string
	pool  *pgxpool.Pool
	store *postgres.Store
	clock *clock
	actor store.Actor
}

// newEnv gives a test its own database, a store on it, and an account
// "acct" with app "app1" and tenant "ten1". The test runs in parallel
// with the package's others.
func newEnv(t *testing.T) *env {
	t.Helper()
	t.Parallel()
	return setUpEnv(t)
}

// newSerialEnv is newEnv for a test that must not run beside the others:
// one that counts the process's goroutines, which a parallel test's cache
// or listener would change under it. Go runs such a test before any
// parallel one resumes.
func newSerialEnv(t *testing.T) *env {
	t.Helper()
	return setUpEnv(t)
}

func setUpEnv(t *testing.T) *env {
	t.Helper()
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c := newClock()
	e := &env{t: t, ctx: ctx, url: url, pool: pool, clock: c,
		store: postgres.New(ctx, pool, postgres.Options{Compile: reserved, Now: c.Now}),
		actor: store.Actor{KeyID: "admin-key", KeyName: "admin"}}
	if _, err := e.store.CreateAccount(ctx, e.actor, store.Account{ID: "acct", Name: "Account"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateApp(ctx, e.actor, store.App{AccountID: "acct", ID: "app1", Name: "App One", Active: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateTenant(ctx, e.actor, store.Tenant{AccountID: "acct", ID: "ten1", Name: "Tenant One", Active: true}); err != nil {
		t.Fatal(err)
	}
	return e
}

func hashOf(secret string) string {
	return apikey.FormatHash(apikey.SHA256, digestOf(secret))
}

func digestOf(secret string) apikey.Digest { return sha256.Sum256([]byte(secret)) }

// serviceKey is a valid service key spec of account acct.
func serviceKey(name string) store.Key {
	return store.Key{Spec: authz.KeySpec{
		AccountID: "acct", Name: name, Type: authz.KeyTypeService,
		AppID: "app1", TenantID: "ten1", Hash: hashOf("secret-" + name),
		Scope: "email-api", Active: true,
	}, Origin: store.OriginGenerated}
}

func (e *env) mustCreateKey(k store.Key) store.Key {
	e.t.Helper()
	got, err := e.store.CreateKey(e.ctx, e.actor, k)
	if err != nil {
		e.t.Fatalf("CreateKey(%s): %v", k.Spec.Name, err)
	}
	return got
}

func (e *env) exec(sql string, args ...any) error {
	_, err := e.pool.Exec(e.ctx, sql, args...)
	return err
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// wantErr checks that err matches target and that its message contains
// every part.
func wantErr(t *testing.T, err, target error, parts ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

// auditEvents returns every audit event of account acct, oldest first.
func (e *env) auditEvents() []store.AuditEvent {
	e.t.Helper()
	var all []store.AuditEvent
	tok := ""
	for {
		evs, next, err := e.store.ListAuditEvents(e.ctx, "acct", store.AuditFilter{}, store.Page{Size: 1000, Token: tok})
		if err != nil {
			e.t.Fatal(err)
		}
		all = append(all, evs...)
		if next == "" {
			break
		}
		tok = next
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all
}

func jsonField(t *testing.T, raw json.RawMessage, field string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("audit JSON %s: %v", raw, err)
	}
	return m[field]
}

// waitFor polls cond until it holds or 5 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// acctRefs names keys of account acct by id, for TouchKeys.
func acctRefs(used map[string]time.Time) map[store.KeyRef]time.Time {
	out := make(map[store.KeyRef]time.Time, len(used))
	for id, at := range used {
		out[store.KeyRef{AccountID: "acct", ID: id}] = at
	}
	return out
}
