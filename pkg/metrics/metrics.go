// Package metrics holds keygate's instruments: OpenTelemetry instruments
// read by the OpenTelemetry Prometheus exporter into a registry of their
// own, which the admin listener serves on /metrics beside the Go runtime
// and process collectors.
//
// Every attribute set is built once at start (one per reason, one per
// reload file and result, one per store operation), so label cardinality
// is fixed and recording allocates nothing.
//
// The Check hot path does not call the OpenTelemetry SDK: there a
// synchronous Add with two attributes plus a histogram Record cost about
// 200 ns, a quarter of a whole Check. ObserveCheck adds to striped atomic
// counters instead (a few ns), which the SDK reads at scrape time: the
// decisions through an observable counter, the latency histogram through
// a metric Producer (OpenTelemetry Go has no asynchronous histogram).
// What other parts already count (the cache's hits and misses, the loaded
// keys) is read the same way. Rare events (reloads, store statements,
// change-feed lag) use ordinary synchronous instruments.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/cache"
	"github.com/keygate/keygate/pkg/extauthz"
)

// ScopeName is the instrumentation scope of keygate's instruments.
const ScopeName = "github.com/keygate/keygate"

// Instrument names. The Prometheus exporter turns dots into underscores and
// adds the unit ("s" → _seconds) and, for counters, _total: the names on
// /metrics are in the comments.
const (
	nameDecisions      = "keygate.decisions"                // keygate_decisions_total{result,reason}
	nameCheckDuration  = "keygate.check.duration"           // keygate_check_duration_seconds
	nameKeysLoaded     = "keygate.keys.loaded"              // keygate_keys_loaded
	nameReloads        = "keygate.config.reloads"           // keygate_config_reloads_total{file,result}
	nameBuildInfo      = "keygate.build.info"               // keygate_build_info{version}
	nameCacheHits      = "keygate.cache.hits"               // keygate_cache_hits_total
	nameCacheMisses    = "keygate.cache.misses"             // keygate_cache_misses_total
	nameCacheNegHits   = "keygate.cache.negative_hits"      // keygate_cache_negative_hits_total
	nameCacheRejects   = "keygate.cache.rejects"            // keygate_cache_rejects_total
	nameFeedConnected  = "keygate.change_feed.connected"    // keygate_change_feed_connected
	nameFeedApplied    = "keygate.change_feed.applied"      // keygate_change_feed_applied_total
	nameFeedErrors     = "keygate.change_feed.errors"       // keygate_change_feed_errors_total
	nameFeedLag        = "keygate.feed.lag"                 // keygate_feed_lag_seconds
	nameFeedBacklog    = "keygate.feed.backlog"             // keygate_feed_backlog
	nameStoreDuration  = "keygate.store.query.duration"     // keygate_store_query_duration_seconds{operation}
	nameStoreErrors    = "keygate.store.errors"             // keygate_store_errors_total{operation}
	namePropagationLag = "keygate.propagation.lag"          // keygate_propagation_lag_seconds
	nameHeadersDropped = "keygate.response_headers.dropped" // keygate_response_headers_dropped_total
	nameWeakSecrets    = "keygate.keys.weak_secrets"        // keygate_keys_weak_secrets_total
)

// Instrument names of the cache's memory (SPEC §10).
const (
	nameCacheCost = "keygate.cache.cost" // keygate_cache_cost_bytes
	// The gRPC path's kept allows (pkg/extauthz/allowslabs.go).
	nameKeptAllowBytes    = "keygate.kept_allow.size"     // keygate_kept_allow_size_bytes
	nameKeptAllowMaxBytes = "keygate.kept_allow.max_size" // keygate_kept_allow_max_size_bytes
	nameKeptAllows        = "keygate.kept_allow.encoded"  // keygate_kept_allow_encoded_total
	nameKeptAllowRetired  = "keygate.kept_allow.retired"  // keygate_kept_allow_retired_total
	nameCacheMaxBytes     = "keygate.cache.max"           // keygate_cache_max_bytes
	nameKeysUnloadable    = "keygate.keys.unloadable"     // keygate_keys_unloadable
)

const checkDurationHelp = "Time to decide one Check, from request in to response out."

