package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accountv1"
)

// bulkFloodAccountKeys is how many account keys the flooding account
// spreads its bulk changes over: each key has its own rate-limit bucket
// on each replica (SPEC §10), so an attacker mints many.
const bulkFloodAccountKeys = 30

// TestRevocationUnderBulkUpdate is issue 15's promise through the bulk
// key update (audit-15, blocking finding): one account bulk-updates its
// 10,000 keys — in calls of account.MaxBulkKeys (the most one call may
// change), through both replicas and 30 account keys, each call as soon
// as a bucket lets it — while another account deactivates a key 20 times.
// Every deactivation call must return, and both replicas deny the key,
// within revocationBound. Before the fix one UpdateKeys over 10,000 keys
// cost one token and held the fleet-wide feed lock for its whole
// key-by-key transaction (48 s measured): the deactivation timed out.
func TestRevocationUnderBulkUpdate(t *testing.T) {
	env := newDBEnv(t)
	flooder := bootstrapAccount(t, env.url, "acct-bulk")
	// Groups of the most one call may change: one call per group.
	insertAppKeys(t, env.url, "acct-bulk", "big", floodKeys, account.MaxBulkKeys)
	groups := floodKeys / account.MaxBulkKeys

	replicas, victim, victimKey, req, checks := startFloodFleet(t, env)

	// The attacker's account keys, each usable on both replicas.
	root := &accountClient{accountv1.NewAccountServiceClient(dial(t, replicas[0].accountAddr)), flooder}
	var floods [][]*accountClient
	for _, r := range replicas {
		floods = append(floods, []*accountClient{{accountv1.NewAccountServiceClient(dial(t, r.accountAddr)), flooder}})
	}
	for i := range bulkFloodAccountKeys - 1 {
		resp, err := root.GenerateAccountAccessKey(root.ctx(t), &accountv1.GenerateAccountAccessKeyRequest{Name: fmt.Sprintf("bulk-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range replicas {
			floods[j] = append(floods[j], &accountClient{accountv1.NewAccountServiceClient(dial(t, r.accountAddr)), resp.GetPrivateKey()})
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	var changed, calls atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for _, clients := range floods {
		wg.Go(func() { bulkFlood(ctx, t, clients, groups, &next, &changed, &calls) })
	}
	// Try i revokes once the flood has changed i/n of the 10,000 keys (the
	// first once its first call is in), so that the tries span the whole
	// bulk update.
	n := floodTries()
	start, first := time.Now(), int64(0)
	lags := timeRevocationsWith(t, victim, victimKey.id, req, checks, n, func(try int) func() {
		for ctx.Err() == nil && !t.Failed() {
			done := changed.Load()
			if try == 0 && done > 0 {
				start, first = time.Now(), done
				break
			}
			if try > 0 && done-first >= int64(try*floodKeys/n) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	})
	during, took := changed.Load()-first, time.Since(start)
	stop()
	wg.Wait()
	t.Logf("revocation honoured on both replicas, %d tries while another account bulk-updated %d keys "+
		"(%d calls of up to %d keys, %d account keys on %d replicas; %d keys changed during the %v of the tries): p50 %v p99 %v max %v",
		len(lags), floodKeys, calls.Load(), account.MaxBulkKeys, bulkFloodAccountKeys, len(replicas), during, took.Round(time.Millisecond),
		pct(lags, 50), pct(lags, 99), lags[len(lags)-1])
	for _, lag := range lags {
		if lag > revocationBound {
			t.Errorf("a revocation took %v under the bulk update, more than SPEC §10's %v", lag, revocationBound)
			break
		}
	}
	if during < int64(floodKeys*(n-1)/n) {
		t.Errorf("only %d keys were bulk-updated while the revocations were timed, want at least %d: no flood to speak of", during, floodKeys*(n-1)/n)
	}
}

// bulkFlood changes the description of one group of app "big" after
// another (the groups shared with the other replica's flood through next)
// until ctx is done, each call with the next account key whose bucket
// lets it: a refusal (ResourceExhausted, the key's debt for its last
// call) moves on to the next key at once; only a round of refusals waits.
func bulkFlood(ctx context.Context, t *testing.T, clients []*accountClient, groups int, next, changed, calls *atomic.Int64) {
	refused := 0
	for i := 0; ctx.Err() == nil; i++ {
		c := clients[i%len(clients)]
		g := fmt.Sprintf("g%d", next.Load()%int64(groups))
		desc := fmt.Sprintf("bulk %d", i)
		cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "x-api-key", c.key), time.Minute)
		resp, err := c.UpdateKeys(cctx, &accountv1.UpdateKeysRequest{Filter: &accountv1.KeyFilter{AppId: "big", Group: g}, Description: &desc})
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case status.Code(err) == codes.ResourceExhausted:
			if refused++; refused >= len(clients) {
				refused = 0
				sleepCtx(ctx, 100*time.Millisecond)
			}
			continue
		case err != nil:
			// Counted by the caller: too few keys changed fails the test.
			t.Logf("bulk update of group %s: %v", g, err)
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		refused = 0
		next.Add(1)
		calls.Add(1)
		changed.Add(int64(resp.GetCount()))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
