package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// The console in a real browser (headless Chromium driven by chromedp)
// against a real `keygate serve` with PostgreSQL behind it (SPEC §15,
// issue #21). Screenshots of the main pages at 1280 and 390 pixels wide
// go to a temporary directory, or to KEYGATE_SCREENSHOTS when it is set
// (docs/console.md's come from there).

// chromiumPath is the browser: KEYGATE_CHROMIUM, else Debian's chromium
// (.ci/run installs it). Missing, the test fails saying so: it is never
// skipped.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("KEYGATE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("no Chromium: install Debian's chromium (apt-get install chromium; .ci/run does) or set KEYGATE_CHROMIUM")
	return ""
}

// consoleAddr is the console listener's address, from serve's log.
func consoleAddr(t *testing.T, s *server) string {
	t.Helper()
	for _, line := range strings.Split(s.Logs(), "\n") {
		var rec struct{ Msg, Listener, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Listener == "console" {
			return rec.Addr
		}
	}
	t.Fatalf("serve did not log the console listener\n%s", s.Logs())
	return ""
}

// browserTest is one browser over one console.
type browserTest struct {
	t     *testing.T
	alloc context.Context
	ctx   context.Context
	base  string
	shots string
}

func newBrowser(t *testing.T, base string) *browserTest {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	// The first context starts the browser; each session is a browser
	// context of its own within it.
	root, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(cancelRoot)
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	b := &browserTest{t: t, alloc: root, base: base}
	b.ctx = b.newSession()
	b.shots = os.Getenv("KEYGATE_SCREENSHOTS")
	if b.shots == "" {
		b.shots = t.TempDir()
	} else if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

// newSession is a browser context of its own (its own cookies), for a
// second person.
func (b *browserTest) newSession() context.Context {
	ctx, cancel := chromedp.NewContext(b.alloc, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// run runs actions with a deadline; a failure names the step.
func (b *browserTest) run(ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		var loc, body string
		c2, cancel2 := context.WithTimeout(ctx, 5*time.Second)
		defer cancel2()
		_ = chromedp.Do(c2, into(chromedp.Location(), &loc), into(chromedp.Text(chromedp.CSS("body")), &body))
		b.t.Fatalf("%s: %v\nat %s:\n%s", step, err, loc, body)
	}
}

// into runs an action that returns a value and keeps the value.
func into[T any](a chromedp.Action[T], dst *T) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, t)
		*dst = v
		return chromedp.Void{}, err
	}
}

// shot saves a full-page screenshot at both widths.
func (b *browserTest) shot(ctx context.Context, name string) {
	b.t.Helper()
	for _, w := range []int64{390, 1280} {
		var png []byte
		b.run(ctx, "screenshot "+name,
			chromedp.EmulateViewport(w, 900),
			into(chromedp.FullScreenshot(100), &png)) // 100: PNG
		if err := os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%s-%d.png", name, w)), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// grantClipboard lets the console's pages of ctx's browser context read
// and write the clipboard without a prompt: clipboardReadWrite and
// clipboardSanitizedWrite, for the console's origin only. (The pinned
// cdproto has no Browser.grantPermissions, which the protocol deprecated;
// Browser.setPermission with the permissions' descriptors grants the
// same two.)
func (b *browserTest) grantClipboard(ctx context.Context) {
	b.t.Helper()
	id := chromedp.FromContext(ctx).BrowserContextID
	for _, d := range []*browser.PermissionDescriptor{
		{Name: "clipboard-read"},                                  // clipboardReadWrite
		{Name: "clipboard-write", AllowWithoutSanitization: true}, // clipboardReadWrite
		{Name: "clipboard-write"},                                 // clipboardSanitizedWrite
	} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: d, Setting: browser.PermissionSettingGranted, Origin: b.base, BrowserContextID: id}); err != nil {
			b.t.Fatalf("granting %s to %s: %v", d.Name, b.base, err)
		}
	}
}

