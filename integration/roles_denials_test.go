package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// rolesKeysYAML is a keys file with roles and denials (SPEC §11): key
// k-svc holds role r-mail and has an empty own scope, so the role decides
// what it may call.
func rolesKeysYAML(hash, roleScope, denials string) string {
	return fmt.Sprintf(`apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME Corp}]
roles:
  - {id: r-mail, name: mail, scope: %q, description: "mail for integrations"}
denials:
%skeys:
  - id: k-svc
    name: k-svc-name
    type: service
    app: billing
    tenant: acme
    hash: %q
    roles: [r-mail]
`, roleScope, denials, hash)
}

const overdue = `Payment overdue: contact billing@example.com`

// TestRolesAndDenialsKeysFile runs the real server in keys-file mode: a
// key holding a role is allowed what the role allows; editing the role
// (hot reload) widens and narrows its access; a denial in the file denies
// with its reason text (403, body error = reason, denial id in dynamic
// metadata) through the gRPC Check and the HTTP authz listener; deleting
// the denial restores access; a reload with a broken role keeps the last
// good file.
func TestRolesAndDenialsKeysFile(t *testing.T) {
	dir := t.TempDir()
	secret, hash := newKey(t, "service")
	keysFile, routesFile := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, keysFile, rolesKeysYAML(hash, "email-api:query:*", "  []\n"))
	writeFile(t, routesFile, routesYAML)

	if out, err := cliRun(t, "", "check-config", "--keys-file", keysFile, "--routes-file", routesFile); err != nil ||
		!strings.Contains(out, "1 keys, 1 roles, 0 denials") {
		t.Fatalf("check-config: %v\n%s", err, out)
	}

	srv := startServe(t, []string{"authz", "admin", "http"}, "--keys-file", keysFile,
		"--routes-file", routesFile, "--http-authz-addr", "127.0.0.1:0")
	c := authv3.NewAuthorizationClient(dial(t, srv.authzAddr))
	httpAddr := listenerAddr(t, srv, "http")
	inbox := checkReq("GET", "/email/inbox", secret, nil)
	send := checkReq("POST", "/email/send", secret, nil)
	status := func(req *authv3.CheckRequest) outcome {
		o, _ := call(t, c, req)
		return o
	}
	allowed, scopeDenied := outcome{status: 200}, outcome{403, "scope_denied"}

	// The role allows queries only.
	if got := status(inbox); got != allowed {
		t.Fatalf("inbox with role email-api:query:*: %+v, want allowed", got)
	}
	if got := status(send); got != scopeDenied {
		t.Fatalf("send with role email-api:query:*: %+v, want scope_denied", got)
	}

	// Editing the role widens the key's access...
	writeFile(t, keysFile, rolesKeysYAML(hash, "email-api", "  []\n"))
	eventually(t, "the widened role to allow send", func() bool { return status(send) == allowed })
	// ...and narrows it.
	writeFile(t, keysFile, rolesKeysYAML(hash, "email-api:mutation:sendEmail", "  []\n"))
	eventually(t, "the narrowed role to refuse the inbox", func() bool { return status(inbox) == scopeDenied })
	if got := status(send); got != allowed {
		t.Fatalf("send after narrowing to sendEmail: %+v", got)
	}

	// A broken role is refused; the last good file stays in service.
	writeFile(t, keysFile, rolesKeysYAML(hash, "", "  []\n"))
	eventually(t, "the refused reload to be logged", func() bool {
		return strings.Contains(srv.Logs(), "key file not reloaded") && strings.Contains(srv.Logs(), `roles[0] (id \"r-mail\"): scope: required`)
	})
	if got := status(send); got != allowed {
		t.Fatalf("send after a refused reload: %+v, want the last good file's answer", got)
	}

	// A denial of the key's tenant and app: 403 access_denied, the reason
	// text as the body's error, the denial's id in dynamic metadata.
	denial := fmt.Sprintf("  - {id: d-overdue, tenant: acme, app: billing, scope: \"email-api:mutation\", reason: %q}\n", overdue)
	writeFile(t, keysFile, rolesKeysYAML(hash, "email-api", denial))
	eventually(t, "the denial to apply", func() bool { return status(send) == outcome{403, "access_denied"} })
	_, resp := call(t, c, send)
	var body struct{ Error, Reason string }
	if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body); err != nil || body.Error != overdue {
		t.Fatalf("deny body %q (%v), want error %q", resp.GetDeniedResponse().GetBody(), err, overdue)
	}
	if id := resp.GetDynamicMetadata().GetFields()["denial_id"].GetStringValue(); id != "d-overdue" {
		t.Fatalf("dynamic metadata denial_id = %q", id)
	}
	if got := status(inbox); got != allowed {
		t.Fatalf("inbox (not covered by the denial): %+v", got)
	}
	// An unknown operation of the service meets the denial (SPEC §9).
	unknown := checkReq("GET", "/email/inbox", secret, nil)
	unknown.Attributes.ContextExtensions = map[string]string{"service": "email-api"}
	if got := status(unknown); got != (outcome{403, "access_denied"}) {
		t.Fatalf("unknown operation: %+v, want access_denied", got)
	}
	// The HTTP authz listener answers the same.
	code, text := httpAuthz(t, httpAddr, "POST", "/email/send", secret)
	if code != 403 || !strings.Contains(text, `"error":"`+overdue+`"`) || !strings.Contains(text, `"reason":"access_denied"`) {
		t.Fatalf("HTTP authz: %d %s", code, text)
	}

	// Deleting the denial restores access.
	writeFile(t, keysFile, rolesKeysYAML(hash, "email-api", "  []\n"))
	eventually(t, "access restored", func() bool { return status(send) == allowed })
	if code, text := httpAuthz(t, httpAddr, "POST", "/email/send", secret); code != 200 {
		t.Fatalf("HTTP authz after the denial was deleted: %d %s", code, text)
	}
}

// httpAuthz asks the HTTP authz listener about one request.
func httpAuthz(t *testing.T, addr, method, path, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestCheckConfigRolesAndDenials: check-config refuses a keys file with a
// broken role or denial, naming file, line, entry and field.
func TestCheckConfigRolesAndDenials(t *testing.T) {
	dir := t.TempDir()
	_, hash := newKey(t, "service")
	keysFile, routesFile := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "routes.yaml")
	writeFile(t, routesFile, routesYAML)
	file := strings.Replace(rolesKeysYAML(hash, "email-api", "  - {id: d-1, tenant: globex, app: billing, scope: \"!email-api\", reason: r}\n"),
		"roles: [r-mail]", "roles: [r-mail, r-gone]", 1)
	writeFile(t, keysFile, file)
	out, err := cliRun(t, "", "check-config", "--keys-file", keysFile, "--routes-file", routesFile)
	if err == nil {
		t.Fatalf("check-config accepted a broken file:\n%s", out)
	}
	out = err.Error() // the messages go to stderr
	for _, want := range []string{
		keysFile + `:6: denials[0] (id "d-1"): tenant: "globex" is not listed in tenants`,
		keysFile + `:6: denials[0] (id "d-1"): scope: deny (!) patterns are not allowed`,
		keysFile + `:14: keys[0] (id "k-svc"): roles: [1] "r-gone": no such role`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks\n%s\ngot:\n%s", want, out)
		}
	}
}
