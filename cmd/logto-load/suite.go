package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// bench is a proxy under load: where it is, who asks, what they may ask
// about, and how to read the counters a scenario reports.
type bench struct {
	base    string
	client  *http.Client
	session string // a distributor's session token ("" when not given)
	service string // a Logto-issued service token ("" when not given)
	vis     visible
	// calls reads the number of calls Logto has received; cpu the proxy's
	// CPU seconds. Either may report !ok.
	calls, cpu probe
	// debugAddr is the proxy's DEBUG_ADDR and profiles the directory its
	// CPU profiles go to (both "" unless -cpuprofile).
	debugAddr, profiles string
	profiled            map[string]bool // scenarios profiled so far
}

// probe reads cumulative counters of the system under test; ok is false
// when they cannot be read.
type probe func(ctx context.Context) (values []float64, ok bool)

// scalar makes a probe of a single counter.
func scalar(read func(ctx context.Context) (float64, bool)) probe {
	return func(ctx context.Context) ([]float64, bool) {
		v, ok := read(ctx)
		return []float64{v}, ok
	}
}

// scenario returns the named scenario, or why it cannot run here.
func (b *bench) scenario(name string) (scenario, error) {
	const listPath = "/api/customers?page=1&page_size=25&sort_by=name"
	pick := func(rng *rand.Rand, items []string) string { return items[rng.IntN(len(items))] }
	needs := func(token, flag string) error {
		if token == "" {
			return fmt.Errorf("needs %s", flag)
		}
		return nil
	}
	switch name {
	case scCeiling:
		return scenario{name: name, route: "/healthz", next: func(*rand.Rand) request { return request{path: "/healthz"} }}, nil
	case scGetCustomer:
		return scenario{name: name, route: "/api/customers/:id", next: func(rng *rand.Rand) request {
			return request{path: "/api/customers/" + url.PathEscape(pick(rng, b.vis.ids)), token: b.session}
		}}, needs(b.session, "-token")
	case scGetService:
		return scenario{name: name, route: "/api/customers/:id", next: func(rng *rand.Rand) request {
			return request{path: "/api/customers/" + url.PathEscape(pick(rng, b.vis.ids)), token: b.service}
		}}, errors.Join(needs(b.session, "-token"), needs(b.service, "-service-token"))
	case scList:
		return scenario{name: name, route: "/api/customers", next: func(*rand.Rand) request {
			return request{path: listPath, token: b.session}
		}}, needs(b.session, "-token")
	case scListFresh:
		// The same list with a parameter the proxy ignores and never sees
		// twice: what a list costs when the proxy's cache of rendered
		// pages cannot answer it.
		return scenario{name: name, route: "/api/customers", next: func(rng *rand.Rand) request {
			return request{path: listPath + "&nonce=" + strconv.FormatUint(rng.Uint64(), 36), token: b.session}
		}}, needs(b.session, "-token")
	case scSearch:
		if b.session != "" && len(b.vis.terms) == 0 {
			return scenario{}, errors.New("no search terms could be derived from the caller's customers")
		}
		return scenario{name: name, route: "/api/organizations", next: func(rng *rand.Rand) request {
			return request{path: "/api/organizations?search=" + url.QueryEscape(pick(rng, b.vis.terms)), token: b.session}
		}}, needs(b.session, "-token")
	}
	return scenario{}, fmt.Errorf("unknown scenario %q", name)
}

// runSuite prepares the bench, runs the scenarios in order and prints the
// report on stdout (progress on stderr).
func runSuite(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	rep := &report{cfg: cfg, machine: describeMachine()}
	progress := func(format string, args ...any) { fmt.Fprintf(stderr, "logto-load: "+format+"\n", args...) }
	self, b, err := prepare(ctx, cfg, rep, progress)
	if self != nil {
		defer self.close(ctx, progress)
	}
	if err != nil {
		return err
	}
	defer quietGC(cfg.gcHeadroom)()
	if b != nil && cfg.settle > 0 {
		b.settle(ctx, cfg, progress)
	}
	for _, name := range cfg.scenarios {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if name == scColdStart {
			if err := coldStartRow(ctx, cfg, self, rep, progress); err != nil {
				return err
			}
			continue
		}
		b.runNamed(ctx, cfg, name, rep, progress)
	}
	if b != nil && len(cfg.scenarios) > 1 && slices.Contains(cfg.scenarios, scCeiling) {
		// Once more at the end: every ratio hangs on the first
		// measurement, and on a shared machine this shows how far the
		// conditions drifted during the run.
		b.runNamed(ctx, cfg, scCeiling, rep, progress)
		rep.rows[len(rep.rows)-1].label = scCeiling + " (again, at the end)"
	}
	rep.print(stdout)
	return nil
}

