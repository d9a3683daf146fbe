package proxy

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/logto"
)

// Metrics holds every Prometheus collector of the service, all prefixed
// logto_proxy_. It is built against a registry passed in (never the global
// one), so that tests and several in-process replicas each get their own, and
// it implements the observer interfaces of the Logto client and the cache, so
// those packages stay free of Prometheus.
type Metrics struct {
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	// httpSeries caches the two series each (route, method, status) writes
	// (httpKey → httpSeries), so that a request does not hash and look up
	// its labels twice.
	httpSeries sync.Map

	cacheRequests   *prometheus.CounterVec
	snapshotGen     *prometheus.GaugeVec
	snapshotEntries *prometheus.GaugeVec
	snapshotAge     *snapshotAges
	rebuildSeconds  *prometheus.HistogramVec
	redisErrors     *prometheus.CounterVec
	lockContended   *prometheus.CounterVec
	treeProblems    *problemCounts

	logtoRequests *prometheus.CounterVec
	logtoDuration *prometheus.HistogramVec
	breakerState  *prometheus.GaugeVec

	webhookEvents *prometheus.CounterVec
	freshness     freshnessMetrics
	readiness     *readinessGauges
}

// latencyBuckets spans the microsecond answers of a cache hit up to the
// seconds of a Logto timeout, so one histogram shows both.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer, now func() time.Time) *Metrics {
	const ns = "logto_proxy"
	m := &Metrics{
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "http_requests_total",
			Help: "HTTP requests answered, by route template, method and status."}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "http_request_duration_seconds",
			Help: "HTTP request latency, by route template and method.", Buckets: latencyBuckets}, []string{"route", "method"}),
		cacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "cache_requests_total",
			Help: "Reads of a cached view, by view and result (hit, miss, stale)."}, []string{"view", "result"}),
		snapshotGen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "snapshot_generation",
			Help: "Generation of the snapshot this replica serves, by view (hierarchy, users)."}, []string{"view"}),
		snapshotEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "snapshot_entries",
			Help: "Entries of the snapshot this replica serves, by view: organizations (hierarchy) or users."}, []string{"view"}),
		snapshotAge: &snapshotAges{now: now, desc: prometheus.NewDesc(ns+"_snapshot_age_seconds",
			"Seconds since the served snapshot was read from Logto, by view.", []string{"view"}, nil), builtAt: map[string]time.Time{}},
		rebuildSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "snapshot_rebuild_duration_seconds",
			Help: "Duration of rebuild attempts, by view and outcome.", Buckets: latencyBuckets}, []string{"view", "outcome"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "redis_errors_total",
			Help: "Failed Redis operations, by operation."}, []string{"op"}),
		lockContended: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "lock_contended_total",
			Help: "Attempts to take a cluster-wide lock another replica held."}, []string{"lock"}),
		treeProblems: &problemCounts{desc: prometheus.NewDesc(ns+"_hierarchy_problems",
			"Bad data repaired by the hierarchy's rules in the served tree, by kind of problem.", []string{"kind"}, nil)},
		logtoRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "logto_requests_total",
			Help: "Calls to Logto, by endpoint group, route template and status (0: no answer)."}, []string{"group", "endpoint", "status"}),
		logtoDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "logto_request_duration_seconds",
			Help: "Latency of calls to Logto, by endpoint group.", Buckets: latencyBuckets}, []string{"group"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "logto_breaker_state",
			Help: "Circuit breaker state per Logto endpoint group: 0 closed, 1 half-open, 2 open."}, []string{"group"}),
		webhookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "webhook_events_total",
			Help: "Logto webhook deliveries, by event and verdict."}, []string{"event", "verdict"}),
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, m.cacheRequests, m.snapshotGen, m.snapshotEntries, m.snapshotAge,
		m.rebuildSeconds, m.redisErrors, m.lockContended, m.treeProblems, m.logtoRequests, m.logtoDuration,
		m.breakerState, m.webhookEvents)
	m.freshness = newFreshnessMetrics(reg, ns)
	m.readiness = &readinessGauges{view: &m.treeProblems.view,
		ready: prometheus.NewDesc(ns+"_ready",
			"1 when this replica has a hierarchy snapshot in memory and answers reads (/readyz 200), 0 while it is still loading.", nil, nil),
		redisUp: prometheus.NewDesc(ns+"_redis_up",
			"1 when this replica's last Redis call succeeded, 0 when it failed (checked every few seconds); at 0 cached reads go on from memory and session requests fail closed.", nil, nil)}
	reg.MustRegister(m.readiness)
	return m
}

