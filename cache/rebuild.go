package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// rebuild makes sure the view serves a snapshot read from the source no
// earlier than notBefore: one already in memory, one another replica stored
// in Redis, or one built here from the source.
func (v *snapshotView[R, T]) rebuild(ctx context.Context, notBefore time.Time) (*vstate[R, T], error) {
	start := time.Now()
	st, outcome, err := v.rebuildOnce(ctx, notBefore)
	v.settle(err)
	v.report(start, st, outcome, err)
	return st, err
}

// settle records a rebuild's result for Health and, after a failure, holds
// background rebuilds off for RetryBackoff so that reads do not hammer a
// failing source.
func (v *snapshotView[R, T]) settle(err error) {
	now := v.cfg.Now()
	if err != nil {
		v.nextAttempt.Store(now.Add(v.cfg.RetryBackoff).UnixNano())
	}
	v.lastMu.Lock()
	defer v.lastMu.Unlock()
	v.lastAt, v.lastErr = now, err
}

// report tells the observer and the log how a rebuild ended. It comes after
// settle, so whoever reacts to the report sees the view's state settled.
func (v *snapshotView[R, T]) report(start time.Time, st *vstate[R, T], outcome RebuildOutcome, err error) {
	d := time.Since(start)
	switch {
	case err != nil:
		v.log.Warn("rebuild failed", "outcome", outcome, "err", err)
	case outcome != OutcomeLoaded:
		v.log.Info("rebuilt", "outcome", outcome, "generation", st.gen, "entries", v.spec.size(st.derived), "duration", d)
	}
	v.obs.RebuildFinished(v.spec.name, d, outcome)
}

func (v *snapshotView[R, T]) rebuildOnce(ctx context.Context, notBefore time.Time) (*vstate[R, T], RebuildOutcome, error) {
	if st := v.satisfying(notBefore); st != nil {
		return st, OutcomeLoaded, nil
	}
	if err := v.takeWriter(ctx); err != nil {
		return nil, OutcomeFailed, err
	}
	defer v.dropWriter()

	// Another writer of this replica, or another replica, may have done the
	// work while we waited.
	_, _ = v.sync(ctx)
	if st := v.satisfying(notBefore); st != nil {
		return st, OutcomeLoaded, nil
	}
	l, st, err := v.acquireLock(ctx, func() *vstate[R, T] { return v.satisfying(notBefore) })
	if st != nil {
		return st, OutcomeLoaded, nil
	}
	if err != nil {
		return nil, OutcomeFailed, err
	}
	if l != nil {
		defer v.freeLock(l)
		_, _ = v.sync(ctx)
		if st := v.satisfying(notBefore); st != nil {
			return st, OutcomeLoaded, nil
		}
	}

	builtAt := v.cfg.Now()
	records, err := v.fetch(ctx, l)
	if errors.Is(err, errLockLost) {
		return nil, OutcomeFenced, err
	}
	if err != nil {
		return nil, OutcomeFailed, err
	}
	return v.commit(ctx, l, records, builtAt)
}

// applyRequest is one Apply call waiting for its change to be committed.
type applyRequest[R any, T any] struct {
	fn   func([]R) []R
	done chan applyResult[R, T] // buffered: the committer never blocks on it
}

type applyResult[R any, T any] struct {
	st  *vstate[R, T]
	err error
}

// apply commits fn's change. Changes are group-committed: whoever holds the
// writer slot applies every change queued so far, in order, and stores one
// generation for all of them, so a burst of webhooks costs one snapshot
// write rather than one each.
func (v *snapshotView[R, T]) apply(ctx context.Context, fn func([]R) []R) (*vstate[R, T], error) {
	req := &applyRequest[R, T]{fn: fn, done: make(chan applyResult[R, T], 1)}
	v.queueMu.Lock()
	v.queue = append(v.queue, req)
	v.queueMu.Unlock()

	select {
	case r := <-req.done: // another caller committed it
		return r.st, r.err
	case v.writer <- struct{}{}:
	case <-ctx.Done():
		if v.withdraw(req) {
			return nil, fmt.Errorf("waiting for this replica's writer: %w", ctx.Err())
		}
		r := <-req.done // being committed right now; the commit is bounded
		return r.st, r.err
	}
	defer v.dropWriter()
	select {
	case r := <-req.done: // committed by the previous holder
		return r.st, r.err
	default:
	}

	// The commit serves the whole queue, so one caller's cancellation must
	// not fail it; it stays bounded by the lock wait and Redis timeouts.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.LockWait+8*v.cfg.RedisTimeout)
	defer cancel()
	v.commitQueued(cctx)
	r := <-req.done
	return r.st, r.err
}

