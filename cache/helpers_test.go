package cache_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// testTimeout bounds every wait in these tests. It is a liveness bound (a
// hung test fails instead of hanging), never a measurement.
const testTimeout = 20 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// fakeClock is a settable clock, so TTLs can be crossed without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var errSourceDown = errors.New("source down")

// countingSource is a hierarchy source that counts its calls, can be made
// to fail, and can be held (gated) to make calls overlap.
type countingSource struct {
	records  []hierarchy.Record
	calls    atomic.Int32
	finished atomic.Int32 // calls that have returned
	failing  atomic.Bool
	entered  chan struct{} // receives once per call, if not nil
	gate     chan struct{} // calls wait for it to be closed, if not nil
}

func newSource(n int) *countingSource {
	return &countingSource{records: cache.GenRecords(n, uint64(n))}
}

// held makes every call signal entered and wait for release.
func (s *countingSource) held() *countingSource {
	s.entered = make(chan struct{}, 100)
	s.gate = make(chan struct{})
	return s
}

func (s *countingSource) release() { close(s.gate) }

func (s *countingSource) List(ctx context.Context) ([]hierarchy.Record, error) {
	s.calls.Add(1)
	defer s.finished.Add(1)
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.failing.Load() {
		return nil, errSourceDown
	}
	return s.records, nil
}

// recorder is an Observer that keeps counts and reports rebuild outcomes on
// a channel, so tests can wait for a background rebuild to end.
type recorder struct {
	mu          sync.Mutex
	hits        int
	misses      int
	stale       int
	redisErrors int
	contended   int
	installed   []uint64
	rebuilt     chan cache.RebuildOutcome
}

func newRecorder() *recorder {
	return &recorder{rebuilt: make(chan cache.RebuildOutcome, 100)}
}

func (r *recorder) CacheHit(string)    { r.add(&r.hits) }
func (r *recorder) CacheMiss(string)   { r.add(&r.misses) }
func (r *recorder) StaleServed(string) { r.add(&r.stale) }
func (r *recorder) RedisError(string)  { r.add(&r.redisErrors) }
func (r *recorder) LockContended(string) {
	r.add(&r.contended)
}
func (r *recorder) SnapshotInstalled(_ string, gen uint64, _ time.Time, _ int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.installed = append(r.installed, gen)
}
func (r *recorder) RebuildFinished(_ string, _ time.Duration, o cache.RebuildOutcome) { r.rebuilt <- o }

func (r *recorder) add(n *int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*n++
}

func (r *recorder) count(n *int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return *n
}

// nextOutcome waits for the next rebuild to finish and returns its outcome.
func (r *recorder) nextOutcome(t *testing.T) cache.RebuildOutcome {
	t.Helper()
	select {
	case o := <-r.rebuilt:
		return o
	case <-time.After(testTimeout):
		t.Fatal("no rebuild finished")
		return ""
	}
}

// viewOpts are the test defaults; options adjust them per test.
type viewOpt func(*cache.HierarchyConfig)

func withClock(c *fakeClock) viewOpt { return func(cfg *cache.HierarchyConfig) { cfg.Now = c.Now } }
func withCheck(d time.Duration) viewOpt {
	return func(cfg *cache.HierarchyConfig) { cfg.CheckInterval = d }
}

// newView returns a hierarchy view for a test, closed at cleanup.
func newView(t *testing.T, client redis.UniversalClient, prefix string, src *countingSource, obs *recorder, opts ...viewOpt) *cache.HierarchyView {
	t.Helper()
	cfg := cache.HierarchyConfig{
		Client:        client,
		Prefix:        prefix,
		Source:        src.List,
		SoftTTL:       time.Minute,
		HardTTL:       10 * time.Minute,
		RedisTimeout:  2 * time.Second,
		SourceTimeout: testTimeout,
		LockTTL:       5 * time.Second,
		LockWait:      testTimeout,
		CheckInterval: time.Hour,
		RetryBackoff:  30 * time.Second,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Observer:      obs,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	v, err := cache.NewHierarchyView(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return v
}

func startView(t *testing.T, v *cache.HierarchyView) {
	t.Helper()
	if err := v.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds, failing the test after testTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// storedGeneration reads the generation key directly, as an operator would.
func storedGeneration(t *testing.T, c redis.UniversalClient, prefix string) string {
	t.Helper()
	v, err := c.Get(testContext(t), prefix+"{hierarchy}:generation").Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}
