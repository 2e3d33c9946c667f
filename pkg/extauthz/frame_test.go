package extauthz_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/grpctest"
)

// echoRouter names the operation after the request's path, as routes that
// take it from the request do (a gRPC method, a GraphQL field): the
// target's strings then alias the bytes gRPC received.
type echoRouter struct{}

func (echoRouter) Resolve(in *authz.RouteInput) (authz.Target, authz.Reason) {
	return authz.Target{Service: "echo-api", Kind: "query", Operation: strings.TrimPrefix(in.Path, "/"), Accepts: services}, authz.OK
}

// TestRequestStringsOutliveTheirFrame: the decoded request's strings alias
// the bytes its message arrived in, and some outlive the request — the key's
// kept allow names its target with them, the usage counter its operations.
// gRPC reuses the buffers of messages over its pooling threshold, so those
// are copied first; smaller ones arrive in memory of their own. Over a real
// gRPC connection, with both sizes interleaved and forty operations in turn
// (each request compared with allows and names kept from older ones), every
// answer must name the operation its request called, and every count the
// operation it was sent for.
func TestRequestStringsOutliveTheirFrame(t *testing.T) {
	cfg := extauthz.Config{}.WithDefaults()
	secret, err := apikey.Generate(apikey.KindService)
	if err != nil {
		t.Fatal(err)
	}
	k, err := authz.Compile(authz.KeySpec{ID: "k-echo", Name: "echo", Type: authz.KeyTypeService, AccountID: "default", AppID: "echo-app", TenantID: "echo-tenant",
		Active: true, Hash: hasher.HashString(secret)}, authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders()})
	if err != nil {
		t.Fatal(err)
	}
	store := &mapStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}}
	counts := authz.NewUsageCounter(0)
	engine := &authz.Engine{Keys: store, Routes: echoRouter{}, Hasher: hasher, Now: func() time.Time { return now },
		Counts: counts, WeakSecrets: ignoreWeakSecrets{}}
	srv := extauthz.NewServer(engine, cfg, nil, nil)
	client := authv3.NewAuthorizationClient(serveGRPC(t, srv, grpc.NewServer(extauthz.ServerCodec())))
	ctx := context.Background()

	sent := map[string]uint64{}
	for i := range 1200 {
		op := fmt.Sprintf("op%03d", i%40)
		var extra map[string]string
		if i%3 == 0 {
			// Over gRPC's 1 KiB pooling threshold: a buffer gRPC reuses.
			extra = map[string]string{"x-padding": strings.Repeat(fmt.Sprint(i%10), 2048)}
		}
		resp, err := client.Check(ctx, request("/"+op, secret, extra))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetOkResponse() == nil {
			t.Fatalf("request %d (%s) denied: %v", i, op, resp.GetStatus())
		}
		if got := resp.GetDynamicMetadata().GetFields()["operation"].GetStringValue(); got != op {
			t.Fatalf("request %d called %s; the allow names %q", i, op, got)
		}
		sent[op]++
	}
	counted := map[string]uint64{}
	counts.Drain(func(c authz.UsageCell, n uint64) {
		if c.Service != "echo-api" || c.Outcome != authz.OK {
			t.Errorf("counted %+v", c)
		}
		counted[c.Operation] += n
	}, func(c authz.UsageOverflowCell, n uint64) { t.Errorf("overflow %+v %d", c, n) })
	if len(counted) != len(sent) {
		t.Errorf("%d operations counted, want %d: %v", len(counted), len(sent), counted)
	}
	for op, n := range sent {
		if counted[op] != n {
			t.Errorf("%s: counted %d, sent %d", op, counted[op], n)
		}
	}
}

// serveGRPC registers srv on g, serves g on loopback until the test ends,
// and returns a client connection to it.
func serveGRPC(t *testing.T, srv *extauthz.Server, g *grpc.Server) *grpc.ClientConn {
	t.Helper()
	srv.Register(g)
	return grpctest.Serve(t, g)
}
