package console_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/console"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

func TestSignInSignOut(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)

	wantRedirect(t, b.get("/keys"), "/signin")

	r := b.post("/signin", url.Values{"key": {"kg_acc_not-a-key"}})
	wantStatus(t, r, http.StatusUnauthorized)
	if len(find(t, r.body, func(n *html.Node) bool { return attr(n, "aria-describedby") == "key-err" })) != 1 ||
		!strings.Contains(r.body, "malformed_key") {
		t.Errorf("a refused key is not named beside the key field:\n%s", r.body)
	}
	if strings.Contains(r.body, "kg_acc_not-a-key") {
		t.Error("the page repeats the key entered")
	}

	b.signIn(e.admin)
	var cookie *http.Cookie
	for _, c := range b.c.Jar.Cookies(mustURL(e.srv.URL)) {
		cookie = c
	}
	if cookie == nil || strings.Contains(cookie.Value, e.admin) {
		t.Fatalf("session cookie %v", cookie)
	}
	r = b.get("/")
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(r.body, "admin") {
		t.Error("the overview does not name the signed-in key")
	}

	r = b.form("/signout", url.Values{})
	wantRedirect(t, r, "/signin?ended=signout")
	wantRedirect(t, b.get("/"), "/signin")
}

func TestSessionCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secure bool
	}{{"plain HTTP", false}, {"TLS", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			h := newHandler(t, e, tc.secure)
			w := httptestPost(h, "/signin", url.Values{"key": {e.admin}})
			sc := w.Header().Get("Set-Cookie")
			for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
				if !strings.Contains(sc, want) {
					t.Errorf("Set-Cookie %q lacks %s", sc, want)
				}
			}
			if got := strings.Contains(sc, "Secure"); got != tc.secure {
				t.Errorf("Set-Cookie %q: Secure %v, want %v", sc, got, tc.secure)
			}
		})
	}
}

// The store keeps the session's id and a hash of its secret: nothing in
// the table opens the session.
func TestSessionStoresOnlyAHash(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	cookie := b.c.Jar.Cookies(mustURL(e.srv.URL))[0].Value
	id, secret, _ := strings.Cut(cookie, ".")
	pool := pgtest.Pool(t, e.url)
	var row string
	if err := pool.QueryRow(t.Context(), `SELECT row_to_json(s)::text FROM console_sessions s WHERE id = $1`, id).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, secret) || strings.Contains(row, e.admin) {
		t.Errorf("the session row holds a secret: %s", row)
	}
	s, err := e.st.GetSession(t.Context(), id)
	if err != nil || len(s.SecretHash) != 32 || bytes.Contains(s.SecretHash, []byte(secret)) {
		t.Errorf("session %+v, %v", s, err)
	}
}

func TestSessionEnds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(e *env, keyID string)
		ended string
	}{
		{"key deactivated", func(e *env, id string) {
			off := false
			if _, _, err := e.svc.UpdateKey(context.Background(), e.caller(), id, account.KeyUpdate{Active: &off}); err != nil {
				e.t.Fatal(err)
			}
		}, "key"},
		{"key deleted", func(e *env, id string) {
			if _, err := e.svc.DeleteKey(context.Background(), e.caller(), id); err != nil {
				e.t.Fatal(err)
			}
		}, ""}, // its sessions are deleted with it
		{"key expired", func(e *env, id string) {
			at := e.clock.Now().Add(time.Minute)
			if _, _, err := e.svc.UpdateKey(context.Background(), e.caller(), id, account.KeyUpdate{ExpiresAt: &at}); err != nil {
				e.t.Fatal(err)
			}
			e.clock.Add(2 * time.Minute)
		}, "key"},
		{"scope allows nothing any more", func(e *env, id string) {
			sc := "email-api"
			if _, _, err := e.svc.UpdateKey(context.Background(), e.caller(), id, account.KeyUpdate{Scope: &sc}); err != nil {
				e.t.Fatal(err)
			}
		}, "key"},
		{"client outside its new IP filters", func(e *env, id string) {
			ips := []string{"10.0.0.0/8"}
			if _, _, err := e.svc.UpdateKey(context.Background(), e.caller(), id, account.KeyUpdate{IPFilters: &ips}); err != nil {
				e.t.Fatal(err)
			}
		}, "key"},
		{"idle for 30 minutes", func(e *env, _ string) { e.clock.Add(30 * time.Minute) }, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			secret, id := e.accountKey("ops", "account-api")
			b := e.browser(e.srv)
			b.signIn(secret)
			wantStatus(t, b.get("/keys"), http.StatusOK)
			tc.after(e, id)
			to := "/signin"
			if tc.ended != "" {
				to += "?ended=" + tc.ended
			}
			wantRedirect(t, b.get("/keys"), to)
			wantRedirect(t, b.get("/"), "/signin")
		})
	}
}

// A session in use ends 12 hours after sign-in all the same.
func TestSessionMaxLifetime(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	start := e.clock.Now()
	for {
		e.clock.Add(29 * time.Minute) // never idle for 30
		r := b.get("/")
		if r.StatusCode == http.StatusOK {
			if e.clock.Now().Sub(start) >= console.MaxLifetime {
				t.Fatalf("the session served a request %s after sign-in", e.clock.Now().Sub(start))
			}
			continue
		}
		wantRedirect(t, r, "/signin?ended=expired")
		if age := e.clock.Now().Sub(start); age < console.MaxLifetime {
			t.Fatalf("the session ended %s after sign-in, before %s", age, console.MaxLifetime)
		}
		return
	}
}

// A session lives in PostgreSQL: another replica (another handler over
// the same database) serves it, and signing out on one ends it on both.
func TestSessionAnyReplica(t *testing.T) {
	e := newEnv(t)
	other := e.serve()
	b := e.browser(e.srv)
	b.signIn(e.admin)
	b2 := b.on(other)
	wantStatus(t, b2.get("/keys"), http.StatusOK)
	wantRedirect(t, b2.form("/signout", url.Values{}), "/signin?ended=signout")
	wantRedirect(t, b.get("/keys"), "/signin")
}

func TestSignInRefusesKeys(t *testing.T) {
	e := newEnv(t)
	noAPI, _ := e.accountKey("mail-only", "email-api")
	off, offID := e.accountKey("off", "account-api")
	f := false
	if _, _, err := e.svc.UpdateKey(context.Background(), e.caller(), offID, account.KeyUpdate{Active: &f}); err != nil {
		t.Fatal(err)
	}
	office, _, _, err := e.svc.GenerateKey(context.Background(), e.caller(), account.KeyInput{Type: authz.KeyTypeAccount, Name: "office", Scope: "account-api", IPFilters: []string{"10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, key, want string }{
		{"no key", "", "missing_key"},
		{"from outside its IP filters", office.Reveal(), "ip_not_allowed"},
		{"scope without the Account API", noAPI, "scope_denied"},
		{"inactive key", off, "inactive_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser(e.srv)
			r := b.post("/signin", url.Values{"key": {tc.key}})
			if r.StatusCode < 400 || !strings.Contains(r.body, tc.want) {
				t.Fatalf("%d, want a refusal naming %s\n%s", r.StatusCode, tc.want, r.body)
			}
			wantRedirect(t, b.get("/"), "/signin")
		})
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
