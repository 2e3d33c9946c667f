package postgres

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// TestRowOrderSharedAndGrouped: however a flush's rows come (each replica
// drains its counters in its own map order), the order they are written
// in is the same, and rows that are the same row are next to each other
// (a flush sums them into one).
func TestRowOrderSharedAndGrouped(t *testing.T) {
	hour := time.Date(2026, 12, 6, 17, 0, 0, 0, time.UTC)
	var rows []store.UsageRow
	for i := range 500 {
		r := store.UsageRow{AccountID: "acct", TenantID: "t", AppID: "a", KeyID: "key-" + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			Service: "email-api", Operation: []string{"listEmails", "sendEmail"}[i%2], Outcome: "allowed", Hour: hour.Add(time.Duration(i%3) * time.Hour)}
		rows = append(rows, r)
		if i%7 == 0 {
			rows = append(rows, r) // the same row twice
		}
	}
	// Rows that differ only where a naive hash would run fields together.
	rows = append(rows, store.UsageRow{AccountID: "ab", KeyID: "c", Hour: hour}, store.UsageRow{AccountID: "a", KeyID: "bc", Hour: hour})
	written := func(rows []store.UsageRow) []store.UsageRow {
		order := rowOrder(len(rows), func(i int) uint64 { return usageRowHash(&rows[i]) },
			func(a, b int) int { return compareUsageRows(&rows[a], &rows[b]) })
		out := make([]store.UsageRow, len(order))
		for i, j := range order {
			out[i] = rows[j]
		}
		return out
	}
	want := written(rows)
	for range 5 {
		shuffled := slices.Clone(rows)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := written(shuffled); !slices.Equal(got, want) {
			t.Fatal("another input order is written in another order")
		}
	}
	seen := map[store.UsageRow]bool{}
	for i, r := range want {
		if seen[r] && want[i-1] != r {
			t.Fatalf("row %+v twice, not next to itself", r)
		}
		seen[r] = true
	}
	if usageRowHash(&rows[len(rows)-1]) == usageRowHash(&rows[len(rows)-2]) {
		t.Error(`("ab", "c") and ("a", "bc") hash alike`)
	}
}

// TestRowOrderIsTheSortByHash: sorting bucket by bucket (so that a flush
// can yield between buckets) gives exactly the order of one sort by hash,
// then by the rows' strings: the order replicas of earlier versions lock
// rows in, so that a fleet in a rolling upgrade cannot deadlock either.
func TestRowOrderIsTheSortByHash(t *testing.T) {
	hour := time.Date(2026, 12, 6, 17, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	rows := make([]store.UsageRow, 20_000)
	for i := range rows {
		rows[i] = store.UsageRow{AccountID: "acct", TenantID: "t", KeyID: "key-" + strconv.Itoa(rng.IntN(15_000)),
			Service: "email-api", Operation: "sendEmail", Outcome: "allowed", Hour: hour}
	}
	hash := func(i int) uint64 { return usageRowHash(&rows[i]) }
	compare := func(a, b int) int { return compareUsageRows(&rows[a], &rows[b]) }
	got := rowOrder(len(rows), hash, compare)
	want := make([]int32, len(rows))
	for i := range want {
		want[i] = int32(i)
	}
	slices.SortFunc(want, func(a, b int32) int {
		if c := cmp.Compare(hash(int(a)), hash(int(b))); c != 0 {
			return c
		}
		return compare(int(a), int(b))
	})
	for i := range got {
		if compare(int(got[i]), int(want[i])) != 0 {
			t.Fatalf("row %d of the order is %+v, want %+v", i, rows[got[i]], rows[want[i]])
		}
	}
}
