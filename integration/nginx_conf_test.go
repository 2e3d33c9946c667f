package integration

import (
	"os"
	"strings"
	"testing"
)

// The nginx configuration for keygate's HTTP mode, as docs/http-mode.md
// shows it (TestNginxDocs keeps the two the same). nginxAuthLocations go
// into the server block once; nginxProtect into every protected location.

const nginxAuthLocations = `# keygate's HTTP mode, asked by auth_request before every protected request.
location = /_keygate {
    internal;
    proxy_pass http://keygate;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # keygate reads headers only.
    proxy_pass_request_body off;
    proxy_set_header Content-Length "";
    # The original request. nginx passes the client's own headers on to
    # this subrequest, so every header keygate reads is set or cleared here.
    proxy_set_header X-Original-URI $request_uri;
    proxy_set_header X-Original-Method $request_method;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Uri "";
    proxy_set_header X-Forwarded-Method "";
}

# Denials. auth_request drops keygate's body and turns every status but
# 401 and 403 into 500: these answer with keygate's status and JSON body.
location @keygate_401 {
    default_type application/json;
    return 401 $keygate_deny;
}
location @keygate_403 {
    default_type application/json;
    return 403 $keygate_deny;
}
location @keygate_other {
    default_type application/json;
    add_header Retry-After $keygate_retry_after always;
    if ($keygate_status = 400) {
        return 400 $keygate_deny;
    }
    if ($keygate_status = 503) {
        return 503 $keygate_deny;
    }
    # keygate unreachable or broken: never an allow.
    return 503 '{"error":"the authorization service is unavailable"}';
}
`

const nginxProtect = `auth_request /_keygate;

# keygate's identity headers replace whatever the client sent. An empty
# value (a header keygate did not send, like the tenant of an app key)
# makes nginx drop the header, so a forged one never reaches upstream.
auth_request_set $keygate_key_id $upstream_http_x_keygate_key_id;
auth_request_set $keygate_key_name $upstream_http_x_keygate_key_name;
auth_request_set $keygate_app_id $upstream_http_x_keygate_app_id;
auth_request_set $keygate_tenant_id $upstream_http_x_keygate_tenant_id;
auth_request_set $keygate_account_id $upstream_http_x_keygate_account_id;
proxy_set_header X-Keygate-Key-Id $keygate_key_id;
proxy_set_header X-Keygate-Key-Name $keygate_key_name;
proxy_set_header X-Keygate-App-Id $keygate_app_id;
proxy_set_header X-Keygate-Tenant-Id $keygate_tenant_id;
proxy_set_header X-Keygate-Account-Id $keygate_account_id;
# The key never reaches upstream.
proxy_set_header X-Api-Key "";

# The keys' response headers: two lines for each name your keys use.
auth_request_set $keygate_x_tier $upstream_http_x_tier;
add_header X-Tier $keygate_x_tier;
auth_request_set $keygate_x_who $upstream_http_x_who;
add_header X-Who $keygate_x_who;

# Denials: keygate's status, body and retry-after, for @keygate_*.
auth_request_set $keygate_status $upstream_status;
auth_request_set $keygate_deny $upstream_http_x_keygate_deny_body;
auth_request_set $keygate_retry_after $upstream_http_retry_after;
error_page 401 = @keygate_401;
error_page 403 = @keygate_403;
error_page 500 = @keygate_other;
`

// TestNginxDocs keeps the configuration the nginx tests run and the one
// docs/http-mode.md shows the same.
func TestNginxDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/http-mode.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, snippet, indent string
	}{
		{"server-level locations", nginxAuthLocations, "        "},
		{"protected location", nginxProtect, "            "},
	} {
		if want := indent(c.snippet, c.indent); !strings.Contains(string(doc), want) {
			t.Errorf("docs/http-mode.md does not show the tested nginx %s (indented %d spaces):\n%s", c.name, len(c.indent), want)
		}
	}
}
