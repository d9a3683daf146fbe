package logtotest

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// FaultScope selects which routes the transport faults (latency, errors, rate
// limiting, outage, hang, trickle) apply to.
type FaultScope uint8

// Fault scopes. The default is ScopeAPI: a slow or failing Management API
// with a healthy token endpoint, the common case to test breakers against.
const (
	ScopeAPI  FaultScope = 1 << iota // /api/*
	ScopeOIDC                        // /oidc/*
	ScopeAll  = ScopeAPI | ScopeOIDC
)

// Faults switches failure modes on and off while the simulator runs, so that
// tests and the demo can check how a client copes with a slow, failing,
// rate-limiting or vanishing Logto, and with the unstable organization
// listing a real Logto has. All methods are safe for concurrent use and take
// effect on the next request.
type Faults struct {
	mu  sync.Mutex
	rng *rand.Rand

	scope      FaultScope
	latency    time.Duration
	errRate    float64
	errStatus  int
	rateLimitN int
	retryAfter time.Duration
	outage     bool
	hang       bool
	trickleBPS int

	reshuffleEveryPage bool
	shortPages         int
	duplicatePages     int
	driftPages         int
	driftDelta         int

	dropWebhooks bool

	// shuffle reorders the organizations now (wired to the tenant).
	shuffle func()
}

func newFaults(seed uint64, shuffle func()) *Faults {
	return &Faults{
		rng:     rand.New(rand.NewPCG(seed^0x5bd1e995, seed)),
		scope:   ScopeAPI,
		shuffle: shuffle,
	}
}

// SetScope selects the routes the transport faults apply to (ScopeAPI by
// default). Listing faults and DropWebhooks are not affected.
func (f *Faults) SetScope(scope FaultScope) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scope = scope
}

// SetLatency adds d before every call in scope is handled (0 turns it off).
func (f *Faults) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = max(d, 0)
}

// SetErrorRate makes a fraction p (0..1) of the calls in scope fail with
// status (a 5xx; 500 when status is not an error status). p = 0 turns it off.
func (f *Faults) SetErrorRate(p float64, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errRate = min(max(p, 0), 1)
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	f.errStatus = status
}

// RateLimit makes the next n calls in scope answer 429 with a Retry-After of
// retryAfter (rounded up to whole seconds; no header when retryAfter <= 0).
func (f *Faults) RateLimit(n int, retryAfter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rateLimitN = max(n, 0)
	f.retryAfter = retryAfter
}

// SetOutage drops every connection in scope without answering (the client
// sees a reset or EOF), like a Logto that crashed behind its load balancer.
func (f *Faults) SetOutage(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outage = on
}

// SetHang makes calls in scope wait without answering until the client gives
// up (or the simulator closes), like a Logto stuck on its database.
func (f *Faults) SetHang(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang = on
}

// SetTrickle sends response bodies in scope at about bytesPerSecond (0 turns
// it off), to exercise read timeouts that start after the headers.
func (f *Faults) SetTrickle(bytesPerSecond int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trickleBPS = max(bytesPerSecond, 0)
}

// ReshuffleOrganizations changes the order organizations are listed in, once,
// now: what a concurrent write or a vacuum does to a Postgres scan between
// two page requests.
func (f *Faults) ReshuffleOrganizations() {
	f.shuffle()
}

// SetReshuffleEveryPage reshuffles the organizations before every
// GET /api/organizations, so offset paging sees a different order each time.
func (f *Faults) SetReshuffleEveryPage(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reshuffleEveryPage = on
}

// ShortPages makes the next n organization list pages silently drop their
// last item (Total-Number is unchanged), so a client must notice the count
// does not add up.
func (f *Faults) ShortPages(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shortPages = max(n, 0)
}

// DuplicateAcrossPages makes the next n organization list pages after the
// first start one item early, repeating the previous page's last item (and
// so missing one at the end), as an insert during paging does.
func (f *Faults) DuplicateAcrossPages(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.duplicatePages = max(n, 0)
}

// DriftTotalNumber makes the next n organization list pages report a
// Total-Number off by delta, as if organizations were created or deleted
// mid-listing.
func (f *Faults) DriftTotalNumber(n, delta int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.driftPages = max(n, 0)
	f.driftDelta = delta
}

// DropWebhooks discards webhook deliveries while on, so a client must rely on
// its periodic reconcile (Logto never redelivers).
func (f *Faults) DropWebhooks(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropWebhooks = on
}