// quietGC makes this process collect garbage only once its heap has grown
// by headroom (each scenario starts after a collection, see bench.run), and
// returns the function that restores the collector's settings. The load
// generator holds the simulator's tenant (a large heap) and allocates for
// every request it sends; with the default settings it collects every
// couple of seconds, and each collection stalls its connections for
// milliseconds, which the fixed-rate percentiles would blame on the proxy.
func quietGC(headroom int64) (restore func()) {
	if headroom <= 0 {
		return func() {}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	limit := debug.SetMemoryLimit(int64(ms.Sys) + headroom)
	percent := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
}

// settle drives the ceiling, unmeasured, before the first scenario: a
// freshly started proxy still collects the garbage of its first listing,
// which would make the first measurement (the ceiling every ratio hangs on)
// lower than the others.
func (b *bench) settle(ctx context.Context, cfg config, progress func(string, ...any)) {
	sc, err := b.scenario(scCeiling)
	if err != nil {
		return
	}
	progress("settling: %s of unmeasured load", cfg.settle)
	runtime.GC()
	drive(ctx, b.client, b.base, sc, loadSpec{connections: cfg.connections, warmup: cfg.settle, duration: time.Millisecond, seed: cfg.seed}, nil)
}

// prepare reaches the proxy to drive: the -target, or everything started
// here. self is what was started (nil with -target), to be closed even
// when err is set.
func prepare(ctx context.Context, cfg config, rep *report, progress func(string, ...any)) (self *selfStarted, b *bench, err error) {
	if cfg.target != "" {
		rep.setup = append(rep.setup, "proxy: "+cfg.target+" (already running; Logto calls from its /metrics)")
		b, err = targetBench(ctx, cfg)
	} else {
		if self, err = startSelf(ctx, cfg, progress); err == nil && needsMain(cfg.scenarios) {
			b, err = self.mainBench(ctx, cfg, progress)
		}
		if self != nil {
			rep.setup = append(rep.setup, self.describe...)
		}
	}
	if b != nil && b.session != "" {
		rep.setup = append(rep.setup, fmt.Sprintf("the distributor signed in sees %s customers; get-customer picks among %s of them, organizations-search among %d terms",
			thousands(b.vis.total), thousands(len(b.vis.ids)), len(b.vis.terms)))
	}
	return self, b, err
}

// runNamed runs one load scenario into the report (after get-customer,
// again at half its rate when asked to), or notes why it cannot run.
func (b *bench) runNamed(ctx context.Context, cfg config, name string, rep *report, progress func(string, ...any)) {
	sc, err := b.scenario(name)
	if err != nil {
		rep.skipped = append(rep.skipped, name+": "+err.Error())
		return
	}
	spec := loadSpec{connections: cfg.connections, rate: cfg.rate, warmup: cfg.warmup, duration: cfg.duration, seed: cfg.seed}
	r := b.run(ctx, sc, spec)
	progress("%s: %s req/s, p99 %s, %d errors, proxy %s and load generator %s CPU a request", r.label, thousands(int(r.m.rps())),
		fmtLatency(r.m.quantile(0.99)), r.m.errors, fmtCPU(r.m.delta(probeCPU), r.m.requests), fmtCPU(r.m.delta(probeSelfCPU), r.m.requests))
	rep.rows = append(rep.rows, r)
	if name != scGetCustomer || !cfg.halfRate || cfg.rate != 0 || r.m.rps() == 0 {
		return
	}
	spec.rate = r.m.rps() / 2
	r = b.run(ctx, sc, spec)
	r.label = name + " @50%"
	progress("%s: %s req/s, p99 %s, %d errors", r.label, thousands(int(r.m.rps())), fmtLatency(r.m.quantile(0.99)), r.m.errors)
	rep.rows = append(rep.rows, r)
}

// coldStartRow measures the cold start into the report; it needs the tool
// to start proxies itself.
func coldStartRow(ctx context.Context, cfg config, self *selfStarted, rep *report, progress func(string, ...any)) error {
	if self == nil {
		rep.skipped = append(rep.skipped, "cold-start: needs the tool to start the proxy itself (no -target)")
		return nil
	}
	progress("cold-start: %s organizations, %s a Logto call", thousands(shapeFor(cfg.coldOrgs).orgs()), cfg.logtoLatency)
	c, err := self.coldStart(ctx, cfg)
	if err != nil {
		return fmt.Errorf("cold-start: %w", err)
	}
	rep.cold = &c
	return nil
}

// needsMain reports whether any scenario but cold-start is asked for.
func needsMain(names []string) bool {
	for _, n := range names {
		if n != scColdStart {
			return true
		}
	}
	return false
}

// run drives one scenario and reads the bench's counters around its
// measured window.
func (b *bench) run(ctx context.Context, sc scenario, spec loadSpec) row {
	latency := func(ctx context.Context) ([]float64, bool) { return scrapeLatency(ctx, b.client, b.base, sc.route) }
	runtime.GC() // this process's own garbage, collected before the run rather than during it
	profiled := b.profile(ctx, sc.name, spec)
	m := drive(ctx, b.client, b.base, sc, spec, []probe{b.calls, b.cpu, scalar(selfCPU), latency})
	if err := profiled(); err != nil {
		fmt.Fprintf(os.Stderr, "logto-load: %s: CPU profile: %v\n", sc.name, err)
	}
	return row{label: sc.name, spec: spec, m: m}
}

// profile takes a CPU profile of the proxy over the measured window of a
// run about to start (after spec's warm-up, for the whole seconds of its
// duration) into <profiles>/<scenario>.pprof, the first time a scenario
// runs; wait returns once it is written. Without -cpuprofile it does
// nothing.
func (b *bench) profile(ctx context.Context, scenario string, spec loadSpec) (wait func() error) {
	path := filepath.Join(b.profiles, scenario+".pprof")
	if b.debugAddr == "" {
		return func() error { return nil }
	}
	if b.profiled[scenario] {
		return func() error { return nil } // a rerun (half rate, the ceiling at the end): the first run's profile stays
	}
	if b.profiled == nil {
		b.profiled = map[string]bool{}
	}
	b.profiled[scenario] = true
	done := make(chan error, 1)
	go func() {
		select {
		case <-time.After(spec.warmup):
		case <-ctx.Done():
			done <- ctx.Err()
			return
		}
		seconds := max(1, int(spec.duration/time.Second))
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.debugAddr, seconds)
		done <- fetchTo(ctx, url, path, time.Duration(seconds)*time.Second+30*time.Second)
	}()
	return func() error { return <-done }
}

