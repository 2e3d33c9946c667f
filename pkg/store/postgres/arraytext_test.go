package postgres_test

import (
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// TestArrayTextRoundTrip: what a flush sends as array text is what
// PostgreSQL reads back, element for element, through the casts the
// flushes use.
func TestArrayTextRoundTrip(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	var texts []any
	for _, s := range postgres.ArrayTextStrings {
		texts = append(texts, s)
	}
	var gotTexts []string
	if err := pool.QueryRow(t.Context(), `SELECT $1::text[]`, postgres.ArrayText(texts)).Scan(&gotTexts); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotTexts, postgres.ArrayTextStrings) {
		t.Errorf("text[]: got %q, want %q", gotTexts, postgres.ArrayTextStrings)
	}

	ints := []int64{0, 1, -1, 1 << 62, -1 << 63, 42}
	var ia []any
	for _, v := range ints {
		ia = append(ia, v)
	}
	bools := []bool{true, false, false, true}
	var ba []any
	for _, v := range bools {
		ba = append(ba, v)
	}
	times := []time.Time{time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC), time.Date(1969, 7, 20, 20, 17, 40, 123456000, time.UTC),
		time.Date(2026, 3, 29, 2, 30, 0, 0, time.FixedZone("CEST", 2*3600)), time.Unix(0, 0)}
	// Repeats, the second in another zone: the builder reuses the text of
	// the time before when it is the same instant.
	times = append(times, times[3], times[3].In(time.FixedZone("EST", -5*3600)), times[0])
	var ta []any
	for _, v := range times {
		ta = append(ta, v)
	}
	var (
		gotInts  []int64
		gotBools []bool
		gotTimes []time.Time
	)
	if err := pool.QueryRow(t.Context(), `SELECT $1::bigint[], $2::bool[], $3::timestamptz[]`, postgres.ArrayText(ia), postgres.ArrayText(ba), postgres.ArrayText(ta)).
		Scan(&gotInts, &gotBools, &gotTimes); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotInts, ints) {
		t.Errorf("bigint[]: got %v, want %v", gotInts, ints)
	}
	if !slices.Equal(gotBools, bools) {
		t.Errorf("bool[]: got %v, want %v", gotBools, bools)
	}
	if !slices.EqualFunc(gotTimes, times, time.Time.Equal) {
		t.Errorf("timestamptz[]: got %v, want %v", gotTimes, times)
	}

	var empty []string
	if err := pool.QueryRow(t.Context(), `SELECT $1::text[]`, postgres.ArrayText(nil)).Scan(&empty); err != nil || len(empty) != 0 {
		t.Errorf("empty array: %q, %v", empty, err)
	}
}
