package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
	"github.com/logto-proxy/logto-proxy/proxy"
)

// The freshness suite: three replicas in one process, wired by newApp,
// sharing one Redis (REDIS_URL, or an embedded one) and one Logto
// simulator whose hook posts through a round-robin balancer, as a
// Kubernetes Service would spread Logto's deliveries over the pods.

// fleetReconcile is the replicas' RECONCILE_INTERVAL: short, so that a
// change no webhook announced is served within the test.
const fleetReconcile = 3 * time.Second

// fleetPropagation is the bound the issue sets on a webhook's change
// reaching every replica.
const fleetPropagation = time.Second

// fleet is the replicas and what surrounds them.
type fleet struct {
	sim      *logtotest.Server
	fixture  *logtotest.Fixture
	replicas []*app
	hook     logtotest.Hook
	balancer *roundRobin
	service  string // a service token reading the whole tree
	mgmt     string // a Management API token of the simulator
	http     *http.Client
}

// roundRobin forwards each request to the next replica, and remembers the
// last webhook delivery it forwarded, for the replay tests.
type roundRobin struct {
	next    atomic.Uint64
	targets atomic.Pointer[[]*httputil.ReverseProxy]

	mu        sync.Mutex
	lastBody  []byte
	lastSig   string
	delivered int
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rr.mu.Lock()
	rr.lastBody, rr.lastSig = body, r.Header.Get(proxy.WebhookSignatureHeader)
	rr.delivered++
	rr.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	targets := *rr.targets.Load()
	targets[rr.next.Add(1)%uint64(len(targets))].ServeHTTP(w, r)
}

// last returns the last delivery and how many there were.
func (rr *roundRobin) last() ([]byte, string, int) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.lastBody, rr.lastSig, rr.delivered
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	sim, err := logtotest.New(logtotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	f := &fleet{sim: sim, balancer: &roundRobin{}, http: &http.Client{Timeout: 10 * time.Second}}
	if f.fixture, err = sim.SeedFixture(); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.SeedBulk(logtotest.BulkOptions{Distributors: 2, ResellersPerDistributor: 3, CustomersPerReseller: 4}); err != nil {
		t.Fatal(err)
	}
	lb := httptest.NewServer(f.balancer)
	t.Cleanup(lb.Close)
	if f.hook, err = sim.CreateHook("logto-proxy", lb.URL+proxy.WebhookPath, proxy.WebhookEvents()...); err != nil {
		t.Fatal(err)
	}

	redisURL, prefix := testRedisURL(t)
	appID, secret := sim.M2MCredentials()
	var targets []*httputil.ReverseProxy
	for range 3 {
		cfg, err := loadConfig([]string{"-listen", "127.0.0.1:0"}, envOf(map[string]string{
			"LOGTO_ENDPOINT":            sim.URL(),
			"LOGTO_M2M_APP_ID":          appID,
			"LOGTO_M2M_APP_SECRET":      secret,
			"LOGTO_API_RESOURCE":        f.fixture.APIResource.Indicator,
			"LOGTO_WEBHOOK_SIGNING_KEY": f.hook.SigningKey,
			"RECONCILE_INTERVAL":        fleetReconcile.String(),
			"JWT_SECRET":                strings.Repeat("f", 32),
			"REDIS_URL":                 redisURL,
			"REDIS_PREFIX":              prefix,
		}))
		if err != nil {
			t.Fatal(err)
		}
		a := startReplica(t, cfg)
		f.replicas = append(f.replicas, a)
		targets = append(targets, httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: a.addr()}))
	}
	f.balancer.targets.Store(&targets)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := &demoEnv{sim: sim, fixture: f.fixture}
	if f.service, err = d.serviceToken(ctx, f.http, f.fixture.APIResource.Indicator); err != nil {
		t.Fatal(err)
	}
	if f.mgmt, err = d.managementToken(ctx, f.http); err != nil {
		t.Fatal(err)
	}
	for _, a := range f.replicas {
		if _, err := a.view.Current(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.freshListing(t)
	return f
}

// logto calls the simulator's Management API and decodes a JSON answer.
func (f *fleet) logto(t *testing.T, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, f.sim.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.mgmt)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

// patchCustomData sets keys of an organization's customData through the
// Management API (PATCH replaces customData wholesale, so it is read first).
func (f *fleet) patchCustomData(t *testing.T, id string, set map[string]any) {
	t.Helper()
	var org struct {
		CustomData map[string]any `json:"customData"`
	}
	f.logto(t, http.MethodGet, "/api/organizations/"+id, nil, &org)
	for k, v := range set {
		if v == nil {
			delete(org.CustomData, k)
		} else {
			org.CustomData[k] = v
		}
	}
	f.logto(t, http.MethodPatch, "/api/organizations/"+id, map[string]any{"customData": org.CustomData}, nil)
}

// read GETs path from one replica with the service token.
func (f *fleet) read(t *testing.T, a *app, path string) (int, json.RawMessage) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+a.addr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.service)
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, env.Data
}