// withdraw removes req from the queue, reporting false when a committer
// has already taken it.
func (v *snapshotView[R, T]) withdraw(req *applyRequest[R, T]) bool {
	v.queueMu.Lock()
	defer v.queueMu.Unlock()
	for i, r := range v.queue {
		if r == req {
			v.queue = slices.Delete(v.queue, i, i+1)
			return true
		}
	}
	return false
}

// commitQueued takes the cluster-wide lock, then applies every queued
// change (all that arrived while it waited join in) to the latest
// generation and commits the result once, answering each change. A change
// whose fn panics is skipped and answered with an error; the others still
// commit.
func (v *snapshotView[R, T]) commitQueued(ctx context.Context) {
	l, _, err := v.acquireLock(ctx, func() *vstate[R, T] { return nil })
	if l != nil {
		defer v.freeLock(l)
		// Change the latest stored generation, not a stale local one.
		_, _ = v.sync(ctx)
	}
	v.queueMu.Lock()
	batch := v.queue
	v.queue = nil
	v.queueMu.Unlock()

	var st *vstate[R, T]
	if err == nil {
		st, err = v.commitBatch(ctx, l, batch)
	}
	for _, r := range batch {
		if len(r.done) == 0 { // not already answered with its own error
			r.done <- applyResult[R, T]{st, err}
		}
	}
}

// commitBatch applies batch to the current records and commits them.
func (v *snapshotView[R, T]) commitBatch(ctx context.Context, l *lease, batch []*applyRequest[R, T]) (*vstate[R, T], error) {
	cur := v.current.Load()
	if cur == nil {
		return nil, ErrNotLoaded
	}
	records := cur.records // never modified: each change gets a copy
	for _, req := range batch {
		next, err := runChange(req.fn, records)
		if err != nil {
			req.done <- applyResult[R, T]{err: err}
			continue
		}
		records = next
	}
	st, outcome, err := v.commit(ctx, l, records, cur.builtAt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", outcome, err)
	}
	return st, nil
}

// runChange calls one Apply fn, turning a panic into an error so that one
// faulty change cannot lose the rest of its batch. The fn works on its own
// copy, so a panic midway leaves records as they were.
func runChange[R any](fn func([]R) []R, records []R) (out []R, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("change panicked: %v", r)
		}
	}()
	return fn(slices.Clone(records)), nil
}

// commit builds the tree of records, stores it in Redis as the next
// generation under the lease and announces it, then serves it. Without a
// lease (Redis unreachable), or when Redis fails now, the tree is served
// from memory and written back later. A lease lost meanwhile means another
// replica may have written: the records are dropped rather than overwrite
// its generation.
func (v *snapshotView[R, T]) commit(ctx context.Context, l *lease, records []R, builtAt time.Time) (*vstate[R, T], RebuildOutcome, error) {
	derived := v.spec.derive(records)
	if l == nil {
		return v.installLocal(records, derived, builtAt), OutcomeLocal, nil
	}
	redisGen, err := v.store.generation(ctx)
	if err != nil {
		return v.installLocal(records, derived, builtAt), OutcomeLocal, nil
	}
	v.noteRedisGen(redisGen)
	gen := redisGen + 1
	if cur := v.current.Load(); cur != nil {
		gen = max(gen, cur.gen+1)
	}
	blob, err := v.spec.codec.encode(gen, builtAt, records)
	if err != nil {
		return nil, OutcomeFailed, err
	}
	err = v.store.store(ctx, l, gen, blob)
	switch {
	case errors.Is(err, errLockLost), errors.Is(err, errNotNewer):
		_, _ = v.sync(ctx)
		return nil, OutcomeFenced, err
	case err != nil:
		v.log.Warn("snapshot kept in memory only", "generation", gen, "err", err)
		return v.installLocal(records, derived, builtAt), OutcomeLocal, nil
	}
	st := &vstate[R, T]{derived: derived, records: records, gen: gen, builtAt: builtAt}
	v.noteRedisGen(gen)
	if !v.install(st, false) {
		// A later generation arrived meanwhile (only possible if the lock
		// expired unnoticed); serve that one.
		st = v.current.Load()
	}
	if err := v.store.announce(ctx, gen); err != nil {
		v.log.Warn("generation not announced; replicas will find it on their next check", "err", err)
	}
	return st, OutcomeBuilt, nil
}

