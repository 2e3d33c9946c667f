package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/pkg/store"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
)

// TestAuditQueriesBounded: with a large log in several accounts, every
// filter of ListAuditEvents — alone, with a time window, on a later page —
// is planned as an index scan in (at, id) order that stops after the page:
// no sequential scan and no sort of the matching rows, whether the plan is
// custom or generic (a prepared statement's, after five executions).
func TestAuditQueriesBounded(t *testing.T) {
	e := newEnv(t)
	for _, acct := range []string{"acct", "big-a", "big-b"} {
		if err := e.exec(`INSERT INTO audit_events (account_id, at, actor_key_id, action, object_type, object_id, outcome)
			SELECT $1, now() - make_interval(secs => 30000 - i), 'actor-' || (i % 50),
				(ARRAY['key.create', 'key.update', 'key.delete', 'app.update', 'tenant.update', 'key.regenerate'])[1 + i % 6],
				split_part((ARRAY['key.create', 'key.update', 'key.delete', 'app.update', 'tenant.update', 'key.regenerate'])[1 + i % 6], '.', 1),
				'k' || (i % 500), CASE WHEN i % 1000 = 0 THEN 'denied' ELSE 'allowed' END
			FROM generate_series(1, 30000) AS i`, acct); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.exec(`ANALYZE audit_events`); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-2 * time.Hour)
	// Each filter and the indexes that serve it (the filter's own, or,
	// for filters that select most of the log, the (at, id) one).
	filters := map[string]struct {
		f       store.AuditFilter
		indexes string
	}{
		"none":                {store.AuditFilter{}, "audit_events_at_idx"},
		"key":                 {store.AuditFilter{KeyID: "k7"}, "audit_events_object_idx"},
		"actor":               {store.AuditFilter{ActorKeyID: "actor-3"}, "audit_events_actor_idx"},
		"action":              {store.AuditFilter{Action: "key.update"}, "audit_events_action_idx"},
		"action group":        {store.AuditFilter{ActionGroup: "app"}, "audit_events_action_group_idx"},
		"outcome denied":      {store.AuditFilter{Outcome: store.OutcomeDenied}, "audit_events_denied_idx"},
		"outcome allowed":     {store.AuditFilter{Outcome: store.OutcomeAllowed}, "audit_events_at_idx"},
		"since":               {store.AuditFilter{Since: since}, "audit_events_at_idx"},
		"until":               {store.AuditFilter{Until: since}, "audit_events_at_idx"},
		"key and since":       {store.AuditFilter{KeyID: "k7", Since: since}, "audit_events_object_idx"},
		"actor and action":    {store.AuditFilter{ActorKeyID: "actor-3", Action: "key.update"}, "audit_events_actor_idx audit_events_action_idx"},
		"denied, since/until": {store.AuditFilter{Outcome: store.OutcomeDenied, Since: since.Add(-time.Hour), Until: since}, "audit_events_denied_idx"},
	}
	conn, err := e.pool.Acquire(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		if _, err := conn.Exec(e.ctx, "SET plan_cache_mode = "+mode); err != nil {
			t.Fatal(err)
		}
		for name, c := range filters {
			for _, page := range []int64{0, 25000} {
				what := fmt.Sprintf("%s, %s, after %d", name, mode, page)
				sql, args := postgres.AuditQuery("big-a", c.f, time.Now().Add(-time.Hour), page, 101)
				var raw []byte
				if mode == "force_generic_plan" {
					// A generic plan is what a prepared statement gets:
					// prepare it, then explain its execution.
					stmt := "audit_" + strings.ReplaceAll(strings.ReplaceAll(name, " ", "_"), ",", "") + fmt.Sprint(page)
					stmt = strings.ReplaceAll(stmt, "/", "_")
					if _, err := conn.Conn().Prepare(e.ctx, stmt, sql); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
				}
				if err := conn.QueryRow(e.ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
					t.Fatalf("%s: explain: %v", what, err)
				}
				var plan []struct {
					Plan planNode `json:"Plan"`
				}
				if err := json.Unmarshal(raw, &plan); err != nil || len(plan) != 1 {
					t.Fatalf("%s: plan %s: %v", what, raw, err)
				}
				var nodes []string
				used := false
				plan[0].Plan.walk(func(n *planNode) {
					nodes = append(nodes, n.NodeType+" "+n.IndexName)
					used = used || n.IndexName != "" && strings.Contains(" "+c.indexes+" ", " "+n.IndexName+" ")
					switch n.NodeType {
					case "Seq Scan", "Sort", "Incremental Sort", "Bitmap Heap Scan":
						t.Errorf("%s: a %s node: the query reads more than its page", what, n.NodeType)
					}
				})
				if plan[0].Plan.NodeType != "Limit" || !used {
					t.Errorf("%s: plan %v, want a Limit over an index scan of %s", what, nodes, c.indexes)
				}
			}
		}
	}
}

type planNode struct {
	NodeType  string     `json:"Node Type"`
	IndexName string     `json:"Index Name"`
	Plans     []planNode `json:"Plans"`
}

func (n *planNode) walk(fn func(*planNode)) {
	fn(n)
	for i := range n.Plans {
		n.Plans[i].walk(fn)
	}
}

// TestMigrate0005KeepsAuditEvents: events written before migration 0005
// are listed after it with outcome allowed, newest first, and filtered.
func TestMigrate0005KeepsAuditEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	if err := postgres.MigrateURLUpTo(ctx, url, 4); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `INSERT INTO audit_events (account_id, at, actor_key_id, action, object_type, object_id, after)
		VALUES ('acct', '2026-01-01T00:00:00Z', 'root', 'app.create', 'app', 'a1', '{"id": "a1"}'),
		       ('acct', '2026-01-02T00:00:00Z', 'root', 'key.create', 'key', 'k1', '{"id": "k1"}')`); err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateURL(ctx, url); err != nil {
		t.Fatalf("migrating a 0004 database with audit events: %v", err)
	}
	st := postgres.New(ctx, pool, postgres.Options{})
	evs, _, err := st.ListAuditEvents(ctx, "acct", store.AuditFilter{}, store.Page{})
	if err != nil || len(evs) != 2 || evs[0].ObjectID != "k1" || evs[0].Outcome != store.OutcomeAllowed || evs[0].Reason != "" {
		t.Fatalf("events after 0005: %+v, %v", evs, err)
	}
	if evs, _, err := st.ListAuditEvents(ctx, "acct", store.AuditFilter{ActionGroup: "app"}, store.Page{}); err != nil || len(evs) != 1 || evs[0].ObjectID != "a1" {
		t.Fatalf("app.* after 0005: %+v, %v", evs, err)
	}
}