// readClipboard is what the page reads back from the clipboard.
func (b *browserTest) readClipboard(ctx context.Context) string {
	b.t.Helper()
	var clip string
	b.run(ctx, "read the clipboard", into(chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise), &clip))
	return clip
}

func (b *browserTest) signIn(ctx context.Context, key string) {
	b.t.Helper()
	b.run(ctx, "sign in",
		chromedp.Navigate(b.base+"/signin"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), key),
		chromedp.Submit(chromedp.ID("key")),
		chromedp.WaitVisible(chromedp.CSS(`form.signout`)),
	)
}

// waitUsage loads url until its usage chart's legend counts requests
// (the server writes its counts every 200 ms).
func (b *browserTest) waitUsage(ctx context.Context, url string) {
	b.t.Helper()
	var legend string
	for range 50 {
		b.run(ctx, "usage of "+url, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("usage-legend")),
			into(chromedp.Text(chromedp.ID("usage-legend")), &legend))
		if !strings.Contains(legend, "No requests counted") {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.t.Fatalf("%s: no requests counted in its usage chart after 10 s: %q", url, legend)
}

// exists reports whether the current page has an element.
func (b *browserTest) exists(ctx context.Context, sel string) bool {
	b.t.Helper()
	var ok bool
	b.run(ctx, "look for "+sel, into(chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, sel)), &ok))
	return ok
}

// post sends a form from the page with fetch, as a user editing the page
// could, and returns the status: the token is the page's unless csrf says
// otherwise ("-" for none).
func (b *browserTest) post(ctx context.Context, path string, fields map[string]string, csrf string) int {
	b.t.Helper()
	f, _ := json.Marshal(fields)
	js := fmt.Sprintf(`(async () => {
  const f = new URLSearchParams(%s);
  const tok = %q;
  if (tok === "") { const el = document.querySelector('input[name=csrf]'); if (el) f.set('csrf', el.value); }
  else if (tok !== "-") { f.set('csrf', tok); }
  const r = await fetch(%q, {method: 'POST', body: f, redirect: 'manual'});
  return r.status;
})()`, f, csrf, path)
	var status int
	b.run(ctx, "post "+path, into(chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise), &status))
	return status
}