// Bucket boundaries, in seconds. checkBounds are the ones keygate has
// always exported; checkBoundsNs are the same in nanoseconds.
var (
	checkBounds   = [...]float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1}
	checkBoundsNs = func() (ns [len(checkBounds)]int64) {
		for i, b := range checkBounds {
			ns[i] = int64(b * 1e9)
		}
		return ns
	}()
	storeBuckets = []float64{250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1, 5}
	lagBuckets   = []float64{1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10, 30, 60}
)

// maxReasons bounds len(authz.Reasons()); build checks it.
const maxReasons = 32

// checkStripes spread the Check counters over cache lines, one picked at
// random per Check, so that cores do not all write the same line.
const checkStripes = 8

type checkStripe struct {
	decisions [maxReasons]atomic.Uint64 // by authz.Reason
	buckets   [len(checkBounds) + 1]atomic.Uint64
	sumNs     atomic.Int64
	_         [64]byte
}

// StoreOp is a store operation: the bounded values of the operation
// attribute of the store instruments (a statement's first keyword).
type StoreOp uint8

// Store operations.
const (
	OpOther StoreOp = iota
	OpSelect
	OpInsert
	OpUpdate
	OpDelete
	OpBegin
	OpCommit
	OpRollback
	OpListen
	numStoreOps
)

var storeOpNames = [numStoreOps]string{"other", "select", "insert", "update", "delete", "begin", "commit", "rollback", "listen"}

// String is the operation's attribute value.
func (o StoreOp) String() string {
	if o < numStoreOps {
		return storeOpNames[o]
	}
	return "other"
}

// Metrics is the set of instruments. Registry is what /metrics serves.
type Metrics struct {
	Registry *prometheus.Registry
	// Provider is the meter provider behind the instruments; it needs no
	// shutdown (the exporter is read on scrape).
	Provider *sdkmetric.MeterProvider

	meter metric.Meter
	start time.Time

	checks     [checkStripes]checkStripe
	reasons    int
	decisionBy [][]metric.ObserveOption // by authz.Reason

	reloads  metric.Int64Counter
	reloadBy map[reloadKey][]metric.AddOption

	storeDur  metric.Float64Histogram
	storeErrs metric.Int64Counter
	storeAdd  [numStoreOps][]metric.AddOption
	storeRec  [numStoreOps][]metric.RecordOption

	lag metric.Float64Histogram

	headersDropped metric.Int64Counter
	weakSecrets    metric.Int64Counter

	keysLoaded atomic.Pointer[func() float64]
	cacheOnce  sync.Once
	allowsOnce sync.Once
	usageOnce  sync.Once
}

type reloadKey struct {
	file string
	ok   bool
}

// New creates the instruments in a registry of their own. keysLoaded, when
// non-nil, is read at scrape time (or set later with KeysLoaded).
func New(version string, keysLoaded func() float64) *Metrics {
	m, err := build(version)
	if err != nil {
		// Only a programming error (a bad instrument or a collector
		// registered twice) gets here, and every test that calls New
		// would fail on it: like prometheus.MustRegister before.
		panic(fmt.Sprintf("metrics: %v", err))
	}
	if keysLoaded != nil {
		m.KeysLoaded(keysLoaded)
	}
	return m
}

