package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
	"github.com/logto-proxy/logto-proxy/proxy"
)

// This file is the test bench of the resilience suites (faults_test.go,
// redisfaults_test.go, limits_test.go, secrets_test.go, soak_test.go): a
// Logto simulator behind a listener the test controls, replicas wired by
// newApp with short timings, an HTTP client that times every answer, the
// personas' tokens, a slow TCP relay for Redis, and a goroutine leak check.

// logtoFront serves a simulator on a listener the test owns, so that a test
// can take Logto off the network (connection refused) and bring it back on
// the same address, count the connections replicas hold open to it (none
// may be left once they have stopped: checked when the test ends), hold
// organization listings at the door, and see every bearer token sent to it.
type logtoFront struct {
	t       testing.TB
	sim     *logtotest.Server
	fixture *logtotest.Fixture
	addr    string

	mu  sync.Mutex
	srv *http.Server // nil while down

	open    atomic.Int64 // connections open now
	hold    atomic.Pointer[chan struct{}]
	drift   atomic.Int64 // added to Total-Number on organization pages after the first
	tokenMu sync.Mutex
	tokens  map[string]struct{} // bearer tokens presented to Logto
}

// newLogtoFront starts a simulator seeded with the upstream fixture and a
// bulk tree, served through a front on a free loopback port.
func newLogtoFront(t testing.TB, opts logtotest.Options, bulk logtotest.BulkOptions) *logtoFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &logtoFront{t: t, addr: ln.Addr().String(), tokens: map[string]struct{}{}}
	opts.Endpoint = "http://" + f.addr
	if f.sim, err = logtotest.New(opts); err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.sim.Close() })
	if f.fixture, err = f.sim.SeedFixture(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sim.SeedBulk(bulk); err != nil {
		t.Fatal(err)
	}
	f.serve(ln)
	// Cleanups run last in, first out: these run after the replicas
	// started later have stopped, and before the simulator closes.
	t.Cleanup(func() {
		if !within(livenessBound, func() bool { return f.open.Load() == 0 }) {
			t.Errorf("stopped replicas still hold %d connections to Logto", f.open.Load())
		}
		f.down()
	})
	return f
}

// serve starts answering on ln.
func (f *logtoFront) serve(ln net.Listener) {
	srv := &http.Server{
		Handler:           http.HandlerFunc(f.handle),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				f.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				f.open.Add(-1) // a hijacked connection is the simulator's outage: closed at once
			}
		},
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// handle records the bearer token, holds organization listings while a
// hold is on, and passes the request to the simulator.
func (f *logtoFront) handle(w http.ResponseWriter, r *http.Request) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		f.tokenMu.Lock()
		f.tokens[tok] = struct{}{}
		f.tokenMu.Unlock()
	}
	if hold := f.hold.Load(); hold != nil && r.URL.Path == "/api/organizations" {
		select {
		case <-*hold:
		case <-r.Context().Done():
			return
		}
	}
	if d := f.drift.Load(); d != 0 && r.URL.Path == "/api/organizations" && r.URL.Query().Get("page") != "1" {
		w = &totalDrift{ResponseWriter: w, delta: d}
	}
	f.sim.Handler().ServeHTTP(w, r)
}

// totalDrift changes the Total-Number header of the answer it writes, as a
// Logto whose organizations are created or deleted mid-listing answers.
type totalDrift struct {
	http.ResponseWriter
	delta   int64
	written bool
}

func (d *totalDrift) WriteHeader(status int) {
	if !d.written {
		d.written = true
		if n, err := strconv.ParseInt(d.Header().Get("Total-Number"), 10, 64); err == nil {
			d.Header().Set("Total-Number", strconv.FormatInt(n+d.delta, 10))
		}
	}
	d.ResponseWriter.WriteHeader(status)
}

func (d *totalDrift) Write(p []byte) (int, error) {
	if !d.written {
		d.WriteHeader(http.StatusOK)
	}
	return d.ResponseWriter.Write(p)
}

