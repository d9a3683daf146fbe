package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// This file holds the full reconcile: a rebuild from a complete listing of
// the source, like the one a read past the soft TTL triggers, that also
// counts how the listing differs from the snapshot it replaces. Webhooks
// keep the views fresh incrementally, but Logto sends each of them once, in
// no order, and none for some changes; the reconcile is what repairs a view
// a lost webhook left behind, and its differences say how often that
// happens.

// Differences counts, by record id, how a fresh listing differs from the
// records a view served.
type Differences struct {
	// Added: in the listing, not served. Removed: served, not in the
	// listing. Changed: in both, with different contents.
	Added, Removed, Changed int
}

// Total is the number of records that differed.
func (d Differences) Total() int { return d.Added + d.Removed + d.Changed }

// ReconcileResult says what one Reconcile call did.
type ReconcileResult struct {
	// Reconciled is true when this call listed the source. It is false when
	// the snapshot served had been listed recently enough already (by
	// another replica, typically): nothing was listed, and Outcome is
	// OutcomeLoaded.
	Reconciled bool
	// Outcome is how the rebuild ended: OutcomeBuilt, OutcomeLocal (Redis
	// could not store it), or OutcomeLoaded when skipped.
	Outcome RebuildOutcome
	// Generation and BuiltAt describe the snapshot served afterwards.
	Generation uint64
	BuiltAt    time.Time
	// Differences between the snapshot served before and the listing; zero
	// unless Reconciled.
	Differences Differences
}

// Reconcile rebuilds the hierarchy from a full listing, as a read past the
// soft TTL would, and reports how the listing differed from the snapshot it
// replaced. Like every rebuild it runs one replica at a time cluster-wide.
// It does nothing when the snapshot served, or one another replica stores
// meanwhile, was listed less than maxAge ago (maxAge <= 0 always lists), so
// that replicas reconciling on their own timers list the source about once
// per maxAge between them. ctx bounds the waits and the listing.
func (h *HierarchyView) Reconcile(ctx context.Context, maxAge time.Duration) (ReconcileResult, error) {
	return h.v.reconcile(ctx, maxAge, func(served, fresh []hierarchy.Record) Differences {
		return diffRecords(served, fresh, func(r *hierarchy.Record) string { return r.ID }, SameRecord)
	})
}

// Reconcile rebuilds the users from a full listing and reports the
// differences (see HierarchyView.Reconcile).
func (u *UsersView) Reconcile(ctx context.Context, maxAge time.Duration) (ReconcileResult, error) {
	return u.v.reconcile(ctx, maxAge, func(served, fresh []UserRecord) Differences {
		return diffRecords(served, fresh, func(r *UserRecord) string { return r.ID }, SameUserRecord)
	})
}

// SameRecord reports whether two organization records say the same thing.
// CustomData is compared as JSON, so that a difference of whitespace alone
// is not a change.
func SameRecord(a, b *hierarchy.Record) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Description == b.Description &&
		a.CreatedAt.Equal(b.CreatedAt) && sameJSON(a.CustomData, b.CustomData)
}

// SameUserRecord reports whether two user records say the same thing.
// HomeCheckedAt, which only dates a lookup, is not compared.
func SameUserRecord(a, b *UserRecord) bool {
	return a.ID == b.ID && a.Username == b.Username && a.Email == b.Email && a.Name == b.Name &&
		equalPtr(a.Phone, b.Phone) && sameJSON(a.CustomData, b.CustomData) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt) && a.LastSignInAt.Equal(b.LastSignInAt) &&
		a.Suspended == b.Suspended && a.HomeOrgID == b.HomeOrgID && a.HomeSource == b.HomeSource &&
		slices.Equal(a.Roles, b.Roles) && equalPtr(a.CreatedBy, b.CreatedBy) && a.CreatedByOrgID == b.CreatedByOrgID
}

// equalPtr reports whether two optional values are both absent or equal.
func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// sameJSON reports whether two JSON texts are equal once insignificant
// whitespace is removed; invalid JSON compares byte for byte.
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// diffRecords counts the differences between served and fresh, matching
// records by id.
func diffRecords[R any](served, fresh []R, id func(*R) string, same func(a, b *R) bool) Differences {
	before := make(map[string]*R, len(served))
	for i := range served {
		before[id(&served[i])] = &served[i]
	}
	var d Differences
	for i := range fresh {
		r := &fresh[i]
		old, ok := before[id(r)]
		switch {
		case !ok:
			d.Added++
		case !same(old, r):
			d.Changed++
		}
		delete(before, id(r))
	}
	d.Removed = len(before)
	return d
}

// reconcile is Reconcile for any view; diff compares the records served
// with the fresh listing.
func (v *snapshotView[R, T]) reconcile(ctx context.Context, maxAge time.Duration, diff func(served, fresh []R) Differences) (ReconcileResult, error) {
	ctx, done, ok := v.enter(ctx)
	if !ok {
		return ReconcileResult{}, ErrClosed
	}
	defer done()
	satisfied := func() *vstate[R, T] { return nil }
	if maxAge > 0 {
		notBefore := v.cfg.Now().Add(-maxAge)
		satisfied = func() *vstate[R, T] { return v.satisfying(notBefore) }
	}
	start := time.Now()
	res, st, err := v.reconcileOnce(ctx, satisfied, diff)
	v.settle(err)
	v.report(start, st, res.Outcome, err)
	if err != nil {
		return res, fmt.Errorf("cache: reconcile %s: %w", v.spec.name, err)
	}
	return res, nil
}

// reconcileOnce is rebuildOnce with the served records kept for the diff:
// it lists the source under the cluster-wide lock unless satisfied finds a
// recent enough snapshot first — in memory, in Redis, or stored by the
// replica holding the lock while this one waited.
func (v *snapshotView[R, T]) reconcileOnce(ctx context.Context, satisfied func() *vstate[R, T], diff func(served, fresh []R) Differences) (ReconcileResult, *vstate[R, T], error) {
	skipped := func(st *vstate[R, T]) (ReconcileResult, *vstate[R, T], error) {
		return ReconcileResult{Outcome: OutcomeLoaded, Generation: st.gen, BuiltAt: st.builtAt}, st, nil
	}
	failed := func(outcome RebuildOutcome, err error) (ReconcileResult, *vstate[R, T], error) {
		return ReconcileResult{Outcome: outcome}, nil, err
	}
	if st := satisfied(); st != nil {
		return skipped(st)
	}
	if err := v.takeWriter(ctx); err != nil {
		return failed(OutcomeFailed, err)
	}
	defer v.dropWriter()
	_, _ = v.sync(ctx)
	if st := satisfied(); st != nil {
		return skipped(st)
	}
	l, st, err := v.acquireLock(ctx, satisfied)
	switch {
	case st != nil:
		return skipped(st)
	case err != nil:
		return failed(OutcomeFailed, err)
	case l != nil:
		defer v.freeLock(l)
		_, _ = v.sync(ctx)
		if st := satisfied(); st != nil {
			return skipped(st)
		}
	}

	served := v.currentRecords()
	builtAt := v.cfg.Now()
	fresh, err := v.fetch(ctx, l)
	if errors.Is(err, errLockLost) {
		return failed(OutcomeFenced, err)
	}
	if err != nil {
		return failed(OutcomeFailed, err)
	}
	d := diff(served, fresh)
	st, outcome, err := v.commit(ctx, l, fresh, builtAt)
	if err != nil {
		return failed(outcome, err)
	}
	return ReconcileResult{Reconciled: true, Outcome: outcome, Generation: st.gen, BuiltAt: st.builtAt, Differences: d}, st, nil
}