// org reads an organization from one replica: nil when it answers 404.
func (f *fleet) org(t *testing.T, a *app, path string) map[string]any {
	t.Helper()
	status, data := f.read(t, a, path)
	if status == http.StatusNotFound {
		return nil
	}
	var org map[string]any
	if status != http.StatusOK || json.Unmarshal(data, &org) != nil {
		t.Fatalf("GET %s: %d %s", path, status, data)
	}
	return org
}

// onEveryReplica polls until cond holds on every replica's HTTP API,
// failing after within. It is how the suite states "visible everywhere
// within": polling with a deadline, never sleeping for an answer.
func (f *fleet) onEveryReplica(t *testing.T, what string, within time.Duration, cond func(a *app) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for i, a := range f.replicas {
		for !cond(a) {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d: not within %v: %s", i, within, what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// freshListing reconciles now on the first replica and waits for every
// replica to serve the result, so that no periodic reconcile falls due in
// the next fleetReconcile·9/10; it returns when the listing was made.
func (f *fleet) freshListing(t *testing.T) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := f.replicas[0].view.Reconcile(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range f.replicas {
		if _, err := a.view.AwaitGeneration(ctx, res.Generation); err != nil {
			t.Fatal(err)
		}
	}
	return res.BuiltAt
}

// incremental checks that every replica serves a snapshot listed at
// listed: the change it shows arrived as an incremental change (a
// webhook's), not with a new listing.
func (f *fleet) incremental(t *testing.T, listed time.Time) {
	t.Helper()
	for i, a := range f.replicas {
		if h := a.view.Health(); !h.BuiltAt.Equal(listed) {
			t.Errorf("replica %d serves a snapshot listed at %v, not the %v listing changed by the webhook", i, h.BuiltAt, listed)
		}
	}
}

// generations is the hierarchy generation each replica serves.
func (f *fleet) generations() []uint64 {
	out := make([]uint64, len(f.replicas))
	for i, a := range f.replicas {
		out[i] = a.view.Health().Generation
	}
	return out
}

// metric sums one series over the replicas' /metrics (Prometheus text),
// matching the given label pairs.
func (f *fleet) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	sum := 0.0
	for _, a := range f.replicas {
		sum += scrape(t, f.http, "http://"+a.addr()+"/metrics", name, labels...)
	}
	return sum
}

// scrape reads one series from a /metrics page; 0 when absent.
func scrape(t *testing.T, c *http.Client, u, name string, labels ...string) float64 {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum := 0.0
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(line, fmt.Sprintf("%s=%q", labels[i], labels[i+1])) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%s: %q", name, line)
		}
		sum += v
	}
	return sum
}

