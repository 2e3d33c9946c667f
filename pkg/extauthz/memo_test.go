package extauthz_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
)

// BenchmarkAllowMemo reports what the gRPC adapter keeps with a key once
// it has allowed a request through the wire path (the key's adapter data:
// its ready-made allow), in bytes per key: the heap retained after one
// allow for each of n fresh key records, less the heap before. authz's
// adapterBase (a record's cost in the cache) must not be below it.
func BenchmarkAllowMemo(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchAllowMemo(b, 0) })
	b.Run("headers=20x1KiB", func(b *testing.B) { benchAllowMemo(b, 20) })
}

func benchAllowMemo(b *testing.B, headers int) {
	const n = 2000
	cfg := extauthz.Config{}.WithDefaults()
	opts := authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders()}
	specs := make([]authz.KeySpec, n)
	reqs := make([][]byte, n)
	for i := range n {
		secret, err := apikey.Generate(apikey.KindService)
		if err != nil {
			b.Fatal(err)
		}
		specs[i] = authz.KeySpec{ID: fmt.Sprintf("key-%06d", i), Name: fmt.Sprintf("name-%06d", i), Type: authz.KeyTypeService,
			AccountID: "default", AppID: "billing", AppName: "Billing", TenantID: "acme", TenantName: "ACME Corp", Active: true,
			Hash: hasher.HashString(secret)}
		for h := range headers {
			specs[i].ResponseHeaders = append(specs[i].ResponseHeaders,
				authz.HeaderSpec{Name: fmt.Sprintf("x-h%d", h), Value: strings.Repeat("v", 1024)})
		}
		if reqs[i], err = proto.Marshal(request("/email/read", secret, nil)); err != nil {
			b.Fatal(err)
		}
	}
	store := &mapStore{keys: map[apikey.Digest]*authz.Key{}}
	engine := &authz.Engine{Keys: store, Routes: routes, Hasher: hasher, Counts: authz.NewUsageCounter(0)}
	srv := extauthz.NewServer(engine, cfg, nil, nil)
	ctx := context.Background()
	dec := new(extauthz.WireDecoder)
	allow := func(req []byte) {
		out, err := extauthz.CheckWireBytes(srv, ctx, dec, req)
		if err != nil || out == nil {
			b.Fatalf("no answer: %v", err)
		}
	}
	var per float64
	for b.Loop() {
		for _, s := range specs {
			k, err := authz.Compile(s, opts)
			if err != nil {
				b.Fatal(err)
			}
			store.keys[k.Digest] = k
		}
		allow(reqs[0]) // protobuf's lazy initialisation, outside the count
		before := heapAlloc()
		for _, r := range reqs {
			allow(r)
		}
		per = float64(heapAlloc()-before) / n
	}
	runtime.KeepAlive(store)
	b.ReportMetric(per, "B/key")
	// The record's cost estimate of the same: what the cache bounds.
	k, _ := authz.Compile(specs[0], opts)
	b.ReportMetric(float64(authz.AdapterCost(k)), "estimate-B/key")
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
