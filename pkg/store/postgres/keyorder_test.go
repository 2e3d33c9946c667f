package postgres_test

import (
	"crypto/sha256"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// seedPlanKeys is a database for the tests of query plans: 20,000 keys
// of account "acct" (KEYGATE_LONG=1: 100,000) and a quarter as many of
// "other", as pgtest seeds them.
func seedPlanKeys(t *testing.T) *pgxpool.Pool {
	t.Helper()
	n := 20_000
	if os.Getenv("KEYGATE_LONG") == "1" {
		n = 100_000
	}
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgtest.SeedKeys(ctx, pool, "acct", n); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.SeedKeys(ctx, pool, "other", n/4); err != nil {
		t.Fatal(err)
	}
	return pool
}

// explainAnalyze runs sql with EXPLAIN ANALYZE and returns its plan,
// logged with the time it took.
func explainAnalyze(t *testing.T, pool *pgxpool.Pool, sql string, args []any) string {
	t.Helper()
	start := time.Now()
	rows, err := pool.Query(t.Context(), "EXPLAIN (ANALYZE, COSTS OFF) "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	t.Logf("%v:\n%s", time.Since(start).Round(time.Microsecond), text)
	return text
}

// The first page of every sort of the keys list, and of a name search,
// reads through an index (migration 0013), never the account's keys one
// by one: checked on the plans PostgreSQL makes for 20,000 keys
// (KEYGATE_LONG=1: 100,000), each plan logged with its time.
func TestListKeysPlans(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := seedPlanKeys(t)
	for _, sql := range []string{
		`UPDATE keys SET expires_at = now() + (abs(hashtext(id)) % 5000 + 100) * interval '1 hour',
			created_at = now() - (abs(hashtext(id)) % 100000) * interval '1 second'
			WHERE abs(hashtext(id)) % 3 <> 0`,
		`INSERT INTO key_usage (account_id, key_id, last_used_at)
			SELECT account_id, id, now() - (abs(hashtext(id)) % 100000) * interval '1 minute'
			FROM keys WHERE abs(hashtext(id)) % 2 = 0`,
		`ANALYZE keys`, `ANALYZE key_usage`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	var trgm bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'keys_name_trgm_idx')`).Scan(&trgm); err != nil {
		t.Fatal(err)
	}
	t.Logf("trigram index: %v", trgm)
	for _, tc := range []struct {
		name string
		f    store.KeyFilter
	}{
		{"created", store.KeyFilter{}},
		{"-created", store.KeyFilter{Order: store.KeyOrder{Desc: true}}},
		{"name", store.KeyFilter{Order: store.KeyOrder{By: store.SortName}}},
		{"-name", store.KeyFilter{Order: store.KeyOrder{By: store.SortName, Desc: true}}},
		{"expires", store.KeyFilter{Order: store.KeyOrder{By: store.SortExpires}}},
		{"-expires", store.KeyFilter{Order: store.KeyOrder{By: store.SortExpires, Desc: true}}},
		{"last_used", store.KeyFilter{Order: store.KeyOrder{By: store.SortLastUsed}}},
		{"-last_used", store.KeyFilter{Order: store.KeyOrder{By: store.SortLastUsed, Desc: true}}},
		{"search", store.KeyFilter{NameContains: "00042"}},
		{"search, by name", store.KeyFilter{NameContains: "00042", Order: store.KeyOrder{By: store.SortName}}},
		// The overview's expiring keys: a window past most expiries
		// (as past the keys already expired), sorted by expiry.
		{"expiring window, by expiry", store.KeyFilter{ExpiresAfter: time.Now().Add(150 * 24 * time.Hour),
			ExpiringBefore: time.Now().Add(180 * 24 * time.Hour), Order: store.KeyOrder{By: store.SortExpires}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sql, args, err := postgres.ListKeysSQL("acct", tc.f, nil, 51)
			if err != nil {
				t.Fatal(err)
			}
			text := explainAnalyze(t, pool, sql, args)
			if !tc.f.ExpiresAfter.IsZero() && !strings.Contains(text, "Index Cond: ((account_id = 'acct'::text) AND (COALESCE(expires_at") {
				t.Errorf("the first page of %s does not start at the lower bound of the expiry", tc.name)
			}
			if strings.Contains(text, "Seq Scan on keys") || strings.Contains(text, "Seq Scan on key_usage") {
				if tc.f.NameContains == "" || trgm {
					t.Errorf("the first page of %s reads the keys one by one", tc.name)
				}
			}
		})
	}
}

// A search that matches few keys is sorted in Go, one that matches many
// by PostgreSQL: both give the same pages in every order. Not parallel:
// it sets the bound between the two.
func TestListKeysSearchSortedAlike(t *testing.T) {
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c := newClock()
	s := postgres.New(ctx, pool, postgres.Options{Compile: reserved, Now: c.Now})
	actor := store.Actor{KeyID: "admin-key", KeyName: "admin"}
	if _, err := s.CreateAccount(ctx, actor, store.Account{ID: "acct", Name: "Account"}); err != nil {
		t.Fatal(err)
	}
	used := map[store.KeyRef]time.Time{}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 30 {
		name := []string{"Alpha", "beta", "GAMMA", "delta", "Epsilon"}[i%5] + "-" + strconv.Itoa(i*7%30)
		k := store.Key{Spec: authz.KeySpec{AccountID: "acct", ID: "k" + strconv.Itoa(i), Name: name, Type: authz.KeyTypeAccount,
			Hash: apikey.FormatHash(apikey.SHA256, sha256.Sum256([]byte(name))), Active: true}, Origin: store.OriginGenerated}
		if i%3 != 0 {
			k.Spec.ExpiresAt = t0.Add(time.Duration(i%4) * time.Hour) // ties: the id decides
		}
		if _, err := s.CreateKey(ctx, actor, k); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			used[store.KeyRef{AccountID: "acct", ID: k.Spec.ID}] = t0.Add(-time.Duration(i%5) * time.Hour)
		}
	}
	if err := s.TouchKeys(ctx, used); err != nil {
		t.Fatal(err)
	}
	pages := func(f store.KeyFilter) []string {
		var ids []string
		token := ""
		for range 20 {
			keys, next, err := s.ListKeys(ctx, "acct", f, store.Page{Size: 4, Token: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				ids = append(ids, k.Spec.ID)
			}
			if token = next; next == "" {
				break
			}
		}
		return ids
	}
	for _, by := range store.KeySorts {
		for _, desc := range []bool{false, true} {
			f := store.KeyFilter{NameContains: "A", Order: store.KeyOrder{By: by, Desc: desc}}
			inGo := pages(f)
			postgres.SetFewMatches(t, 0)
			inSQL := pages(f)
			postgres.SetFewMatches(t, 500)
			if len(inGo) != 30-6 || !slices.Equal(inGo, inSQL) { // every name but Epsilon-… has an a
				t.Errorf("%s: sorted here %v, by PostgreSQL %v", f.Order, inGo, inSQL)
			}
		}
	}
}
