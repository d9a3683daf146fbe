package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// The Logto fault suite: real replicas (newApp), the simulator behind a
// front the test controls, and Redis (REDIS_URL or embedded). Each fault is
// switched on after the replica has served the tree, and off again later.

// faultBulk is the tree behind the fault suites: the fixture plus about 100
// organizations in three levels (two listing pages), some suspended or
// soft-deleted, one user each.
var faultBulk = logtotest.BulkOptions{
	Distributors: 3, ResellersPerDistributor: 4, CustomersPerReseller: 7, CustomersPerDistributor: 2,
	UsersPerOrganization: 1, SuspendedRatio: 0.1, DeletedRatio: 0.05, Seed: 7,
}

// logtoFault is one way Logto fails, switched on and off.
type logtoFault struct {
	name    string
	on, off func(*logtoFront)
}

func logtoFaults() []logtoFault {
	return []logtoFault{
		{"connection refused", (*logtoFront).down, (*logtoFront).up},
		{"connections dropped", func(f *logtoFront) { f.sim.Faults().SetOutage(true) }, func(f *logtoFront) { f.sim.Faults().SetOutage(false) }},
		{"hanging", func(f *logtoFront) { f.sim.Faults().SetHang(true) }, func(f *logtoFront) { f.sim.Faults().SetHang(false) }},
		{"2s per call", func(f *logtoFront) { f.sim.Faults().SetLatency(2 * time.Second) }, func(f *logtoFront) { f.sim.Faults().SetLatency(0) }},
		{"5xx burst", func(f *logtoFront) { f.sim.Faults().SetErrorRate(1, http.StatusServiceUnavailable) }, func(f *logtoFront) { f.sim.Faults().SetErrorRate(0, 0) }},
		{"429 with Retry-After", func(f *logtoFront) { f.sim.Faults().RateLimit(1<<30, time.Second) }, func(f *logtoFront) { f.sim.Faults().RateLimit(0, 0) }},
	}
}

// TestLogtoFaultsKeepServingTheCachedTree proves, for each way Logto fails,
// that every organization served before the fault is still served during
// it (marked X-Cache: STALE once past the hard TTL) without any request
// waiting on Logto, that the breaker opens and then fails fast (Logto sees
// no more calls however many requests arrive), and that once Logto is back
// the breaker half-opens and closes, the view refreshes with what changed
// in Logto meanwhile, and the stale marker goes away.
func TestLogtoFaultsKeepServingTheCachedTree(t *testing.T) {
	checkNoLeaks(t) // after every scenario
	faults := logtoFaults()
	concurrently(t, len(faults), func(i int) string { return faults[i].name }, func(t testing.TB, i int) {
		runLogtoFault(t, faults[i])
	})
}

