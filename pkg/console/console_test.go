package console_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/console"
	"github.com/keygate/keygate/pkg/route"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// testRoutes are the routes the tests' service serves: the permission
// picker's catalogue.
const testRoutes = `
services:
  - name: billing-api
    key_types: [service]
    routes:
      - {path: /invoices, methods: [GET], kind: query, operation: listInvoices}
      - {path: "/invoices/{id}", methods: [GET], kind: query, operation: getInvoice}
      - {path: /invoices, methods: [POST], kind: mutation, operation: createInvoice}
`

// clock is the injected time of a test's console and service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a console over a real PostgreSQL database with an account
// "acme" whose bootstrap key (scope account-api) is admin.
type env struct {
	t       testing.TB
	st      *postgres.Store
	svc     *account.Service
	clock   *clock
	srv     *httptest.Server
	admin   string // the admin key's secret
	adminID string
	url     string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	st, pool, err := postgres.Open(ctx, dbURL, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := &env{t: t, st: st, clock: &clock{t: time.Now().UTC()}, url: dbURL}
	hasher := apikey.NewHasher(nil)
	engine := &authz.Engine{Keys: st, Routes: account.AccountRouter(), Hasher: hasher, Now: e.clock.Now}
	table, _, err := route.Parse([]byte(testRoutes), "routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e.svc = account.NewService(st, engine, hasher, account.Options{Now: e.clock.Now, Routes: route.NewRouter(table)})
	e.admin, err = apikey.Generate(apikey.KindAccount)
	if err != nil {
		t.Fatal(err)
	}
	if e.adminID, err = st.Bootstrap(ctx, "acme", "Acme", "admin", hasher.HashString(e.admin)); err != nil {
		t.Fatal(err)
	}
	e.srv = e.serve()
	return e
}

// serve starts another console over the same database: another replica.
func (e *env) serve() *httptest.Server {
	h, err := console.New(console.Options{Service: e.svc, Sessions: e.st, Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(e.t.Output(), nil))})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	e.t.Cleanup(srv.Close)
	return srv
}

// newHandler is a console over e's service; secure as with TLS.
func newHandler(t testing.TB, e *env, secure bool) http.Handler {
	h, err := console.New(console.Options{Service: e.svc, Sessions: e.st, Now: e.clock.Now, Secure: secure})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// httptestPost posts a same-origin form to h.
func httptestPost(h http.Handler, path string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// caller is the admin key's Caller, for setting up through the service.
func (e *env) caller() account.Caller {
	c, err := e.svc.OpenSession(context.Background(), account.Credentials{Keys: []string{e.admin}})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// accountKey makes an account key with scope sc and returns its secret
// and id.
func (e *env) accountKey(name, sc string) (string, string) {
	secret, k, _, err := e.svc.GenerateKey(context.Background(), e.caller(), account.KeyInput{Type: authz.KeyTypeAccount, Name: name, Scope: sc})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret.Reveal(), k.Spec.ID
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	t    testing.TB
	c    *http.Client
	base string
}

func (e *env) browser(srv *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, base: srv.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// on is the same browser (its cookies) talking to another replica.
func (b *browser) on(srv *httptest.Server) *browser {
	u, _ := url.Parse(b.base)
	jar, _ := cookiejar.New(nil)
	v, _ := url.Parse(srv.URL)
	jar.SetCookies(v, b.c.Jar.Cookies(u))
	return &browser{t: b.t, base: srv.URL, c: &http.Client{Jar: jar, CheckRedirect: b.c.CheckRedirect}}
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp, string(body)}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.base+path, nil)
	return b.do(req)
}

// post sends a form as a same-origin browser would.
func (b *browser) post(path string, form url.Values, hdr ...string) response {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

func (b *browser) signIn(secret string) {
	b.t.Helper()
	r := b.post("/signin", url.Values{"key": {secret}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		b.t.Fatalf("sign in: %d %s, want 303 to /\n%s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
}

// csrf reads the CSRF token from a page's forms.
func (b *browser) csrf() string {
	b.t.Helper()
	r := b.get("/")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("no CSRF token on the overview (%d)", r.StatusCode)
	}
	return m[1]
}

// form posts with the session's CSRF token.
func (b *browser) form(path string, form url.Values) response {
	b.t.Helper()
	form.Set("csrf", b.csrf())
	return b.post(path, form)
}

// find returns the elements of a page matching a predicate.
func find(t testing.TB, body string, match func(*html.Node) bool) []*html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out []*html.Node
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
	}
	return out
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func byID(id string) func(*html.Node) bool {
	return func(n *html.Node) bool { return attr(n, "id") == id }
}

func wantStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.body)
	}
}

func wantRedirect(t *testing.T, r response, to string) {
	t.Helper()
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != to {
		t.Fatalf("%s %s: %d to %q, want 303 to %q\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.Header.Get("Location"), to, r.body)
	}
}
