package logto

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// oneOrg seeds a single organization and returns its id.
func oneOrg(t testing.TB, s *logtotest.Server) string {
	t.Helper()
	for id := range seedOrganizations(t, s, 1) {
		return id
	}
	panic("unreachable")
}

func TestTokenFetchedOnceForConcurrentCallers(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	// A slow token endpoint keeps the renewal pending while callers pile up.
	s.Faults().SetScope(logtotest.ScopeOIDC)
	s.Faults().SetLatency(50 * time.Millisecond)
	c := newTestClient(t, s, nil)

	const callers = 100
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			org, err := c.GetOrganization(context.Background(), id)
			if err == nil && org.ID != id {
				err = errors.New("wrong organization " + org.ID)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if n := s.Calls("POST /oidc/token"); n != 1 {
		t.Errorf("%d token requests for %d concurrent callers, want 1", n, callers)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != callers {
		t.Errorf("%d API requests, want %d", n, callers)
	}
}

func TestTokenRenewedBeforeExpiry(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	c := newTestClient(t, s, nil)
	clock := &fakeClock{now: time.Now()}
	c.tokens.now = clock.Now
	ctx := context.Background()

	if _, err := c.GetOrganization(ctx, id); err != nil {
		t.Fatal(err)
	}
	first := c.tokens.current
	// The simulator issues hour-long tokens; at 81 % of that the client must
	// renew while the old token is still good.
	clock.Advance(time.Hour * 81 / 100)
	if _, err := c.GetOrganization(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Calls("POST /oidc/token") == 2 })
	waitFor(t, func() bool {
		c.tokens.mu.Lock()
		defer c.tokens.mu.Unlock()
		return c.tokens.current.token != first.token && c.tokens.pending == nil
	})
	for range 5 {
		if _, err := c.GetOrganization(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Calls("POST /oidc/token"); n != 2 {
		t.Errorf("%d token requests, want 2 (one renewal)", n)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 7 {
		t.Errorf("%d API requests, want 7: a renewal must not cost a failed call", n)
	}
}

func TestUnauthorizedDropsTokenAndRetriesOnce(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	c := newTestClient(t, s, nil)
	ctx := context.Background()
	if _, err := c.GetOrganization(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Tokens signed with the old key stop verifying: the next call gets 401.
	if err := s.RotateSigningKey(false); err != nil {
		t.Fatal(err)
	}
	s.ResetCalls()
	org, err := c.GetOrganization(ctx, id)
	if err != nil || org.ID != id {
		t.Fatalf("after rotation: %v, %v", org.ID, err)
	}
	if n := s.Calls("POST /oidc/token"); n != 1 {
		t.Errorf("%d token requests, want 1 fresh token", n)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 2 {
		t.Errorf("%d API requests, want the rejected one and one retry", n)
	}
}

func TestUnauthorizedAgainFailsAfterOneRefresh(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	logs := &logCapture{}
	// Every management token is mangled in transit, so Logto rejects each.
	hc := hookedClient(func(r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			r.Header.Set("Authorization", r.Header.Get("Authorization")+"x")
		}
	}, nil)
	c := newTestClient(t, s, func(cfg *Config) {
		cfg.HTTPClient = hc
		cfg.Logger = slog.New(logs)
	})

	_, err := c.GetOrganization(context.Background(), id)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 || e.Code != "auth.unauthorized" {
		t.Errorf("decoded %#v", err)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 2 {
		t.Errorf("%d API requests, want 2 (one token-refresh retry, no more)", n)
	}
	if n := s.Calls("POST /oidc/token"); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	_, secret := s.M2MCredentials()
	if text := logs.text() + err.Error(); strings.Contains(text, secret) || strings.Contains(text, "eyJ") {
		t.Errorf("secret or token leaked into logs or errors:\n%s", text)
	}
}

func TestWrongSecretIsUnauthorizedAndNotRetried(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	c := newTestClient(t, s, func(cfg *Config) { cfg.AppSecret = "not-the-secret" })

	_, err := c.GetOrganization(context.Background(), id)
	if !errors.Is(err, ErrUnauthorized) || strings.Contains(err.Error(), "not-the-secret") {
		t.Fatalf("err = %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Op != "POST /oidc/token" || e.Code != "oidc.invalid_client" {
		t.Errorf("decoded %#v", err)
	}
	if n := s.Calls("POST /oidc/token"); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 0 {
		t.Errorf("%d API requests without a token", n)
	}
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	logs := &logCapture{}
	c := newTestClient(t, s, func(cfg *Config) { cfg.Logger = slog.New(logs) })
	s.Faults().RateLimit(1, time.Second)

	if _, err := c.GetOrganization(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 2 {
		t.Errorf("%d requests, want the 429 and one retry", n)
	}
	retries := logs.attrs("logto: retrying")
	if len(retries) != 1 {
		t.Fatalf("%d retries logged, want 1", len(retries))
	}
	if d := retries[0]["delay"].Duration(); d != time.Second {
		t.Errorf("waited %s before retrying, want Retry-After's 1s", d)
	}
}

func TestRateLimitBeyondMaxRetryAfterFailsAtOnce(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	c := newTestClient(t, s, func(cfg *Config) { cfg.MaxRetryAfter = 2 * time.Second })
	s.Faults().RateLimit(1, 30*time.Second)

	_, err := c.GetOrganization(context.Background(), id)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrRateLimited) || e.RetryAfter != 30*time.Second || e.Status != 429 {
		t.Fatalf("err = %#v", err)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestRateLimitBeyondCallerDeadlineFailsAtOnce(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	c := newTestClient(t, s, nil)
	if _, err := c.GetOrganization(context.Background(), id); err != nil { // token
		t.Fatal(err)
	}
	s.ResetCalls()
	s.Faults().RateLimit(1, 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	_, err := c.GetOrganization(ctx, id)
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want the 429 returned rather than a doomed wait", err)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestServerErrorsAreRetriedThenReported(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	c := newTestClient(t, s, func(cfg *Config) { cfg.MaxAttempts = 3 })
	s.Faults().SetErrorRate(1, http.StatusServiceUnavailable)

	_, err := c.GetOrganization(context.Background(), id)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrServer) || e.Status != 503 {
		t.Fatalf("err = %#v", err)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 3 {
		t.Errorf("%d requests, want MaxAttempts = 3", n)
	}
}

func TestServerErrorRecoversOnRetry(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	// The fault is lifted as soon as the first failure has been answered.
	hc := hookedClient(nil, func(r *http.Request, res *http.Response) {
		if res.StatusCode >= 500 {
			s.Faults().SetErrorRate(0, 0)
		}
	})
	c := newTestClient(t, s, func(cfg *Config) { cfg.HTTPClient = hc })
	s.Faults().SetErrorRate(1, http.StatusInternalServerError)

	org, err := c.GetOrganization(context.Background(), id)
	if err != nil || org.ID != id {
		t.Fatalf("got %q, %v", org.ID, err)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestWritesAreNeverRetried(t *testing.T) {
	s := newSim(t)
	c := newTestClient(t, s, nil)
	s.Faults().SetScope(logtotest.ScopeOIDC)
	s.Faults().SetErrorRate(1, http.StatusBadGateway)

	// The token request is the client's only POST.
	_, err := c.ListOrganizations(context.Background())
	if !errors.Is(err, ErrServer) {
		t.Fatalf("err = %v", err)
	}
	// Each of the read's 3 attempts asked for a token once; none was retried on its own.
	if n := s.Calls("POST /oidc/token"); n != DefaultMaxAttempts {
		t.Errorf("%d token requests, want %d", n, DefaultMaxAttempts)
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	s := newSim(t)
	c := newTestClient(t, s, nil)
	ctx := context.Background()

	_, err := c.GetOrganization(ctx, "missing")
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrNotFound) || e.Code != "entity.not_exists_with_id" {
		t.Fatalf("organization: %#v", err)
	}
	_, err = c.GetUser(ctx, "missing", false)
	if !errors.As(err, &e) || !errors.Is(err, ErrNotFound) || e.Code != "entity.not_found" {
		t.Fatalf("user: %#v", err)
	}
	_, err = c.SearchUsers(ctx, UserSearch{Search: "x", Mode: "fuzzy"})
	if !errors.As(err, &e) || !errors.Is(err, ErrBadRequest) || e.Status != 400 || e.Code != "request.invalid_input" {
		t.Fatalf("bad search: %#v", err)
	}
	for route, want := range map[string]int64{
		"GET /api/organizations/{id}": 1, "GET /api/users/{userId}": 1, "GET /api/users": 1,
	} {
		if n := s.Calls(route); n != want {
			t.Errorf("%s: %d requests, want %d", route, n, want)
		}
	}
	// Many 404s are healthy answers: the breaker stays closed.
	for range 2 * DefaultBreakerFailures {
		_, _ = c.GetOrganization(ctx, "missing")
	}
	if st := c.BreakerStates()[GroupOrganizations]; st != BreakerClosed {
		t.Errorf("breaker %s after 404s", st)
	}
}

func TestBreakerOpensFailsFastAndCloses(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	obs := newRecordingObserver()
	c := newTestClient(t, s, func(cfg *Config) {
		cfg.MaxAttempts = 1
		cfg.Observer = obs
		cfg.Breaker = BreakerConfig{ConsecutiveFailures: 3, OpenTimeout: 300 * time.Millisecond}
	})
	ctx := context.Background()
	if _, err := c.GetOrganization(ctx, id); err != nil { // token, and a success
		t.Fatal(err)
	}

	s.Faults().SetErrorRate(1, http.StatusInternalServerError)
	for range 3 {
		if _, err := c.GetOrganization(ctx, id); !errors.Is(err, ErrServer) {
			t.Fatalf("err = %v, want ErrServer", err)
		}
	}
	if st := c.BreakerStates()[GroupOrganizations]; st != BreakerOpen {
		t.Fatalf("breaker %s after 3 server errors, want open", st)
	}
	if st := c.BreakerStates()[GroupUsers]; st != BreakerClosed {
		t.Errorf("users breaker %s: groups must be independent", st)
	}

	// Open: fail fast, nothing reaches Logto.
	s.ResetCalls()
	for range 10 {
		_, err := c.GetOrganization(ctx, id)
		var e *Error
		if !errors.Is(err, ErrBreakerOpen) || !errors.As(err, &e) || e.Kind != KindBreakerOpen {
			t.Fatalf("err = %v, want ErrBreakerOpen", err)
		}
	}
	if _, err := c.ListOrganizations(ctx); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("listing while open: %v", err)
	}
	if n := s.Calls("GET /api/organizations/{id}") + s.Calls("GET /api/organizations"); n != 0 {
		t.Fatalf("%d requests reached Logto while the breaker was open", n)
	}

	// Logto recovers; after the open timeout a probe closes the breaker.
	s.Faults().SetErrorRate(0, 0)
	waitFor(t, func() bool { return c.BreakerStates()[GroupOrganizations] == BreakerHalfOpen })
	if _, err := c.GetOrganization(ctx, id); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if st := c.BreakerStates()[GroupOrganizations]; st != BreakerClosed {
		t.Fatalf("breaker %s after a successful probe", st)
	}
	want := []BreakerState{BreakerClosed, BreakerOpen, BreakerHalfOpen, BreakerClosed}
	if got := obs.Transitions(GroupOrganizations); !equalStates(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
	if got := obs.Statuses("organizations GET /api/organizations/{id}"); len(got) != 5 || got[1] != 500 || got[4] != 200 {
		t.Errorf("observed call statuses %v", got)
	}
}

func TestBreakerReopensWhenProbeFails(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	c := newTestClient(t, s, func(cfg *Config) {
		cfg.MaxAttempts = 1
		cfg.Breaker = BreakerConfig{ConsecutiveFailures: 1, OpenTimeout: 100 * time.Millisecond}
	})
	ctx := context.Background()
	_, _ = c.GetOrganization(ctx, id)
	s.Faults().SetOutage(true)
	if _, err := c.GetOrganization(ctx, id); !errors.Is(err, ErrTransport) {
		t.Fatalf("err = %v, want ErrTransport", err)
	}
	waitFor(t, func() bool { return c.BreakerStates()[GroupOrganizations] == BreakerHalfOpen })
	if _, err := c.GetOrganization(ctx, id); !errors.Is(err, ErrTransport) {
		t.Fatalf("probe: %v", err)
	}
	if st := c.BreakerStates()[GroupOrganizations]; st != BreakerOpen {
		t.Errorf("breaker %s after a failed probe, want open", st)
	}
}

func equalStates(a, b []BreakerState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAttemptTimeoutAgainstHangingServer(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	c := newTestClient(t, s, func(cfg *Config) {
		cfg.Timeout = 100 * time.Millisecond
		cfg.MaxAttempts = 2
	})
	ctx := context.Background()
	if _, err := c.GetOrganization(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.ResetCalls()
	s.Faults().SetHang(true)

	_, err := c.GetOrganization(ctx, id)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrTransport) || !errors.Is(err, context.DeadlineExceeded) || e.Status != 0 {
		t.Fatalf("err = %#v, want a transport timeout", err)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 2 {
		t.Errorf("%d requests, want 2 attempts", n)
	}
}

func TestSlowBodyHitsAttemptTimeout(t *testing.T) {
	s := newSim(t)
	seedOrganizations(t, s, 100)
	c := newTestClient(t, s, func(cfg *Config) {
		cfg.Timeout = 200 * time.Millisecond
		cfg.MaxAttempts = 1
	})
	s.Faults().SetTrickle(200) // a page of 100 organizations takes minutes

	if _, err := c.ListOrganizations(context.Background()); !errors.Is(err, ErrTransport) {
		t.Fatalf("err = %v, want ErrTransport", err)
	}
}

func TestCancelledContext(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	c := newTestClient(t, s, nil)

	pre, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.GetOrganization(pre, id); !errors.Is(err, context.Canceled) {
		t.Fatalf("pre-cancelled: %v", err)
	}
	if n := s.Calls("POST /oidc/token") + s.Calls("GET /api/organizations/{id}"); n != 0 {
		t.Errorf("%d requests for a cancelled context", n)
	}

	// Cancelled while Logto hangs: the call returns with the context's error.
	if _, err := c.GetOrganization(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	s.Faults().SetHang(true)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.GetOrganization(ctx, id); errc <- err }()
	waitFor(t, func() bool { return s.Calls("GET /api/organizations/{id}") == 2 })
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTransport) {
		t.Fatalf("in flight: %v, want context.Canceled", err)
	}
	if n := s.Calls("GET /api/organizations/{id}"); n != 2 {
		t.Errorf("a cancelled call was retried: %d requests", n)
	}
	if st := c.BreakerStates()[GroupOrganizations]; st != BreakerClosed {
		t.Errorf("a caller's cancellation counted against Logto: breaker %s", st)
	}
}

func TestCancelledWhileWaitingForRetry(t *testing.T) {
	s := newSim(t)
	id := oneOrg(t, s)
	logs := &logCapture{}
	c := newTestClient(t, s, func(cfg *Config) { cfg.Logger = slog.New(logs) })
	s.Faults().RateLimit(1, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.GetOrganization(ctx, id); errc <- err }()
	waitFor(t, func() bool { return len(logs.attrs("logto: retrying")) == 1 }) // now sleeping 5 s
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// gaugeTransport measures how many requests are in flight at once.
type gaugeTransport struct {
	base  http.RoundTripper
	gauge *inFlightGauge
}

func (g gaugeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	g.gauge.enter()
	defer g.gauge.leave()
	return g.base.RoundTrip(r)
}

func TestConcurrencyIsBounded(t *testing.T) {
	s := newSim(t)
	seedOrganizations(t, s, 1000)
	gauge := &inFlightGauge{}
	const limit = 3
	c := newTestClient(t, s, func(cfg *Config) {
		cfg.MaxInFlight = limit
		cfg.ListParallelism = 8
		cfg.HTTPClient = &http.Client{Transport: gaugeTransport{base: http.DefaultTransport, gauge: gauge}}
	})
	s.Faults().SetLatency(5 * time.Millisecond)

	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 4 {
		wg.Go(func() {
			if _, err := c.ListOrganizations(context.Background()); err != nil {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d listings failed", failures.Load())
	}
	if p := gauge.peak.Load(); p > limit {
		t.Errorf("%d requests in flight at once, limit %d", p, limit)
	}
}

func TestInvalidIDsNeverReachLogto(t *testing.T) {
	s := newSim(t)
	c := newTestClient(t, s, nil)
	ctx := context.Background()
	for _, id := range []string{"", ".", "..", "a\nb", "\x00", strings.Repeat("x", 300)} {
		if _, err := c.GetOrganization(ctx, id); !errors.Is(err, ErrBadRequest) {
			t.Errorf("GetOrganization(%q): %v", id, err)
		}
		if _, err := c.GetUser(ctx, id, false); !errors.Is(err, ErrBadRequest) {
			t.Errorf("GetUser(%q): %v", id, err)
		}
		if _, err := c.MemberOrganizationRoles(ctx, "org", id); !errors.Is(err, ErrBadRequest) {
			t.Errorf("MemberOrganizationRoles(%q): %v", id, err)
		}
	}
	if calls := s.CallCounts(); len(calls) != 0 {
		t.Errorf("requests sent for invalid ids: %v", calls)
	}
	// Odd but valid ids are escaped into one path segment.
	if _, err := c.GetOrganization(ctx, "a/b?c#d"); !errors.Is(err, ErrNotFound) {
		t.Errorf("escaped id: %v", err)
	}
}