func runLogtoFault(t testing.TB, fault logtoFault) {
	front := newLogtoFront(t, logtotest.Options{}, faultBulk)
	redisURL, prefix := testRedisURL(t)
	cfg := faultConfig(t, front, redisURL, prefix)
	a, logs := startLoggedReplica(t, cfg)
	c := newClient(t, a)
	tk := newTokens(t, cfg, front)
	owner, service := tk.owner(t), tk.service(t, "")
	bound := cfg.LogtoTimeout + answerBoundSlack

	eventually(t, "the replica is ready", func() bool { s, _ := c.ready(t); return s == http.StatusOK })
	// The replica fetches Logto's signing keys as it starts, so that the
	// service token, first shown during the fault, verifies.
	eventually(t, "the replica has Logto's signing keys", func() bool { return front.sim.Calls("GET /oidc/jwks") > 0 })
	cat := catalogOf(t, c, owner)
	users := usersTotal(t, c, owner, "")
	renamed := cat.someCustomer(t)

	// Logto fails, and changes meanwhile.
	fault.on(front)
	if _, err := front.sim.UpdateOrganization(renamed, map[string]any{"name": "Renamed While Logto Failed"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "answers turn stale", func() bool {
		return served(t, c.get("/api/organizations?page_size=1", owner), "", bound).header.Get("X-Cache") == "STALE"
	})
	eventually(t, "the organizations breaker opens", func() bool {
		served(t, c.get("/api/organizations?page_size=1", owner), "", bound)
		return a.logto.BreakerStates()[logto.GroupOrganizations] == logto.BreakerOpen
	})

	// Open, the breaker fails fast: reads keep triggering rebuilds, which
	// fail without a call reaching Logto. Calls that passed the breaker
	// before it opened end within one Logto timeout. Every group whose
	// breaker is open throughout (the users view's groups have their own,
	// and may still be trying) sees its calls stop.
	time.Sleep(cfg.LogtoTimeout + 100*time.Millisecond)
	openBefore := openGroups(a)
	simBefore, clientBefore, rebuiltBefore := front.callsByGroup(), logtoAttempts(t, a, logto.GroupOrganizations), a.view.Health().LastRebuild
	for end := time.Now().Add(5 * testRetryBackoff); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		served(t, c.get("/api/organizations?page_size=1", owner), "STALE", bound)
	}
	simAfter, openAfter := front.callsByGroup(), openGroups(a)
	if !openBefore[logto.GroupOrganizations] || !openAfter[logto.GroupOrganizations] {
		t.Fatalf("the organizations breaker closed during a window shorter than its open timeout: %v, then %v", openBefore, openAfter)
	}
	for group := range openBefore {
		if openAfter[group] && simAfter[group] != simBefore[group] {
			t.Errorf("Logto saw %d %s calls while that breaker was open", simAfter[group]-simBefore[group], group)
		}
	}
	if got := logtoAttempts(t, a, logto.GroupOrganizations); got != clientBefore {
		t.Errorf("the client made %v organization calls while the breaker was open", got-clientBefore)
	}
	h := a.view.Health()
	if !h.LastRebuild.After(rebuiltBefore) || !errors.Is(h.LastError, logto.ErrBreakerOpen) {
		t.Errorf("no rebuild failed fast during the window: last at %v (before %v), error %v", h.LastRebuild, rebuiltBefore, h.LastError)
	}

	// Everything cached is served, stale, through both kinds of token.
	cat.check(t, c, owner, "STALE", bound)
	cat.check(t, c, service, "STALE", bound)
	if got := usersTotal(t, c, owner, "STALE"); got != users {
		t.Errorf("users served during the fault: %d, before it: %d", got, users)
	}
	if status, body := c.ready(t); status != http.StatusOK || body.Status != "degraded" ||
		!containsAll(body.Problems, "last hierarchy rebuild failed") {
		t.Errorf("readiness during the fault: %d %+v", status, body)
	}

	// Logto is back: the breaker half-opens, the view refreshes.
	fault.off(front)
	eventually(t, "the view refreshes once Logto is back", func() bool {
		r := served(t, c.get("/api/customers/"+renamed, owner), "", bound)
		return r.header.Get("X-Cache") == "HIT" && orgName(t, r) == "Renamed While Logto Failed"
	})
	eventually(t, "the users view refreshes", func() bool {
		return served(t, c.get("/api/users?page_size=1", owner), "", bound).header.Get("X-Cache") == "HIT"
	})
	eventually(t, "readiness says ready", func() bool {
		status, body := c.ready(t)
		return status == http.StatusOK && body.Status == "ready"
	})
	cat.names[renamed] = "Renamed While Logto Failed"
	cat.check(t, c, owner, "", bound)
	if !breakerWent(logs, logto.GroupOrganizations, "closed", "open") || !breakerWent(logs, logto.GroupOrganizations, "open", "half-open") ||
		!breakerWent(logs, logto.GroupOrganizations, "half-open", "closed") {
		t.Errorf("the organizations breaker did not go closed → open → half-open → closed; logged transitions:\n%s", transitions(logs))
	}
	if open := front.open.Load(); open > logto.DefaultMaxInFlight+2 {
		t.Errorf("the replica holds %d connections to Logto after the fault, more than its %d slots and the JWKS client's",
			open, logto.DefaultMaxInFlight)
	}
}

