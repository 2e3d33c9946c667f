package authz_test

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
)

type usageRow struct {
	key, service, operation string
	outcome                 authz.Reason
	hour                    int64
}

func drain(u *authz.UsageCounter) (cells map[usageRow]uint64, overflow map[authz.UsageOverflowCell]uint64) {
	cells, overflow = map[usageRow]uint64{}, map[authz.UsageOverflowCell]uint64{}
	u.Drain(func(c authz.UsageCell, n uint64) {
		cells[usageRow{c.Key.Spec.ID, c.Service, c.Operation, c.Outcome, c.Hour}] += n
	}, func(c authz.UsageOverflowCell, n uint64) { overflow[c] += n })
	return cells, overflow
}

// TestUsageCounting: Check counts every decision about a known key (rows
// 4 on) by key, service, operation, outcome and hour; nothing before row 4,
// and not Evaluate (explain).
func TestUsageCounting(t *testing.T) {
	secret := mustGenerate(t, apikey.KindService)
	k := mustCompile(t, serviceKey(secret))
	offSecret := mustGenerate(t, apikey.KindService)
	spec := serviceKey(offSecret)
	spec.ID, spec.Active = "k-off", false
	off := mustCompile(t, spec)
	store := &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k, off.Digest: off}}
	router := &fakeRouter{target: emailRd}
	now := t0
	u := authz.NewUsageCounter(0)
	e := &authz.Engine{Keys: store, Routes: router, Hasher: hasher, Counts: u, Now: func() time.Time { return now }}
	ctx := context.Background()
	check := func(key string, n int) {
		for range n {
			e.Check(ctx, &authz.Request{Key: key, KeyCount: 1})
		}
	}
	check(secret, 3)
	check(offSecret, 2)                                                                          // inactive_key: row 4, counted
	check(mustGenerate(t, apikey.KindService), 5)                                                // unknown_key: not counted
	check("", 2)                                                                                 // missing_key: not counted
	router.target = authz.Target{Service: "email-api", Kind: "mutation", Operation: "sendEmail"} // accepts no key type
	check(secret, 2)
	router.reason = authz.UnknownRoute
	router.target = authz.Target{}
	check(secret, 1)
	e.Evaluate(ctx, k, &authz.Request{}, now) // explain: not counted
	now = t0.Add(time.Hour)
	router.reason, router.target = authz.OK, emailRd
	check(secret, 4)

	h := t0.Unix() / 3600
	want := map[usageRow]uint64{
		{"k-1", "email-api", "listEmails", authz.OK, h}:          3,
		{"k-off", "", "", authz.InactiveKey, h}:                  2,
		{"k-1", "email-api", "sendEmail", authz.WrongKeyType, h}: 2,
		{"k-1", "", "", authz.UnknownRoute, h}:                   1,
		{"k-1", "email-api", "listEmails", authz.OK, h + 1}:      4,
	}
	got, overflow := drain(u)
	if len(got) != len(want) || len(overflow) != 0 {
		t.Fatalf("counted %v (overflow %v), want %v", got, overflow, want)
	}
	for r, n := range want {
		if got[r] != n {
			t.Errorf("%v: %d, want %d", r, got[r], n)
		}
	}
	// Drained counts are reset: the next drain finds nothing.
	if got, _ := drain(u); len(got) != 0 {
		t.Errorf("second drain %v, want nothing", got)
	}
}

// TestUsageOverflowPerAccount: past its bound the counter keeps counts per
// account, outcome and hour; nothing is lost.
func TestUsageOverflowPerAccount(t *testing.T) {
	u := authz.NewUsageCounter(64) // one cell per shard
	var keys []*authz.Key
	for range 200 {
		keys = append(keys, mustCompile(t, serviceKey(mustGenerate(t, apikey.KindService))))
	}
	// Three hours of one combination a key: the first is counted in the
	// key's record, the two others in the shards' maps, which hold 64.
	total := uint64(0)
	for i, k := range keys {
		for h := range 3 {
			for range i%3 + 1 {
				u.Count(k, &emailRd, authz.OK, t0.Add(time.Duration(h)*time.Hour))
				total++
			}
		}
	}
	cells, overflow := drain(u)
	var sum uint64
	for _, n := range cells {
		sum += n
	}
	if len(cells) > 64+len(keys) {
		t.Errorf("%d cells, want at most 64 in the maps and one in each of %d records", len(cells), len(keys))
	}
	var over uint64
	for c, n := range overflow {
		if h := c.Hour - t0.Unix()/3600; c.AccountID != "default" || c.Outcome != authz.OK || h < 1 || h > 2 {
			t.Errorf("overflow cell %+v", c)
		}
		over += n
	}
	if over == 0 || sum+over != total {
		t.Errorf("cells %d + overflow %d, want %d in all with some overflow", sum, over, total)
	}
}

