package accountgraphql_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/account"
	"github.com/keygate/keygate/pkg/account/accounttest"
	"github.com/keygate/keygate/pkg/accountgraphql"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// contractBackends are the stores TestContract runs on: the fake, and
// PostgreSQL (a database of its own from pgtest, DATABASE_URL's server).
var contractBackends = []struct {
	name  string
	start func(t *testing.T) *gqlServer
}{
	{"fake", func(t *testing.T) *gqlServer { return startGraphQL(t, accountgraphql.Options{}) }},
	{"postgres", func(t *testing.T) *gqlServer {
		clock := accounttest.NewClock(accounttest.T0)
		st, pool, err := postgres.Open(context.Background(), pgtest.NewDatabase(t),
			postgres.Options{Compile: accounttest.CompileOptions, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return serveGraphQL(t, accounttest.StartOn(t, st, clock), accountgraphql.Options{})
	}},
}

// contractGaps checks TestContract's table against the catalogue: a row's
// name starts with the operation it runs, unknown are the rows whose first
// word is no operation of account.Operations, and missing the operations
// no row compares a success of (a refusal alone does not cover one). A new
// operation cannot go in without a contract row.
func contractGaps(ops []contractOp) (missing, unknown []string) {
	covered := map[string]bool{}
	for _, op := range ops {
		name, _, _ := strings.Cut(op.name, " ")
		if _, ok := account.OperationNamed(name); !ok {
			unknown = append(unknown, op.name)
		}
		if op.wantCode == "" {
			covered[name] = true
		}
	}
	for _, o := range account.Operations {
		if !covered[o.Name] {
			missing = append(missing, o.Name)
		}
	}
	return missing, unknown
}

// TestContractGaps: the coverage check names the operations left out and
// the rows that name no operation.
func TestContractGaps(t *testing.T) {
	var all []contractOp
	for _, o := range account.Operations {
		all = append(all, contractOp{name: o.Name + " once"})
	}
	for _, tc := range []struct {
		name             string
		ops              []contractOp
		missing, unknown []string
	}{
		{"every operation", all, nil, nil},
		{"one left out", all[1:], []string{account.Operations[0].Name}, nil},
		{"a refusal only", append(slices.Clone(all[1:]), contractOp{name: all[0].name, wantCode: "NOT_FOUND"}),
			[]string{account.Operations[0].Name}, nil},
		{"a row naming no operation", append(slices.Clone(all), contractOp{name: "listApps"}), nil, []string{"listApps"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			missing, unknown := contractGaps(tc.ops)
			if !slices.Equal(missing, tc.missing) || !slices.Equal(unknown, tc.unknown) {
				t.Errorf("missing %q, unknown %q; want %q, %q", missing, unknown, tc.missing, tc.unknown)
			}
		})
	}
}

// seedReplicasAndUsage records what the replicas and usage rows read, as
// serving replicas would: three replicas' heartbeats (one behind and
// stopped, one with no start time) and hourly usage counts of the
// account's keys.
func seedReplicasAndUsage(t *testing.T, s *gqlServer) {
	ctx := context.Background()
	started := accounttest.T0.Add(-time.Hour)
	for _, r := range []store.Replica{
		{ID: "replica-a", Version: "v1.2.0", StartedAt: started, Applied: 1 << 40},
		{ID: "replica-b", Version: "v1.1.0", StartedAt: started, Applied: 0, Stopped: true},
		{ID: "replica-c", Version: "v1.0.0"}, // reported no start time
	} {
		if err := s.Accounts.(store.Replicas).Heartbeat(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	counts := map[store.UsageRow]int64{}
	// Each run's tenant and key (the quota's state of tenant p+acme
	// counts them), and another account's, which no answer shows.
	for _, p := range []string{"g-", "q-"} {
		row := store.UsageRow{AccountID: s.AccountID, TenantID: p + "acme", AppID: p + "billing", KeyID: p + "sak", Service: "email-api",
			Operation: "send", Outcome: store.UsageOutcomeAllowed}
		denied := row
		denied.Outcome = "scope_denied"
		other := row
		other.AccountID = "acct-2"
		for i, h := range []time.Duration{-2 * time.Hour, -3 * time.Hour, -30 * time.Hour} {
			for _, r := range []store.UsageRow{row, denied, other} {
				r.Hour = accounttest.T0.Add(h)
				counts[r] = int64(10*i + len(r.Outcome))
			}
		}
	}
	if err := s.Accounts.(store.UsageCounts).AddUsage(ctx, counts); err != nil {
		t.Fatal(err)
	}
}

// gqlTime is a GraphQL Time (RFC 3339, any offset) in the form rfc gives
// a proto Timestamp: the same instant, written alike; "" for null.
func gqlTime(s *string) string {
	if s == nil {
		return ""
	}
	tm, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return "unparsable " + *s
	}
	return tm.UTC().Format(time.RFC3339Nano)
}

// lagMinutes is a replica's lag in whole minutes. PostgreSQL measures it
// at each read (clock_timestamp()), so the two transports' reads, a
// moment apart, differ in its fractions of a second; a wrong unit still
// shows.
func lagMinutes(seconds float64) float64 { return math.Floor(seconds / 60) }
