package logto

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// grant is a cached access token with the two instants that govern it.
type grant struct {
	token     string
	renewAt   time.Time // from here on, a background renewal is started
	expiresAt time.Time // from here on, the token is not used any more
}

// usable reports whether g can authenticate a request at now.
func (g grant) usable(now time.Time) bool {
	return g.token != "" && now.Before(g.expiresAt)
}

// newGrant computes the renewal and expiry instants for a token obtained at
// issued (when its request was sent) and valid for ttl: renew at 80 % of the
// lifetime, stop using it a safety margin (a tenth, at most 30 s) before it
// expires so that clock skew and in-flight time never present a dead token.
func newGrant(token string, issued time.Time, ttl time.Duration) grant {
	margin := min(ttl/10, 30*time.Second)
	return grant{
		token:     token,
		renewAt:   issued.Add(ttl * 4 / 5),
		expiresAt: issued.Add(ttl - margin),
	}
}

// renewal is one in-flight token request that any number of callers wait on.
type renewal struct {
	done  chan struct{} // closed when grant and err are set
	grant grant
	err   error
}

// tokenSource caches the machine-to-machine token and coalesces renewals:
// however many callers find the token missing or stale, one request is sent.
// While a still-usable token is past its renewal instant, callers keep using
// it and the renewal runs in the background; only callers without a usable
// token wait. The renewal runs detached from any caller's cancellation (with
// its own timeout), so one impatient caller cannot fail the others.
type tokenSource struct {
	fetch   tokenFetcher
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger

	mu      sync.Mutex
	current grant
	pending *renewal
}

// tokenFetcher requests a new token and reports its lifetime.
type tokenFetcher func(ctx context.Context) (token string, ttl time.Duration, err error)

func newTokenSource(fetch tokenFetcher, timeout time.Duration, log *slog.Logger) *tokenSource {
	return &tokenSource{fetch: fetch, timeout: timeout, now: time.Now, log: log}
}

// Token returns a usable token, renewing it when needed.
func (s *tokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	now := s.now()
	if g := s.current; g.usable(now) {
		if !now.Before(g.renewAt) {
			s.startLocked(ctx)
		}
		s.mu.Unlock()
		return g.token, nil
	}
	r := s.startLocked(ctx)
	s.mu.Unlock()

	select {
	case <-r.done:
		if r.err != nil {
			return "", r.err
		}
		return r.grant.token, nil
	case <-ctx.Done():
		return "", fmt.Errorf("logto: waiting for the management token: %w", ctx.Err())
	}
}

// Invalidate drops token if it is still the cached one, after Logto rejected
// it with 401. A token renewed meanwhile by another caller is kept.
func (s *tokenSource) Invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current.token == token {
		s.current = grant{}
	}
}

// startLocked returns the in-flight renewal, starting one if there is none.
// The caller holds s.mu.
func (s *tokenSource) startLocked(ctx context.Context) *renewal {
	if s.pending != nil {
		return s.pending
	}
	r := &renewal{done: make(chan struct{})}
	s.pending = r
	// Keep the triggering caller's values (request ids for logs), not its
	// cancellation: the result is shared with every waiter.
	go s.renew(context.WithoutCancel(ctx), r)
	return r
}

// renew performs one token request and publishes its result.
func (s *tokenSource) renew(ctx context.Context, r *renewal) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	issued := s.now() // lifetime counts from the request, not the answer
	token, ttl, err := s.fetch(ctx)
	var g grant
	if err == nil {
		g = newGrant(token, issued, ttl)
	}

	s.mu.Lock()
	if err == nil {
		s.current = g
	}
	s.pending = nil
	r.grant, r.err = g, err
	s.mu.Unlock()
	close(r.done)

	if err != nil {
		s.log.WarnContext(ctx, "logto: management token renewal failed", "error", err)
		return
	}
	s.log.DebugContext(ctx, "logto: management token renewed", "valid_until", g.expiresAt)
}
