package logto

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// Helpers shared by the tests that run the client against the simulator.

// newSim starts a simulator for one test.
func newSim(t testing.TB) *logtotest.Server {
	t.Helper()
	s, err := logtotest.New(logtotest.Options{})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// quietLogger discards the client's logs.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestClient builds a client for s with test-friendly timings, then
// applies mutate.
func newTestClient(t testing.TB, s *logtotest.Server, mutate func(*Config)) *Client {
	t.Helper()
	id, secret := s.M2MCredentials()
	cfg := Config{
		Endpoint:    s.URL(),
		AppID:       id,
		AppSecret:   secret,
		Resource:    s.ManagementResource(),
		Timeout:     2 * time.Second,
		BackoffBase: time.Millisecond,
		BackoffCap:  5 * time.Millisecond,
		Logger:      quietLogger(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// seedOrganizations creates n organizations through the simulator's
// in-process helper and returns their ids.
func seedOrganizations(t testing.TB, s *logtotest.Server, n int) map[string]bool {
	t.Helper()
	ids := make(map[string]bool, n)
	for i := range n {
		o, err := s.CreateOrganization(map[string]any{
			"name":       fmt.Sprintf("Org %04d", i),
			"customData": map[string]any{"type": "customer", "seq": i},
		})
		if err != nil {
			t.Fatalf("create organization: %v", err)
		}
		ids[o.ID] = true
	}
	return ids
}

// hookTransport lets a test act on the simulator just before a request is
// sent (reshuffle the listing, corrupt a token, measure concurrency): the
// simulator still answers every request.
type hookTransport struct {
	base   http.RoundTripper
	before func(*http.Request)
	after  func(*http.Request, *http.Response)
}

func (h hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if h.before != nil {
		h.before(r)
	}
	res, err := h.base.RoundTrip(r)
	if h.after != nil && err == nil {
		h.after(r, res)
	}
	return res, err
}

func hookedClient(before func(*http.Request), after func(*http.Request, *http.Response)) *http.Client {
	return &http.Client{Transport: hookTransport{base: http.DefaultTransport.(*http.Transport).Clone(), before: before, after: after}}
}

// isOrgListing reports whether r is a GET /api/organizations page.
func isOrgListing(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Path == "/api/organizations"
}

// recordingObserver keeps breaker transitions and call statuses.
type recordingObserver struct {
	mu          sync.Mutex
	transitions map[string][]BreakerState
	statuses    map[string][]int
}

func newRecordingObserver() *recordingObserver {
	return &recordingObserver{transitions: map[string][]BreakerState{}, statuses: map[string][]int{}}
}

func (o *recordingObserver) ObserveCall(group, endpoint string, status int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.statuses[group+" "+endpoint] = append(o.statuses[group+" "+endpoint], status)
}

func (o *recordingObserver) ObserveBreaker(group string, state BreakerState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.transitions[group] = append(o.transitions[group], state)
}

func (o *recordingObserver) Transitions(group string) []BreakerState {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]BreakerState(nil), o.transitions[group]...)
}

func (o *recordingObserver) Statuses(key string) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int(nil), o.statuses[key]...)
}

// logCapture is a slog handler that keeps records, to check what the client
// decided (e.g. the delay it chose before a retry) without timing it.
type logCapture struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// attrs returns the attributes of every record whose message is msg.
func (l *logCapture) attrs(msg string) []map[string]slog.Value {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]slog.Value
	for _, r := range l.records {
		if r.Message != msg {
			continue
		}
		m := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
		out = append(out, m)
	}
	return out
}

// text renders every record, to check nothing secret was logged.
func (l *logCapture) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.records {
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		b.WriteByte('\n')
	}
	return b.String()
}

// inFlightGauge counts concurrent requests and keeps the maximum.
type inFlightGauge struct {
	now, peak atomic.Int32
}

func (g *inFlightGauge) enter() {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (g *inFlightGauge) leave() { g.now.Add(-1) }