// deliver sends a webhook delivery straight to one replica.
func (f *fleet) deliver(t *testing.T, a *app, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+a.addr()+proxy.WebhookPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(proxy.WebhookSignatureHeader, sig)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestThreeReplicasFollowLogto(t *testing.T) {
	f := newFleet(t)
	orgs := f.fixture.Orgs

	t.Run("a change through Logto's API reaches every replica by webhook", func(t *testing.T) {
		listed := f.freshListing(t)
		path := "/api/customers/" + orgs["d1r1c1"]
		f.logto(t, http.MethodPatch, "/api/organizations/"+orgs["d1r1c1"], map[string]any{"name": "d1r1c1, renamed"}, nil)
		f.onEveryReplica(t, "the rename", fleetPropagation, func(a *app) bool { return f.org(t, a, path)["name"] == "d1r1c1, renamed" })
		f.incremental(t, listed)
	})

	t.Run("a distributor's suspension and rebranding reach every descendant on every replica", func(t *testing.T) {
		listed := f.freshListing(t)
		d1 := orgs["d1"]
		suspendedAt := "2026-02-03T04:05:06Z"
		f.patchCustomData(t, d1, map[string]any{"suspendedAt": suspendedAt, "rebrandingEnabled": true})
		descendants := map[string]string{"d1r1": "resellers", "d1r2": "resellers", "d1r1c1": "customers",
			"d1r1c2": "customers", "d1r2c1": "customers", "d1c1": "customers"}
		derivedFromD1 := func(a *app) bool {
			for name, route := range descendants {
				o := f.org(t, a, "/api/"+route+"/"+orgs[name])
				at, _ := time.Parse(time.RFC3339, fmt.Sprint(o["suspended_at"]))
				if !at.Equal(time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)) || o["suspended_by_org_id"] != d1 ||
					o["rebranding_enabled"] != true || o["rebranding_org_id"] != d1 {
					return false
				}
			}
			return true
		}
		f.onEveryReplica(t, "d1's suspension and rebranding on its descendants", fleetPropagation, derivedFromD1)
		f.incremental(t, listed)

		f.patchCustomData(t, d1, map[string]any{"suspendedAt": nil, "rebrandingEnabled": nil})
		f.onEveryReplica(t, "d1's reactivation on its descendants", fleetPropagation, func(a *app) bool {
			for name, route := range descendants {
				o := f.org(t, a, "/api/"+route+"/"+orgs[name])
				if o["suspended_at"] != nil || o["suspended_by_org_id"] != nil || o["rebranding_enabled"] != false {
					return false
				}
			}
			return true
		})
	})

	t.Run("a user created through Logto's API reaches every replica by webhook", func(t *testing.T) {
		f.freshListing(t)
		var user struct{ ID string }
		f.logto(t, http.MethodPost, "/api/users", map[string]any{"username": "fleet_user",
			"customData": map[string]any{"organizationId": orgs["d2r1"]}}, &user)
		f.onEveryReplica(t, "the new user", fleetPropagation, func(a *app) bool {
			status, _ := f.read(t, a, "/api/users/"+user.ID)
			return status == http.StatusOK
		})
	})

	t.Run("forged, replayed-with-changed-body and oversized deliveries change nothing", func(t *testing.T) {
		genuine, genuineSig, _ := f.balancer.last()
		if genuineSig == "" {
			t.Fatal("no delivery was recorded")
		}
		listed := f.freshListing(t)
		// A change no webhook announces: a delivery let through would have
		// a replica re-read d2 and serve it.
		f.sim.Faults().DropWebhooks(true)
		t.Cleanup(func() { f.sim.Faults().DropWebhooks(false) })
		d2 := orgs["d2"]
		f.logto(t, http.MethodPatch, "/api/organizations/"+d2, map[string]any{"name": "d2, renamed unannounced"}, nil)
		before := f.generations()

		event := func(extra string) []byte {
			return []byte(`{"event":"Organization.Data.Updated","params":{"id":"` + d2 + `"},"hookId":"` + f.hook.ID + `"` + extra + `}`)
		}
		forged := event("")
		replayed := bytes.Replace(genuine, []byte(`"hookId"`), []byte(`"params":{"id":"`+d2+`"},"hookId"`), 1)
		oversized := event(`,"padding":"` + strings.Repeat("x", 2<<20) + `"`)
		for _, c := range []struct {
			name   string
			body   []byte
			sig    string
			status int
		}{
			{"forged", forged, logtotest.Sign("a key of our own", forged), http.StatusUnauthorized},
			{"unsigned", forged, "", http.StatusUnauthorized},
			{"replayed with a changed body", replayed, genuineSig, http.StatusUnauthorized},
			{"oversized", oversized, logtotest.Sign(f.hook.SigningKey, oversized), http.StatusRequestEntityTooLarge},
		} {
			for i, a := range f.replicas {
				if got := f.deliver(t, a, c.body, c.sig); got != c.status {
					t.Errorf("%s delivery to replica %d: %d, want %d", c.name, i, got, c.status)
				}
			}
		}
		// The genuine delivery replayed as is is accepted, and harmless: it
		// names what has not changed since.
		applied := f.metric(t, "logto_proxy_webhook_rereads_total", "result", "applied")
		if got := f.deliver(t, f.replicas[0], genuine, genuineSig); got != http.StatusOK {
			t.Errorf("the genuine delivery replayed: %d, want 200", got)
		}
		waitUntil(t, "the replay re-read", func() bool {
			return f.metric(t, "logto_proxy_webhook_rereads_total", "result", "applied") > applied
		})
		for i, a := range f.replicas {
			if o := f.org(t, a, "/api/distributors/"+d2); o["name"] == "d2, renamed unannounced" {
				t.Errorf("replica %d serves the unannounced change", i)
			}
		}
		if after := f.generations(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("generations %v became %v", before, after)
		}
		f.incremental(t, listed)
		for _, v := range []string{"bad_signature", "unsigned", "too_large"} {
			if got := f.metric(t, "logto_proxy_webhook_events_total", "event", "unverified", "verdict", v); got < 3 {
				t.Errorf("webhook_events_total{verdict=%q} = %v over the replicas, want at least 3", v, got)
			}
		}
	})

	t.Run("with webhooks dropped a change is served after one reconcile interval", func(t *testing.T) {
		f.sim.Faults().DropWebhooks(true)
		t.Cleanup(func() { f.sim.Faults().DropWebhooks(false) })
		_, _, deliveries := f.balancer.last()
		differences := f.metric(t, "logto_proxy_reconcile_differences_total", "view", "hierarchy", "kind", "changed")
		// The change of the previous test (d2's rename, which a reconcile
		// may have served already) and one more.
		f.logto(t, http.MethodPatch, "/api/organizations/"+orgs["d2r1"], map[string]any{"name": "d2r1, renamed unannounced"}, nil)
		f.onEveryReplica(t, "the unannounced renames", 3*fleetReconcile, func(a *app) bool {
			return f.org(t, a, "/api/distributors/"+orgs["d2"])["name"] == "d2, renamed unannounced" &&
				f.org(t, a, "/api/resellers/"+orgs["d2r1"])["name"] == "d2r1, renamed unannounced"
		})
		// The reconciling replica counts once its commit is announced, which
		// may be after the others served it.
		waitUntil(t, "the differences counted", func() bool {
			return f.metric(t, "logto_proxy_reconcile_differences_total", "view", "hierarchy", "kind", "changed") > differences
		})
		if _, _, n := f.balancer.last(); n != deliveries {
			t.Errorf("%d webhooks delivered while they were dropped", n-deliveries)
		}
	})

	t.Run("the metrics show webhooks, reconciles and generations", func(t *testing.T) {
		for _, m := range []struct {
			name   string
			labels []string
		}{
			{"logto_proxy_webhook_events_total", []string{"event", "Organization.Data.Updated", "verdict", "accepted"}},
			{"logto_proxy_webhook_events_total", []string{"event", "User.Created", "verdict", "accepted"}},
			{"logto_proxy_reconcile_runs_total", []string{"view", "hierarchy", "result", "reconciled"}},
			{"logto_proxy_reconcile_runs_total", []string{"view", "users", "result", "reconciled"}},
			{"logto_proxy_snapshot_generation", []string{"view", "hierarchy"}},
		} {
			if got := f.metric(t, m.name, m.labels...); got < 1 {
				t.Errorf("%s%v = %v over the replicas, want at least 1", m.name, m.labels, got)
			}
		}
		waitUntil(t, "every replica on one generation", func() bool {
			var gens []float64
			for _, a := range f.replicas {
				gens = append(gens, scrape(t, f.http, "http://"+a.addr()+"/metrics", "logto_proxy_snapshot_generation", "view", "hierarchy"))
			}
			return gens[0] == gens[1] && gens[1] == gens[2]
		})
	})
}

