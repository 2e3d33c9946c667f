package extauthz_test

import (
	"testing"

	"github.com/keygate/keygate/pkg/extauthz"
)

// TestAccountIDAlwaysNamed: app, tenant and key ids are unique only within
// an account, so every allow names the key's account upstream and in
// dynamic_metadata, for every key type the data plane allows, in both the
// gRPC and the HTTP mode (SPEC §9 "Identity across accounts").
func TestAccountIDAlwaysNamed(t *testing.T) {
	f := newHTTPFixture(t, extauthz.Config{})
	for _, tc := range []struct{ name, secret, path string }{
		{"service key", f.service, "/email/read"},
		{"app key", f.app, "/users"},
	} {
		t.Run(tc.name+"/gRPC", func(t *testing.T) {
			resp := check(t, f.srv, request(tc.path, tc.secret, nil))
			var header string
			for _, o := range resp.GetOkResponse().GetHeaders() {
				if o.GetHeader().GetKey() == "x-keygate-account-id" {
					header = o.GetHeader().GetValue()
				}
			}
			if header != "default" {
				t.Errorf("x-keygate-account-id = %q, want default", header)
			}
			if got := resp.GetDynamicMetadata().GetFields()["account_id"].GetStringValue(); got != "default" {
				t.Errorf("dynamic_metadata account_id = %q, want default", got)
			}
		})
		t.Run(tc.name+"/HTTP", func(t *testing.T) {
			a := serve(t, f.h, fwd("GET", tc.path, map[string]string{"X-Api-Key": tc.secret}))
			if a.status != 200 || a.header.Get("X-Keygate-Account-Id") != "default" {
				t.Fatalf("got %d, X-Keygate-Account-Id %q", a.status, a.header.Get("X-Keygate-Account-Id"))
			}
		})
	}
}