// TestInconsistentListingsKeepThePreviousSnapshot makes Logto answer
// listings that do not add up — a page short of an item, a Total-Number
// that is off, an item repeated across pages while another goes missing —
// and checks that the rebuild is rejected and the previous snapshot kept
// whole (in memory and in Redis), never a partial tree, until Logto
// answers a consistent listing again.
func TestInconsistentListingsKeepThePreviousSnapshot(t *testing.T) {
	checkNoLeaks(t)
	cases := []struct {
		name    string
		on, off func(*logtoFront)
	}{
		{"a page short", func(f *logtoFront) { f.sim.Faults().ShortPages(1 << 30) }, func(f *logtoFront) { f.sim.Faults().Reset() }},
		{"Total-Number too high", func(f *logtoFront) { f.sim.Faults().DriftTotalNumber(1<<30, 2) }, func(f *logtoFront) { f.sim.Faults().Reset() }},
		{"Total-Number too low", func(f *logtoFront) { f.sim.Faults().DriftTotalNumber(1<<30, -2) }, func(f *logtoFront) { f.sim.Faults().Reset() }},
		{"Total-Number changing mid-listing", func(f *logtoFront) { f.drift.Store(1) }, func(f *logtoFront) { f.drift.Store(0) }},
		{"duplicates across pages", func(f *logtoFront) { f.sim.Faults().DuplicateAcrossPages(1 << 30) }, func(f *logtoFront) { f.sim.Faults().Reset() }},
	}
	concurrently(t, len(cases), func(i int) string { return cases[i].name }, func(t testing.TB, i int) {
		tc := cases[i]
		{
			front := newLogtoFront(t, logtotest.Options{}, faultBulk)
			redisURL, prefix := testRedisURL(t)
			// Nothing here waits for staleness: a longer soft TTL keeps
			// five replicas' rebuilds and reconciles from eating the CPU.
			cfg := faultConfig(t, front, redisURL, prefix, "SNAPSHOT_SOFT_TTL", "1s", "SNAPSHOT_HARD_TTL", "2s")
			a, _ := startLoggedReplica(t, cfg)
			c := newClient(t, a)
			owner := newTokens(t, cfg, front).owner(t)
			bound := cfg.LogtoTimeout + answerBoundSlack
			eventually(t, "the replica is ready", func() bool { s, _ := c.ready(t); return s == http.StatusOK })
			cat := catalogOf(t, c, owner)
			rdb := redisOf(t, redisURL)

			// Once one rebuild has been rejected, none that listed Logto
			// before the fault is still running: what is served now must
			// stay, through more rejected rebuilds, while Logto holds an
			// organization the replica has not seen.
			tc.on(front)
			rejected := rejections(t, a, c, owner, bound)
			rejected(1)
			gen := a.view.Health().Generation
			added, err := front.sim.CreateOrganization(map[string]any{"name": "Added Mid-Fault",
				"customData": map[string]any{"type": "customer", "createdBy": front.fixture.Orgs["d1r1"]}})
			if err != nil {
				t.Fatal(err)
			}
			rejected(2)
			if h := a.view.Health(); h.Generation != gen {
				t.Errorf("generation %d installed from an inconsistent listing (was %d)", h.Generation, gen)
			}
			if stored := storedGeneration(t, rdb, prefix); stored != gen {
				t.Errorf("Redis holds generation %d, want the previous %d", stored, gen)
			}
			cat.checkTotals(t, c, owner, "", bound) // the same generation: the same tree
			if r := c.get("/api/customers/"+added.ID, owner); r.status != http.StatusNotFound {
				t.Errorf("an organization from a rejected listing is served: %d %s", r.status, r.body)
			}
			if status, body := c.ready(t); status != http.StatusOK || !containsAll(body.Problems, "last hierarchy rebuild failed") {
				t.Errorf("readiness after rejected rebuilds: %d %+v", status, body)
			}

			tc.off(front)
			eventually(t, "a consistent listing is installed", func() bool {
				return c.get("/api/customers/"+added.ID, owner).status == http.StatusOK
			})
			cat.totals["/api/customers"]++
			cat.checkTotals(t, c, owner, "", bound)
		}
	})
}

