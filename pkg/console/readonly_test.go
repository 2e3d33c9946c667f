package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/console"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/store/filestore"
	"github.com/keygate/keygate/pkg/store/memsessions"
)

// fileEnv is a console over a keys file, as serve --keys-file builds it:
// read-only, sessions in memory.
type fileEnv struct {
	*env
	path  string
	keys  *keyfile.Store
	admin string // secret of k-admin, scope account-api (everything)
}

func readOnlyFile(hasher *apikey.Hasher, admin string, adminActive bool) string {
	return fmt.Sprintf(`account: demo
apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME Corp}]
denials: [{id: d-1, tenant: acme, app: billing, scope: billing-api, reason: unpaid}]
keys:
  - {id: k-admin, name: admin, type: account, scope: account-api, active: %t, hash: %q}
  - {id: k-svc, name: acme-billing, type: service, app: billing, tenant: acme, scope: billing-api, hash: %q}
`, adminActive, hasher.HashString(admin), hasher.HashString("kg-test-service-secret-0001"))
}

func newFileEnv(t *testing.T) *fileEnv {
	t.Helper()
	hasher := apikey.NewHasher(nil)
	admin, err := apikey.Generate(apikey.KindAccount)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(path, []byte(readOnlyFile(hasher, admin, true)), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := keyfile.Open(path, keyfile.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine := &authz.Engine{Keys: keys, Routes: account.AccountRouter(), Hasher: hasher}
	svc := account.NewService(filestore.New(keys, path), engine, hasher, account.Options{})
	h, err := console.New(console.Options{Service: svc, Sessions: memsessions.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fileEnv{env: &env{t: t, svc: svc, srv: srv}, path: path, keys: keys, admin: admin}
}

// postActions are the actions of a page's POST forms.
func postActions(t testing.TB, body string) []string {
	var out []string
	for _, n := range find(t, body, func(n *html.Node) bool { return n.Data == "form" && strings.EqualFold(attr(n, "method"), "post") }) {
		out = append(out, attr(n, "action"))
	}
	return out
}

// TestReadOnlyConsole: over a keys file a key whose scope allows
// everything signs in, sees every page with the read-only notice and no
// button that changes anything, and a change posted anyway (with a valid
// CSRF token) is refused 409 with the read-only message.
func TestReadOnlyConsole(t *testing.T) {
	e := newFileEnv(t)
	b := e.browser(e.srv)
	msg := "This keygate serves a keys file: the console is read-only. Edit " + e.path + " and keygate reloads it."
	if r := b.get("/signin"); !strings.Contains(r.body, html.EscapeString(msg)) {
		t.Errorf("the sign-in page does not say the console is read-only:\n%s", r.body)
	}
	b.signIn(e.admin)
	for _, path := range []string{"/", "/keys", "/keys/k-svc", "/keys/k-admin", "/apps", "/apps/billing", "/tenants", "/tenants/acme"} {
		r := b.get(path)
		wantStatus(t, r, http.StatusOK)
		if n := find(t, r.body, byID("read-only")); len(n) != 1 || !strings.Contains(r.body, html.EscapeString(msg)) {
			t.Errorf("%s: no read-only notice", path)
		}
		if got := postActions(t, r.body); len(got) != 1 || got[0] != "/signout" {
			t.Errorf("%s: forms posting to %v, want only /signout", path, got)
		}
		for _, id := range []string{"new-key", "new-app", "new-tenant", "delete", "deactivate", "regenerate", "delete-key", "save", "save-key", "create-denial"} {
			if len(find(t, r.body, byID(id))) > 0 {
				t.Errorf("%s: shows #%s", path, id)
			}
		}
	}
	if r := b.get("/keys"); !strings.Contains(r.body, "acme-billing") {
		t.Errorf("the keys list does not list the file's key:\n%s", r.body)
	}
	if r := b.get("/tenants/acme"); !strings.Contains(r.body, "unpaid") {
		t.Error("the tenant page does not show the file's denial")
	}

	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/keys/k-svc/active", url.Values{"active": {"false"}}},
		{"/keys/k-svc/delete", url.Values{}},
		{"/keys/k-svc/regenerate", url.Values{"grace": {"0"}}},
		{"/keys/k-svc", url.Values{"name": {"renamed"}, "active": {"on"}}},
		{"/keys", url.Values{"type": {"service"}, "name": {"new"}, "app": {"billing"}, "tenant": {"acme"}}},
		{"/apps", url.Values{"id": {"new"}, "name": {"New"}}},
		{"/apps/billing/delete", url.Values{"confirm": {"Billing"}}},
		{"/tenants/acme", url.Values{"name": {"Renamed"}}},
		{"/tenants/acme/denials", url.Values{"app": {"billing"}, "scope": {"billing-api"}, "reason": {"x"}}},
	} {
		r := b.form(c.path, c.form)
		wantStatus(t, r, http.StatusConflict)
		if !strings.Contains(r.body, html.EscapeString(msg)) {
			t.Errorf("POST %s: no read-only message:\n%s", c.path, r.body)
		}
	}
	for _, path := range []string{"/keys/new", "/apps/new", "/tenants/new", "/apps/billing/delete"} {
		wantStatus(t, b.get(path), http.StatusConflict)
	}
	if k, err := e.svc.GetKey(t.Context(), e.caller(), "k-svc"); err != nil || !k.Spec.Active || k.Spec.Name != "acme-billing" {
		t.Errorf("k-svc after the refused posts: %+v, %v", k, err)
	}
	// Sign-out is no change: it works.
	wantRedirect(t, b.form("/signout", url.Values{}), "/signin?ended=signout")
}

// caller is the admin key's Caller.
func (e *fileEnv) caller() account.Caller {
	c, err := e.svc.OpenSession(e.t.Context(), account.Credentials{Keys: []string{e.admin}})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// TestReadOnlyConsoleKeyDeactivated: the session of a key deactivated in
// the file ends on its next request once the file is reloaded, and the
// key no longer signs in.
func TestReadOnlyConsoleKeyDeactivated(t *testing.T) {
	e := newFileEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	wantStatus(t, b.get("/keys"), http.StatusOK)
	if err := os.WriteFile(e.path, []byte(readOnlyFile(apikey.NewHasher(nil), e.admin, false)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.keys.Reload(); err != nil {
		t.Fatal(err)
	}
	wantRedirect(t, b.get("/keys"), "/signin?ended=key")
	r := b.post("/signin", url.Values{"key": {e.admin}})
	wantStatus(t, r, http.StatusUnauthorized)
	if !strings.Contains(r.body, "inactive_key") {
		t.Errorf("sign-in with the deactivated key:\n%s", r.body)
	}
}
