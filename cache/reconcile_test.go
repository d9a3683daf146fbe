package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// changedBehindTheView returns records as the source would list them after
// changes no webhook announced: one renamed, one deleted, two created.
func changedBehindTheView(records []hierarchy.Record) (next []hierarchy.Record, deleted string) {
	next = slices.Clone(records)
	next[5].Name = "renamed behind the view's back"
	deleted = next[6].ID
	next = slices.Delete(next, 6, 7)
	return append(next,
		hierarchy.Record{ID: "new000000001", Name: "created one"},
		hierarchy.Record{ID: "new000000002", Name: "created two"}), deleted
}

func TestReconcileCountsAndRepairsDifferences(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := newSource(50)
	a := newView(t, client, prefix, src, newRecorder())
	b := newView(t, client, prefix, newSource(0), newRecorder())
	startView(t, a)
	startView(t, b)
	ctx := testContext(t)
	if _, err := a.Current(ctx); err != nil {
		t.Fatal(err)
	}
	var deleted string
	src.records, deleted = changedBehindTheView(src.records)

	res, err := a.Reconcile(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := cache.Differences{Added: 2, Removed: 1, Changed: 1}
	if !res.Reconciled || res.Outcome != cache.OutcomeBuilt || res.Generation != 2 || res.Differences != want {
		t.Fatalf("reconcile = %+v, want reconciled, built, generation 2, differences %+v", res, want)
	}
	if res.Differences.Total() != 4 {
		t.Errorf("total %d, want 4", res.Differences.Total())
	}
	// The repair reaches the other replica like any new generation.
	s, err := b.AwaitGeneration(ctx, res.Generation)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Tree.Org(deleted); ok {
		t.Error("the deleted organization is still served")
	}
	if o, ok := s.Tree.Org(src.records[5].ID); !ok || o.Name != "renamed behind the view's back" {
		t.Errorf("renamed organization served as %+v", o)
	}
	if s.Tree.Len() != 51 {
		t.Errorf("%d organizations served, want 51", s.Tree.Len())
	}

	// Nothing changed since: a forced reconcile lists again and finds nothing.
	res, err = a.Reconcile(ctx, 0)
	if err != nil || !res.Reconciled || res.Differences != (cache.Differences{}) {
		t.Errorf("second reconcile = %+v, %v; want reconciled without differences", res, err)
	}
	if n := src.calls.Load(); n != 3 {
		t.Errorf("source listed %d times, want 3", n)
	}
}

func TestReconcileSkipsARecentListing(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	src := newSource(20)
	obs := newRecorder()
	v := newView(t, client, prefix, src, obs, withClock(clock))
	ctx := testContext(t)
	first, err := v.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	obs.nextOutcome(t) // the cold start's rebuild

	clock.Advance(time.Minute)
	res, err := v.Reconcile(ctx, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reconciled || res.Outcome != cache.OutcomeLoaded || res.Generation != first.Generation || !res.BuiltAt.Equal(first.BuiltAt) {
		t.Errorf("reconcile of a one-minute-old snapshot with maxAge 2m = %+v, want skipped", res)
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeLoaded {
		t.Errorf("skipped reconcile reported as %s, want loaded", o)
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("source listed %d times, want 1", n)
	}

	clock.Advance(2 * time.Minute)
	res, err = v.Reconcile(ctx, 2*time.Minute)
	if err != nil || !res.Reconciled || !res.BuiltAt.Equal(clock.Now()) {
		t.Errorf("reconcile of a three-minute-old snapshot = %+v, %v; want reconciled now", res, err)
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeBuilt {
		t.Errorf("reconcile reported as %s, want built", o)
	}
}

// Replicas whose timers fire together list the source once between them:
// the first takes the lock, the others wait and take its snapshot.
func TestReconcileRunsOnceAcrossReplicas(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	src := newSource(30)
	const replicas = 3
	views := make([]*cache.HierarchyView, replicas)
	recorders := make([]*recorder, replicas)
	for i := range views {
		recorders[i] = newRecorder()
		views[i] = newView(t, client, prefix, src, recorders[i], withClock(clock))
		startView(t, views[i])
	}
	ctx := testContext(t)
	if _, err := views[0].Current(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range views[1:] {
		if _, err := v.AwaitGeneration(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(10 * time.Minute)
	src.calls.Store(0)
	held := src.held()

	results := make([]cache.ReconcileResult, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i, v := range views {
		wg.Go(func() { results[i], errs[i] = v.Reconcile(ctx, 5*time.Minute) })
	}
	<-held.entered // one replica lists while the others find the lock held
	eventually(t, "the others wait for the lock", func() bool {
		n := 0
		for _, r := range recorders {
			n += r.count(&r.contended)
		}
		return n == replicas-1
	})
	held.release()
	wg.Wait()

	reconciled := 0
	for i := range views {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		if results[i].Generation != 2 {
			t.Errorf("replica %d ends on generation %d, want 2", i, results[i].Generation)
		}
		if results[i].Reconciled {
			reconciled++
		}
	}
	if reconciled != 1 || src.calls.Load() != 1 {
		t.Errorf("%d replicas reconciled, source listed %d times; want 1 and 1", reconciled, src.calls.Load())
	}
}

func TestReconcileFailureKeepsTheSnapshot(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := newSource(10)
	v := newView(t, client, prefix, src, newRecorder())
	ctx := testContext(t)
	first, err := v.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src.failing.Store(true)
	res, err := v.Reconcile(ctx, 0)
	if !errors.Is(err, errSourceDown) || res.Reconciled || res.Outcome != cache.OutcomeFailed {
		t.Fatalf("reconcile with the source down = %+v, %v", res, err)
	}
	if h := v.Health(); h.Generation != first.Generation || h.LastError == nil {
		t.Errorf("health after a failed reconcile: %+v", h)
	}
}

func TestUsersReconcileCountsDifferences(t *testing.T) {
	client, prefix := cachetest.Client(t)
	tree, orgs := testTree(50)
	src := newUserSource(tree, orgs, 40)
	v := newUsersView(t, client, prefix, src, newRecorder())
	ctx := testContext(t)
	if _, err := v.Current(ctx, tree); err != nil {
		t.Fatal(err)
	}
	next := slices.Clone(src.records)
	next[0].Suspended = !next[0].Suspended
	next[1].HomeCheckedAt = next[1].HomeCheckedAt.Add(time.Hour) // only dates a lookup: not a difference
	next = append(next[:len(next)-1], cache.UserRecord{ID: "newuser00001", CustomData: json.RawMessage(`{}`)})
	src.records = next

	res, err := v.Reconcile(ctx, 0)
	want := cache.Differences{Added: 1, Removed: 1, Changed: 1}
	if err != nil || !res.Reconciled || res.Differences != want {
		t.Fatalf("users reconcile = %+v, %v; want differences %+v", res, err, want)
	}
	snap, err := v.Current(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Users.Get("newuser00001"); !ok {
		t.Error("the new user is not served")
	}
}

// renameTo returns a ResyncFunc that sets one record's name, changing
// nothing when the record is missing or already has it.
func renameTo(id, name string) cache.ResyncFunc[hierarchy.Record] {
	return func(_ context.Context, records []hierarchy.Record) ([]hierarchy.Record, bool, error) {
		i := slices.IndexFunc(records, func(r hierarchy.Record) bool { return r.ID == id })
		if i < 0 || records[i].Name == name {
			return records, false, nil
		}
		next := slices.Clone(records)
		next[i].Name = name
		return next, true, nil
	}
}

func TestResyncCommitsAndAnnouncesAChange(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := newSource(20)
	a := newView(t, client, prefix, src, newRecorder())
	b := newView(t, client, prefix, newSource(0), newRecorder())
	startView(t, a)
	startView(t, b)
	ctx := testContext(t)
	id := src.records[3].ID

	if _, err := a.Resync(ctx, renameTo(id, "x")); !errors.Is(err, cache.ErrNotLoaded) {
		t.Fatalf("resync with nothing loaded = %v, want ErrNotLoaded", err)
	}
	first, err := a.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := a.Resync(ctx, renameTo(id, "renamed"))
	if err != nil || gen != 2 {
		t.Fatalf("resync = %d, %v; want generation 2", gen, err)
	}
	s, err := b.AwaitGeneration(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := s.Tree.Org(id); o.Name != "renamed" || !s.BuiltAt.Equal(first.BuiltAt) {
		t.Errorf("b serves %q built %v, want renamed built %v", o.Name, s.BuiltAt, first.BuiltAt)
	}

	// Nothing to change (a duplicate delivery): no new generation.
	if gen, err := a.Resync(ctx, renameTo(id, "renamed")); err != nil || gen != 2 {
		t.Errorf("no-op resync = %d, %v; want generation 2 kept", gen, err)
	}
	// A failing or panicking re-read commits nothing.
	boom := errors.New("logto down")
	if _, err := a.Resync(ctx, func(context.Context, []hierarchy.Record) ([]hierarchy.Record, bool, error) {
		return nil, true, boom
	}); !errors.Is(err, boom) {
		t.Errorf("failing resync = %v, want %v", err, boom)
	}
	if _, err := a.Resync(ctx, func(context.Context, []hierarchy.Record) ([]hierarchy.Record, bool, error) {
		panic("faulty re-read")
	}); err == nil {
		t.Error("panicking resync reported no error")
	}
	if h := a.Health(); h.Generation != 2 {
		t.Errorf("generation %d after failed resyncs, want 2", h.Generation)
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("source listed %d times, want 1 (a resync is not a rebuild)", n)
	}
}

// Two replicas re-reading the same record at once read and commit in one
// order: the second re-read starts only once the first is committed, and
// sees it. This is what keeps an older read from overwriting a newer one.
func TestResyncsOnTwoReplicasReadInCommitOrder(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := newSource(20)
	a := newView(t, client, prefix, src, newRecorder())
	bObs := newRecorder()
	b := newView(t, client, prefix, newSource(0), bObs)
	startView(t, a)
	startView(t, b)
	ctx := testContext(t)
	if _, err := a.Current(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AwaitGeneration(ctx, 1); err != nil {
		t.Fatal(err)
	}
	id := src.records[4].ID

	reading := make(chan struct{})
	finish := make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		_, err := a.Resync(ctx, func(c context.Context, records []hierarchy.Record) ([]hierarchy.Record, bool, error) {
			close(reading)
			select { // a slow read from Logto, holding the lock
			case <-finish:
			case <-c.Done():
				return nil, false, c.Err()
			}
			return renameTo(id, "first")(c, records)
		})
		firstDone <- err
	}()
	<-reading

	var seen string
	secondDone := make(chan error, 1)
	go func() {
		_, err := b.Resync(ctx, func(c context.Context, records []hierarchy.Record) ([]hierarchy.Record, bool, error) {
			i := slices.IndexFunc(records, func(r hierarchy.Record) bool { return r.ID == id })
			seen = records[i].Name
			return renameTo(id, "second")(c, records)
		})
		secondDone <- err
	}()
	eventually(t, "the second resync waits for the lock", func() bool { return bObs.count(&bObs.contended) > 0 })
	close(finish)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	if err := <-secondDone; err != nil {
		t.Fatal(err)
	}
	if seen != "first" {
		t.Errorf("the second re-read saw %q, want the first one's commit", seen)
	}
	s, err := a.AwaitGeneration(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := s.Tree.Org(id); o.Name != "second" {
		t.Errorf("served name %q, want second", o.Name)
	}
}

func TestUsersResync(t *testing.T) {
	client, prefix := cachetest.Client(t)
	tree, orgs := testTree(30)
	src := newUserSource(tree, orgs, 10)
	v := newUsersView(t, client, prefix, src, newRecorder())
	ctx := testContext(t)
	if _, err := v.Current(ctx, tree); err != nil {
		t.Fatal(err)
	}
	gone := src.records[2].ID
	gen, err := v.Resync(ctx, func(_ context.Context, records []cache.UserRecord) ([]cache.UserRecord, bool, error) {
		return slices.DeleteFunc(slices.Clone(records), func(r cache.UserRecord) bool { return r.ID == gone }), true, nil
	})
	if err != nil || gen != 2 {
		t.Fatalf("users resync = %d, %v", gen, err)
	}
	snap, err := v.Current(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Users.Get(gone); ok || snap.Users.Len() != 9 {
		t.Errorf("deleted user still served (%d users)", snap.Users.Len())
	}
}

func TestSameRecord(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	base := hierarchy.Record{ID: "a", Name: "n", Description: "d", CreatedAt: at, CustomData: json.RawMessage(`{"type":"customer","x":[1,2]}`)}
	same := base
	same.CustomData = json.RawMessage("{ \"type\": \"customer\",\n \"x\": [1, 2] }")
	same.CreatedAt = at.In(time.FixedZone("x", 3600))
	if !cache.SameRecord(&base, &same) {
		t.Error("whitespace and time zone made a difference")
	}
	for name, edit := range map[string]func(r *hierarchy.Record){
		"name":        func(r *hierarchy.Record) { r.Name = "m" },
		"description": func(r *hierarchy.Record) { r.Description = "" },
		"created":     func(r *hierarchy.Record) { r.CreatedAt = at.Add(time.Millisecond) },
		"custom data": func(r *hierarchy.Record) { r.CustomData = json.RawMessage(`{"type":"reseller","x":[1,2]}`) },
		"invalid":     func(r *hierarchy.Record) { r.CustomData = json.RawMessage(`{`) },
		"absent":      func(r *hierarchy.Record) { r.CustomData = nil },
	} {
		other := base
		edit(&other)
		if cache.SameRecord(&base, &other) {
			t.Errorf("a different %s compared equal", name)
		}
	}
}

func TestSameUserRecord(t *testing.T) {
	phone, other := "+1", "+2"
	base := cache.UserRecord{ID: "u", Phone: &phone, CustomData: json.RawMessage(`{}`),
		Roles: []cache.RoleRef{{ID: "r", Name: "Admin"}}, CreatedBy: &hierarchy.Creator{UserID: "c"}}
	same := base
	samePhone := "+1"
	same.Phone, same.CreatedBy = &samePhone, &hierarchy.Creator{UserID: "c"}
	same.HomeCheckedAt = time.Now()
	if !cache.SameUserRecord(&base, &same) {
		t.Error("equal pointees or a lookup's date made a difference")
	}
	for name, edit := range map[string]func(r *cache.UserRecord){
		"phone":     func(r *cache.UserRecord) { r.Phone = &other },
		"no phone":  func(r *cache.UserRecord) { r.Phone = nil },
		"suspended": func(r *cache.UserRecord) { r.Suspended = true },
		"home":      func(r *cache.UserRecord) { r.HomeOrgID, r.HomeSource = "o", cache.HomeMembership },
		"roles":     func(r *cache.UserRecord) { r.Roles = nil },
		"creator":   func(r *cache.UserRecord) { r.CreatedBy = &hierarchy.Creator{UserID: "d"} },
		"sign-in":   func(r *cache.UserRecord) { r.LastSignInAt = time.Unix(1, 0) },
	} {
		changed := base
		edit(&changed)
		if cache.SameUserRecord(&base, &changed) {
			t.Errorf("a different %s compared equal", name)
		}
	}
}

// BenchmarkResyncOneRecord measures what one webhook costs the replica
// that commits it, on a 100,000-organization hierarchy: the cluster-wide
// lock, re-deriving the tree, encoding and storing the snapshot.
func BenchmarkResyncOneRecord(b *testing.B) {
	client, prefix := cachetest.Client(b)
	src := &countingSource{records: cache.GenRecords(100_000, 1)}
	v, err := cache.NewHierarchyView(cache.HierarchyConfig{Client: client, Prefix: prefix, Source: src.List,
		CheckInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = v.Close() })
	ctx := context.Background()
	if _, err := v.Current(ctx); err != nil {
		b.Fatal(err)
	}
	id := src.records[500].ID
	i := 0
	for b.Loop() {
		i++
		if _, err := v.Resync(ctx, renameTo(id, fmt.Sprint("renamed ", i))); err != nil {
			b.Fatal(err)
		}
	}
}