func build(version string) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	prod := new(checkProducer)
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
		otelprom.WithProducer(prod),
	)
	if err != nil {
		return nil, err
	}
	noMinMax := func(name string, bounds []float64) sdkmetric.View {
		return sdkmetric.NewView(sdkmetric.Instrument{Name: name}, sdkmetric.Stream{
			Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: bounds, NoMinMax: true}})
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(exp),
		sdkmetric.WithResource(resource.Empty()),
		// Exemplars would cost a context lookup per measurement, and the
		// Prometheus text format /metrics serves drops them anyway.
		sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter),
		// Prometheus shows no min/max: don't keep them.
		sdkmetric.WithView(noMinMax(nameStoreDuration, storeBuckets), noMinMax(namePropagationLag, lagBuckets)),
	)
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}

	m := &Metrics{Registry: reg, Provider: mp, start: time.Now(),
		meter: mp.Meter(ScopeName, metric.WithInstrumentationVersion(version))}
	prod.m.Store(m)
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	reasons := authz.Reasons()
	if len(reasons) > maxReasons {
		return nil, fmt.Errorf("%d reasons, more than the %d the counters hold", len(reasons), maxReasons)
	}
	m.reasons = len(reasons)
	for _, r := range reasons {
		result := "deny"
		if r == authz.OK {
			result = "allow"
		}
		set := attribute.NewSet(attribute.String("result", result), attribute.String("reason", r.String()))
		m.decisionBy = append(m.decisionBy, []metric.ObserveOption{metric.WithAttributeSet(set)})
	}
	_, err = m.meter.Int64ObservableCounter(nameDecisions,
		metric.WithDescription("Check decisions by result (allow|deny) and reason code."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for r := range m.reasons {
				var n uint64
				for i := range m.checks {
					n += m.checks[i].decisions[r].Load()
				}
				o.Observe(int64(n), m.decisionBy[r]...)
			}
			return nil
		}))
	check(err)

	m.reloads, err = m.meter.Int64Counter(nameReloads,
		metric.WithDescription("Reloads of the keys and routes files by file and result (ok|error)."))
	check(err)
	m.reloadBy = make(map[reloadKey][]metric.AddOption)
	for _, file := range []string{"keys", "routes"} {
		for _, ok := range []bool{true, false} {
			m.reloadBy[reloadKey{file, ok}] = reloadOpts(file, ok)
		}
	}

	_, err = m.meter.Int64ObservableGauge(nameKeysLoaded,
		metric.WithDescription("Keys currently loaded and able to decide."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if f := m.keysLoaded.Load(); f != nil {
				o.Observe(int64((*f)()))
			}
			return nil
		}))
	check(err)

	buildSet := metric.WithAttributeSet(attribute.NewSet(attribute.String("version", version)))
	_, err = m.meter.Int64ObservableGauge(nameBuildInfo,
		metric.WithDescription("Always 1; the version label tells which keygate runs."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, buildSet)
			return nil
		}))
	check(err)

	m.storeDur, err = m.meter.Float64Histogram(nameStoreDuration, metric.WithUnit("s"),
		metric.WithDescription("PostgreSQL statement latency by operation (the statement's first keyword)."),
		metric.WithExplicitBucketBoundaries(storeBuckets...))
	check(err)
	m.storeErrs, err = m.meter.Int64Counter(nameStoreErrors,
		metric.WithDescription("PostgreSQL statements that failed, by operation."))
	check(err)
	for op := range numStoreOps {
		set := attribute.NewSet(attribute.String("operation", op.String()))
		m.storeAdd[op] = []metric.AddOption{metric.WithAttributeSet(set)}
		m.storeRec[op] = []metric.RecordOption{metric.WithAttributeSet(set)}
	}

	m.lag, err = m.meter.Float64Histogram(namePropagationLag, metric.WithUnit("s"),
		metric.WithDescription("Time from a key change's notification (NOTIFY received) to this replica's cache having applied it."),
		metric.WithExplicitBucketBoundaries(lagBuckets...))
	check(err)

	m.headersDropped, err = m.meter.Int64Counter(nameHeadersDropped,
		metric.WithDescription("Response headers of stored keys dropped at load because they break the response header rules; each key record counts once per load, never per request."))
	check(err)

	m.weakSecrets, err = m.meter.Int64Counter(nameWeakSecrets,
		metric.WithDescription("Key records that answered to a custom secret the import rules now refuse (under 24 bytes or 10 distinct characters; imported before the rules): they keep working, and should be regenerated. Counted once per record, when first used."))
	check(err)
	m.weakSecrets.Add(context.Background(), 0)

	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

func reloadOpts(file string, ok bool) []metric.AddOption {
	result := "ok"
	if !ok {
		result = "error"
	}
	set := attribute.NewSet(attribute.String("file", file), attribute.String("result", result))
	return []metric.AddOption{metric.WithAttributeSet(set)}
}

// KeysLoaded sets the function the keys-loaded gauge reads at scrape time.
func (m *Metrics) KeysLoaded(f func() float64) {
	m.keysLoaded.Store(&f)
}

// ObserveCheck records one decision; it satisfies extauthz.Observer. It
// neither allocates nor locks: three atomic adds on a random stripe.
func (m *Metrics) ObserveCheck(_ context.Context, d *authz.Decision, elapsed time.Duration) {
	st := &m.checks[rand.Uint32()%checkStripes]
	if int(d.Reason) < m.reasons {
		st.decisions[d.Reason].Add(1)
	}
	ns := int64(elapsed)
	i := 0
	for i < len(checkBoundsNs) && ns > checkBoundsNs[i] {
		i++
	}
	st.buckets[i].Add(1)
	st.sumNs.Add(ns)
}