// httpKey names the series one request writes.
type httpKey struct {
	route, method string
	status        int
}

// httpSeries are the series of one httpKey.
type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// ObserveHTTP records one answered request. A method outside the standard
// ones is labelled "other": the method is the client's to choose, and each
// new value would be a new series kept forever.
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	k := httpKey{route: route, method: methodLabel(method), status: status}
	v, ok := m.httpSeries.Load(k)
	if !ok {
		v, _ = m.httpSeries.LoadOrStore(k, httpSeries{
			requests: m.httpRequests.WithLabelValues(k.route, k.method, strconv.Itoa(status)),
			duration: m.httpDuration.WithLabelValues(k.route, k.method),
		})
	}
	series := v.(httpSeries)
	series.requests.Inc()
	series.duration.Observe(d.Seconds())
}

// methodLabel is the method label of a request method.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// ObserveWebhook counts one webhook delivery and what was done with it.
func (m *Metrics) ObserveWebhook(event, verdict string) {
	m.webhookEvents.WithLabelValues(event, verdict).Inc()
}

// watchHierarchy makes the hierarchy_problems gauge read the served tree's
// counts at scrape time (there is nothing to keep in sync).
func (m *Metrics) watchHierarchy(v *cache.HierarchyView) { m.treeProblems.view.Store(v) }

// ObserveCall implements logto.Observer.
func (m *Metrics) ObserveCall(group, endpoint string, status int, d time.Duration) {
	m.logtoRequests.WithLabelValues(group, endpoint, strconv.Itoa(status)).Inc()
	m.logtoDuration.WithLabelValues(group).Observe(d.Seconds())
}

// ObserveBreaker implements logto.Observer.
func (m *Metrics) ObserveBreaker(group string, state logto.BreakerState) {
	m.breakerState.WithLabelValues(group).Set(float64(state))
}

// CacheHit implements cache.Observer.
func (m *Metrics) CacheHit(view string) { m.cacheRequests.WithLabelValues(view, "hit").Inc() }

// CacheMiss implements cache.Observer.
func (m *Metrics) CacheMiss(view string) { m.cacheRequests.WithLabelValues(view, "miss").Inc() }

// StaleServed implements cache.Observer.
func (m *Metrics) StaleServed(view string) { m.cacheRequests.WithLabelValues(view, "stale").Inc() }

// SnapshotInstalled implements cache.Observer.
func (m *Metrics) SnapshotInstalled(view string, generation uint64, builtAt time.Time, entries int) {
	m.snapshotGen.WithLabelValues(view).Set(float64(generation))
	m.snapshotEntries.WithLabelValues(view).Set(float64(entries))
	m.snapshotAge.set(view, builtAt)
}

// RebuildFinished implements cache.Observer.
func (m *Metrics) RebuildFinished(view string, d time.Duration, outcome cache.RebuildOutcome) {
	m.rebuildSeconds.WithLabelValues(view, string(outcome)).Observe(d.Seconds())
}

// RedisError implements cache.Observer.
func (m *Metrics) RedisError(op string) { m.redisErrors.WithLabelValues(op).Inc() }

// LockContended implements cache.Observer.
func (m *Metrics) LockContended(lock string) { m.lockContended.WithLabelValues(lock).Inc() }

// snapshotAges is the snapshot_age_seconds gauge: the age is computed when
// Prometheus scrapes, from when each view's served snapshot was read, so it
// keeps growing while no new snapshot arrives (which is what alerts need).
type snapshotAges struct {
	desc    *prometheus.Desc
	now     func() time.Time
	mu      sync.Mutex
	builtAt map[string]time.Time
}

