package console_test

import (
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/account"
)

// postRoutes are every POST of the console that needs a session, with
// a path that reaches its handler.
var postRoutes = []string{
	"/signout", "/keys", "/keys/scope-check", "/keys/k1", "/keys/k1/active", "/keys/k1/regenerate",
	"/keys/k1/delete", "/keys/bulk", "/apps", "/apps/a1", "/apps/a1/delete", "/tenants", "/tenants/t1",
	"/tenants/t1/delete", "/tenants/t1/denials",
}

// Every change needs the session's CSRF token: none, or another
// session's, is refused before the handler runs (the session stays).
func TestEveryPostNeedsTheCSRFToken(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	other := e.browser(e.srv)
	other.signIn(e.admin)
	foreign := other.csrf()
	for _, path := range postRoutes {
		for _, tc := range []struct {
			name  string
			token string
		}{{"no token", ""}, {"another session's token", foreign}, {"garbage", "x"}} {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				form := url.Values{"name": {"x"}}
				if tc.token != "" {
					form.Set("csrf", tc.token)
				}
				r := b.post(path, form)
				wantStatus(t, r, http.StatusForbidden)
				if !strings.Contains(r.body, "CSRF") {
					t.Errorf("the refusal does not say why:\n%s", r.body)
				}
			})
		}
	}
	// The header works as well as the field (htmx sends it).
	r := b.post("/apps", url.Values{"name": {"billing"}}, "X-CSRF-Token", b.csrf())
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a post with the token in X-CSRF-Token: %d\n%s", r.StatusCode, r.body)
	}
	wantStatus(t, b.get("/keys"), http.StatusOK)
}

// A post from another site is refused even with a valid token (a
// browser says where it comes from), sign-in included.
func TestCrossOriginPostsAreRefused(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	token := b.csrf()
	for _, tc := range []struct {
		name, path string
		hdr        []string
	}{
		{"Origin of another site", "/apps", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", ""}},
		{"Sec-Fetch-Site cross-site", "/apps", []string{"Sec-Fetch-Site", "cross-site"}},
		{"sign-in from another site", "/signin", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.post(tc.path, url.Values{"name": {"evil"}, "csrf": {token}, "key": {e.admin}}, tc.hdr...)
			wantStatus(t, r, http.StatusForbidden)
		})
	}
	apps, _, err := e.svc.ListApps(t.Context(), e.caller(), account.PageInput{})
	if err != nil || len(apps) != 0 {
		t.Fatalf("apps after refused posts: %v, %v", apps, err)
	}
}

const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Every answer carries the strict CSP, signed in or not, error or not.
func TestEveryPageHasTheCSP(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	for _, path := range []string{"/signin", "/", "/static/console.js", "/nope"} {
		if got := b.get(path).Header.Get("Content-Security-Policy"); got != wantCSP {
			t.Errorf("GET %s signed out: CSP %q", path, got)
		}
	}
	b.signIn(e.admin)
	for _, path := range []string{"/", "/keys", "/keys/new", "/apps", "/apps/new", "/tenants", "/tenants/new", "/keys/nope", "/apps/nope",
		"/roles", "/roles/new", "/denials", "/account-keys", "/audit", "/replicas"} {
		r := b.get(path)
		if got := r.Header.Get("Content-Security-Policy"); got != wantCSP {
			t.Errorf("GET %s: CSP %q", path, got)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", path)
		}
	}
}

// The CSP allows no inline script, style or event handler: the templates
// have none (every script is a file of static/).
func TestTemplatesHaveNoInlineScriptOrStyle(t *testing.T) {
	inline := regexp.MustCompile(`(?i)\sstyle=|<style|\son[a-z]+=|javascript:`)
	err := filepath.WalkDir("templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "<script") && !strings.Contains(line, " src=") ||
				inline.MatchString(line) {
				t.Errorf("%s: inline script or style: %s", path, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Pages label their fields: every input, select and textarea is inside
// a label or named by one.
func TestFormFieldsAreLabelled(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	for _, path := range []string{"/signin", "/keys", "/keys/new", "/apps/new", "/roles/new", "/denials", "/audit", "/replicas"} {
		body := b.get(path).body
		labelled := map[string]bool{}
		for _, l := range find(t, body, func(n *html.Node) bool { return n.Data == "label" }) {
			labelled[attr(l, "for")] = true
		}
		for _, n := range find(t, body, func(n *html.Node) bool {
			return (n.Data == "input" || n.Data == "select" || n.Data == "textarea") && attr(n, "type") != "hidden"
		}) {
			if labelled[attr(n, "id")] && attr(n, "id") != "" {
				continue
			}
			inLabel := false
			for p := n.Parent; p != nil; p = p.Parent {
				if p.Data == "label" || p.Data == "summary" {
					inLabel = true
				}
			}
			if !inLabel {
				t.Errorf("%s: %s name=%q has no label", path, n.Data, attr(n, "name"))
			}
		}
	}
}

// Console requests count against the session key's rate limits like API
// calls: past the burst (the test's clock stands still, so nothing
// refills) a post is 429 with Retry-After, while pages, another bucket,
// still load.
func TestRateLimited(t *testing.T) {
	e := newEnv(t)
	b := e.browser(e.srv)
	b.signIn(e.admin)
	token := b.csrf()
	for i := range 1000 {
		r := b.post("/keys/scope-check", url.Values{"scope": {"x"}}, "X-CSRF-Token", token)
		if r.StatusCode == http.StatusTooManyRequests {
			if r.Header.Get("Retry-After") == "" || !strings.Contains(r.body, "rate_limited") {
				t.Fatalf("429 without Retry-After or reason:\n%s", r.body)
			}
			wantStatus(t, b.get("/keys"), http.StatusOK)
			return
		}
		wantStatus(t, r, http.StatusOK)
		if i == 999 {
			t.Fatal("1000 posts at one instant were all served")
		}
	}
}