// checkProducer hands the Check latency histogram to the exporter at
// scrape time.
type checkProducer struct{ m atomic.Pointer[Metrics] }

// Produce implements sdkmetric.Producer.
func (p *checkProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	m := p.m.Load()
	if m == nil {
		return nil, nil
	}
	pt := metricdata.HistogramDataPoint[float64]{
		StartTime:    m.start,
		Time:         time.Now(),
		Bounds:       checkBounds[:],
		BucketCounts: make([]uint64, len(checkBounds)+1),
	}
	var sumNs int64
	for i := range m.checks {
		st := &m.checks[i]
		for b := range st.buckets {
			n := st.buckets[b].Load()
			pt.BucketCounts[b] += n
			pt.Count += n
		}
		sumNs += st.sumNs.Load()
	}
	pt.Sum = float64(sumNs) / 1e9
	return []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: ScopeName},
		Metrics: []metricdata.Metrics{{
			Name:        nameCheckDuration,
			Description: checkDurationHelp,
			Unit:        "s",
			Data: metricdata.Histogram[float64]{
				Temporality: metricdata.CumulativeTemporality,
				DataPoints:  []metricdata.HistogramDataPoint[float64]{pt},
			},
		}},
	}}, nil
}

// ObserveReload records a reload of file ("keys" or "routes").
func (m *Metrics) ObserveReload(file string, err error) {
	opts, ok := m.reloadBy[reloadKey{file, err == nil}]
	if !ok {
		opts = reloadOpts(file, err == nil) // rare: a file we did not expect
	}
	m.reloads.Add(context.Background(), 1, opts...)
}

// ObserveStoreQuery records one database statement (the pgx tracer calls
// it). It does not allocate.
func (m *Metrics) ObserveStoreQuery(ctx context.Context, op StoreOp, elapsed time.Duration, failed bool) {
	if op >= numStoreOps {
		op = OpOther
	}
	m.storeDur.Record(ctx, elapsed.Seconds(), m.storeRec[op]...)
	if failed {
		m.storeErrs.Add(ctx, 1, m.storeAdd[op]...)
	}
}

// ObservePropagationLag records how long a key change took to reach this
// replica's cache.
func (m *Metrics) ObservePropagationLag(lag time.Duration) {
	m.lag.Record(context.Background(), max(lag, 0).Seconds())
}

// ObserveDroppedResponseHeaders counts the response headers one stored key
// record lost at load (postgres.HeaderObserver).
func (m *Metrics) ObserveDroppedResponseHeaders(n int) {
	if n > 0 {
		m.headersDropped.Add(context.Background(), int64(n))
	}
}

// ObserveWeakSecret counts a key record that answered to a weak custom
// secret (authz.Engine.WeakSecrets).
func (m *Metrics) ObserveWeakSecret() {
	m.weakSecrets.Add(context.Background(), 1)
}

// ObserveCache exports the cache's counters, read at scrape time: hits,
// misses, negative hits, rejects (digests not in the key set, answered
// without a store call) and the change feed's state. Call it once; later
// calls are ignored.
func (m *Metrics) ObserveCache(stats func() cache.Stats) {
	m.cacheOnce.Do(func() {
		if err := errors.Join(m.observeCache(stats), m.observeCacheMemory(stats)); err != nil {
			panic(fmt.Sprintf("metrics: %v", err)) // a programming error, as in New
		}
	})
}

