package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

// This file holds the machinery every snapshot view shares (HierarchyView,
// UsersView): an immutable state derived from a list of records, served
// from memory, stored in Redis as a versioned snapshot under a generation
// that only grows, rebuilt from the source when it ages (one rebuild at a
// time per replica by singleflight, cluster-wide by a fenced Redis lock),
// announced over pub/sub and polled for, written back after a Redis outage.
// A view is a snapshotView[R, T] — records R, derived state T — plus the
// spec that says how to list, derive, encode and measure them.

// viewConfig is the part of a view's configuration every view shares; see
// HierarchyConfig for what each field means.
type viewConfig struct {
	Client        redis.UniversalClient
	Prefix        string
	SoftTTL       time.Duration
	HardTTL       time.Duration
	RedisTimeout  time.Duration
	SourceTimeout time.Duration
	LockTTL       time.Duration
	LockWait      time.Duration
	CheckInterval time.Duration
	RetryBackoff  time.Duration
	Logger        *slog.Logger
	Observer      Observer
	Now           func() time.Time
}

// withDefaults validates c for the view named name and fills its unset
// fields.
func (c viewConfig) withDefaults(name string) (viewConfig, error) {
	if c.Client == nil {
		return c, fmt.Errorf("cache: %s view: Client is required", name)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	setDefault(&c.SoftTTL, 5*time.Minute)
	setDefault(&c.HardTTL, time.Hour)
	setDefault(&c.RedisTimeout, time.Second)
	setDefault(&c.SourceTimeout, 2*time.Minute)
	setDefault(&c.LockTTL, 30*time.Second)
	setDefault(&c.LockWait, c.SourceTimeout)
	setDefault(&c.CheckInterval, 5*time.Second)
	setDefault(&c.RetryBackoff, 15*time.Second)
	for field, d := range map[string]time.Duration{
		"SoftTTL": c.SoftTTL, "HardTTL": c.HardTTL, "RedisTimeout": c.RedisTimeout,
		"SourceTimeout": c.SourceTimeout, "LockTTL": c.LockTTL, "LockWait": c.LockWait,
		"CheckInterval": c.CheckInterval, "RetryBackoff": c.RetryBackoff,
	} {
		if d < 0 {
			return c, fmt.Errorf("cache: %s view: %s is negative", name, field)
		}
	}
	if c.HardTTL < c.SoftTTL {
		return c, fmt.Errorf("cache: %s view: HardTTL is shorter than SoftTTL", name)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// recordCodec turns a view's records into the bytes stored in Redis and
// back. decode never panics on bad input: it returns an error wrapping
// errUnknownFormat (a format this binary does not know, treated as absent)
// or errCorrupt.
type recordCodec[R any] interface {
	encode(gen uint64, builtAt time.Time, records []R) ([]byte, error)
	decode(blob []byte) (snapshotData[R], error)
	header(blob []byte) (snapshotHeader, error)
	close()
}

// viewSpec is what makes a snapshotView one particular view.
type viewSpec[R any, T any] struct {
	// name labels the view in logs and metrics ("hierarchy", "users").
	name string
	keys viewKeys
	// source lists every record; prev are the records served now (nil
	// before the first snapshot), for sources that carry work over from one
	// rebuild to the next. The view takes ownership of the result.
	source func(ctx context.Context, prev []R) ([]R, error)
	// derive builds the served state. It must not fail or panic, and must
	// not modify records.
	derive func(records []R) T
	// size is the number of entries of a state, for health and metrics.
	size  func(T) int
	codec recordCodec[R]
}

// vstate is one installed snapshot. It is immutable: installing a new
// snapshot swaps the pointer.
type vstate[R any, T any] struct {
	derived T
	records []R
	gen     uint64
	builtAt time.Time
}

// viewRead is what one read of a view gets (see Snapshot).
type viewRead[T any] struct {
	derived T
	gen     uint64
	builtAt time.Time
	stale   bool
	waited  bool
}

// viewHealth is a view's state for readiness probes (see Health).
type viewHealth struct {
	loaded       bool
	gen          uint64
	builtAt      time.Time
	entries      int
	redisOK      bool
	pendingWrite bool
	lastAt       time.Time
	lastErr      error
}

// snapshotView serves one view from memory, keeps it in step with the other
// replicas through Redis, and rebuilds it from the source when it ages. All
// methods are safe for concurrent use.
type snapshotView[R any, T any] struct {
	cfg    viewConfig
	spec   viewSpec[R, T]
	log    *slog.Logger
	obs    Observer
	health *redisHealth
	store  *snapshotStore
	lock   *redisLock

	current atomic.Pointer[vstate[R, T]]
	mu      sync.Mutex    // serializes installs; guards changed
	changed chan struct{} // closed and replaced on every install

	writer  chan struct{} // a one-slot semaphore: one writer per replica
	flights singleflight.Group

	queueMu sync.Mutex
	queue   []*applyRequest[R, T] // Apply calls waiting for the next group commit

	refreshing  atomic.Bool   // a background rebuild is running
	nextAttempt atomic.Int64  // Unix ns before which no background rebuild starts
	pendingGen  atomic.Uint64 // generation built while Redis was down, 0 if none
	skipGen     atomic.Uint64 // stored generation that failed to decode
	redisGen    atomic.Uint64 // highest generation seen in Redis

	lastMu  sync.Mutex
	lastAt  time.Time
	lastErr error

	life    sync.Mutex // guards started, closed and wg.Add
	started bool
	closed  bool
	ctx     context.Context // the view's lifetime, cancelled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	pubsub  *redis.PubSub
	kick    chan struct{} // asks the watcher for an immediate check
}

// newSnapshotView returns a view that serves nothing yet. cfg must have
// its defaults applied.
func newSnapshotView[R any, T any](cfg viewConfig, spec viewSpec[R, T]) *snapshotView[R, T] {
	health := &redisHealth{obs: cfg.Observer}
	ctx, cancel := context.WithCancel(context.Background())
	return &snapshotView[R, T]{
		cfg:     cfg,
		spec:    spec,
		log:     cfg.Logger.With("view", spec.name),
		obs:     cfg.Observer,
		health:  health,
		store:   newSnapshotStore(cfg.Client, spec.keys, cfg.RedisTimeout, health),
		lock:    newRedisLock(cfg.Client, spec.keys.lock, spec.keys.fence, cfg.LockTTL, cfg.RedisTimeout),
		changed: make(chan struct{}),
		writer:  make(chan struct{}, 1),
		ctx:     ctx,
		cancel:  cancel,
		kick:    make(chan struct{}, 1),
	}
}

// start loads the snapshot stored in Redis, if any, subscribes to the
// announcements of new generations and starts polling the generation key
// (see HierarchyView.Start).
func (v *snapshotView[R, T]) start(ctx context.Context) error {
	v.life.Lock()
	switch {
	case v.closed:
		v.life.Unlock()
		return ErrClosed
	case v.started:
		v.life.Unlock()
		return fmt.Errorf("cache: %s view already started", v.spec.name)
	}
	v.started = true
	v.life.Unlock()

	subCtx, cancel := context.WithTimeout(ctx, v.cfg.RedisTimeout)
	ps := v.cfg.Client.Subscribe(subCtx, v.store.keys.announce)
	cancel()
	v.life.Lock()
	if v.closed { // Close ran meanwhile
		v.life.Unlock()
		_ = ps.Close()
		return ErrClosed
	}
	v.pubsub = ps
	v.life.Unlock()

	// Subscribe before the first load, so no announcement falls in between.
	v.spawn(v.listen)
	v.spawn(v.watch)
	if _, err := v.sync(ctx); err != nil {
		v.log.Warn("no snapshot loaded from redis at start", "err", err)
	}
	return nil
}

// read returns the state to serve (see HierarchyView.Current).
func (v *snapshotView[R, T]) read(ctx context.Context) (viewRead[T], error) {
	if st := v.current.Load(); st != nil {
		return v.serve(st), nil
	}
	v.obs.CacheMiss(v.spec.name)
	st, err := v.coldStart(ctx)
	if err != nil {
		return viewRead[T]{}, fmt.Errorf("cache: load %s: %w", v.spec.name, err)
	}
	r := v.serveAfterMiss(st)
	r.waited = true
	return r, nil
}

// refresh rebuilds from the source now (see HierarchyView.Refresh).
func (v *snapshotView[R, T]) refresh(ctx context.Context) error {
	ctx, done, ok := v.enter(ctx)
	if !ok {
		return ErrClosed
	}
	defer done()
	if _, err := v.rebuild(ctx, v.cfg.Now()); err != nil {
		return fmt.Errorf("cache: refresh %s: %w", v.spec.name, err)
	}
	return nil
}

// applyChange commits an incremental change (see HierarchyView.Apply).
func (v *snapshotView[R, T]) applyChange(ctx context.Context, fn func([]R) []R) (uint64, error) {
	ctx, done, ok := v.enter(ctx)
	if !ok {
		return 0, ErrClosed
	}
	defer done()
	st, err := v.apply(ctx, fn)
	if err != nil {
		return 0, fmt.Errorf("cache: apply to %s: %w", v.spec.name, err)
	}
	return st.gen, nil
}

// awaitGeneration blocks until the view serves generation gen or a later
// one (see HierarchyView.AwaitGeneration).
func (v *snapshotView[R, T]) awaitGeneration(ctx context.Context, gen uint64) (viewRead[T], error) {
	for {
		changed := v.changedChan()
		if st := v.current.Load(); st != nil && st.gen >= gen {
			return v.readOf(st, v.cfg.Now()), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return viewRead[T]{}, fmt.Errorf("cache: await %s generation %d: %w", v.spec.name, gen, ctx.Err())
		}
	}
}

// ready reports whether reads are served: a snapshot is in memory.
func (v *snapshotView[R, T]) ready() bool { return v.current.Load() != nil }

// healthNow returns the view's state for readiness probes.
func (v *snapshotView[R, T]) healthNow() viewHealth {
	h := viewHealth{
		redisOK:      v.health.ok.Load(),
		pendingWrite: v.pendingGen.Load() != 0,
	}
	if st := v.current.Load(); st != nil {
		h.loaded, h.gen, h.builtAt, h.entries = true, st.gen, st.builtAt, v.spec.size(st.derived)
	}
	v.lastMu.Lock()
	h.lastAt, h.lastErr = v.lastAt, v.lastErr
	v.lastMu.Unlock()
	return h
}

// close stops the background work and waits for it (see
// HierarchyView.Close).
func (v *snapshotView[R, T]) close() error {
	v.life.Lock()
	if v.closed {
		v.life.Unlock()
		return nil
	}
	v.closed = true
	ps := v.pubsub
	v.life.Unlock()

	v.cancel()
	var err error
	if ps != nil {
		if cerr := ps.Close(); cerr != nil {
			err = fmt.Errorf("cache: close subscription: %w", cerr)
		}
	}
	v.wg.Wait()
	v.spec.codec.close()
	return err
}

// serve turns an installed state into a read, counts the read, and starts a
// background rebuild when the state is past the soft TTL.
func (v *snapshotView[R, T]) serve(st *vstate[R, T]) viewRead[T] {
	r := v.serveAfterMiss(st)
	if !r.stale {
		v.obs.CacheHit(v.spec.name)
	}
	return r
}

// serveAfterMiss is serve for a read already counted as a miss: a snapshot
// loaded on a cold start may be old too, and is then refreshed and reported
// like any other.
func (v *snapshotView[R, T]) serveAfterMiss(st *vstate[R, T]) viewRead[T] {
	now := v.cfg.Now()
	r := v.readOf(st, now)
	if now.Sub(st.builtAt) >= v.cfg.SoftTTL {
		v.refreshInBackground(now)
	}
	if r.stale {
		v.obs.StaleServed(v.spec.name)
	}
	return r
}

func (v *snapshotView[R, T]) readOf(st *vstate[R, T], now time.Time) viewRead[T] {
	return viewRead[T]{
		derived: st.derived,
		gen:     st.gen,
		builtAt: st.builtAt,
		stale:   now.Sub(st.builtAt) > v.cfg.HardTTL,
	}
}

// coldStart waits, within ctx, for the one load-or-build that every caller
// finding nothing in memory shares. The shared work runs under the view's
// own lifetime, so a caller giving up does not cancel it for the others.
func (v *snapshotView[R, T]) coldStart(ctx context.Context) (*vstate[R, T], error) {
	type result struct {
		st  *vstate[R, T]
		err error
	}
	done := make(chan result, 1)
	ok := v.spawn(func(base context.Context) {
		r, err, _ := v.flights.Do("cold", func() (any, error) {
			ctx, cancel := context.WithTimeout(base, v.flightTimeout())
			defer cancel()
			return v.rebuild(ctx, time.Time{})
		})
		st, _ := r.(*vstate[R, T])
		done <- result{st, err}
	})
	if !ok {
		return nil, ErrClosed
	}
	select {
	case r := <-done:
		return r.st, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// refreshInBackground starts one rebuild for a snapshot past the soft TTL,
// unless one is running or the last one failed less than RetryBackoff ago.
func (v *snapshotView[R, T]) refreshInBackground(now time.Time) {
	if now.UnixNano() < v.nextAttempt.Load() || !v.refreshing.CompareAndSwap(false, true) {
		return
	}
	ok := v.spawn(func(base context.Context) {
		ctx, cancel := context.WithTimeout(base, v.flightTimeout())
		defer cancel()
		start := time.Now()
		st, outcome, err := v.rebuildOnce(ctx, now.Add(-v.cfg.SoftTTL))
		v.settle(err)
		v.refreshing.Store(false)
		v.report(start, st, outcome, err)
	})
	if !ok {
		v.refreshing.Store(false)
	}
}

// flightTimeout bounds one whole rebuild: waiting for another replica's
// lock, listing the source, and the Redis calls around them.
func (v *snapshotView[R, T]) flightTimeout() time.Duration {
	return v.cfg.LockWait + v.cfg.SourceTimeout + 8*v.cfg.RedisTimeout
}

// spawn runs f in a goroutine that Close waits for, with the view's
// lifetime context. It reports false, running nothing, once the view is
// closed.
func (v *snapshotView[R, T]) spawn(f func(ctx context.Context)) bool {
	v.life.Lock()
	defer v.life.Unlock()
	if v.closed {
		return false
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		f(v.ctx)
	}()
	return true
}

// enter admits a caller's call (Refresh, Apply) that Close must wait for.
// The returned context is also cancelled by Close, so the call ends
// promptly; done must be called when the call returns. enter reports false
// once the view is closed.
func (v *snapshotView[R, T]) enter(ctx context.Context) (context.Context, func(), bool) {
	v.life.Lock()
	defer v.life.Unlock()
	if v.closed {
		return nil, nil, false
	}
	v.wg.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(v.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		v.wg.Done()
	}, true
}

// install makes st the served state if it is newer than the current one (or
// as new, when replacing a state built while Redis was down), and wakes
// whoever waits for a change.
func (v *snapshotView[R, T]) install(st *vstate[R, T], replaceSameGen bool) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if cur := v.current.Load(); cur != nil {
		if st.gen < cur.gen || (st.gen == cur.gen && !replaceSameGen) {
			return false
		}
		v.pendingGen.CompareAndSwap(cur.gen, 0)
	}
	v.current.Store(st)
	close(v.changed)
	v.changed = make(chan struct{})
	v.obs.SnapshotInstalled(v.spec.name, st.gen, st.builtAt, v.spec.size(st.derived))
	return true
}

// installLocal installs records built while Redis could not store them,
// under the next generation this replica knows of, and marks them for
// writing back.
func (v *snapshotView[R, T]) installLocal(records []R, derived T, builtAt time.Time) *vstate[R, T] {
	v.mu.Lock()
	gen := v.redisGen.Load()
	if cur := v.current.Load(); cur != nil {
		gen = max(gen, cur.gen)
	}
	v.mu.Unlock()
	st := &vstate[R, T]{derived: derived, records: records, gen: gen + 1, builtAt: builtAt}
	// Only writers (holding v.writer) install local states, and loads only
	// install generations present in Redis, so gen+1 cannot lose a race
	// here except to a generation that Redis holds, which then wins.
	if v.install(st, false) {
		v.pendingGen.Store(st.gen)
		return st
	}
	return v.current.Load()
}

func (v *snapshotView[R, T]) changedChan() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed
}

// satisfying returns the installed state if it was built no earlier than
// notBefore, else nil.
func (v *snapshotView[R, T]) satisfying(notBefore time.Time) *vstate[R, T] {
	if st := v.current.Load(); st != nil && !st.builtAt.Before(notBefore) {
		return st
	}
	return nil
}

// currentRecords returns the records served now (nil before the first
// snapshot), which the source may carry work over from.
func (v *snapshotView[R, T]) currentRecords() []R {
	if st := v.current.Load(); st != nil {
		return st.records
	}
	return nil
}

// errNoSource is what a view constructor reports for a missing Source.
func errNoSource(name string) error {
	return errors.New("cache: " + name + " view: Source is required")
}