// TestUsageIdleCellsRemoved: a combination idle for a whole drain is
// forgotten, and counted afresh when it comes back.
func TestUsageIdleCellsRemoved(t *testing.T) {
	u := authz.NewUsageCounter(0)
	k := mustCompile(t, serviceKey(mustGenerate(t, apikey.KindService)))
	u.Count(k, &emailRd, authz.OK, t0)
	drain(u) // counted 1
	drain(u) // idle: removed
	u.Count(k, &emailRd, authz.OK, t0)
	if got, _ := drain(u); len(got) != 1 {
		t.Errorf("got %v, want the one count", got)
	}
}

// TestCheckWithUsageDoesNotAllocate: counting a seen combination allocates
// nothing.
func TestCheckWithUsageDoesNotAllocate(t *testing.T) {
	k, secret := benchKey(t)
	e := &authz.Engine{Keys: &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}},
		Routes: &fakeRouter{target: emailRd}, Hasher: hasher, Counts: authz.NewUsageCounter(0),
		Now: func() time.Time { return t0 }}
	req := &authz.Request{Key: secret, KeyCount: 1, ClientIP: netip.MustParseAddr("10.9.8.7")}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if d := e.Check(ctx, req); d.Reason != authz.OK {
			t.Fatal(d.Reason)
		}
	})
	if allocs != 0 {
		t.Fatalf("Check with usage counting allocates %v times, want 0", allocs)
	}
}

// BenchmarkUsageCount is what usage counting adds to a check: one seen
// combination counted. Target: <= 60 ns/op, 0 allocs/op.
func BenchmarkUsageCount(b *testing.B) {
	k, _ := benchKey(b)
	u := authz.NewUsageCounter(0)
	u.Count(k, &emailRd, authz.OK, t0)
	b.ReportAllocs()
	// Drained as the aggregator drains (every 10 s), more often: a
	// record's slot holds 8,388,607 counts between drains, and past them
	// the shard's map counts.
	i := 0
	for b.Loop() {
		u.Count(k, &emailRd, authz.OK, t0)
		if i++; i%(1<<20) == 0 {
			u.Drain(func(authz.UsageCell, uint64) {}, func(authz.UsageOverflowCell, uint64) {})
		}
	}
}

// BenchmarkUsageCountParallel is BenchmarkUsageCount from every core at
// once, over 64 keys.
func BenchmarkUsageCountParallel(b *testing.B) {
	u := authz.NewUsageCounter(0)
	var keys []*authz.Key
	for range 64 {
		k, _ := benchKey(b)
		keys = append(keys, k)
		u.Count(k, &emailRd, authz.OK, t0)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			u.Count(keys[i%len(keys)], &emailRd, authz.OK, t0)
			i++
		}
	})
}

// TestUsageRoundRobinDoesNotAllocate: a key called for several operations
// in turn is counted without allocating once each has been seen.
func TestUsageRoundRobinDoesNotAllocate(t *testing.T) {
	k, _ := benchKey(t)
	u := authz.NewUsageCounter(0)
	targets := []authz.Target{emailRd, {Service: "email-api", Operation: "sendEmail"}, {Service: "billing-api", Operation: "pay"}, {}, {Service: "x", Operation: "y"}}
	for i := range targets {
		u.Count(k, &targets[i], authz.OK, t0)
	}
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		u.Count(k, &targets[i%len(targets)], authz.OK, t0)
		i++
	})
	if allocs != 0 {
		t.Fatalf("counting in turn allocates %v times, want 0", allocs)
	}
}

// TestUsageOperationsBounded: past MaxUsageOperations distinct pairs, new
// ones are counted without their names, and nothing is lost. The pairs
// come from several accounts, each within its own share.
func TestUsageOperationsBounded(t *testing.T) {
	n := authz.MaxUsageOperations + 10
	u := authz.NewUsageCounter(64 * 2 * n) // room for every cell in any shard
	keys := map[int]*authz.Key{}
	for i := range n {
		acct := i / authz.MaxUsageOperationsPerAccount
		k := keys[acct]
		if k == nil {
			spec := serviceKey(mustGenerate(t, apikey.KindService))
			spec.AccountID, spec.ID = "acct-"+strconv.Itoa(acct), "key-"+strconv.Itoa(acct)
			k = mustCompile(t, spec)
			keys[acct] = k
		}
		u.Count(k, &authz.Target{Service: "s", Operation: "op" + strconv.Itoa(i)}, authz.ScopeDenied, t0)
	}
	cells, _ := drain(u)
	var total, unnamed uint64
	for r, c := range cells {
		total += c
		if r.service == "" {
			unnamed += c
		}
	}
	if total != uint64(n) || unnamed != 11 { // 65535 named (index 0 is ""), 11 unnamed
		t.Errorf("total %d, unnamed %d", total, unnamed)
	}
}

