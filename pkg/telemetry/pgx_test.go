package telemetry_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/cache"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/metrics"
	"github.com/keygate/keygate/pkg/store/postgres"
	"github.com/keygate/keygate/pkg/store/postgres/pgtest"
	"github.com/keygate/keygate/pkg/telemetry"
)

func TestPgxTracer(t *testing.T) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tr, err := telemetry.Setup(ctx, telemetry.Config{SpanProcessor: rec, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New("test", nil)
	st, pool, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.Options{Tracer: telemetry.PgxTracer(tr.TracerProvider(), m)})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgtest.SeedKeys(ctx, pool, "acct", 1); err != nil {
		t.Fatal(err)
	}
	rec.Reset()

	const arg = "an-argument-never-exported"
	pctx, parent := tr.TracerProvider().Tracer("test").Start(ctx, "parent")
	var got string
	if err := pool.QueryRow(pctx, "SELECT $1::text", arg).Scan(&got); err != nil || got != arg {
		t.Fatalf("query: %q %v", got, err)
	}
	secret := pgtest.SeedSecret("acct", 0)
	d := hasher.Sum(secret) // plain SHA-256, as SeedKeys hashes
	if _, err := st.LookupKey(pctx, d); err != nil {
		t.Fatalf("LookupKey: %v", err)
	}
	if _, err := pool.Exec(pctx, "SELECT * FROM no_such_table"); err == nil {
		t.Fatal("query of a missing table succeeded")
	}
	// No rows is an answer, not an error.
	var n int
	if err := pool.QueryRow(pctx, "SELECT 1 WHERE false").Scan(&n); err != pgx.ErrNoRows {
		t.Fatalf("want ErrNoRows, got %v", err)
	}
	parent.End()
	// Without a parent span: metrics only.
	if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}

	var spans []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() != "parent" {
			spans = append(spans, s)
		}
	}
	if len(spans) < 4 {
		t.Fatalf("%d statement spans, want at least 4: %v", len(spans), spans)
	}
	var failed int
	for _, s := range spans {
		a := attrs(s)
		if s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %q kind %v parent %v, want a client child of the caller's span", s.Name(), s.SpanKind(), s.Parent())
		}
		if a["db.system"].AsString() != "postgresql" || a["db.system.name"].AsString() != "postgresql" {
			t.Errorf("span %q: db.system %q", s.Name(), a["db.system"].String())
		}
		stmt := a["db.statement"].AsString()
		if stmt == "" || a["db.query.text"].AsString() != stmt {
			t.Errorf("span %q: statement %q / %q", s.Name(), stmt, a["db.query.text"].String())
		}
		if !strings.HasPrefix(s.Name(), "postgresql ") {
			t.Errorf("span name %q", s.Name())
		}
		if s.Status().Code == codes.Error {
			failed++
			if a["db.response.status_code"].AsString() != "42P01" || s.Status().Description != "42P01" {
				t.Errorf("failed statement: status %v, attributes %v", s.Status(), s.Attributes())
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d failed statement spans, want 1", failed)
	}
	assertNoSecret(t, spans, []string{arg, secret, hasherSHA256Hex(secret)})

	fams := scrapeFamilies(t, m)
	var count uint64
	for _, met := range fams["keygate_store_query_duration_seconds"].GetMetric() {
		count += met.GetHistogram().GetSampleCount()
	}
	if count < 5 {
		t.Errorf("%d statements timed, want at least 5 (spans or not)", count)
	}
	errs := map[string]float64{}
	for _, met := range fams["keygate_store_errors_total"].GetMetric() {
		errs[labelValue(met, "operation")] += met.GetCounter().GetValue()
	}
	if errs["select"] != 1 || len(errs) != 1 {
		t.Errorf("store errors %v, want select: 1 (no rows is not an error)", errs)
	}
}

func TestPgxTracerMetricsOnly(t *testing.T) {
	ctx := context.Background()
	m := metrics.New("test", nil)
	_, pool, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.Options{Tracer: telemetry.PgxTracer(telemetry.Disabled().TracerProvider(), m)})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if len(scrapeFamilies(t, m)["keygate_store_query_duration_seconds"].GetMetric()) == 0 {
		t.Error("no statement timed")
	}
}

func TestStatementOp(t *testing.T) {
	for sql, want := range map[string]metrics.StoreOp{
		"SELECT 1":                           metrics.OpSelect,
		"  select * from keys":               metrics.OpSelect,
		"(SELECT 1) UNION (SELECT 2)":        metrics.OpSelect,
		"-- ping":                            metrics.OpOther,
		"-- name: x\nUPDATE keys SET a=1":    metrics.OpUpdate,
		"insert into t values (1)":           metrics.OpInsert,
		"DELETE FROM t":                      metrics.OpDelete,
		"begin isolation level serializable": metrics.OpBegin,
		"commit":                             metrics.OpCommit,
		"rollback":                           metrics.OpRollback,
		"LISTEN keygate_key_changes":         metrics.OpListen,
		"WITH x AS (SELECT 1) SELECT *":      metrics.OpOther,
		"":                                   metrics.OpOther,
		"selection":                          metrics.OpOther,
	} {
		if got := telemetry.StatementOp(sql); got != want {
			t.Errorf("StatementOp(%q) = %v, want %v", sql, got, want)
		}
	}
}