// waitUntil polls cond until it holds; its deadline is a liveness bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReconcileIntervalSetting(t *testing.T) {
	env := func(kv ...string) map[string]string {
		m := map[string]string{"LOGTO_ENDPOINT": "https://tenant.logto.app", "LOGTO_M2M_APP_ID": "app",
			"LOGTO_M2M_APP_SECRET": "secret", "JWT_SECRET": strings.Repeat("k", 32), "REDIS_URL": "redis://127.0.0.1:6379"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	c, err := loadConfig(nil, envOf(env()))
	if err != nil || c.ReconcileInterval != 8*time.Minute {
		t.Errorf("default: %v, %v; want 4/5 of the 10m soft TTL", c.ReconcileInterval, err)
	}
	c, err = loadConfig(nil, envOf(env("SNAPSHOT_SOFT_TTL", "30s")))
	if err != nil || c.ReconcileInterval != 24*time.Second {
		t.Errorf("default follows the soft TTL: %v, %v", c.ReconcileInterval, err)
	}
	c, err = loadConfig([]string{"-reconcile-interval", "5s"}, envOf(env("RECONCILE_INTERVAL", "10s")))
	if err != nil || c.ReconcileInterval != 5*time.Second {
		t.Errorf("flag over env: %v, %v", c.ReconcileInterval, err)
	}
	for _, bad := range []map[string]string{env("RECONCILE_INTERVAL", "10m"), env("RECONCILE_INTERVAL", "soon"), env("RECONCILE_INTERVAL", "0s")} {
		if _, err := loadConfig(nil, envOf(bad)); err == nil || !strings.HasPrefix(err.Error(), "RECONCILE_INTERVAL: ") {
			t.Errorf("RECONCILE_INTERVAL=%s: %v, want an error naming the variable", bad["RECONCILE_INTERVAL"], err)
		}
	}
}
