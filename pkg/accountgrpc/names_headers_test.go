package accountgrpc_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// TestNamesRefuseBidiAndInvisible: names of apps, tenants, keys and
// roles, and groups, may not hold bidirectional controls, zero-width or invisible
// characters nor control characters; the message names the field and the
// code point and never echoes the character.
func TestNamesRefuseBidiAndInvisible(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	must(c.CreateServiceAccessRole(ctx, &accountv1.CreateServiceAccessRoleRequest{Id: "r-read", Name: "readers", Scope: "email-api:query:*"}))
	cases := []struct {
		name, text, point string
	}{
		{"right-to-left override", "invoice\u202Etxt.exe", "U+202E"},
		{"left-to-right isolate", "a\u2066b", "U+2066"},
		{"right-to-left mark", "a\u200Fb", "U+200F"},
		{"Arabic letter mark", "a\u061Cb", "U+061C"},
		{"zero-width space", "admin\u200B", "U+200B"},
		{"zero-width non-joiner", "a\u200Cb", "U+200C"},
		{"word joiner", "a\u2060b", "U+2060"},
		{"byte order mark", "\uFEFFacme", "U+FEFF"},
		{"soft hyphen", "ac\u00ADme", "U+00AD"},
		{"C1 control", "a\u009Bb", "U+009B"},
		{"escape", "a\x1b[31mb", "U+001B"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text
			check := func(what, field string, err error) {
				t.Helper()
				st, _ := status.FromError(err)
				if st.Code() != codes.InvalidArgument {
					t.Fatalf("%s: code %s (%q), want InvalidArgument", what, st.Code(), st.Message())
				}
				if !strings.Contains(st.Message(), field+": contains") || !strings.Contains(st.Message(), tc.point) {
					t.Fatalf("%s: message %q does not name %s and %s", what, st.Message(), field, tc.point)
				}
				for _, r := range st.Message() {
					if r < 0x20 || r > 0x7e {
						t.Fatalf("%s: message %q echoes %U", what, st.Message(), r)
					}
				}
			}
			_, err := c.CreateApp(ctx, &accountv1.CreateAppRequest{Id: fmt.Sprintf("app-%d", i), Name: text})
			check("CreateApp", "name", err)
			_, err = c.UpdateApp(ctx, &accountv1.UpdateAppRequest{Id: "billing", Name: &text})
			check("UpdateApp", "name", err)
			_, err = c.CreateTenant(ctx, &accountv1.CreateTenantRequest{Id: fmt.Sprintf("t-%d", i), Name: text})
			check("CreateTenant", "name", err)
			_, err = c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Name: text})
			check("GenerateServiceAccessKey", "name", err)
			_, err = c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", Name: "k", Group: text})
			check("GenerateServiceAccessKey", "group", err)
			_, err = c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "root", Name: &text})
			check("UpdateKey", "name", err)
			_, err = c.CreateServiceAccessRole(ctx, &accountv1.CreateServiceAccessRoleRequest{Id: fmt.Sprintf("r-%d", i), Name: text, Scope: "email-api"})
			check("CreateServiceAccessRole", "name", err)
			_, err = c.UpdateServiceAccessRole(ctx, &accountv1.UpdateServiceAccessRoleRequest{Id: "r-read", Name: &text})
			check("UpdateServiceAccessRole", "name", err)
		})
	}
	// Letters of every script, emoji and joiners inside emoji sequences
	// of printable text stay allowed.
	for _, name := range []string{"Café Zürich", "東京 billing", "فاتورة", "deploy 🚀"} {
		if _, err := c.CreateTenant(ctx, &accountv1.CreateTenantRequest{Name: name}); err != nil {
			t.Errorf("tenant %q refused: %v", name, err)
		}
	}
}

