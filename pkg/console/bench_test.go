package console_test

import (
	"net/http"
	"testing"

	"golang.org/x/net/html"

	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// BenchmarkPagesWith100kKeys measures the console's pages served from an
// account of 100,000 keys (SPEC §15, issue #21: under 100 ms each), one
// request per iteration over a real PostgreSQL. The figures are in
// docs/console.md.
func BenchmarkPagesWith100kKeys(b *testing.B) {
	e := newEnv(b)
	if err := pgtest.SeedKeys(b.Context(), pgtest.Pool(b, e.url), "acme", 100_000); err != nil {
		b.Fatal(err)
	}
	br := e.browser(e.srv)
	br.signIn(e.admin)
	for _, bc := range []struct{ name, path string }{
		{"overview", "/"},
		{"keys", "/keys"},
		{"keys-filtered", "/keys?type=service&tenant=" + pgtest.SeedTenantID},
		{"keys-page-2", "/keys?after="},
		{"keys-inactive", "/keys?active=false"},
		{"keys-unused", "/keys?unused_since=2100-01-01"},
		{"key", "/keys/" + pgtest.SeedKeyID("acme", 42)},
		{"tenant", "/tenants/" + pgtest.SeedTenantID},
		{"apps", "/apps"},
		{"new-key", "/keys/new"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			path := bc.path
			if bc.name == "keys-page-2" {
				path = nextPage(b, br)
			}
			for b.Loop() {
				if r := br.get(path); r.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", path, r.StatusCode)
				}
			}
		})
	}
}

// nextPage is the keys list's second page link.
func nextPage(b *testing.B, br *browser) string {
	r := br.get("/keys")
	for _, n := range find(b, r.body, func(n *html.Node) bool { return n.Data == "a" && attr(n, "rel") == "next" }) {
		return attr(n, "href")
	}
	b.Fatal("no next page")
	return ""
}
