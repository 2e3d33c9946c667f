package extauthz_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/metrics"
	"github.com/keygate/keygate/pkg/route"
)

// BenchmarkCheckFullStack is the in-process Check handler with the real
// parts `keygate serve` wires together: the demo routes table, a keys-file
// store, the Prometheus observer. CheckRequest in, CheckResponse out, on a
// cache hit. Target: <= 2 µs/op.
func BenchmarkCheckFullStack(b *testing.B) {
	routesYAML, err := os.ReadFile("../../examples/routes.yaml")
	if err != nil {
		b.Fatal(err)
	}
	table, _, err := route.Parse(routesYAML, "routes.yaml")
	if err != nil {
		b.Fatal(err)
	}
	secret, err := apikey.Generate(apikey.KindService)
	if err != nil {
		b.Fatal(err)
	}
	keysYAML := fmt.Sprintf(`apps: [{id: billing, name: Billing}]
tenants: [{id: acme, name: ACME Corp}]
keys:
  - id: k-1
    name: acme-billing
    type: service
    app: billing
    tenant: acme
    hash: %q
    scope: "email-api:query:* email-api:mutation:deleteEmail !email-api:query:secret*"
    ip_filters: ["10.0.0.0/8", "192.168.178.1/255.255.255.0", "2001:db8::/32"]
    expires_at: 2999-01-01T00:00:00Z
    response_headers:
      - {name: x-tier, value: gold}
      - {name: x-who, value: "${key.name}@${tenant.id}"}
`, hasher.HashString(secret))
	cfg := extauthz.Config{}.WithDefaults()
	keysFile := filepath.Join(b.TempDir(), "keys.yaml")
	if err := os.WriteFile(keysFile, []byte(keysYAML), 0o600); err != nil {
		b.Fatal(err)
	}
	store, err := keyfile.Open(keysFile, keyfile.Options{
		Algorithm: hasher.Algorithm(), Compile: authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders()}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New("bench", nil)
	engine := &authz.Engine{Keys: store, Routes: route.NewRouter(table), Hasher: hasher}
	srv := extauthz.NewServer(engine, cfg, m, nil)
	req := request("/email/inbox?page=2", secret, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := srv.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("not allowed: %v %v", resp, err)
		}
	}
}