// BenchmarkEngineCheckNoUsage is BenchmarkEngineCheck with usage counting
// off, to measure what counting adds (compare with BenchmarkCheckEngine).
func BenchmarkEngineCheckNoUsage(b *testing.B) {
	k, secret := benchKey(b)
	e := &authz.Engine{Keys: &fakeStore{keys: map[apikey.Digest]*authz.Key{k.Digest: k}},
		Routes: &fakeRouter{target: emailRd}, Hasher: hasher}
	req := &authz.Request{Key: secret, KeyCount: 1, ClientIP: netip.MustParseAddr("10.9.8.7")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Check(ctx, req); d.Reason != authz.OK {
			b.Fatal(d.Reason)
		}
	}
}

// TestUsageConcurrentDrain counts from several goroutines while draining:
// every count is drained exactly once.
func TestUsageConcurrentDrain(t *testing.T) {
	u := authz.NewUsageCounter(0)
	var keys []*authz.Key
	for range 8 {
		k, _ := benchKey(t)
		keys = append(keys, k)
	}
	// Two operations, three outcomes and two hours a key: more
	// combinations than a record's two slots, so that slots are re-tagged
	// after drains and the shards' maps count the rest, while drains run.
	targets := []authz.Target{emailRd, {Service: "email-api", Operation: "sendEmail"}}
	const perG = 3000
	type combo struct {
		key     *authz.Key
		target  *authz.Target
		outcome authz.Reason
		at      time.Time
	}
	comboOf := func(g, i int) combo {
		return combo{keys[(g+i)%len(keys)], &targets[i%2], authz.Reason(i % 3), t0.Add(time.Duration(i/7%2) * time.Hour)}
	}
	want := map[usageRow]uint64{}
	for g := range 4 {
		for i := range perG {
			c := comboOf(g, i)
			want[usageRow{c.key.Spec.ID, c.target.Service, c.target.Operation, c.outcome, c.at.Unix() / 3600}]++
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				c := comboOf(g, i)
				u.Count(c.key, c.target, c.outcome, c.at)
			}
		}()
	}
	got := map[usageRow]uint64{}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	sum := func() {
		cells, overflow := drain(u)
		for r, n := range cells {
			got[r] += n
		}
		if len(overflow) != 0 {
			t.Errorf("overflow %v with the default bound", overflow)
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			sum()
		}
	}
	sum()
	if len(got) != len(want) {
		t.Errorf("%d combinations drained, want %d", len(got), len(want))
	}
	for r, n := range want {
		if got[r] != n {
			t.Errorf("%+v: drained %d, want %d", r, got[r], n)
		}
	}
}

// TestUsageOperationNamesBoundedPerAccount: operation names can come from
// the client (GraphQL fields, gRPC methods of a declared service). One
// account's callers sending a new name each time fill only their own
// share of the counter's table: past it their new names are counted as
// ("", ""), every call still counted, and another account's new operation
// keeps its name.
func TestUsageOperationNamesBoundedPerAccount(t *testing.T) {
	u := authz.NewUsageCounter(0)
	flooder := serviceKey(mustGenerate(t, apikey.KindService))
	flooder.AccountID, flooder.ID = "flooder", "flooder-key"
	fk := mustCompile(t, flooder)
	calls := authz.MaxUsageOperationsPerAccount + 100
	for i := range calls {
		u.Count(fk, &authz.Target{Service: "graph-api", Kind: "query", Operation: "f" + strconv.Itoa(i)}, authz.ScopeDenied, t0)
	}
	other := mustCompile(t, serviceKey(mustGenerate(t, apikey.KindService)))
	u.Count(other, &emailRd, authz.OK, t0)

	cells, _ := drain(u)
	named, unnamed := 0, uint64(0)
	var total uint64
	for r, n := range cells {
		if r.key != fk.Spec.ID {
			continue
		}
		total += n
		if r.operation == "" {
			unnamed += n
		} else {
			named++
		}
	}
	if named != authz.MaxUsageOperationsPerAccount || unnamed != 100 || total != uint64(calls) {
		t.Errorf("flooder: %d names kept, %d calls unnamed, %d in all; want %d, 100, %d",
			named, unnamed, total, authz.MaxUsageOperationsPerAccount, calls)
	}
	if cells[usageRow{other.Spec.ID, emailRd.Service, emailRd.Operation, authz.OK, t0.Unix() / 3600}] != 1 {
		t.Errorf("another account's operation lost its name: %v", cells)
	}
}
