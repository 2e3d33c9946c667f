package postgres

import (
	"math/rand/v2"
	"slices"
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
