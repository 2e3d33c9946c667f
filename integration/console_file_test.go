package integration

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// The console and the GraphQL Account API over a keys file (issue 21:
// "with a keys file the same pages read-only, signed in with an account
// key of the file"), against the real `keygate serve --keys-file`, with
// plain HTTP and a cookie jar.

// fileConsole is one client of a console: its cookies, no redirects
// followed.
type fileConsole struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newFileConsole(t *testing.T, addr string) *fileConsole {
	jar, _ := cookiejar.New(nil)
	return &fileConsole{t: t, base: "http://" + addr, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (fc *fileConsole) do(method, path string, form url.Values) (int, string, string) {
	fc.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, fc.base+path, body)
	if err != nil {
		fc.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", fc.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := fc.c.Do(req)
	if err != nil {
		fc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

var (
	csrfField  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	postAction = regexp.MustCompile(`<form[^>]*method="post"[^>]*action="([^"]*)"|<form[^>]*action="([^"]*)"[^>]*method="post"`)
)

// postForms are the actions of a page's POST forms.
func postForms(body string) []string {
	var out []string
	for _, m := range postAction.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1]+m[2])
	}
	return out
}

// TestConsoleKeysFile: serve with a keys file runs the console listener,
// read-only. An account key of the file whose scope allows everything
// signs in and sees the file's keys, tenants and apps with no button that
// changes anything; a change posted with a valid CSRF token is refused
// 409 "read-only", and so is a GraphQL mutation (FAILED_PRECONDITION,
// reason read_only), while queries answer. Deactivating the key in the
// file ends its session at the next request once serve reloads the file.
func TestConsoleKeysFile(t *testing.T) {
	dir := t.TempDir()
	keys, routes := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	adminSecret, adminHash := newKey(t, "account")
	svcSecret, svcHash := newKey(t, "service")
	file := func(adminActive bool) string {
		return keysYAML(
			keyEntry{"k-admin", "account", adminHash, fmt.Sprintf("    scope: account-api\n    active: %t\n", adminActive)},
			keyEntry{"k-svc", "service", svcHash, "    scope: email-api\n"},
		)
	}
	writeFile(t, keys, file(true))
	writeFile(t, routes, routesYAML)
	srv := startServe(t, []string{"authz", "admin", "console"}, "--keys-file", keys, "--routes-file", routes)
	if !strings.Contains(srv.Logs(), "console and GraphQL Account API read-only") {
		t.Errorf("serve does not log that the console is read-only:\n%s", srv.Logs())
	}
	readOnly := html.EscapeString("This keygate serves a keys file: the console is read-only. Edit " + keys + " and keygate reloads it.")

	fc := newFileConsole(t, srv.consoleAddr)
	if status, to, body := fc.do("POST", "/signin", url.Values{"key": {adminSecret}}); status != http.StatusSeeOther || to != "/" {
		t.Fatalf("sign in: %d to %q\n%s", status, to, body)
	}
	var csrf string
	for _, path := range []string{"/", "/keys", "/keys/k-svc", "/apps/billing", "/tenants/acme"} {
		status, _, body := fc.do("GET", path, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, status, body)
		}
		if !strings.Contains(body, readOnly) {
			t.Errorf("GET %s: no read-only notice\n%s", path, body)
		}
		if forms := postForms(body); !slices.Equal(forms, []string{"/signout"}) {
			t.Errorf("GET %s: forms posting to %v, want only /signout", path, forms)
		}
		for _, id := range []string{`id="new-key"`, `id="deactivate"`, `id="save-key"`, `id="delete-key"`, `id="regenerate"`, `id="delete"`, `id="save"`} {
			if strings.Contains(body, id) {
				t.Errorf("GET %s: shows %s", path, id)
			}
		}
		if m := csrfField.FindStringSubmatch(body); m != nil {
			csrf = m[1]
		}
	}
	if _, _, body := fc.do("GET", "/keys", nil); !strings.Contains(body, "k-svc-name") || !strings.Contains(body, "k-admin-name") {
		t.Errorf("the keys list does not list the file's keys:\n%s", body)
	}
	if csrf == "" {
		t.Fatal("no CSRF token on the pages")
	}

	// Posted anyway, with the session's CSRF token: refused as read-only.
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/keys/k-svc/active", url.Values{"active": {"false"}}},
		{"/keys/k-svc/delete", url.Values{}},
		{"/apps", url.Values{"id": {"shop"}, "name": {"Shop"}}},
	} {
		c.form.Set("csrf", csrf)
		status, _, body := fc.do("POST", c.path, c.form)
		if status != http.StatusConflict || !strings.Contains(body, readOnly) {
			t.Errorf("POST %s: %d, want 409 with the read-only message\n%s", c.path, status, body)
		}
	}
	// The key is as the file has it: Check still allows it.
	authz := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	if got, _ := call(t, authz, checkReq("GET", "/email/inbox", svcSecret, nil)); got.status != 200 {
		t.Errorf("Check with k-svc after the refused posts: %+v", got)
	}

	// GraphQL: a query answers, a mutation is refused as read-only.
	a := gqlOK(t, srv, adminSecret, `{ keys(first: 10) { edges { node { id } } } }`, nil)
	var list struct {
		Edges []struct{ Node struct{ ID string } }
	}
	a.Field(t, "keys", &list)
	if len(list.Edges) != 2 || list.Edges[0].Node.ID != "k-admin" || list.Edges[1].Node.ID != "k-svc" {
		t.Errorf("keys over GraphQL: %+v", list)
	}
	a = gqlPost(t, srv, adminSecret, `mutation { deleteKey(id: "k-svc") { key { id } } }`, nil)
	if a.Code(0) != "FAILED_PRECONDITION" || a.Errors[0].Extensions["reason"] != "read_only" || a.Errors[0].Extensions["file"] != keys ||
		!strings.Contains(a.Errors[0].Message, "keygate serves a keys file; edit "+keys) {
		t.Errorf("deleteKey over GraphQL: %d %+v", a.Status, a.Errors)
	}

	// The key deactivated in the file: its session ends at the next
	// request once serve has reloaded the file, and it cannot sign in.
	writeFile(t, keys, file(false))
	eventually(t, "the session to end", func() bool {
		status, to, _ := fc.do("GET", "/keys", nil)
		return status == http.StatusSeeOther && to == "/signin?ended=key"
	})
	if status, _, body := fc.do("POST", "/signin", url.Values{"key": {adminSecret}}); status != http.StatusUnauthorized || !strings.Contains(body, "inactive_key") {
		t.Errorf("sign in with the deactivated key: %d\n%s", status, body)
	}
	if a := gqlPost(t, srv, adminSecret, `{ keys(first: 1) { edges { node { id } } } }`, nil); a.Code(0) != "UNAUTHENTICATED" {
		t.Errorf("GraphQL with the deactivated key: %d %+v", a.Status, a.Errors)
	}
}