func (a *snapshotAges) set(view string, builtAt time.Time) {
	a.mu.Lock()
	a.builtAt[view] = builtAt
	a.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (a *snapshotAges) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

// Collect implements prometheus.Collector.
func (a *snapshotAges) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for view, built := range a.builtAt {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, now.Sub(built).Seconds(), view)
	}
}

// problemCounts is the hierarchy_problems gauge, read from the served tree
// at scrape time.
type problemCounts struct {
	desc *prometheus.Desc
	view atomic.Pointer[cache.HierarchyView]
}

// Describe implements prometheus.Collector.
func (p *problemCounts) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

// Collect implements prometheus.Collector.
func (p *problemCounts) Collect(ch chan<- prometheus.Metric) {
	v := p.view.Load()
	if v == nil {
		return
	}
	for kind, n := range v.Health().Stats.Problems.All() {
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, float64(n), kind)
	}
}

// Both observer interfaces are satisfied, checked at compile time.
var (
	_ logto.Observer = (*Metrics)(nil)
	_ cache.Observer = (*Metrics)(nil)
)

// freshnessMetrics are the collectors of what keeps the views fresh between
// listings: the webhooks' re-reads and the periodic reconcile.
type freshnessMetrics struct {
	webhookRereads       *prometheus.CounterVec
	reconcileRuns        *prometheus.CounterVec
	reconcileDifferences *prometheus.CounterVec
}

func newFreshnessMetrics(reg prometheus.Registerer, ns string) freshnessMetrics {
	f := freshnessMetrics{
		webhookRereads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "webhook_rereads_total",
			Help: "Records re-read from Logto because a webhook named them, by view and result (applied, retried, dropped)."}, []string{"view", "result"}),
		reconcileRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reconcile_runs_total",
			Help: "Periodic full reconciles, by view and result (reconciled, skipped: another replica had just listed, failed)."}, []string{"view", "result"}),
		reconcileDifferences: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reconcile_differences_total",
			Help: "Records a reconcile found different from the served snapshot (missed webhooks), by view and kind (added, removed, changed)."}, []string{"view", "kind"}),
	}
	reg.MustRegister(f.webhookRereads, f.reconcileRuns, f.reconcileDifferences)
	return f
}

// ObserveWebhookRereads counts n records of a view re-read because of
// webhooks, by what became of them: applied (committed, or found
// unchanged), retried (the read or the commit failed; tried again later) or
// dropped (given up on; the next reconcile repairs them).
func (m *Metrics) ObserveWebhookRereads(view, result string, n int) {
	if n > 0 {
		m.freshness.webhookRereads.WithLabelValues(view, result).Add(float64(n))
	}
}

// ObserveReconcile counts one reconcile of a view and the differences it
// found, which are changes no webhook announced.
func (m *Metrics) ObserveReconcile(view, result string, d cache.Differences) {
	m.freshness.reconcileRuns.WithLabelValues(view, result).Inc()
	for kind, n := range map[string]int{"added": d.Added, "removed": d.Removed, "changed": d.Changed} {
		// Add(0) still creates the series, so that dashboards see 0, not "no data".
		m.freshness.reconcileDifferences.WithLabelValues(view, kind).Add(float64(n))
	}
}

// readinessGauges are the ready and redis_up gauges, read from the served
// hierarchy view at scrape time, so that alerts on a replica that cannot
// serve or cannot reach Redis need neither a scrape of /readyz nor a rate
// of errors that stops growing when nothing calls Redis. The view is the
// one watchHierarchy stores; until then (a Metrics without a server)
// nothing is exported.
type readinessGauges struct {
	view           *atomic.Pointer[cache.HierarchyView]
	ready, redisUp *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (r *readinessGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.ready
	ch <- r.redisUp
}

// Collect implements prometheus.Collector.
func (r *readinessGauges) Collect(ch chan<- prometheus.Metric) {
	v := r.view.Load()
	if v == nil {
		return
	}
	h := v.Health()
	ch <- prometheus.MustNewConstMetric(r.ready, prometheus.GaugeValue, boolGauge(h.Loaded))
	ch <- prometheus.MustNewConstMetric(r.redisUp, prometheus.GaugeValue, boolGauge(h.RedisOK))
}

// boolGauge is a gauge's value for a condition: 1 true, 0 false.
func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