// acquireLock takes the cluster-wide lock, waiting at most LockWait while
// another replica holds it. While waiting it returns early with the state
// satisfied reports, when the holder's new generation arrives (announced or
// polled). When Redis cannot answer it returns neither lease nor error: the
// caller carries on alone, since a Redis outage must not stop rebuilds.
func (v *snapshotView[R, T]) acquireLock(ctx context.Context, satisfied func() *vstate[R, T]) (*lease, *vstate[R, T], error) {
	wctx, cancel := context.WithTimeout(ctx, v.cfg.LockWait)
	defer cancel()
	poll := min(max(v.cfg.LockTTL/10, 10*time.Millisecond), time.Second)
	contended := false
	for {
		changed := v.changedChan()
		l, err := v.lock.tryAcquire(wctx)
		_ = v.health.note("lock", err)
		switch {
		case err == nil:
			return l, nil, nil
		case !errors.Is(err, errLockHeld):
			if wctx.Err() != nil {
				return nil, nil, fmt.Errorf("waiting for another replica's rebuild: %w", wctx.Err())
			}
			v.log.Warn("rebuild lock unavailable; building without it", "err", err)
			return nil, nil, nil
		}
		if !contended {
			contended = true
			v.obs.LockContended(v.spec.name)
		}
		if st := satisfied(); st != nil {
			return nil, st, nil
		}
		timer := time.NewTimer(poll)
		select {
		case <-changed:
		case <-timer.C:
			_, _ = v.sync(wctx)
		case <-wctx.Done():
			timer.Stop()
			return nil, nil, fmt.Errorf("waiting for another replica's rebuild: %w", wctx.Err())
		}
		timer.Stop()
		if st := satisfied(); st != nil {
			return nil, st, nil
		}
	}
}

// freeLock releases l, even when the rebuild's context has expired.
func (v *snapshotView[R, T]) freeLock(l *lease) {
	err := l.free(context.WithoutCancel(v.ctx))
	if v.health.note("unlock", err) != nil {
		v.log.Warn("rebuild lock not released; it expires by itself", "err", err)
	}
}

// fetch lists the source within SourceTimeout. While it runs, the lease
// (if any) is renewed; losing it cancels the listing, since its result
// could not be stored anyway, and fetch returns errLockLost.
func (v *snapshotView[R, T]) fetch(ctx context.Context, l *lease) ([]R, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if l != nil {
		stop := v.keepAlive(ctx, l, cancel)
		defer stop()
	}
	sctx, scancel := context.WithTimeout(ctx, v.cfg.SourceTimeout)
	defer scancel()
	records, err := v.callSource(sctx)
	if cause := context.Cause(ctx); errors.Is(cause, errLockLost) {
		return nil, cause
	}
	return records, err
}

// callSource calls the configured Source with the records served now,
// turning a panic into an error so that a faulty source cannot take the
// process down from a background goroutine.
func (v *snapshotView[R, T]) callSource(ctx context.Context) (records []R, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s source panicked: %v", v.spec.name, r)
		}
	}()
	records, err = v.spec.source(ctx, v.currentRecords())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", v.spec.name, err)
	}
	return records, nil
}

// keepAlive renews l every third of the lock TTL until stop is called. When
// the lock turns out lost it cancels the work with errLockLost; a Redis
// error is only logged, since the fenced store will tell.
func (v *snapshotView[R, T]) keepAlive(ctx context.Context, l *lease, cancel context.CancelCauseFunc) (stop func()) {
	ctx, stopRenew := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(max(v.cfg.LockTTL/3, time.Millisecond))
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			err := l.extend(ctx)
			if errors.Is(err, errLockLost) {
				v.log.Warn("rebuild lock lost while listing the source; abandoning the rebuild")
				cancel(errLockLost)
				return
			}
			if v.health.note("lock_renew", err) != nil && ctx.Err() == nil {
				v.log.Warn("rebuild lock not renewed", "err", err)
			}
		}
	}()
	return func() {
		stopRenew()
		<-done
	}
}

// takeWriter waits, within ctx, for the replica's single writer slot.
func (v *snapshotView[R, T]) takeWriter(ctx context.Context) error {
	select {
	case v.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for this replica's writer: %w", ctx.Err())
	}
}

// tryTakeWriter takes the writer slot only if it is free.
func (v *snapshotView[R, T]) tryTakeWriter() bool {
	select {
	case v.writer <- struct{}{}:
		return true
	default:
		return false
	}
}

func (v *snapshotView[R, T]) dropWriter() { <-v.writer }