func (m *Metrics) observeCache(stats func() cache.Stats) error {
	var errs []error
	counter := func(name, desc string) metric.Int64ObservableCounter {
		c, err := m.meter.Int64ObservableCounter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	hits := counter(nameCacheHits, "Key lookups answered from a cached record.")
	misses := counter(nameCacheMisses, "Key lookups that went to the store (a shared load counts once per caller).")
	neg := counter(nameCacheNegHits, "Key lookups answered not found by a cached negative entry.")
	rejects := counter(nameCacheRejects, "Key lookups answered not found because the digest is not in the key set (no store call).")
	applied := counter(nameFeedApplied, "Change-feed entries applied to the cache.")
	feedErrs := counter(nameFeedErrors, "Failed change-feed catch-up attempts (each retried).")
	connected, err := m.meter.Int64ObservableGauge(nameFeedConnected,
		metric.WithDescription("1 while the change-feed listener is connected, else 0."))
	lag, lagErr := m.meter.Float64ObservableGauge(nameFeedLag, metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest committed change-feed entry this replica has not applied; 0 when caught up."))
	backlog, backlogErr := m.meter.Int64ObservableGauge(nameFeedBacklog,
		metric.WithDescription("Change-feed entries committed but not yet applied by this replica."))
	if err := errors.Join(append(errs, err, lagErr, backlogErr)...); err != nil {
		return err
	}
	_, err = m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(hits, int64(s.Hits))
		o.ObserveInt64(misses, int64(s.Misses))
		o.ObserveInt64(neg, int64(s.NegativeHits))
		o.ObserveInt64(rejects, int64(s.NotInSet))
		o.ObserveInt64(applied, int64(s.ChangesApplied))
		o.ObserveInt64(feedErrs, int64(s.CatchUpErrors))
		var up int64
		if s.FeedConnected {
			up = 1
		}
		o.ObserveInt64(connected, up)
		o.ObserveFloat64(lag, s.FeedLag.Seconds())
		o.ObserveInt64(backlog, s.FeedBacklog)
		return nil
	}, hits, misses, neg, rejects, applied, feedErrs, connected, lag, backlog)
	return err
}

// ObserveKeptAllows exports what the authz server's kept allows hold,
// read at scrape time from stats. Only the first call registers.
func (m *Metrics) ObserveKeptAllows(stats func() extauthz.KeptAllowStats) {
	m.allowsOnce.Do(func() {
		if err := m.observeKeptAllows(stats); err != nil {
			panic(fmt.Sprintf("metrics: %v", err)) // a programming error, as in New
		}
	})
}

func (m *Metrics) observeKeptAllows(stats func() extauthz.KeptAllowStats) error {
	size, err1 := m.meter.Int64ObservableGauge(nameKeptAllowBytes, metric.WithUnit("By"),
		metric.WithDescription("Memory of the slabs holding keys' allows in their wire form, ready to send."))
	maxSize, err2 := m.meter.Int64ObservableGauge(nameKeptAllowMaxBytes, metric.WithUnit("By"),
		metric.WithDescription("The bound on the kept allows' slabs; past it the oldest slab's keys encode their allow again."))
	kept, err3 := m.meter.Int64ObservableCounter(nameKeptAllows,
		metric.WithDescription("Allows encoded and kept: a key's first, a new operation's, and again for a key whose slab left the bound; growing with the requests when the bound is too small for the keys in use."))
	retired, err4 := m.meter.Int64ObservableCounter(nameKeptAllowRetired,
		metric.WithDescription("Kept-allow slabs that left the bound (their keys encode their allow again)."))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	_, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(size, s.Bytes)
		o.ObserveInt64(maxSize, s.Budget)
		o.ObserveInt64(kept, int64(s.Kept))
		o.ObserveInt64(retired, int64(s.Retired))
		return nil
	}, size, maxSize, kept, retired)
	return err
}

// observeCacheMemory exports what the cache's records cost against their
// bound, and the stored keys that cannot be loaded.
func (m *Metrics) observeCacheMemory(stats func() cache.Stats) error {
	cost, err1 := m.meter.Int64ObservableGauge(nameCacheCost, metric.WithUnit("By"),
		metric.WithDescription("What the cached key records cost against --cache-max-bytes: their approximate size in memory, at least max-bytes/max-keys each."))
	maxBytes, err2 := m.meter.Int64ObservableGauge(nameCacheMaxBytes, metric.WithUnit("By"),
		metric.WithDescription("The bound on the cached key records' cost (--cache-max-bytes)."))
	unloadable, err3 := m.meter.Int64ObservableGauge(nameKeysUnloadable,
		metric.WithDescription("Stored keys that cannot be loaded (fields that do not compile): requests with them are denied store_unavailable; /readyz names them."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	_, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(cost, s.CostBytes)
		o.ObserveInt64(maxBytes, s.MaxBytes)
		o.ObserveInt64(unloadable, int64(s.KeysUnloadable))
		return nil
	}, cost, maxBytes, unloadable)
	return err
}