// demoAccountKey is the demo's account key the README's "Try it" says to
// sign in to `make run`'s console with (examples/keys.yaml's demo-admin).
const demoAccountKey = "kg_aak_nUiYTIUqr5Aj7kIUAGkO8XBSCjI5Lh45WctQ"

// TestConsoleMakeRun: `make run`'s files (examples/) serve the console,
// and the account key the README and the Makefile name signs in to it
// and lists the demo's keys.
func TestConsoleMakeRun(t *testing.T) {
	for _, doc := range []string{"../README.md", "../Makefile", "../docs/console.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), demoAccountKey) || !strings.Contains(string(b), "127.0.0.1:9194") {
			t.Errorf("%s does not say to open 127.0.0.1:9194 with %s", doc, demoAccountKey)
		}
	}
	srv := startServe(t, []string{"authz", "admin", "console"}, "--keys-file", "../examples/keys.yaml", "--routes-file", "../examples/routes.yaml")
	fc := newFileConsole(t, srv.consoleAddr)
	if status, to, body := fc.do("POST", "/signin", url.Values{"key": {demoAccountKey}}); status != http.StatusSeeOther || to != "/" {
		t.Fatalf("sign in with the README's key: %d to %q\n%s", status, to, body)
	}
	status, _, body := fc.do("GET", "/keys", nil)
	if status != http.StatusOK || !strings.Contains(body, "acme-full") || !strings.Contains(body, "demo-admin") || !strings.Contains(body, `id="read-only"`) {
		t.Errorf("the demo's keys list: %d\n%s", status, body)
	}
}