// Reset turns every fault off and the scope back to ScopeAPI. The current
// organization order is kept.
func (f *Faults) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scope, f.latency = ScopeAPI, 0
	f.errRate, f.errStatus = 0, 0
	f.rateLimitN, f.retryAfter = 0, 0
	f.outage, f.hang, f.trickleBPS = false, false, 0
	f.reshuffleEveryPage = false
	f.shortPages, f.duplicatePages = 0, 0
	f.driftPages, f.driftDelta = 0, 0
	f.dropWebhooks = false
}

func (f *Faults) webhooksDropped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropWebhooks
}

// faultPlan is what the transport faults decided for one request.
type faultPlan struct {
	outage, hang bool
	latency      time.Duration
	status       int // 429 or an error status; 0 for none
	retryAfter   time.Duration
	trickleBPS   int
}

// plan decides the transport faults of one request on routes of scope,
// consuming a rate-limit token when one applies.
func (f *Faults) plan(scope FaultScope) faultPlan {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.scope&scope == 0 {
		return faultPlan{}
	}
	p := faultPlan{outage: f.outage, hang: f.hang, latency: f.latency, trickleBPS: f.trickleBPS}
	switch {
	case f.rateLimitN > 0:
		f.rateLimitN--
		p.status, p.retryAfter = http.StatusTooManyRequests, f.retryAfter
	case f.errRate > 0 && f.rng.Float64() < f.errRate:
		p.status = f.errStatus
	}
	return p
}

// listPlan is what the listing faults decided for one organization list page.
type listPlan struct {
	reshuffle  bool
	short      bool
	duplicate  bool
	totalDelta int
}

// organizationListPlan decides (and consumes) the listing faults of one
// GET /api/organizations; pageNumber is the requested page.
func (f *Faults) organizationListPlan(pageNumber int) listPlan {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := listPlan{reshuffle: f.reshuffleEveryPage}
	if f.shortPages > 0 {
		f.shortPages--
		p.short = true
	}
	if pageNumber > 1 && f.duplicatePages > 0 {
		f.duplicatePages--
		p.duplicate = true
	}
	if f.driftPages > 0 {
		f.driftPages--
		p.totalDelta = f.driftDelta
	}
	return p
}

// applyFaults runs the transport faults for a request. It returns the writer
// to use (possibly trickling) and false when the request was already dealt
// with (dropped, hung up or answered with an error).
func (s *Server) applyFaults(w http.ResponseWriter, r *http.Request, scope FaultScope) (http.ResponseWriter, bool) {
	p := s.faults.plan(scope)
	if p.outage {
		dropConnection(w)
		return nil, false
	}
	if p.hang {
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		dropConnection(w)
		return nil, false
	}
	if p.latency > 0 && !s.sleep(r.Context(), p.latency) {
		dropConnection(w)
		return nil, false
	}
	switch {
	case p.status == http.StatusTooManyRequests:
		if p.retryAfter > 0 {
			secs := int((p.retryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
		}
		s.writeError(w, r, newAPIError(http.StatusTooManyRequests, "request.rate_limited",
			"Too many requests. Please try again later."))
		return nil, false
	case p.status != 0:
		s.writeError(w, r, &APIError{Status: p.status, Message: "Internal server error."})
		return nil, false
	}
	if p.trickleBPS > 0 {
		return &trickleWriter{ResponseWriter: w, ctx: r.Context(), closing: s.closing, bps: p.trickleBPS}, true
	}
	return w, true
}

// sleep waits for d unless the request or the simulator ends first; it
// reports whether the full delay elapsed.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}

// dropConnection closes the client connection without writing a response.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// Not hijackable (HTTP/2, or an embedding handler): abort the response,
	// which net/http turns into a reset stream or closed connection.
	panic(http.ErrAbortHandler)
}

// trickleWriter sends the body a few bytes at a time.
type trickleWriter struct {
	http.ResponseWriter
	ctx     context.Context
	closing <-chan struct{}
	bps     int
}

// Write sends p in chunks of a twentieth of the rate, flushing each and
// pausing so that the average stays at bps.
func (t *trickleWriter) Write(p []byte) (int, error) {
	chunk := max(t.bps/20, 1)
	pause := time.Duration(float64(time.Second) * float64(chunk) / float64(t.bps))
	written := 0
	for len(p) > 0 {
		n := min(chunk, len(p))
		m, err := t.ResponseWriter.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		if f, ok := t.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[n:]
		if len(p) == 0 {
			break
		}
		timer := time.NewTimer(pause)
		select {
		case <-timer.C:
		case <-t.ctx.Done():
			timer.Stop()
			return written, t.ctx.Err()
		case <-t.closing:
			timer.Stop()
			return written, http.ErrServerClosed
		}
	}
	return written, nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (t *trickleWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
