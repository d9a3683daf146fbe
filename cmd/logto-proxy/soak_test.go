//go:build soak

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// The soak test: mixed traffic at a steady rate, for a fixed time, against
// two replicas sharing Redis, while the Logto simulator cycles through its
// faults and its data keeps changing. It is off by default (build tag soak)
// because it runs for minutes; the README gives the command:
//
//	go test -tags soak -run TestSoak -v ./cmd/logto-proxy/                          # 2 minutes, 200 requests/s
//	SOAK_DURATION=10m SOAK_RATE=400 go test -tags soak -run TestSoak -v -timeout 20m ./cmd/logto-proxy/
//
// and .ci/run runs a short variant (SOAK_DURATION=30s). It asserts that no
// answer read from the cache is ever a 5xx (logins may be refused with 503
// while Logto is down: they need Logto) and that the heap in use and the
// goroutine count are as flat in the last of six intervals as in the first,
// within a tolerance; it logs the figures per interval. SOAK_HEAPPROFILE=
// <prefix> also writes heap profiles after the first interval and at the
// end, to read any growth with `go tool pprof -base`.

// How much the last interval may exceed the first: the heap a tenth (the
// snapshots' churn moves it by a few percent), the goroutines a quarter
// (they follow the requests in flight when a sample is taken), each plus a
// floor that absorbs the noise of a small process.
const (
	soakHeapGrowth      = 1.10
	soakHeapFloor       = 4 << 20
	soakGoroutineGrowth = 1.25
	soakGoroutineFloor  = 25
)

// soakFaultPhase is how long each fault lasts, and each healthy spell
// between two faults.
const soakFaultPhase = 4 * time.Second

func TestSoak(t *testing.T) {
	duration := soakEnv(t, "SOAK_DURATION", 2*time.Minute, time.ParseDuration)
	rate := soakEnv(t, "SOAK_RATE", 200, strconv.Atoi)
	intervals := 6
	interval := duration / time.Duration(intervals)
	// The traffic runs a warm-up first (connection pools, lazily built
	// sort orders, token caches fill), which the intervals do not count.
	warmup := min(10*time.Second, interval)

	front := newLogtoFront(t, logtotest.Options{}, logtotest.BulkOptions{Distributors: 20, ResellersPerDistributor: 5,
		CustomersPerReseller: 10, UsersPerOrganization: 1, SuspendedRatio: 0.05, DeletedRatio: 0.02, Seed: 11})
	redisURL, prefix := testRedisURL(t)
	// Faults last longer than the hard TTL, so that stale answers are
	// served and the breakers open and close again and again.
	cfg := faultConfig(t, front, redisURL, prefix, "SNAPSHOT_SOFT_TTL", "1s", "SNAPSHOT_HARD_TTL", "2s", "LOGTO_TIMEOUT", "1s")
	replicas := []*client{}
	for range 2 {
		a := startReplica(t, cfg) // logs discarded: a buffer of them would be the leak
		c := newClient(t, a)
		eventually(t, "a replica is ready", func() bool { s, _ := c.ready(t); return s == http.StatusOK })
		replicas = append(replicas, c)
	}
	mix := newSoakMix(t, cfg, front)

	var (
		mu       sync.Mutex
		counts   = map[string]int{}
		failures []string
		inFlight sync.WaitGroup
		dropped  atomic.Int64
		slots    = make(chan struct{}, 64)
	)
	record := func(class string, r answer) {
		mu.Lock()
		defer mu.Unlock()
		counts[strings.TrimSpace(fmt.Sprintf("%s %d %s", class, r.status, r.header.Get("X-Cache")))]++
		if r.err != nil || (r.status >= 500 && class != "login") {
			failures = append(failures, fmt.Sprintf("%s: %v %d %.200s", class, r.err, r.status, r.body))
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopFaults := soakFaults(ctx, front, soakFaultPhase)
	defer stopFaults()

	// Open-loop traffic: one request every 1/rate seconds whatever the
	// answers do; a request finding all 64 slots busy is dropped and
	// counted (the client, not the proxy, is then the bottleneck).
	start := time.Now()
	samples := sampleEvery(ctx, start.Add(warmup), 500*time.Millisecond)
	profile := heapProfiles(t, warmup+interval)
	ticker := time.NewTicker(time.Second / time.Duration(rate))
	defer ticker.Stop()
	for time.Since(start) < warmup+duration {
		<-ticker.C
		select {
		case slots <- struct{}{}:
			inFlight.Go(func() {
				defer func() { <-slots }()
				class, r := mix.one(replicas[rand.IntN(len(replicas))])
				record(class, r)
			})
		default:
			dropped.Add(1)
		}
	}
	inFlight.Wait()
	stopFaults()
	profile("last")

	report(t, samples(), interval, intervals, counts, dropped.Load())
	for i, f := range failures {
		if i == 20 {
			t.Errorf("… and %d more failures", len(failures)-20)
			break
		}
		t.Error(f)
	}
}

// heapProfiles writes heap profiles when SOAK_HEAPPROFILE names a file
// prefix: <prefix>.first once the first interval is over and <prefix>.last
// when the traffic stops (call the returned function), so that growth can
// be read with `go tool pprof -base <prefix>.first <prefix>.last`.
func heapProfiles(t *testing.T, first time.Duration) func(name string) {
	prefix := os.Getenv("SOAK_HEAPPROFILE")
	write := func(name string) {
		if prefix == "" {
			return
		}
		runtime.GC()
		f, err := os.Create(prefix + "." + name)
		if err == nil {
			err = errors.Join(pprof.WriteHeapProfile(f), f.Close())
		}
		if err != nil {
			t.Errorf("heap profile: %v", err)
		}
	}
	timer := time.AfterFunc(first, func() { write("first") })
	t.Cleanup(func() { timer.Stop() })
	return write
}

// soakSample is the process's heap in use (after a collection) and its
// goroutines at one moment of the run.
type soakSample struct {
	at         time.Duration
	heap       uint64
	goroutines int
}

// sampleEvery samples the process every period from start on (a sample's
// at counts from start), until ctx ends or the returned function is
// called, which returns the samples.
func sampleEvery(ctx context.Context, start time.Time, period time.Duration) func() []soakSample {
	ctx, cancel := context.WithCancel(ctx)
	var samples []soakSample
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(period)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				if at := time.Since(start); at >= 0 {
					samples = append(samples, sample(at))
				}
			}
		}
	}()
	return func() []soakSample {
		cancel()
		<-done
		return samples
	}
}