func TestConsoleInBrowser(t *testing.T) {
	env := newDBEnv(t)
	// Usage written often, so that the pages' usage charts have the
	// test's requests when their screenshots are taken.
	s := env.serve(t, "--console-addr", "127.0.0.1:0", "--usage-flush-interval", "200ms")
	waitReady(t, s)
	base := "http://" + consoleAddr(t, s)
	api := env.client(t, s)
	check := authv3.NewAuthorizationClient(dial(t, s.authzAddr))
	b := newBrowser(t, base)
	ctx := b.ctx
	b.grantClipboard(ctx)

	// Sign in.
	b.run(ctx, "sign-in page", chromedp.Navigate(base+"/signin"), chromedp.WaitVisible(chromedp.ID("key")))
	b.shot(ctx, "signin")
	b.signIn(ctx, env.accountKey)

	// An app and a tenant.
	b.run(ctx, "create an app",
		chromedp.Navigate(base+"/apps"), chromedp.Click(chromedp.ID("new-app")),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "Billing"), chromedp.SendKeys(chromedp.ID("id"), "billing"),
		chromedp.Click(chromedp.ID("create")), chromedp.WaitVisible(chromedp.ID("save")))
	b.run(ctx, "create a tenant",
		chromedp.Navigate(base+"/tenants/new"), chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "Globex"), chromedp.SendKeys(chromedp.ID("id"), "globex"),
		chromedp.Click(chromedp.ID("create")), chromedp.WaitVisible(chromedp.ID("save")))

	// A service key: scope from the picker, an IP filter, an expiry, a header.
	var scope string
	b.run(ctx, "fill the new key dialog",
		chromedp.Navigate(base+"/keys/new"), chromedp.WaitVisible(chromedp.ID("picker")),
		chromedp.SetValue(chromedp.ID("type"), "service"),
		chromedp.SetValue(chromedp.ID("app_id"), "billing"),
		chromedp.SetValue(chromedp.ID("tenant_id"), "globex"),
		chromedp.SendKeys(chromedp.ID("name"), "globex-mail"),
		chromedp.Click(chromedp.CSS(`input[data-pattern="email-api:query:listEmails"]`)),
		chromedp.Click(chromedp.CSS(`input[data-pattern="email-api:mutation:sendEmail"]`)),
		into(chromedp.Value(chromedp.ID("scope")), &scope),
		chromedp.SendKeys(chromedp.CSS(`input[name=ip_address]`), "127.0.0.0"),
		chromedp.SendKeys(chromedp.CSS(`input[name=ip_netmask]`), "255.0.0.0"),
		chromedp.SetValue(chromedp.ID("expires_at"), time.Now().UTC().AddDate(1, 0, 0).Format("2006-01-02T15:04")),
		chromedp.SendKeys(chromedp.CSS(`input[name=header_name]`), "x-tenant"),
		chromedp.SendKeys(chromedp.CSS(`input[name=header_value]`), "${tenant.name}"),
	)
	if scope != "email-api:query:listEmails email-api:mutation:sendEmail" {
		t.Fatalf("the picker put %q in the scope field", scope)
	}
	b.shot(ctx, "key-new")
	// The copy button puts the secret on the clipboard, and says so once
	// it has: the secret Check gets is the clipboard's, read back.
	var panel string
	var copied bool
	b.run(ctx, "generate the key",
		chromedp.Click(chromedp.ID("create-key")),
		chromedp.WaitVisible(chromedp.ID("secret")),
		into(chromedp.Value(chromedp.ID("secret")), &panel),
		chromedp.Click(chromedp.ID("copy-secret")),
		into(chromedp.Poll[bool](`document.querySelector("#copy-secret").textContent === "Copied"`), &copied))
	secret := b.readClipboard(ctx)
	b.shot(ctx, "secret")
	if !strings.HasPrefix(secret, "kg_") || !copied || secret != panel {
		t.Fatalf("one-time panel: clipboard %d chars, panel %d chars, equal %v, copied %v", len(secret), len(panel), secret == panel, copied)
	}
	inbox := checkReq("GET", "/email/inbox", secret, nil)
	waitFor(t, check, inbox, outcome{status: 200})
	if _, resp := call(t, check, inbox); !hasHeader(resp, "x-tenant", "Globex") {
		t.Errorf("the allow lacks the key's header x-tenant: Globex: %v", resp.GetOkResponse())
	}

	// In the picker: the whole service allowed, its listEmails denied
	// with the deny toggle, and a rate limit and a quota of the key's
	// own: the inbox is denied, sending allowed.
	b.run(ctx, "edit the scope and the limits",
		chromedp.Click(chromedp.ID("done")), chromedp.WaitVisible(chromedp.ID("save-key")),
		chromedp.Click(chromedp.CSS(`input[data-pattern="email-api:mutation:sendEmail"]`)),
		chromedp.Click(chromedp.CSS(`input[data-pattern="email-api"]`)),
		chromedp.Click(chromedp.CSS(`input[data-pattern="!email-api:query:listEmails"]`)),
		into(chromedp.Value(chromedp.ID("scope")), &scope),
		chromedp.SendKeys(chromedp.ID("rate_limit_requests"), "50"),
		chromedp.SetValue(chromedp.ID("rate_limit_unit"), "minute"),
		chromedp.SendKeys(chromedp.ID("quota_requests"), "100000"),
		chromedp.SetValue(chromedp.ID("quota_period"), "day"))
	if scope != "email-api !email-api:query:listEmails" {
		t.Fatalf("after the picker's clicks the scope field is %q", scope)
	}
	b.shot(ctx, "key")
	var denyTicked bool
	var rate, quota [2]string
	b.run(ctx, "save the key", chromedp.Click(chromedp.ID("save-key")), chromedp.WaitVisible(chromedp.CSS(".notice")),
		// The page as the server renders the saved key (the HTML's
		// checked, not the script's).
		into(chromedp.Evaluate[bool](`document.querySelector('input[data-pattern="!email-api:query:listEmails"]').defaultChecked &&
  !document.querySelector('input[data-pattern="email-api:query:listEmails"]').defaultChecked`), &denyTicked),
		into(chromedp.Value(chromedp.ID("rate_limit_requests")), &rate[0]), into(chromedp.Value(chromedp.ID("rate_limit_unit")), &rate[1]),
		into(chromedp.Value(chromedp.ID("quota_requests")), &quota[0]), into(chromedp.Value(chromedp.ID("quota_period")), &quota[1]))
	if !denyTicked {
		t.Error("the saved key's page does not tick the deny toggle of listEmails")
	}
	if rate != [2]string{"50", "minute"} || quota != [2]string{"100000", "day"} {
		t.Errorf("the saved key's page shows rate limit %v, quota %v", rate, quota)
	}
	waitFor(t, check, inbox, outcome{403, "scope_denied"})
	waitFor(t, check, checkReq("POST", "/email/send", secret, nil), outcome{status: 200})

	// Regenerate with an hour of grace: both secrets work.
	// Here the clipboard refuses: the button does not say "Copied", the
	// page says to copy by hand, and the secret is selected for it.
	var second, button, msg string
	var selected bool
	b.run(ctx, "regenerate",
		chromedp.SetValue(chromedp.ID("grace"), "1h"),
		chromedp.Click(chromedp.ID("regenerate")),
		chromedp.WaitVisible(chromedp.ID("secret")),
		into(chromedp.Value(chromedp.ID("secret")), &second),
		into(chromedp.Evaluate[bool](`navigator.clipboard.writeText = () => Promise.reject(new DOMException("refused", "NotAllowedError")); true`), &selected),
		chromedp.Click(chromedp.ID("copy-secret")),
		into(chromedp.Poll[bool](`document.querySelector("#copy-msg").textContent !== ""`), &selected),
		into(chromedp.Text(chromedp.ID("copy-secret")), &button),
		into(chromedp.Text(chromedp.ID("copy-msg")), &msg),
		into(chromedp.Evaluate[bool](`(() => { const s = document.querySelector("#secret");
  return document.activeElement === s && s.selectionStart === 0 && s.selectionEnd === s.value.length; })()`), &selected))
	if second == secret || second == "" {
		t.Fatal("regenerate showed no new secret")
	}
	if button == "Copied" || !strings.Contains(msg, "Copying failed") || !strings.Contains(msg, "by hand") || !selected {
		t.Errorf("a refused copy: button %q, message %q, secret selected %v", button, msg, selected)
	}
	if got := b.readClipboard(ctx); got != secret {
		t.Error("the refused copy changed the clipboard")
	}
	send := func(key string) *authv3.CheckRequest { return checkReq("POST", "/email/send", key, nil) }
	waitFor(t, check, send(second), outcome{status: 200})
	waitFor(t, check, send(secret), outcome{status: 200})

	// A denial on the tenant's page: access_denied.
	var denials string
	b.run(ctx, "create a denial",
		chromedp.Navigate(base+"/tenants/globex"), chromedp.WaitVisible(chromedp.ID("denial-scope")),
		chromedp.SetValue(chromedp.ID("denial-app"), "billing"),
		chromedp.SendKeys(chromedp.ID("denial-scope"), "email-api:mutation:sendEmail"),
		chromedp.SendKeys(chromedp.ID("denial-reason"), "Globex may not send mail today."),
		chromedp.Click(chromedp.ID("create-denial")), chromedp.WaitVisible(chromedp.CSS(".notice")),
		into(chromedp.Text(chromedp.ID("denials")), &denials))
	if !strings.Contains(denials, "Globex may not send mail today.") {
		t.Fatalf("the tenant page does not list the denial: %q", denials)
	}
	waitFor(t, check, send(second), outcome{403, "access_denied"})

	// Deactivate: both secrets are refused.
	var keyURL string
	b.run(ctx, "deactivate",
		chromedp.Navigate(base+"/keys?name=globex-mail"), chromedp.WaitVisible(chromedp.CSS(`#keys-table td a`)),
		chromedp.Click(chromedp.CSS(`#keys-table td a`)), chromedp.WaitVisible(chromedp.ID("deactivate")),
		into(chromedp.Location(), &keyURL),
		chromedp.Click(chromedp.ID("deactivate")), chromedp.WaitVisible(chromedp.ID("activate")))
	for _, k := range []string{second, secret} {
		waitFor(t, check, send(k), outcome{401, "inactive_key"})
	}
	// The list's name search and bulk deactivate, through its
	// confirmation page (the key is inactive already: it stays so).
	var notice string
	b.run(ctx, "bulk deactivate",
		chromedp.Navigate(base+"/keys?q=GLOBEX-MAIL"), chromedp.WaitVisible(chromedp.CSS(`#keys-table input[name=id]`)),
		chromedp.Click(chromedp.CSS(`#keys-table input[name=id]`)), chromedp.Click(chromedp.ID("bulk-deactivate")),
		chromedp.WaitVisible(chromedp.ID("bulk-confirm-button")), chromedp.Click(chromedp.ID("bulk-confirm-button")),
		chromedp.WaitVisible(chromedp.CSS(".notice")), into(chromedp.Text(chromedp.CSS(".notice")), &notice))
	if notice != "Deactivated 1 key." {
		t.Errorf("after the bulk deactivate: %q", notice)
	}
	b.run(ctx, "keys list", chromedp.Navigate(base+"/keys"), chromedp.WaitVisible(chromedp.ID("keys-table")))
	b.shot(ctx, "keys")
	b.run(ctx, "overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.shot(ctx, "overview")
	// The tenant's page with its denial, quota and the requests of the
	// test counted in its usage chart.
	b.waitUsage(ctx, base+"/tenants/globex")
	b.shot(ctx, "tenant")
	// The key page's Usage tab and the account-wide pages.
	for _, pg := range []struct{ name, path, wait string }{
		{"key-usage", strings.TrimPrefix(keyURL, base) + "?tab=usage", "usage-chart"},
		{"key-audit", strings.TrimPrefix(keyURL, base) + "?tab=audit", "audit-table"},
		{"role-new", "/roles/new", "role-form"}, {"account-keys", "/account-keys", "keys-table"},
		{"denials", "/denials", "denials"}, {"audit", "/audit", "audit-table"}, {"replicas", "/replicas", "replicas-table"},
	} {
		b.run(ctx, pg.name, chromedp.Navigate(base+pg.path), chromedp.WaitVisible(chromedp.ID(pg.wait)))
		b.shot(ctx, pg.name)
	}

	// A CSRF-less post and a cross-origin post are refused.
	if st := b.post(ctx, "/apps", map[string]string{"name": "No Token"}, "-"); st != http.StatusForbidden {
		t.Errorf("a post without the CSRF token: %d, want 403", st)
	}
	var token string
	b.run(ctx, "read the token", into(chromedp.Value(chromedp.CSS(`input[name=csrf]`)), &token))
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/apps"><input type="hidden" name="csrf" value="%s">`+
			`<input type="hidden" name="name" value="Evil"><button id="go">win a prize</button></form>`, base, token)
	}))
	t.Cleanup(evil.Close)
	var refused string
	b.run(ctx, "cross-origin post",
		chromedp.Navigate(evil.URL), chromedp.Click(chromedp.ID("go")),
		chromedp.WaitReady(chromedp.CSS("main")), // the console's page, not the other site's
		into(chromedp.Text(chromedp.CSS("main")), &refused))
	if !strings.Contains(refused, "another site") {
		t.Errorf("the cross-origin post was not refused: %q", refused)
	}
	apps, err := api.ListApps(api.ctx(t), &accountv1.ListAppsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps.GetApps() {
		if a.GetName() != "Billing" {
			t.Errorf("a refused post made app %q", a.GetName())
		}
	}

	// A read-only account key: no buttons, and its posts refused.
	ro, err := api.GenerateAccountAccessKey(api.ctx(t), &accountv1.GenerateAccountAccessKeyRequest{Name: "reader", Scope: "account-api:query:*"})
	if err != nil {
		t.Fatal(err)
	}
	rctx := b.newSession()
	b.signIn(rctx, ro.GetPrivateKey())
	for _, page := range []string{"/keys", "/apps", "/tenants", "/tenants/globex", strings.TrimPrefix(keyURL, base)} {
		b.run(rctx, "read-only "+page, chromedp.Navigate(base+page), chromedp.WaitVisible(chromedp.CSS("main h1")))
		for _, sel := range []string{"#new-key", "#new-app", "#new-tenant", "#save", "#save-key", "#deactivate", "#activate", "#regenerate", "#delete", "#create-denial", "#bulk-deactivate", "#bulk-delete",
			"#picker", "input[name=deny]", "#rate_limit_requests", "#rate_limit_unit", "#quota_requests", "#quota_period"} {
			if b.exists(rctx, sel) {
				t.Errorf("read-only key sees %s on %s", sel, page)
			}
		}
	}
	b.shot(rctx, "read-only-key")
	if st := b.post(rctx, "/apps", map[string]string{"name": "Sneaky"}, ""); st != http.StatusForbidden {
		t.Errorf("read-only key's post with its token: %d, want 403", st)
	}
	if st := b.post(rctx, strings.TrimPrefix(keyURL, base)+"/active", map[string]string{"active": "true"}, ""); st != http.StatusForbidden {
		t.Errorf("read-only key activating a key: %d, want 403", st)
	}

	// Sign-out ends the session: its cookie opens nothing afterwards.
	got, err := chromedp.Call(rctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	cookies := got.Cookies
	b.run(rctx, "sign out", chromedp.Click(chromedp.CSS(`form.signout button`)), chromedp.WaitVisible(chromedp.ID("key")))
	if code := getWithCookies(t, base+"/keys", cookies); code != http.StatusSeeOther {
		t.Errorf("the signed-out session's cookie: %d, want a redirect to sign in", code)
	}

	// The admin's session outlives a replica restart (sessions are in
	// PostgreSQL): stop this replica, start another on the database.
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the replica did not stop")
	}
	s2 := env.serve(t, "--console-addr", "127.0.0.1:0")
	waitReady(t, s2)
	b.base = "http://" + consoleAddr(t, s2)
	var h1 string
	b.run(ctx, "after the restart", chromedp.Navigate(b.base+"/keys"), chromedp.WaitVisible(chromedp.CSS("main h1")), into(chromedp.Text(chromedp.CSS("main h1")), &h1))
	if h1 != "Keys" {
		t.Fatalf("after the restart the session shows %q, want the keys page", h1)
	}
}

// waitFor waits until Check answers want (propagation is asynchronous),
// naming the last answer when it does not.
func waitFor(t *testing.T, c authv3.AuthorizationClient, req *authv3.CheckRequest, want outcome) {
	t.Helper()
	var last outcome
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if last, _ = call(t, c, req); last == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s %s: %+v, want %+v", req.GetAttributes().GetRequest().GetHttp().GetMethod(), req.GetAttributes().GetRequest().GetHttp().GetPath(), last, want)
}

func hasHeader(resp *authv3.CheckResponse, name, value string) bool {
	for _, h := range resp.GetOkResponse().GetResponseHeadersToAdd() {
		if h.GetHeader().GetKey() == name && h.GetHeader().GetValue() == value {
			return true
		}
	}
	return false
}

// getWithCookies is a GET with a browser's cookies, redirects not followed.
func getWithCookies(t *testing.T, url string, cookies []*network.Cookie) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