// TestPostgresStack wires what serve does in database mode: PostgreSQL
// with the pgx tracer, the cache over the change-feed lag wrapper, the
// engine, the server with metrics and tracing. A check that misses the
// cache shows its statements as children of the Check span; a key change
// is measured on its way to the cache; /metrics shows every metric.
func TestPostgresStack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := tracetest.NewSpanRecorder()
	tr, err := telemetry.Setup(ctx, telemetry.Config{SpanProcessor: rec, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New("test", nil)
	st, pool, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.Options{Tracer: telemetry.PgxTracer(tr.TracerProvider(), m)})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	const seeded = 6 // keys 0 and 3 are service keys
	if err := pgtest.SeedKeys(ctx, pool, "acct", seeded); err != nil {
		t.Fatal(err)
	}
	// One record in memory: most lookups miss and go to PostgreSQL.
	kc, err := cache.New(telemetry.ObserveChangeFeed(st, m, nil), cache.Options{MaxKeys: 1, NegativeTTL: -1, PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if err := kc.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	m.KeysLoaded(func() float64 { return float64(kc.Len()) })
	m.ObserveCache(kc.Stats)
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = kc.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	waitFor(t, "the change feed", func() bool { return kc.Stats().FeedConnected })

	cfg := extauthz.Config{}.WithDefaults()
	engine := &authz.Engine{Keys: kc, Routes: routes, Hasher: apikey.NewHasher(nil)}
	srv := withTracer(tr, extauthz.NewServer(engine, cfg, tr.Observer(m, kc), nil))
	check := func(secret string) {
		t.Helper()
		if _, err := srv.Check(ctx, request("/email/read", secret, map[string]string{"traceparent": traceparent})); err != nil {
			t.Fatal(err)
		}
	}
	rec.Reset()
	for _, i := range []int{0, 3, 0, 3} {
		check(pgtest.SeedSecret("acct", i))
	}
	check("an-unknown-custom-key-0001")
	check("")

	// Every lookup that missed made statements under its Check span.
	byParent := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var checks []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == telemetry.CheckSpanName {
			checks = append(checks, s)
		} else {
			byParent[s.Parent().SpanID()] = append(byParent[s.Parent().SpanID()], s)
		}
	}
	if len(checks) != 6 {
		t.Fatalf("%d check spans, want 6", len(checks))
	}
	misses := 0
	for _, c := range checks {
		a := attrs(c)
		if a[telemetry.AttrCacheHit].Type() == attribute.BOOL && !a[telemetry.AttrCacheHit].AsBool() {
			misses++
			if len(byParent[c.SpanContext().SpanID()]) == 0 {
				t.Errorf("a check that missed the cache has no statement spans")
			}
			if a[telemetry.AttrReason].AsString() != "ok" {
				t.Errorf("reason %q", a[telemetry.AttrReason].String())
			}
		}
	}
	if misses == 0 {
		t.Error("no check missed the cache (MaxKeys 1)")
	}
	var secrets []string
	for i := range seeded {
		s := pgtest.SeedSecret("acct", i)
		secrets = append(secrets, s, hasherSHA256Hex(s))
	}
	assertNoSecret(t, rec.Ended(), secrets)

	// A change reaches the cache through NOTIFY; its lag is measured.
	applied := kc.Stats().ChangesApplied
	if _, err := pool.Exec(ctx, "UPDATE keys SET name = name || '-renamed' WHERE id = $1", pgtest.SeedKeyID("acct", 3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the change applied", func() bool { return kc.Stats().ChangesApplied > applied })
	waitFor(t, "the lag measured", func() bool {
		h := scrapeFamilies(t, m)["keygate_propagation_lag_seconds"]
		return h != nil && h.GetMetric()[0].GetHistogram().GetSampleCount() >= 1
	})

	fams := scrapeFamilies(t, m)
	for _, name := range []string{
		"keygate_decisions_total", "keygate_check_duration_seconds", "keygate_keys_loaded", "keygate_build_info",
		"keygate_cache_hits_total", "keygate_cache_misses_total", "keygate_cache_negative_hits_total",
		"keygate_cache_rejects_total", "keygate_change_feed_connected", "keygate_change_feed_applied_total",
		"keygate_change_feed_errors_total", "keygate_store_query_duration_seconds", "keygate_propagation_lag_seconds",
	} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if v := fams["keygate_keys_loaded"].GetMetric()[0].GetGauge().GetValue(); v != seeded {
		t.Errorf("keys loaded %v, want %d", v, seeded)
	}
	if v := fams["keygate_cache_rejects_total"].GetMetric()[0].GetCounter().GetValue(); v != 1 {
		t.Errorf("rejects %v, want 1 (the unknown key)", v)
	}
	if v := fams["keygate_cache_misses_total"].GetMetric()[0].GetCounter().GetValue(); v < float64(misses) {
		t.Errorf("misses %v, want at least %d", v, misses)
	}
	decisions := map[string]float64{}
	for _, met := range fams["keygate_decisions_total"].GetMetric() {
		decisions[labelValue(met, "reason")] = met.GetCounter().GetValue()
	}
	if decisions["ok"] != 4 || decisions["unknown_key"] != 1 || decisions["missing_key"] != 1 {
		t.Errorf("decisions %v", decisions)
	}
	if !slices.ContainsFunc(fams["keygate_store_query_duration_seconds"].GetMetric(), func(met *dtoMetric) bool {
		return labelValue(met, "operation") == "select"
	}) {
		t.Error("no select timed")
	}
}