func sample(at time.Duration) soakSample {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return soakSample{at: at, heap: m.HeapInuse, goroutines: runtime.NumGoroutine()}
}

// report logs the figures per interval and checks the last interval
// against the first: the medians of their samples, within the tolerance.
func report(t *testing.T, samples []soakSample, interval time.Duration, intervals int, counts map[string]int, dropped int64) {
	t.Helper()
	medians := make([]soakSample, intervals)
	for i := range intervals {
		var heaps []uint64
		var gs []int
		for _, s := range samples {
			if s.at >= time.Duration(i)*interval && s.at < time.Duration(i+1)*interval {
				heaps, gs = append(heaps, s.heap), append(gs, s.goroutines)
			}
		}
		if len(heaps) == 0 {
			t.Fatalf("no sample in interval %d", i+1)
		}
		slices.Sort(heaps)
		slices.Sort(gs)
		medians[i] = soakSample{heap: heaps[len(heaps)/2], goroutines: gs[len(gs)/2]}
		t.Logf("interval %d/%d: heap in use %.1f MiB, goroutines %d (medians of %d samples)",
			i+1, intervals, float64(medians[i].heap)/(1<<20), medians[i].goroutines, len(heaps))
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range counts {
			if !yield(k) {
				return
			}
		}
	})
	total := 0
	for _, k := range keys {
		total += counts[k]
		t.Logf("  %-22s %7d", k, counts[k])
	}
	t.Logf("%d requests answered (by class, status and X-Cache), %d dropped by the client", total, dropped)
	first, last := medians[0], medians[intervals-1]
	if float64(last.heap) > max(float64(first.heap)*soakHeapGrowth, float64(first.heap+soakHeapFloor)) {
		t.Errorf("heap in use grew from %.1f MiB to %.1f MiB", float64(first.heap)/(1<<20), float64(last.heap)/(1<<20))
	}
	if float64(last.goroutines) > max(float64(first.goroutines)*soakGoroutineGrowth, float64(first.goroutines+soakGoroutineFloor)) {
		t.Errorf("goroutines grew from %d to %d", first.goroutines, last.goroutines)
	}
	if total == 0 {
		t.Fatal("no request was answered")
	}
}

// soakFaults cycles the simulator through its faults, each on for one
// phase, with a healthy phase between any two, until stopped; it also
// changes Logto's data now and then, so that rebuilds have work to do.
func soakFaults(ctx context.Context, front *logtoFront, phase time.Duration) (stop func()) {
	f := front.sim.Faults()
	faults := []func(){
		func() { f.SetLatency(300 * time.Millisecond) },
		func() { f.SetErrorRate(0.5, http.StatusBadGateway) },
		func() { f.RateLimit(40, time.Second) },
		func() { f.SetOutage(true) },
		func() { f.SetHang(true) },
		func() { f.ShortPages(1 << 30) },
		func() { f.DuplicateAcrossPages(1 << 30) },
		func() { f.SetReshuffleEveryPage(true) },
	}
	ids := front.sim.OrganizationIDs()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			if i%2 == 1 {
				faults[(i/2)%len(faults)]()
			}
			timer := time.NewTimer(phase)
			for changing := true; changing; {
				select {
				case <-ctx.Done():
					timer.Stop()
					f.Reset()
					return
				case <-timer.C:
					changing = false
				case <-time.After(200 * time.Millisecond):
					id := ids[rand.IntN(len(ids))]
					if o, ok := front.sim.Organization(id); ok {
						_, _ = front.sim.UpdateOrganization(id, map[string]any{"description": "changed " + time.Now().Format(time.RFC3339Nano),
							"customData": rawJSON(o.CustomData)})
					}
				}
			}
			f.Reset()
		}
	})
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}