func (d *totalDrift) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// down takes Logto off the network: the listener and every connection are
// closed, so that new connections are refused. Down twice is once.
func (f *logtoFront) down() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up brings Logto back on its address.
func (f *logtoFront) up() {
	f.t.Helper()
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		f.t.Fatalf("logto front: listen again on %s: %v", f.addr, err)
	}
	f.serve(ln)
}

// holdListings makes GET /api/organizations wait at the front (uncounted by
// the simulator) until the returned release is called.
func (f *logtoFront) holdListings() (release func()) {
	ch := make(chan struct{})
	f.hold.Store(&ch)
	var once sync.Once
	return func() {
		once.Do(func() {
			f.hold.Store(nil)
			close(ch)
		})
	}
}

// seenTokens lists every bearer token presented to Logto so far.
func (f *logtoFront) seenTokens() []string {
	f.tokenMu.Lock()
	defer f.tokenMu.Unlock()
	out := make([]string, 0, len(f.tokens))
	for tok := range f.tokens {
		out = append(out, tok)
	}
	return out
}

// callsByGroup sums the simulator's Management API counters by the
// client's endpoint group (logto.GroupOrganizations, GroupUsers,
// GroupRoles).
func (f *logtoFront) callsByGroup() map[string]int64 {
	out := map[string]int64{}
	for route, n := range f.sim.CallCounts() {
		_, path, _ := strings.Cut(route, " ")
		switch {
		case strings.HasPrefix(path, "/api/organizations"):
			out[logto.GroupOrganizations] += n
		case strings.HasPrefix(path, "/api/users"):
			out[logto.GroupUsers] += n
		case strings.HasPrefix(path, "/api/roles"), strings.HasPrefix(path, "/api/organization-roles"):
			out[logto.GroupRoles] += n
		}
	}
	return out
}

// Timings of the fault suites: short enough that a snapshot turns stale, a
// breaker half-opens and a failed rebuild is retried within a test, and
// ordered as in production (a failed rebuild is retried well before the
// breaker half-opens; the breaker stays open longer than a Logto call may
// take).
const (
	testSoftTTL        = 500 * time.Millisecond
	testHardTTL        = time.Second
	testLogtoTimeout   = 500 * time.Millisecond
	testBreakerOpen    = 2500 * time.Millisecond
	testRetryBackoff   = 100 * time.Millisecond
	testCheckInterval  = 150 * time.Millisecond
	answerBoundSlack   = time.Second
	livenessBound      = 20 * time.Second
	serviceTokenScopes = "read:customers read:resellers read:distributors read:users"
)

// faultConfig is a replica configuration against front and the given Redis
// with the fault suites' timings and service tokens enabled; env overrides
// variables, as name, value pairs.
func faultConfig(t testing.TB, front *logtoFront, redisURL, prefix string, env ...string) config {
	t.Helper()
	appID, secret := front.sim.M2MCredentials()
	vars := map[string]string{
		"LOGTO_ENDPOINT":       front.sim.URL(),
		"LOGTO_M2M_APP_ID":     appID,
		"LOGTO_M2M_APP_SECRET": secret,
		"LOGTO_API_RESOURCE":   front.fixture.APIResource.Indicator,
		"LOGTO_TIMEOUT":        testLogtoTimeout.String(),
		"JWT_SECRET":           strings.Repeat("j", 40),
		"REDIS_URL":            redisURL,
		"REDIS_PREFIX":         prefix,
		"SNAPSHOT_SOFT_TTL":    testSoftTTL.String(),
		"SNAPSHOT_HARD_TTL":    testHardTTL.String(),
	}
	for i := 0; i+1 < len(env); i += 2 {
		vars[env[i]] = env[i+1]
	}
	c, err := loadConfig([]string{"-listen", "127.0.0.1:0"}, envOf(vars))
	if err != nil {
		t.Fatal(err)
	}
	c.Tuning = tuning{BreakerOpenTimeout: testBreakerOpen, RetryBackoff: testRetryBackoff, CheckInterval: testCheckInterval}
	return c
}

