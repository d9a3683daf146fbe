package cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// This file holds the partial reconcile: re-reading a few records from the
// source, under the same cluster-wide lock that orders every commit.
//
// A webhook says that something changed, not what it is now: Logto sends
// each one once, asynchronously and in no order, so a payload may be older
// than what a view already serves. Re-reading the record from Logto gives
// its current state, but a read made outside the lock could still be
// committed after a newer one made elsewhere (two deliveries racing on two
// replicas), rolling the record back or resurrecting a deleted one. Reading
// under the lock closes that: reads and commits happen in one order
// cluster-wide, so each commit carries a read no older than the commit
// before it.

// ResyncFunc re-reads part of a view's records from the source. It gets the
// records the view serves, which it must not modify (they are the served
// snapshot's), and returns the records to serve instead — a new slice, such
// as a slices.Clone of records with some replaced, added or removed — and
// whether they differ; when they do not, nothing is committed. It runs
// under the cluster-wide lock, with ctx bounded by the view's SourceTimeout
// and cancelled if the lock is lost.
type ResyncFunc[R any] func(ctx context.Context, records []R) (next []R, changed bool, err error)

// Resync commits what fn re-reads from the source as a new generation,
// announced to every replica like Apply's changes, and returns the
// generation that includes it (the current one when fn changed nothing).
// Unlike Apply, fn may call the source: it runs under the cluster-wide
// lock, so that concurrent resyncs on several replicas read and commit in
// one order and an older read never overwrites a newer one. The snapshot's
// BuiltAt is kept. With no snapshot loaded it returns ErrNotLoaded (the
// first full listing will include the change anyway).
func (h *HierarchyView) Resync(ctx context.Context, fn ResyncFunc[hierarchy.Record]) (uint64, error) {
	return h.v.resync(ctx, fn)
}

// Resync commits what fn re-reads from the source (see
// HierarchyView.Resync).
func (u *UsersView) Resync(ctx context.Context, fn ResyncFunc[UserRecord]) (uint64, error) {
	return u.v.resync(ctx, fn)
}

// resync is Resync for any view.
func (v *snapshotView[R, T]) resync(ctx context.Context, fn ResyncFunc[R]) (uint64, error) {
	ctx, done, ok := v.enter(ctx)
	if !ok {
		return 0, ErrClosed
	}
	defer done()
	gen, err := v.resyncLocked(ctx, fn)
	if err != nil {
		return 0, fmt.Errorf("cache: resync %s: %w", v.spec.name, err)
	}
	return gen, nil
}

// resyncLocked takes this replica's writer slot and the cluster-wide lock,
// catches up with the latest stored generation, runs fn on it and commits
// the result.
func (v *snapshotView[R, T]) resyncLocked(ctx context.Context, fn ResyncFunc[R]) (uint64, error) {
	if err := v.takeWriter(ctx); err != nil {
		return 0, err
	}
	defer v.dropWriter()
	l, _, err := v.acquireLock(ctx, func() *vstate[R, T] { return nil })
	if err != nil {
		return 0, err
	}
	if l != nil {
		defer v.freeLock(l)
		_, _ = v.sync(ctx)
	}
	cur := v.current.Load()
	if cur == nil {
		return 0, ErrNotLoaded
	}
	next, changed, err := v.reread(ctx, l, cur.records, fn)
	if err != nil || !changed {
		return cur.gen, err
	}
	st, outcome, err := v.commit(ctx, l, next, cur.builtAt)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", outcome, err)
	}
	return st.gen, nil
}

// reread runs fn within SourceTimeout while renewing the lease, as fetch
// does for a full listing; losing the lease cancels fn and returns
// errLockLost. A panicking fn is an error, not a crash.
func (v *snapshotView[R, T]) reread(ctx context.Context, l *lease, records []R, fn ResyncFunc[R]) (next []R, changed bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if l != nil {
		stop := v.keepAlive(ctx, l, cancel)
		defer stop()
	}
	sctx, scancel := context.WithTimeout(ctx, v.cfg.SourceTimeout)
	defer scancel()
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("resync panicked: %v", r)
			}
		}()
		next, changed, err = fn(sctx, records)
	}()
	if cause := context.Cause(ctx); errors.Is(cause, errLockLost) {
		return nil, false, cause
	}
	return next, changed, err
}