// rawJSON passes raw JSON through marshalling unchanged.
type rawJSON []byte

func (j rawJSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("{}"), nil
	}
	return j, nil
}

// soakMix is the traffic of the soak: the dashboard's reads as every kind
// of persona, other services' lookups, and logins.
type soakMix struct {
	t        *testing.T
	front    *logtoFront
	byType   map[hierarchy.Type][]string
	users    []string
	personas []string // session and service tokens
	logins   []string // fixture users who sign in
}

func newSoakMix(t *testing.T, cfg config, front *logtoFront) *soakMix {
	tk := newTokens(t, cfg, front)
	m := &soakMix{t: t, front: front, byType: map[hierarchy.Type][]string{}}
	for _, id := range front.sim.OrganizationIDs() {
		o, _ := front.sim.Organization(id)
		for typ, name := range map[hierarchy.Type]string{hierarchy.TypeDistributor: "distributor", hierarchy.TypeReseller: "reseller", hierarchy.TypeCustomer: "customer"} {
			if strings.Contains(string(o.CustomData), `"type":"`+name+`"`) {
				m.byType[typ] = append(m.byType[typ], id)
			}
		}
	}
	roles := map[hierarchy.Type]hierarchy.Role{hierarchy.TypeDistributor: hierarchy.RoleDistributor, hierarchy.TypeReseller: hierarchy.RoleReseller, hierarchy.TypeCustomer: hierarchy.RoleCustomer}
	m.personas = append(m.personas, tk.owner(t), tk.service(t, "")) // first: the tree-wide ones
	for typ, ids := range m.byType {
		for _, id := range ids[:min(len(ids), 10)] {
			m.personas = append(m.personas, tk.session(t, id, roles[typ]), tk.service(t, id))
		}
	}
	for name, id := range front.fixture.Users {
		m.users = append(m.users, id)
		if name != "Owner" {
			m.logins = append(m.logins, id)
		}
	}
	return m
}

// one sends one request of the mix and says which class it was.
func (m *soakMix) one(c *client) (string, answer) {
	tok := m.personas[rand.IntN(len(m.personas))]
	lists := []string{"/api/customers", "/api/resellers", "/api/distributors"}
	types := []hierarchy.Type{hierarchy.TypeCustomer, hierarchy.TypeReseller, hierarchy.TypeDistributor}
	switch n := rand.IntN(100); {
	case n < 30:
		q := url.Values{"page": {strconv.Itoa(1 + rand.IntN(3))}, "page_size": {strconv.Itoa(1 + rand.IntN(100))}}
		switch rand.IntN(4) {
		case 0:
			q.Set("search", string(rune('a'+rand.IntN(26))))
		case 1:
			q["status"] = []string{"enabled", "suspended"}
		case 2:
			q.Set("sort_by", []string{"name", "created_at", "suspended_at", "creator_name"}[rand.IntN(4)])
			q.Set("sort_direction", "desc")
		}
		return "list", c.get(lists[rand.IntN(3)]+"?"+q.Encode(), tok)
	case n < 60:
		// Half of the lookups are by the owner or a tree-wide service,
		// which see every organization; the others mostly get 404s.
		if rand.IntN(2) == 0 {
			tok = m.personas[rand.IntN(2)]
		}
		i := rand.IntN(3)
		ids := m.byType[types[i]]
		return "detail", c.get(lists[i]+"/"+ids[rand.IntN(len(ids))], tok)
	case n < 70:
		return "organizations", c.get("/api/organizations?search="+string(rune('a'+rand.IntN(26))), tok)
	case n < 85:
		return "users", c.get("/api/users?page_size=50&search="+string(rune('a'+rand.IntN(26))), tok)
	case n < 92:
		return "user", c.get("/api/users/"+m.users[rand.IntN(len(m.users))], tok)
	case n < 97:
		return "me", c.get("/api/me", tok)
	default:
		logtoToken, err := m.front.sim.IssueUserToken(m.logins[rand.IntN(len(m.logins))], logtotest.UserTokenOptions{Opaque: true})
		if err != nil {
			return "login", answer{err: err}
		}
		return "login", c.do(context.Background(), http.MethodPost, "/api/auth/exchange", "", []byte(`{"access_token":"`+logtoToken+`"}`))
	}
}

// soakEnv reads a setting of the soak from the environment.
func soakEnv[T any](t *testing.T, name string, def T, parse func(string) (T, error)) T {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	x, err := parse(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return x
}
