package logto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for the token source's renewal instants.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// countingFetch issues tokens "t1", "t2", ... valid for ttl, after waiting
// for release (when non-nil), and counts its calls.
type countingFetch struct {
	clock   *fakeClock
	ttl     time.Duration
	release chan struct{}
	calls   atomic.Int32
	fail    atomic.Bool
}

func (f *countingFetch) fetch(ctx context.Context) (string, time.Duration, error) {
	n := f.calls.Add(1)
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return "", 0, ctx.Err()
		}
	}
	if f.fail.Load() {
		return "", 0, &Error{Kind: KindServer, Status: 500}
	}
	return fmt.Sprintf("t%d", n), f.ttl, nil
}

func newTestSource(f *countingFetch) *tokenSource {
	s := newTokenSource(f.fetch, time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.now = f.clock.Now
	return s
}

func TestTokenSourceCoalescesConcurrentCallers(t *testing.T) {
	f := &countingFetch{clock: &fakeClock{now: time.Unix(1e9, 0)}, ttl: time.Hour, release: make(chan struct{})}
	s := newTestSource(f)

	const callers = 100
	var wg sync.WaitGroup
	tokens := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { tokens[i], errs[i] = s.Token(context.Background()) })
	}
	// The fetch blocks until released, so callers pile up on the pending renewal.
	waitFor(t, func() bool { return f.calls.Load() == 1 })
	close(f.release)
	wg.Wait()

	if n := f.calls.Load(); n != 1 {
		t.Fatalf("%d fetches for %d concurrent callers, want 1", n, callers)
	}
	for i := range callers {
		if errs[i] != nil || tokens[i] != "t1" {
			t.Fatalf("caller %d: %q, %v", i, tokens[i], errs[i])
		}
	}
}

func TestTokenSourceRenewsBeforeExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	f := &countingFetch{clock: clock, ttl: 100 * time.Second}
	s := newTestSource(f)
	ctx := context.Background()

	if tok, err := s.Token(ctx); err != nil || tok != "t1" {
		t.Fatalf("first token %q, %v", tok, err)
	}
	clock.Advance(79 * time.Second)
	if tok, _ := s.Token(ctx); tok != "t1" || f.calls.Load() != 1 {
		t.Fatalf("before 80%%: token %q after %d fetches", tok, f.calls.Load())
	}
	clock.Advance(2 * time.Second) // 81 s: past the renewal instant, still valid
	if tok, _ := s.Token(ctx); tok != "t1" {
		t.Fatalf("a still-valid token should be served while renewing, got %q", tok)
	}
	waitFor(t, func() bool { tok, _ := s.Token(ctx); return tok == "t2" })
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

func TestTokenSourceNeverServesExpiredToken(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	f := &countingFetch{clock: clock, ttl: 100 * time.Second}
	s := newTestSource(f)
	ctx := context.Background()
	if _, err := s.Token(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(95 * time.Second) // inside the safety margin (10 s)
	f.fail.Store(true)
	if tok, err := s.Token(ctx); err == nil {
		t.Fatalf("served %q past its usable lifetime", tok)
	} else if !errors.Is(err, ErrServer) {
		t.Fatalf("error %v, want the fetch's", err)
	}
}

func TestTokenSourceInvalidateKeepsNewerToken(t *testing.T) {
	f := &countingFetch{clock: &fakeClock{now: time.Unix(1e9, 0)}, ttl: time.Hour}
	s := newTestSource(f)
	ctx := context.Background()
	t1, _ := s.Token(ctx)
	s.Invalidate(t1)
	t2, _ := s.Token(ctx)
	if t2 == t1 || f.calls.Load() != 2 {
		t.Fatalf("after invalidating %q got %q with %d fetches", t1, t2, f.calls.Load())
	}
	s.Invalidate(t1) // a late 401 for the old token must not drop the new one
	if t3, _ := s.Token(ctx); t3 != t2 || f.calls.Load() != 2 {
		t.Fatalf("stale invalidation dropped the fresh token: %q, %d fetches", t3, f.calls.Load())
	}
}

func TestTokenSourceWaiterCancellationDoesNotFailOthers(t *testing.T) {
	f := &countingFetch{clock: &fakeClock{now: time.Unix(1e9, 0)}, ttl: time.Hour, release: make(chan struct{})}
	s := newTestSource(f)

	impatient, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := s.Token(impatient); errc <- err }()
	waitFor(t, func() bool { return f.calls.Load() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter got %v", err)
	}

	got := make(chan string, 1)
	go func() { tok, _ := s.Token(context.Background()); got <- tok }()
	close(f.release)
	if tok := <-got; tok != "t1" || f.calls.Load() != 1 {
		t.Fatalf("patient caller got %q after %d fetches", tok, f.calls.Load())
	}
}

// waitFor polls cond until it holds; the test's own deadline bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}