// TestResponseHeaderRulesInTheAPI: SPEC §9's response header rules refuse
// a key with InvalidArgument naming the header; its size limits with
// ResourceExhausted (SPEC §10).
func TestResponseHeaderRulesInTheAPI(t *testing.T) {
	s, ctx := setup(t)
	c := s.Client
	many := make([]*accountv1.ResponseHeader, 21)
	for i := range many {
		many[i] = &accountv1.ResponseHeader{Name: fmt.Sprintf("x-h%d", i), Value: "v"}
	}
	for _, tc := range []struct {
		name    string
		headers []*accountv1.ResponseHeader
		want    []string
		size    bool // a size limit (SPEC §10): ResourceExhausted
	}{
		{"set-cookie", []*accountv1.ResponseHeader{{Name: "set-cookie", Value: "session=x"}}, []string{`response_headers: [0] "set-cookie": name must start with x-`}, false},
		{"content-type", []*accountv1.ResponseHeader{{Name: "x-ok", Value: "1"}, {Name: "content-type", Value: "text/html"}}, []string{`[1] "content-type"`}, false},
		{"x-envoy", []*accountv1.ResponseHeader{{Name: "x-envoy-auth-headers-to-remove", Value: "${operation}"}}, []string{`"x-envoy-auth-headers-to-remove"`, "x-envoy-"}, false},
		{"x-forwarded", []*accountv1.ResponseHeader{{Name: "x-forwarded-host", Value: "evil"}}, []string{`"x-forwarded-host"`}, false},
		{"identity prefix", []*accountv1.ResponseHeader{{Name: "x-keygate-role", Value: "admin"}}, []string{`"x-keygate-role"`, "x-keygate-"}, false},
		{"key header", []*accountv1.ResponseHeader{{Name: "x-api-key", Value: "x"}}, []string{`"x-api-key"`, "reserved"}, false},
		{"underscore", []*accountv1.ResponseHeader{{Name: "x_tier", Value: "x"}}, []string{`"x_tier"`}, false},
		{"long name", []*accountv1.ResponseHeader{{Name: "x-" + strings.Repeat("a", 63), Value: "x"}}, []string{"longer than 64"}, true},
		{"duplicate", []*accountv1.ResponseHeader{{Name: "x-a", Value: "1"}, {Name: "X-A", Value: "2"}}, []string{`[1] "X-A": duplicate`}, false},
		{"21 headers", many, []string{"response_headers: 21 headers, more than 20"}, true},
		{"value over 1 KiB", []*accountv1.ResponseHeader{{Name: "x-a", Value: strings.Repeat("v", 1025)}}, []string{"response_headers: [0]: value longer than 1024 bytes"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := codes.InvalidArgument
			if tc.size {
				code = codes.ResourceExhausted
			}
			_, err := c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", ResponseHeaders: tc.headers})
			wantCode(t, err, code, tc.want...)
			_, err = c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "root", ResponseHeaders: &accountv1.ResponseHeaders{Headers: tc.headers}})
			wantCode(t, err, code, tc.want...)
		})
	}
	// 999 bytes as written, 1026 once ${key.id} is the generated id.
	rendered := []*accountv1.ResponseHeader{{Name: "x-a", Value: strings.Repeat("v", 990) + "${key.id}"}}
	_, err := c.GenerateServiceAccessKey(ctx, &accountv1.GenerateServiceAccessKeyRequest{AppId: "billing", TenantId: "acme", ResponseHeaders: rendered})
	wantCode(t, err, codes.ResourceExhausted, `response_headers: [0] "x-a": value longer than 1024 bytes once rendered`)
	_, err = c.GenerateAppAccessKey(ctx, &accountv1.GenerateAppAccessKeyRequest{AppId: "billing", ResponseHeaders: []*accountv1.ResponseHeader{{Name: "x-t", Value: "${tenant.name}"}}})
	wantCode(t, err, codes.InvalidArgument, `"x-t": uses a tenant variable`)
	_, err = c.UpdateKey(ctx, &accountv1.UpdateKeyRequest{Id: "root", ResponseHeaders: &accountv1.ResponseHeaders{Headers: []*accountv1.ResponseHeader{{Name: "x-a", Value: "${app.id}"}}}})
	wantCode(t, err, codes.InvalidArgument, `"x-a": uses an app variable`)
}
