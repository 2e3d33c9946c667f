package extauthz_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
)

// TestKeptAllowsAnswerEachKeyWithItsOwn is the attack on the kept allows'
// slabs, over a real gRPC connection as Envoy sends checks: 400 keys in
// turn from eight callers at once, each calling four operations, with
// slabs so small (4 KiB, two in the ring) that they leave the ring all
// the time, and answers' buffers recycled as gRPC frees them. Every
// answer must carry the identity of the key its request sent and the
// operation it called: a kept allow resolved for another key, a retired
// slab's bytes reused, or a buffer recycled while still being sent would
// show as another key's identity.
func TestKeptAllowsAnswerEachKeyWithItsOwn(t *testing.T) {
	cfg := extauthz.Config{}.WithDefaults()
	const n = 400
	secrets := make([]string, n)
	store := &mapStore{keys: map[apikey.Digest]*authz.Key{}}
	for i := range n {
		secret, err := apikey.Generate(apikey.KindService)
		if err != nil {
			t.Fatal(err)
		}
		k, err := authz.Compile(authz.KeySpec{ID: fmt.Sprintf("k-%03d", i), Name: fmt.Sprintf("key %d", i), Type: authz.KeyTypeService,
			AccountID: "default", AppID: "echo-app", TenantID: fmt.Sprintf("tenant-%d", i%7), Active: true, Hash: hasher.HashString(secret)},
			authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders()})
		if err != nil {
			t.Fatal(err)
		}
		store.keys[k.Digest] = k
		secrets[i] = secret
	}
	engine := &authz.Engine{Keys: store, Routes: echoRouter{}, Hasher: hasher, Now: func() time.Time { return now }, WeakSecrets: ignoreWeakSecrets{}}
	srv := extauthz.NewServer(engine, cfg, nil, nil)
	extauthz.UseSlabs(srv, 2*4096, 4096)
	client := authv3.NewAuthorizationClient(serveGRPC(t, srv, grpc.NewServer(extauthz.ServerCodec())))
	ctx := context.Background()

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 600 {
				i := (g*97 + j*13) % n
				op := fmt.Sprintf("op%d", (g+j)%4)
				resp, err := client.Check(ctx, request("/"+op, secrets[i], nil))
				if err != nil {
					t.Error(err)
					return
				}
				ok := resp.GetOkResponse()
				if ok == nil {
					t.Errorf("key %d, %s: denied %v", i, op, resp.GetStatus())
					return
				}
				meta := resp.GetDynamicMetadata().GetFields()
				wantID := fmt.Sprintf("k-%03d", i)
				if got := meta["key_id"].GetStringValue(); got != wantID {
					t.Errorf("key %s called %s: the answer's key_id is %q", wantID, op, got)
					return
				}
				if got := meta["operation"].GetStringValue(); got != op {
					t.Errorf("key %s called %s: the answer names %q", wantID, op, got)
					return
				}
				headers := map[string]string{}
				for _, h := range ok.GetHeaders() {
					headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
				}
				if headers[cfg.Identity.KeyID] != wantID || headers[cfg.Identity.KeyName] != fmt.Sprintf("key %d", i) ||
					headers[cfg.Identity.TenantID] != fmt.Sprintf("tenant-%d", i%7) {
					t.Errorf("key %s called %s: identity headers %v", wantID, op, headers)
					return
				}
			}
		}()
	}
	wg.Wait()
}