// targetBench is the bench of a proxy that already runs (-target).
func targetBench(ctx context.Context, cfg config) (*bench, error) {
	base := strings.TrimRight(cfg.target, "/")
	b := &bench{base: base, client: newClient(cfg.connections, cfg.gzip), session: cfg.token, service: cfg.serviceToken,
		cpu: func(context.Context) ([]float64, bool) { return nil, false }}
	b.calls = scalar(func(ctx context.Context) (float64, bool) { return scrapeLogtoCalls(ctx, b.client, base) })
	if _, ok := b.calls(ctx); !ok {
		return nil, fmt.Errorf("%s/metrics: no logto_proxy_logto_requests_total; is -target a logto-proxy?", base)
	}
	if b.session != "" {
		var err error
		if b.vis, err = discover(ctx, b.client, base, b.session); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// scrapeLogtoCalls reads the total of logto_proxy_logto_requests_total from
// the proxy's /metrics.
func scrapeLogtoCalls(ctx context.Context, client *http.Client, base string) (float64, bool) {
	f, ok := scrapeFamily(ctx, client, base, "logto_proxy_logto_requests_total")
	if !ok {
		return 0, false
	}
	var n float64
	for _, m := range f.GetMetric() {
		n += m.GetCounter().GetValue()
	}
	return n, true
}

// scrapeLatency reads the proxy's own latency histogram of GET route
// (logto_proxy_http_request_duration_seconds): the cumulative count of each
// bucket, in the order of latencyBounds, then the total count.
func scrapeLatency(ctx context.Context, client *http.Client, base, route string) ([]float64, bool) {
	f, ok := scrapeFamily(ctx, client, base, "logto_proxy_http_request_duration_seconds")
	if !ok {
		return nil, false
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["route"] != route || labels["method"] != http.MethodGet {
			continue
		}
		h := m.GetHistogram()
		out := make([]float64, 0, len(latencyBounds)+1)
		for _, bucket := range h.GetBucket() {
			if math.IsInf(bucket.GetUpperBound(), +1) {
				continue // the total, added below
			}
			if len(out) == len(latencyBounds) || bucket.GetUpperBound() != latencyBounds[len(out)] {
				return nil, false // buckets this tool does not know
			}
			out = append(out, float64(bucket.GetCumulativeCount()))
		}
		if len(out) != len(latencyBounds) {
			return nil, false
		}
		return append(out, float64(h.GetSampleCount())), true
	}
	// No request of that route yet: every count is zero.
	return make([]float64, len(latencyBounds)+1), true
}

// latencyBounds are the upper bounds (seconds) of the proxy's latency
// histogram buckets (proxy.latencyBuckets).
var latencyBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// scrapeFamily reads one metric family from the proxy's /metrics.
func scrapeFamily(ctx context.Context, client *http.Client, base, name string) (*dto.MetricFamily, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, false
	}
	f, ok := families[name]
	return f, ok
}

// selfStarted is what the tool started: Redis, the main tree's simulator and
// its proxy, and what the cold start needs to start another.
type selfStarted struct {
	dir       string
	keep      bool
	bin       string
	redis     *redisEnv
	jwtSecret string
	main      *tree
	proxy     *proxyProcess
	describe  []string
	debugAddr string // the main proxy's DEBUG_ADDR, with -cpuprofile
}

// startSelf builds the proxy (unless -proxy-bin) and starts Redis.
func startSelf(ctx context.Context, cfg config, progress func(string, ...any)) (*selfStarted, error) {
	dir, err := os.MkdirTemp("", "logto-load-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	s := &selfStarted{dir: dir, keep: cfg.keepArtifacts, bin: cfg.proxyBin, jwtSecret: randomHex(32)}
	if s.bin == "" {
		progress("building cmd/logto-proxy")
		if s.bin, err = buildProxy(ctx, dir); err != nil {
			return s, err
		}
	}
	if s.redis, err = startRedis(os.Getenv); err != nil {
		return s, err
	}
	runtimeSettings := "Go runtime defaults"
	if env := proxyRuntimeEnv(os.Getenv); len(env) > 0 {
		runtimeSettings = strings.Join(env, " ")
	}
	s.describe = append(s.describe,
		fmt.Sprintf("proxy: the logto-proxy binary as a subprocess (%s), SNAPSHOT_SOFT_TTL=%s; %s, a fresh key prefix per proxy", runtimeSettings, cfg.softTTL, s.redis.describe()),
		fmt.Sprintf("Logto: the simulator in this process, %s per Management API call", cfg.logtoLatency))
	return s, nil
}

// mainBench seeds the main tree, starts its proxy, waits until it has
// loaded both views, and signs the callers in.
func (s *selfStarted) mainBench(ctx context.Context, cfg config, progress func(string, ...any)) (*bench, error) {
	shape := treeShape{distributors: cfg.distributors, resellers: cfg.resellers, customers: cfg.customers}
	progress("seeding the simulator with %s organizations", thousands(shape.orgs()))
	t, err := startTree(shape, cfg.seed, cfg.logtoLatency)
	if err != nil {
		return nil, err
	}
	s.main = t
	distributor, err := t.distributor()
	if err != nil {
		return nil, err
	}
	userID, err := t.addDistributorUser(distributor)
	if err != nil {
		return nil, fmt.Errorf("distributor user: %w", err)
	}
	progress("starting the proxy; it lists the tree from the simulator")
	env := proxyEnv(t, s.redis.url, s.redis.newPrefix(), s.jwtSecret, cfg.softTTL)
	if cfg.cpuProfiles != "" {
		if err := os.MkdirAll(cfg.cpuProfiles, 0o755); err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		if s.debugAddr, err = freeAddr(); err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		env = append(env, "DEBUG_ADDR="+s.debugAddr)
	}
	if s.proxy, err = startProxy(ctx, s.bin, env, s.dir+"/proxy.log"); err != nil {
		return nil, err
	}
	b := &bench{base: s.proxy.base(), client: newClient(cfg.connections, cfg.gzip), debugAddr: s.debugAddr, profiles: cfg.cpuProfiles,
		calls: scalar(func(context.Context) (float64, bool) { return float64(t.calls()), true }),
		cpu: scalar(func(context.Context) (float64, bool) {
			d, ok := s.proxy.cpu()
			return d.Seconds(), ok
		})}
	if err := waitLoaded(ctx, b.client, b.base); err != nil {
		return nil, err
	}
	if b.session, err = exchange(ctx, b.client, b.base, t, userID); err != nil {
		return nil, err
	}
	if b.service, err = serviceToken(ctx, b.client, t); err != nil {
		return nil, err
	}
	if b.vis, err = discover(ctx, b.client, b.base, b.session); err != nil {
		return nil, err
	}
	s.describe = append(s.describe, fmt.Sprintf("tree: %s organizations (%d distributors × %d resellers × %d customers)",
		thousands(t.sim.OrganizationCount()), shape.distributors, shape.resellers, shape.customers))
	return b, nil
}

// waitLoaded polls /readyz until the proxy serves both views (the users
// view loads after the hierarchy), so that no start-up call to Logto lands
// in a measurement.
func waitLoaded(ctx context.Context, client *http.Client, base string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		status, body := get(ctx, client, base+"/readyz")
		if status == http.StatusOK && strings.Contains(body, `"users":{`) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proxy not loaded after 3 minutes: /readyz %d %s", status, body)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// get is a plain GET returning the status and (at most 64 KiB of) the body;
// status 0 when there was no answer.
func get(ctx context.Context, client *http.Client, u string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, ""
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body)
}

// coldResult is what the cold start measured.
type coldResult struct {
	orgs        int
	latency     time.Duration
	firstAnswer time.Duration
	callsFirst  int64 // Logto calls until the first answer
	callsAll    int64 // Logto calls once both views were loaded
	pages       int64 // organization list pages requested in all
	perListing  int64 // pages one listing of the tree takes
}

// coldStart starts a fresh proxy process on an empty key prefix against a
// new simulator, asks for a customer as soon as it listens, and reports
// when the first answer came (counted from the process start) and how many
// times the organizations were listed.
func (s *selfStarted) coldStart(ctx context.Context, cfg config) (coldResult, error) {
	t, err := startTree(shapeFor(cfg.coldOrgs), cfg.seed+1, cfg.logtoLatency)
	if err != nil {
		return coldResult{}, err
	}
	defer t.close()
	client := newClient(4, false)
	token, err := serviceToken(ctx, client, t) // the token endpoint has no added latency
	if err != nil {
		return coldResult{}, err
	}
	id, err := t.customer()
	if err != nil {
		return coldResult{}, err
	}
	t.sim.ResetCalls()
	env := proxyEnv(t, s.redis.url, s.redis.newPrefix(), s.jwtSecret, cfg.softTTL)
	begin := time.Now()
	p, err := startProxy(ctx, s.bin, env, s.dir+"/cold-proxy.log")
	if err != nil {
		return coldResult{}, err
	}
	defer p.stop()
	r := coldResult{orgs: t.sim.OrganizationCount(), latency: cfg.logtoLatency}
	for {
		err := roundTrip(ctx, client, p.base(), request{path: "/api/customers/" + url.PathEscape(id), token: token})
		if err == nil {
			break
		}
		if time.Since(begin) > time.Minute || ctx.Err() != nil {
			return r, fmt.Errorf("no answer within a minute: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
	r.firstAnswer = time.Since(begin)
	r.callsFirst = t.calls()
	if err := waitLoaded(ctx, client, p.base()); err != nil {
		return r, err
	}
	r.callsAll = t.calls()
	r.pages = t.sim.Calls("GET /api/organizations")
	r.perListing = int64((r.orgs + 99) / 100)
	return r, nil
}

// close stops what startSelf and mainBench started.
func (s *selfStarted) close(ctx context.Context, progress func(string, ...any)) {
	if s.proxy != nil {
		s.proxy.stop()
	}
	if s.main != nil {
		s.main.close()
	}
	if s.redis != nil {
		if err := s.redis.close(ctx); err != nil {
			progress("%v", err)
		}
	}
	if s.keep {
		progress("binary and logs kept in %s", s.dir)
		return
	}
	_ = os.RemoveAll(s.dir)
}