// startLoggedReplica is startReplica with the replica's logs (JSON, debug
// level) kept in a buffer the test can read.
func startLoggedReplica(t testing.TB, cfg config) (*app, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	return startReplicaLogging(t, cfg, newLogger(logs, "debug")), logs
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes the JSON log lines written so far.
func (b *syncBuffer) lines() []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// tokens mints the credentials the suites call a replica with.
type tokens struct {
	sessions *proxy.Sessions
	front    *logtoFront
	ownerID  string
}

func newTokens(t testing.TB, cfg config, front *logtoFront) *tokens {
	t.Helper()
	s, err := proxy.NewSessions(proxy.SessionConfig{Secret: []byte(cfg.JWTSecret), Issuer: cfg.LogtoEndpoint, Audience: cfg.LogtoEndpoint + "/api"})
	if err != nil {
		t.Fatal(err)
	}
	return &tokens{sessions: s, front: front, ownerID: front.fixture.Orgs["Owner"]}
}

// session mints a session token for a member of orgID holding role, with
// the role's read permissions and read:users, as the login exchange would.
func (tk *tokens) session(t testing.TB, orgID string, role hierarchy.Role) string {
	t.Helper()
	perms := map[hierarchy.Role][]string{
		hierarchy.RoleOwner:       {hierarchy.PermReadCustomers, hierarchy.PermReadResellers, hierarchy.PermReadDistributors},
		hierarchy.RoleDistributor: {hierarchy.PermReadCustomers, hierarchy.PermReadResellers},
		hierarchy.RoleReseller:    {hierarchy.PermReadCustomers},
	}[role]
	userID := "user-of-" + orgID
	tok, _, err := tk.sessions.MintAccess(proxy.SessionUser{
		ID: proxy.UserUUID(userID), LogtoID: &userID, Username: userID, Email: userID + "@example.test", Name: userID,
		UserPermissions: []string{hierarchy.PermReadUsers}, OrgRole: role.String(), OrgPermissions: perms,
		OrganizationID: orgID, OrganizationName: orgID,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// owner is a session token of the Owner organization.
func (tk *tokens) owner(t testing.TB) string { return tk.session(t, tk.ownerID, hierarchy.RoleOwner) }

// service is a Logto-issued service token, tree-wide when orgID is "".
func (tk *tokens) service(t testing.TB, orgID string) string {
	t.Helper()
	tok, err := tk.front.sim.IssueUserToken(tk.front.fixture.Users["Owner"], logtotest.UserTokenOptions{
		Resource: tk.front.fixture.APIResource.Indicator, OrganizationID: orgID, Scopes: strings.Fields(serviceTokenScopes),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// answer is one HTTP answer and how long it took.
type answer struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
	err    error
}

// message is the envelope's message ("" when the body is not one).
func (r answer) message() string {
	var env struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(r.body, &env)
	return env.Message
}

// data decodes the envelope's data into v.
func (r answer) data(v any) error {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil {
		return err
	}
	return json.Unmarshal(env.Data, v)
}

// client calls one replica. Its transport is its own, closed at cleanup,
// so that its connections never count as a replica's leak.
type client struct {
	base string
	http *http.Client
}

func newClient(t testing.TB, a *app) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 0, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{base: "http://" + a.addr(), http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// do sends a request with a bearer token ("" for none) and reads the answer.
// A transport failure is returned in answer.err, never fatal: the soak and
// the concurrent suites count them.
func (c *client) do(ctx context.Context, method, path, token string, body []byte) answer {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return answer{err: err}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b, took: time.Since(start), err: err}
}

func (c *client) get(path, token string) answer {
	return c.do(context.Background(), http.MethodGet, path, token, nil)
}

// readiness is /readyz's body.
type readiness struct {
	Status   string            `json:"status"`
	Redis    string            `json:"redis"`
	Breakers map[string]string `json:"logto_breakers"`
	Problems []string          `json:"problems"`
	Snapshot *struct {
		Generation    uint64 `json:"generation"`
		Organizations int    `json:"organizations"`
	} `json:"snapshot"`
}

func (c *client) ready(t testing.TB) (int, readiness) {
	t.Helper()
	r := c.get("/readyz", "")
	var body readiness
	if r.err != nil || json.Unmarshal(r.body, &body) != nil {
		t.Fatalf("/readyz: %v %s", r.err, r.body)
	}
	return r.status, body
}

// eventually polls cond every 20 ms until it holds, failing the test with
// what after livenessBound: a bound on liveness, not a measurement.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(livenessBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %s: %s", livenessBound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// concurrently runs n scenarios of one test side by side, each in its own
// goroutine, and waits for all of them. The fault scenarios spend their
// time waiting (for TTLs, timeouts, breakers), so running them together
// keeps the package quick, where t.Parallel would run at most GOMAXPROCS
// of them at a time. Each scenario reports through its own testing.TB,
// which prefixes its messages with the scenario's name and whose Fatal
// ends that scenario only; cleanups run when the whole test ends.
func concurrently(t *testing.T, n int, name func(int) string, run func(t testing.TB, i int)) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { run(&scenario{TB: t, name: name(i)}, i) })
	}
	wg.Wait()
}

// scenario is one scenario's view of the test it runs in.
type scenario struct {
	testing.TB
	name string
}

func (s *scenario) Name() string { return s.TB.Name() + "/" + s.name }

func (s *scenario) Errorf(format string, args ...any) {
	s.TB.Helper()
	s.TB.Errorf("%s: %s", s.name, fmt.Sprintf(format, args...))
}

func (s *scenario) Error(args ...any) {
	s.TB.Helper()
	s.TB.Errorf("%s: %s", s.name, fmt.Sprint(args...))
}

func (s *scenario) Logf(format string, args ...any) {
	s.TB.Helper()
	s.TB.Logf("%s: %s", s.name, fmt.Sprintf(format, args...))
}

// Fatalf reports and ends the scenario's goroutine (runtime.Goexit, as
// t.FailNow does for a test's), leaving the other scenarios running.
func (s *scenario) Fatalf(format string, args ...any) {
	s.TB.Helper()
	s.Errorf(format, args...)
	runtime.Goexit()
}

func (s *scenario) Fatal(args ...any) {
	s.TB.Helper()
	s.Error(args...)
	runtime.Goexit()
}

func (s *scenario) FailNow() {
	s.TB.Fail()
	runtime.Goexit()
}

// within polls cond every 20 ms for at most d and reports whether it held;
// for cleanups, which must not end the test's goroutine.
func within(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// checkNoLeaks records the goroutines running now and, at the very end of
// the test (after every other cleanup: replicas, simulators, Redis), waits
// for the count to come back down, dumping the survivors if it does not.
// It must be called first in a test, and the test must not be parallel.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				var stacks bytes.Buffer
				_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
				t.Errorf("goroutine leak: %d goroutines before the test, %d after it\n%s", before, n, stacks.String())
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// slowRelay is a TCP relay in front of a Redis server that delays every
// chunk a client sends by a settable latency: a slow Redis (a saturated
// server, a congested network) without touching the server.
type slowRelay struct {
	ln     net.Listener
	target string
	delay  atomic.Int64
	done   chan struct{}
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newSlowRelay(t testing.TB, target string) *slowRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &slowRelay{ln: ln, target: target, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	r.wg.Go(r.accept)
	t.Cleanup(r.close)
	return r
}

func (r *slowRelay) addr() string             { return r.ln.Addr().String() }
func (r *slowRelay) setDelay(d time.Duration) { r.delay.Store(int64(d)) }

func (r *slowRelay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", r.target, time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !r.track(c, up) {
			return
		}
		r.wg.Go(func() { _, _ = io.Copy(c, up); _ = c.Close() })
		r.wg.Go(func() { r.forward(c, up) })
	}
}

// track remembers a relayed pair so that close can end it; false once closed.
func (r *slowRelay) track(conns ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	default:
	}
	for _, c := range conns {
		r.conns[c] = struct{}{}
	}
	return true
}

// forward copies what the client sends to the server, each chunk late.
func (r *slowRelay) forward(c, up net.Conn) {
	defer up.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if d := time.Duration(r.delay.Load()); d > 0 {
				timer := time.NewTimer(d)
				select {
				case <-timer.C:
				case <-r.done:
					timer.Stop()
					return
				}
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *slowRelay) close() {
	r.mu.Lock()
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	_ = r.ln.Close()
	r.wg.Wait()
}

// isTimeout reports a transport error that is a timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
