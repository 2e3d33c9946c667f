package postgres_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/cache"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/grpctest"
	"github.com/keygate/keygate/pkg/route"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
)

// readAheadRoutes route the checks of TestReadAheadSecretIsRevokedOnPostgreSQL.
const readAheadRoutes = `services:
  - name: email-api
    key_types: [service]
    routes:
      - {path: /email/inbox, methods: [GET], kind: query, operation: listEmails}
`

// hookedSource is the store with a hook run once before and once after
// its next read of changed keys: changes committed exactly there.
type hookedSource struct {
	*postgres.Store
	mu            sync.Mutex
	before, after func()
}

func (h *hookedSource) LookupKeysByID(ctx context.Context, refs []store.KeyRef) ([]*authz.Key, error) {
	h.mu.Lock()
	before, after := h.before, h.after
	h.before, h.after = nil, nil
	h.mu.Unlock()
	if before != nil {
		before()
	}
	ks, err := h.Store.LookupKeysByID(ctx, refs)
	if after != nil {
		after()
	}
	return ks, err
}

// TestReadAheadSecretIsRevokedOnPostgreSQL is the attack on a replica
// serving from PostgreSQL: a key is rotated (c1), rotated again (c2) while
// the replica's catch-up, having listed c1 only, has yet to read it, and
// then rotated a third time or deleted (c3) right after that read. The
// replica read the key at s-v3 and cached it; the next pass applies c2
// and c3 together. The secrets go to keygate's Check over gRPC as Envoy
// sends them (keygate's codec and handler, on loopback). Presenting s-v3 afterwards — the secret c3 revoked —
// must be refused as unknown_key, as must every earlier secret; s-v4, the
// key's only secret after a rotation, is allowed (and after a deletion
// refused too). Before the fix s-v3 kept
// authenticating from memory.
func TestReadAheadSecretIsRevokedOnPostgreSQL(t *testing.T) {
	for _, last := range []string{"rotation", "deletion"} {
		t.Run(last, func(t *testing.T) {
			e := newEnv(t)
			// Secrets as keygate generates them, so that the decision
			// gets past the key's format to its lookup.
			secrets := map[string]string{}
			for _, v := range []string{"v1", "v2", "v3", "v4"} {
				s, err := apikey.Generate(apikey.KindService)
				if err != nil {
					t.Fatal(err)
				}
				secrets[v] = s
			}
			spec := serviceKey("k")
			spec.Spec.Hash = hashOf(secrets["v1"])
			k := e.mustCreateKey(spec)
			src := &hookedSource{Store: e.store}
			kc, err := cache.New(src, cache.Options{PollInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(kc.Close)
			if err := kc.Warm(e.ctx); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(e.ctx)
			done := make(chan error, 1)
			go func() { done <- kc.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
			waitFor(t, "feed connected", func() bool { return kc.Stats().FeedConnected })

			rotate := func(v string) {
				t.Helper()
				if _, err := e.store.RotateKey(e.ctx, e.actor, "acct", k.Spec.ID, hashOf(secrets[v]), time.Time{}); err != nil {
					t.Errorf("RotateKey to %s: %v", v, err)
				}
			}
			hooked := make(chan struct{})
			src.mu.Lock()
			// c2: after the pass listed c1, before it reads the key.
			src.before = func() { rotate("v3") }
			// c3: right after the read.
			src.after = func() {
				if last == "rotation" {
					rotate("v4")
				} else if err := e.store.DeleteKey(e.ctx, e.actor, "acct", k.Spec.ID); err != nil {
					t.Errorf("DeleteKey: %v", err)
				}
				close(hooked)
			}
			src.mu.Unlock()
			rotate("v2") // c1
			select {
			case <-hooked:
			case <-time.After(30 * time.Second):
				t.Fatal("the replica never read the changed key")
			}
			head, err := e.store.FeedHead(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "every change applied", func() bool { return kc.Applied() >= head })
			kc.Wait()

			table, _, err := route.Parse([]byte(readAheadRoutes), "routes.yaml")
			if err != nil {
				t.Fatal(err)
			}
			engine := &authz.Engine{Keys: kc, Routes: route.NewRouter(table), Hasher: apikey.NewHasher(nil)}
			client := serveCheck(t, extauthz.NewServer(engine, extauthz.Config{}.WithDefaults(), nil, nil))
			// check sends the secret as Envoy sends a request carrying it,
			// over gRPC to keygate's Check, and reads the decision's
			// reason from the answer: "ok" for an allow.
			check := func(v string) string {
				t.Helper()
				resp, err := client.Check(e.ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
					Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
						Method: "GET", Path: "/email/inbox", Host: "api.example.com",
						Headers: map[string]string{"x-api-key": secrets[v]},
					}},
				}})
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if resp.GetOkResponse() != nil {
					return "ok"
				}
				var body struct{ Reason string }
				if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body); err != nil {
					t.Fatalf("deny body %q: %v", resp.GetDeniedResponse().GetBody(), err)
				}
				return body.Reason
			}
			for _, v := range []string{"v1", "v2", "v3"} {
				if r := check(v); r != "unknown_key" {
					t.Errorf("secret %s after the %s: decided %s, want unknown_key", v, last, r)
				}
			}
			want := "ok"
			if last == "deletion" {
				want = "unknown_key"
			}
			if r := check("v4"); r != want {
				t.Errorf("secret v4 after the %s: decided %s, want %s", last, r, want)
			}
		})
	}
}

// serveCheck serves srv's Check on loopback as keygate serve does
// (keygate's codec and handler) and returns a client of it.
func serveCheck(t *testing.T, srv *extauthz.Server) authv3.AuthorizationClient {
	t.Helper()
	gs := grpc.NewServer(extauthz.ServerCodec())
	srv.Register(gs)
	return authv3.NewAuthorizationClient(grpctest.Serve(t, gs))
}