// TestColdStartUnderThousandRequests starts a replica with nothing cached
// and sends it 1,000 concurrent requests, each as a different organization
// reading itself (a customer's session token, or for one in ten a service
// token limited to that customer), while Logto holds the first listing
// page: all of them wait for one load, and Logto sees one full listing.
func TestColdStartUnderThousandRequests(t *testing.T) {
	checkNoLeaks(t)
	front := newLogtoFront(t, logtotest.Options{}, logtotest.BulkOptions{Distributors: 10, ResellersPerDistributor: 10, CustomersPerReseller: 11})
	redisURL, prefix := testRedisURL(t)
	// The held page must not time out, and nothing but the cold start
	// may list Logto.
	cfg := faultConfig(t, front, redisURL, prefix, "LOGTO_TIMEOUT", "30s", "SNAPSHOT_SOFT_TTL", "1m", "SNAPSHOT_HARD_TTL", "1h")
	tk := newTokens(t, cfg, front)
	customers := customersOf(t, front, 1000)
	creds := make([]string, len(customers))
	for i, id := range customers {
		if i%10 == 0 {
			creds[i] = tk.service(t, id)
		} else {
			creds[i] = tk.session(t, id, hierarchy.RoleCustomer)
		}
	}
	front.sim.ResetCalls()
	release := front.holdListings()
	defer release()
	a, _ := startLoggedReplica(t, cfg)
	c := newClient(t, a)
	// Session checks answered from memory, as in steady state: the test is
	// about the load, not about 900 Redis round trips starved of CPU under
	// -race.
	eventually(t, "the revocation mirror is synced", a.store.Synced)

	var sent, wg sync.WaitGroup
	sent.Add(len(customers))
	answers := make([]answer, len(customers))
	for i, id := range customers {
		wg.Go(func() {
			var once sync.Once
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(sent.Done) },
			})
			answers[i] = c.do(ctx, http.MethodGet, "/api/customers/"+id, creds[i], nil)
			once.Do(sent.Done) // a request that failed before it was written
		})
	}
	sent.Wait() // every request is on the wire while the listing is held
	release()
	wg.Wait()

	misses := 0
	for i, r := range answers {
		if r.err != nil || r.status != http.StatusOK || orgLogtoID(t, r) != customers[i] {
			t.Fatalf("request %d for %s: %v %d %s", i, customers[i], r.err, r.status, r.body)
		}
		switch r.header.Get("X-Cache") {
		case "MISS":
			misses++
		case "HIT":
		default:
			t.Errorf("request %d: X-Cache %q", i, r.header.Get("X-Cache"))
		}
	}
	if misses == 0 {
		t.Error("no request waited for the cold load (X-Cache: MISS)")
	}
	orgs := front.sim.OrganizationCount()
	if got, pages := front.sim.Calls("GET /api/organizations"), int64((orgs+99)/100); got != pages {
		t.Errorf("Logto saw %d organization list calls, want one listing of %d pages", got, pages)
	}
	for key, n := range front.sim.CallCounts() {
		switch key {
		case "GET /api/organizations", "POST /oidc/token", "GET /oidc/jwks":
			if key != "GET /api/organizations" && n != 1 {
				t.Errorf("Logto saw %s × %d, want 1", key, n)
			}
		case "GET /api/users", "GET /api/roles":
			// The users view warms up after the hierarchy: one listing.
			if n > int64((orgs+99)/100) {
				t.Errorf("Logto saw %s × %d", key, n)
			}
		default:
			t.Errorf("unexpected Logto calls: %s × %d", key, n)
		}
	}
}

// rejections returns a function that waits, reading as token meanwhile
// (reads trigger rebuilds), until n more rebuilds of a's hierarchy have
// been rejected as inconsistent listings.
func rejections(t testing.TB, a *app, c *client, token string, bound time.Duration) func(n int) {
	var last time.Time
	return func(n int) {
		t.Helper()
		failed := 0
		eventually(t, fmt.Sprintf("%d rebuilds are rejected", n), func() bool {
			served(t, c.get("/api/organizations?page_size=1", token), "", bound)
			if h := a.view.Health(); h.LastRebuild.After(last) && h.LastError != nil {
				if !errors.Is(h.LastError, logto.ErrInconsistentListing) {
					t.Fatalf("rebuild failed with %v, want an inconsistent listing", h.LastError)
				}
				failed, last = failed+1, h.LastRebuild
			}
			return failed >= n
		})
	}
}

