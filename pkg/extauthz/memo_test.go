package extauthz_test

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
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
		extauthz.Release(out)
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

// BenchmarkMarkRecords is the collector's cost of a round robin's working
// set: n service keys as the load harness seeds them (three roles, a
// daily quota and their tenant's monthly one, usage counting on), each
// having allowed one request through the wire path (so that its adapter
// parts, usage cells and quota cells exist). Each iteration is one full
// collection; ns/key is its time per record held, gc-cpu-ns/key the
// collector's CPU time per record held (steadier on a busy machine), B/key
// and objects/key what the heap holds per record.
func BenchmarkMarkRecords(b *testing.B) {
	const n = 50_000
	cfg := extauthz.Config{}.WithDefaults()
	roles := authz.RoleMap{
		"r1": {ID: "r1", AccountID: "default", Name: "readers", Scope: "email-api:query:*", RateLimit: authz.RateLimit{RequestsPerUnit: 100000, Unit: authz.RateUnitSecond}},
		"r2": {ID: "r2", AccountID: "default", Name: "cleaners", Scope: "email-api:mutation:deleteEmail !email-api:mutation:sendEmail"},
		"r3": {ID: "r3", AccountID: "default", Name: "users", Scope: "users-api:query:listUsers"},
	}
	opts := authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders(), Scopes: new(authz.ScopeCache), Roles: roles}
	store := &mapStore{keys: map[apikey.Digest]*authz.Key{}}
	engine := &authz.Engine{Keys: store, Routes: routes, Hasher: hasher, Counts: authz.NewUsageCounter(0), Quotas: authz.NewQuotas()}
	srv := extauthz.NewServer(engine, cfg, nil, nil)
	ctx := context.Background()
	dec := new(extauthz.WireDecoder)
	before := memStats()
	secrets := make([]string, 0, n)
	for i := range n {
		secret, err := apikey.Generate(apikey.KindService)
		if err != nil {
			b.Fatal(err)
		}
		// An id and a name of their own, as a store's rows give them;
		// the store interns the account's, app's and tenant's.
		id := fmt.Sprintf("seed-default-%09d", i)
		k, err := authz.Compile(authz.KeySpec{ID: id, Name: strings.Clone(id), Type: authz.KeyTypeService,
			AccountID: "default", AppID: "seed-app", AppName: "seed-app", TenantID: "seed-tenant", TenantName: "seed-tenant",
			Active: true, Scope: "email-api !email-api:mutation:sendEmail", Roles: []string{"r1", "r2", "r3"},
			Quota: authz.Quota{Requests: 1e12, Period: authz.QuotaPeriodDay}, TenantQuota: 1e15,
			Hash: hasher.HashString(secret)}, opts)
		if err != nil {
			b.Fatal(err)
		}
		store.keys[k.Digest] = k
		secrets = append(secrets, secret)
	}
	// Then the traffic, as a replica meets it after its warm load: the
	// order of allocations decides how live and dead objects share spans,
	// which the collector's cost depends on.
	for i, secret := range secrets {
		msg := request("/email/read", secret, nil)
		if i == 0 {
			if resp, _ := srv.Check(ctx, msg); resp.GetOkResponse() == nil {
				b.Fatalf("not allowed: %v", resp.GetStatus())
			}
		}
		req, err := proto.Marshal(msg)
		if err != nil {
			b.Fatal(err)
		}
		out, err := extauthz.CheckWireBytes(srv, ctx, dec, req)
		if err != nil || out == nil {
			b.Fatalf("no answer: %v", err)
		}
		extauthz.Release(out)
	}
	secrets = nil
	after := memStats()
	gcCPU := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/gc/scan/heap:bytes"}}
	metrics.Read(gcCPU)
	start := gcCPU[0].Value.Float64()
	scanBefore := gcCPU[1].Value.Uint64()
	for b.Loop() {
		runtime.GC()
	}
	metrics.Read(gcCPU)
	runtime.KeepAlive(store)
	runtime.KeepAlive(srv)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/key")
	b.ReportMetric((gcCPU[0].Value.Float64()-start)*1e9/float64(b.N)/n, "gc-cpu-ns/key")
	b.ReportMetric(float64(scanBefore)/n, "scan-B/key")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/key")
	b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/n, "objects/key")
}

func memStats() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}
