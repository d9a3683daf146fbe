package proxy

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/logto-proxy/logto-proxy/cache"
)

// The periodic full reconcile. Webhooks keep the views fresh change by
// change, but Logto sends each once, never again, and none at all for some
// changes; the reconcile relists Logto and repairs whatever they missed.
//
// It is the proactive twin of the soft TTL. Both rebuild a view from a full
// listing once its last listing is old enough — the soft TTL when a read
// finds it so, the reconcile on a timer — and both go through the view's
// one-at-a-time rebuild, so they never overlap. The reconcile is due
// Interval after the served snapshot's listing, on every replica, at a
// random point of the last tenth of that interval so that replicas do not
// all contend at once; the first replica to get there lists Logto, and the
// others find its fresh snapshot (in Redis, or by waiting for its lock) and
// skip. Cluster-wide that is about one listing per Interval, whatever the
// number of replicas. With Interval shorter than the soft TTL (the
// configuration enforces it), the reconcile keeps every snapshot younger
// than the soft TTL in steady state, so reads never trigger a rebuild; the
// soft TTL remains as the fallback of a replica whose reconciles are
// failing or not running. Unlike a read-triggered rebuild, a reconcile also
// counts the differences it found: changes no webhook announced.

// ReconcilerConfig configures the periodic reconcile. Hierarchy, Interval
// and Metrics are required.
type ReconcilerConfig struct {
	// Hierarchy is reconciled; Users too, when set.
	Hierarchy *cache.HierarchyView
	Users     *cache.UsersView
	// Interval is how old a snapshot's listing gets before it is
	// reconciled (RECONCILE_INTERVAL).
	Interval time.Duration
	// Timeout bounds one reconcile: waiting for the lock, the listing and
	// the commit (default 5m).
	Timeout time.Duration
	// Metrics counts runs and differences; Logger gets one line per
	// reconcile that listed Logto (default slog.Default()).
	Metrics *Metrics
	Logger  *slog.Logger
	// Now is the clock snapshot ages are measured with; it must be the
	// views' (default time.Now).
	Now func() time.Time
}

// Reconciler runs the periodic reconcile of each view until Close.
type Reconciler struct {
	cfg     ReconcilerConfig
	log     *slog.Logger
	targets []reconcileTarget

	life    sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// reconcileTarget is one view as the reconciler sees it.
type reconcileTarget struct {
	view string
	// listed returns when the served snapshot was listed; false when none
	// is loaded.
	listed    func() (time.Time, bool)
	reconcile func(ctx context.Context, maxAge time.Duration) (cache.ReconcileResult, error)
}

// NewReconciler validates cfg and returns a reconciler that does nothing
// until Start.
func NewReconciler(cfg ReconcilerConfig) (*Reconciler, error) {
	if cfg.Hierarchy == nil || cfg.Metrics == nil || cfg.Interval <= 0 {
		return nil, errors.New("proxy: reconciler: Hierarchy, Metrics and a positive Interval are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := cfg.Hierarchy
	targets := []reconcileTarget{{
		view:      cache.ViewHierarchy,
		listed:    func() (time.Time, bool) { s := h.Health(); return s.BuiltAt, s.Loaded },
		reconcile: h.Reconcile,
	}}
	if u := cfg.Users; u != nil {
		targets = append(targets, reconcileTarget{
			view:      cache.ViewUsers,
			listed:    func() (time.Time, bool) { s := u.Health(); return s.BuiltAt, s.Loaded },
			reconcile: u.Reconcile,
		})
	}
	return &Reconciler{cfg: cfg, log: cfg.Logger.With("component", "reconcile"), targets: targets}, nil
}

// Start runs one reconcile loop per view, until Close. Starting twice is a
// no-op.
func (r *Reconciler) Start() {
	r.life.Lock()
	defer r.life.Unlock()
	if r.started {
		return
	}
	r.started = true
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for _, t := range r.targets {
		r.wg.Go(func() { r.loop(ctx, t) })
	}
}

// Close stops the loops, cancelling a reconcile in progress, and waits for
// them.
func (r *Reconciler) Close() {
	r.life.Lock()
	cancel := r.cancel
	r.life.Unlock()
	if cancel != nil {
		cancel()
	}
	r.wg.Wait()
}

// loop reconciles one view whenever its snapshot's listing comes due.
func (r *Reconciler) loop(ctx context.Context, t reconcileTarget) {
	failed := false
	for {
		if !pause(ctx, r.delay(t, failed)) {
			return
		}
		if _, loaded := t.listed(); !loaded {
			continue
		}
		failed = !r.once(ctx, t)
	}
}

// delay is how long to wait before the next reconcile of t: until its
// snapshot's listing is Interval old, less a random part of the last tenth
// of it. A view with no snapshot yet is looked at again a tenth of an
// interval later: loading it is the read path's job (a cold start), and a
// reconcile against nothing would count every record as a difference.
// After a failure it waits a whole interval, jittered the same way, rather
// than retry against a Logto that just failed; meanwhile reads past the
// soft TTL still try, throttled by the view's own retry backoff.
func (r *Reconciler) delay(t reconcileTarget, failed bool) time.Duration {
	jitter := rand.N(r.cfg.Interval/10 + 1)
	if failed {
		return r.cfg.Interval - jitter
	}
	listed, ok := t.listed()
	if !ok {
		return r.cfg.Interval/10 + jitter
	}
	return max(listed.Add(r.cfg.Interval-jitter).Sub(r.cfg.Now()), 0)
}

// once runs one reconcile of t, counts it and logs it, and reports whether
// it succeeded.
func (r *Reconciler) once(ctx context.Context, t reconcileTarget) bool {
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	start := time.Now()
	// Due times are jittered down to nine tenths of the interval: a listing
	// younger than that is another replica's, made since this one's timer
	// was set.
	res, err := t.reconcile(rctx, r.cfg.Interval*9/10)
	switch {
	case err != nil && ctx.Err() != nil:
		return true // shutting down
	case err != nil:
		r.cfg.Metrics.ObserveReconcile(t.view, "failed", cache.Differences{})
		r.log.Warn("reconcile failed; the view keeps its snapshot", "view", t.view, "err", err)
		return false
	case !res.Reconciled:
		r.cfg.Metrics.ObserveReconcile(t.view, "skipped", cache.Differences{})
		return true
	}
	d := res.Differences
	r.cfg.Metrics.ObserveReconcile(t.view, "reconciled", d)
	r.log.Info("reconciled", "view", t.view, "generation", res.Generation, "outcome", res.Outcome,
		"added", d.Added, "removed", d.Removed, "changed", d.Changed, "duration", time.Since(start))
	return true
}