// catalog is what a replica served the owner before a fault: the name of
// every organization by detail path, and every list's total with every
// status.
type catalog struct {
	paths  map[string]string // Logto id → detail path
	names  map[string]string // Logto id → name
	totals map[string]int    // list path → total_count
}

var orgLists = []string{"/api/distributors", "/api/resellers", "/api/customers"}

// catalogOf reads the whole tree as the owner: every organization that is
// not soft-deleted by name, and every list's total with every status.
func catalogOf(t testing.TB, c *client, token string) *catalog {
	t.Helper()
	cat := &catalog{paths: map[string]string{}, names: map[string]string{}, totals: map[string]int{}}
	for _, list := range orgLists {
		key := strings.TrimPrefix(list, "/api/")
		for page := 1; ; page++ {
			r := c.get(fmt.Sprintf("%s?page_size=100&page=%d&status=enabled&status=suspended", list, page), token)
			for _, it := range listItems(t, r, key) {
				cat.paths[it.LogtoID], cat.names[it.LogtoID] = list+"/"+url.PathEscape(it.LogtoID), it.Name
			}
			if !pagination(t, r).HasNext {
				break
			}
		}
		cat.totals[list] = pagination(t, c.get(list+"?page_size=1&"+everyStatus, token)).TotalCount
	}
	if len(cat.names) < 50 {
		t.Fatalf("the catalog holds %d organizations", len(cat.names))
	}
	return cat
}

// listItem is what the suites read of a list item.
type listItem struct {
	LogtoID string `json:"logto_id"`
	Name    string `json:"name"`
}

// listItems decodes the items of a list answer, under data.<key>.
func listItems(t testing.TB, r answer, key string) []listItem {
	t.Helper()
	var data map[string]json.RawMessage
	var items []listItem
	if r.err != nil || r.status != http.StatusOK || r.data(&data) != nil || json.Unmarshal(data[key], &items) != nil {
		t.Fatalf("list of %s: %v %d %s", key, r.err, r.status, r.body)
	}
	return items
}

// everyStatus asks a list for every status, soft-deleted included.
const everyStatus = "status=enabled&status=suspended&status=deleted"

// listPage is a list answer's pagination object.
type listPage struct {
	TotalCount int  `json:"total_count"`
	HasNext    bool `json:"has_next"`
}

func pagination(t testing.TB, r answer) listPage {
	t.Helper()
	var data struct {
		Pagination listPage `json:"pagination"`
	}
	if r.err != nil || r.status != http.StatusOK || r.data(&data) != nil {
		t.Fatalf("list: %v %d %s", r.err, r.status, r.body)
	}
	return data.Pagination
}

// someCustomer picks a customer of the catalog.
func (cat *catalog) someCustomer(t testing.TB) string {
	t.Helper()
	for id, path := range cat.paths {
		if strings.HasPrefix(path, "/api/customers/") {
			return id
		}
	}
	t.Fatal("no customer in the catalog")
	return ""
}

// check reads every organization of the catalog and every list again: all
// must be served as before, within bound, with X-Cache cache ("" for any).
func (cat *catalog) check(t testing.TB, c *client, token, cache string, bound time.Duration) {
	t.Helper()
	for id, path := range cat.paths {
		r := served(t, c.get(path, token), cache, bound)
		if name := orgName(t, r); name != cat.names[id] {
			t.Errorf("%s: name %q, want %q", path, name, cat.names[id])
		}
	}
	cat.checkTotals(t, c, token, cache, bound)
}

// checkTotals reads every list's total again.
func (cat *catalog) checkTotals(t testing.TB, c *client, token, cache string, bound time.Duration) {
	t.Helper()
	for list, total := range cat.totals {
		r := served(t, c.get(list+"?page_size=1&"+everyStatus, token), cache, bound)
		if got := pagination(t, r).TotalCount; got != total {
			t.Errorf("%s: total_count %d, want %d", list, got, total)
		}
	}
}

// served checks an answer read from the cache: 200, within bound, with
// X-Cache cache when cache is not "".
func served(t testing.TB, r answer, cache string, bound time.Duration) answer {
	t.Helper()
	switch {
	case r.err != nil:
		t.Fatalf("request failed: %v", r.err)
	case r.status != http.StatusOK:
		t.Fatalf("status %d: %s", r.status, r.body)
	case r.took > bound:
		t.Fatalf("answered in %s, more than its bound of %s", r.took, bound)
	case cache != "" && r.header.Get("X-Cache") != cache:
		t.Fatalf("X-Cache %q, want %q", r.header.Get("X-Cache"), cache)
	}
	return r
}

func orgName(t testing.TB, r answer) string {
	t.Helper()
	var org struct {
		Name string `json:"name"`
	}
	if err := r.data(&org); err != nil {
		t.Fatalf("organization: %v %s", err, r.body)
	}
	return org.Name
}

func orgLogtoID(t testing.TB, r answer) string {
	t.Helper()
	var org struct {
		LogtoID string `json:"logto_id"`
	}
	if err := r.data(&org); err != nil {
		t.Fatalf("organization: %v %s", err, r.body)
	}
	return org.LogtoID
}

// usersTotal lists users as the owner and returns the total.
func usersTotal(t testing.TB, c *client, token, cache string) int {
	t.Helper()
	total := pagination(t, served(t, c.get("/api/users?page_size=1&"+everyStatus, token), cache, livenessBound)).TotalCount
	if total == 0 {
		t.Fatal("no users listed")
	}
	return total
}

// customersOf returns n customers of the simulator (non-deleted).
func customersOf(t testing.TB, front *logtoFront, n int) []string {
	t.Helper()
	var out []string
	for _, id := range front.sim.OrganizationIDs() {
		o, _ := front.sim.Organization(id)
		if strings.Contains(string(o.CustomData), `"type":"customer"`) && !strings.Contains(string(o.CustomData), `"deletedAt"`) {
			out = append(out, id)
		}
		if len(out) == n {
			return out
		}
	}
	t.Fatalf("the simulator has %d customers, want %d", len(out), n)
	return nil
}

// openGroups lists the endpoint groups whose breaker is open.
func openGroups(a *app) map[string]bool {
	out := map[string]bool{}
	for g, st := range a.logto.BreakerStates() {
		if st == logto.BreakerOpen {
			out[g] = true
		}
	}
	return out
}

// logtoAttempts is how many calls the replica's client made to an
// endpoint group, answered or not (logto_proxy_logto_requests_total).
func logtoAttempts(t testing.TB, a *app, group string) float64 {
	t.Helper()
	families, err := a.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "logto_proxy_logto_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" && l.GetValue() == group {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// breakerWent reports whether the replica logged a transition of group's
// breaker from one state to another.
func breakerWent(logs *syncBuffer, group, from, to string) bool {
	for _, l := range logs.lines() {
		if l["msg"] == "logto: circuit breaker state change" && l["group"] == group && l["from"] == from && l["to"] == to {
			return true
		}
	}
	return false
}

func transitions(logs *syncBuffer) string {
	var b strings.Builder
	for _, l := range logs.lines() {
		if l["msg"] == "logto: circuit breaker state change" {
			fmt.Fprintf(&b, "  %v: %v → %v\n", l["group"], l["from"], l["to"])
		}
	}
	return b.String()
}

// containsAll reports whether every want is among got.
func containsAll(got []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return false
		}
	}
	return true
}

// redisOf is a client of the Redis at url, for reading what replicas stored.
func redisOf(t testing.TB, url string) redis.UniversalClient {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries, opts.DialTimeout, opts.ContextTimeoutEnabled = -1, time.Second, true
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// storedGeneration reads the hierarchy generation stored in Redis (0 for
// none).
func storedGeneration(t testing.TB, rdb redis.UniversalClient, prefix string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	gen, err := rdb.Get(ctx, prefix+"{hierarchy}:generation").Uint64()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	if err != nil {
		t.Fatalf("read the stored generation: %v", err)
	}
	return gen
}
