package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/hierarchy"
)

func TestColdStartThousandReadersOneRebuild(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := newSource(500).held()
	obs := newRecorder()
	v := newView(t, client, prefix, src, obs)
	startView(t, v)
	ctx := testContext(t)

	const readers = 1000
	var wg sync.WaitGroup
	snaps := make([]cache.Snapshot, readers)
	errs := make([]error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snaps[i], errs[i] = v.Current(ctx)
		}()
	}
	// Hold the one listing until every reader is waiting for it.
	<-src.entered
	eventually(t, "all readers waiting", func() bool { return obs.count(&obs.misses) == readers })
	src.release()
	wg.Wait()

	if n := src.calls.Load(); n != 1 {
		t.Fatalf("source listed %d times, want 1", n)
	}
	for i := range readers {
		if errs[i] != nil {
			t.Fatalf("reader %d: %v", i, errs[i])
		}
		if snaps[i].Generation != 1 || snaps[i].Tree.Len() != 500 || snaps[i].Stale {
			t.Fatalf("reader %d got generation %d with %d orgs (stale %v), want generation 1 with 500",
				i, snaps[i].Generation, snaps[i].Tree.Len(), snaps[i].Stale)
		}
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeBuilt {
		t.Errorf("rebuild outcome %q, want %q", o, cache.OutcomeBuilt)
	}
	if g := storedGeneration(t, client, prefix); g != "1" {
		t.Errorf("stored generation %q, want 1", g)
	}
	if h := v.Health(); !h.Loaded || !h.RedisOK || h.PendingWrite || h.LastError != nil || h.Orgs != 500 {
		t.Errorf("health = %+v", h)
	}
}

func TestSecondReplicaLoadsSnapshotWithoutSource(t *testing.T) {
	client, prefix := cachetest.Client(t)
	srcA := newSource(300)
	a := newView(t, client, prefix, srcA, newRecorder())
	startView(t, a)
	ctx := testContext(t)
	first, err := a.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}

	srcB := newSource(0)
	b := newView(t, client, prefix, srcB, newRecorder())
	startView(t, b)
	if !b.Ready() {
		t.Fatal("second replica not ready after Start")
	}
	got, err := b.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := srcB.calls.Load(); n != 0 {
		t.Errorf("second replica listed the source %d times, want 0", n)
	}
	if got.Generation != first.Generation || got.Tree.Len() != 300 || !got.BuiltAt.Equal(first.BuiltAt) {
		t.Errorf("second replica serves generation %d (%d orgs, built %v), want %d (300 orgs, built %v)",
			got.Generation, got.Tree.Len(), got.BuiltAt, first.Generation, first.BuiltAt)
	}
}

func TestTwoReplicasColdStartListOnce(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := newSource(200).held()
	obsA, obsB := newRecorder(), newRecorder()
	a := newView(t, client, prefix, src, obsA)
	b := newView(t, client, prefix, src, obsB)
	startView(t, a)
	startView(t, b)
	ctx := testContext(t)

	results := make(chan cache.Snapshot, 2)
	read := func(v *cache.HierarchyView) {
		s, err := v.Current(ctx)
		if err != nil {
			t.Error(err)
		}
		results <- s
	}
	go read(a)
	<-src.entered // a holds the lock and lists
	go read(b)
	eventually(t, "b waits for a's lock", func() bool { return obsB.count(&obsB.contended) == 1 })
	src.release()

	for range 2 {
		if s := <-results; s.Generation != 1 || s.Tree == nil || s.Tree.Len() != 200 {
			t.Errorf("got generation %d, want 1 with 200 orgs", s.Generation)
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("source listed %d times across two replicas, want 1", n)
	}
	if o := obsB.nextOutcome(t); o != cache.OutcomeLoaded {
		t.Errorf("b's outcome %q, want %q", o, cache.OutcomeLoaded)
	}
}

func TestStaleServingDuringSourceOutage(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	src := newSource(100)
	obs := newRecorder()
	v := newView(t, client, prefix, src, obs, withClock(clock))
	startView(t, v)
	ctx := testContext(t)

	if _, err := v.Current(ctx); err != nil {
		t.Fatal(err)
	}
	obs.nextOutcome(t)
	src.failing.Store(true)

	// Past the soft TTL: served as is, one background rebuild, which fails.
	clock.Advance(2 * time.Minute)
	s, err := v.Current(ctx)
	if err != nil || s.Generation != 1 || s.Stale {
		t.Fatalf("past soft TTL: generation %d, stale %v, err %v; want 1, false, nil", s.Generation, s.Stale, err)
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeFailed {
		t.Fatalf("outcome %q, want %q", o, cache.OutcomeFailed)
	}
	if h := v.Health(); !errors.Is(h.LastError, errSourceDown) {
		t.Errorf("health's last error = %v, want the source's", h.LastError)
	}
	// Within the retry backoff, reads do not retry.
	if _, err := v.Current(ctx); err != nil {
		t.Fatal(err)
	}

	// Past the hard TTL: still served, marked stale and counted.
	clock.Advance(9 * time.Minute)
	s, err = v.Current(ctx)
	if err != nil || s.Generation != 1 || !s.Stale {
		t.Fatalf("past hard TTL: generation %d, stale %v, err %v; want 1, true, nil", s.Generation, s.Stale, err)
	}
	if n := obs.count(&obs.stale); n != 1 {
		t.Errorf("stale serves counted %d, want 1", n)
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeFailed {
		t.Fatalf("outcome %q, want %q", o, cache.OutcomeFailed)
	}

	// The source recovers: the next read past the backoff rebuilds.
	src.failing.Store(false)
	clock.Advance(time.Minute)
	if s, _ := v.Current(ctx); !s.Stale {
		t.Error("read before the rebuild is not stale")
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeBuilt {
		t.Fatalf("outcome %q, want %q", o, cache.OutcomeBuilt)
	}
	s, err = v.Current(ctx)
	if err != nil || s.Generation != 2 || s.Stale || !s.BuiltAt.Equal(clock.Now()) {
		t.Errorf("after recovery: generation %d, stale %v, built %v, err %v; want 2, fresh, now", s.Generation, s.Stale, s.BuiltAt, err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	// One build, two failures, one rebuild: the read within the backoff
	// did not reach the source.
	if n := src.calls.Load(); n != 4 {
		t.Errorf("source listed %d times, want 4", n)
	}
}

func TestRedisRestartRecovery(t *testing.T) {
	srv := cachetest.StartServer(t)
	client := srv.Client()
	prefix := cachetest.Prefix(t)
	clock := newFakeClock()
	src := newSource(150)
	obs := newRecorder()
	v := newView(t, client, prefix, src, obs, withClock(clock), withCheck(10*time.Millisecond))
	startView(t, v)
	ctx := testContext(t)
	if _, err := v.Current(ctx); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	eventually(t, "redis reported down", func() bool { return !v.Health().RedisOK })
	if s, err := v.Current(ctx); err != nil || s.Generation != 1 {
		t.Fatalf("with redis down: generation %d, err %v; want 1 served from memory", s.Generation, err)
	}
	if obs.count(&obs.redisErrors) == 0 {
		t.Error("redis errors not counted")
	}
	// A rebuild while Redis is down is kept in memory for writing back.
	clock.Advance(time.Second)
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if h := v.Health(); h.Generation != 2 || !h.PendingWrite {
		t.Fatalf("after a rebuild with redis down: health %+v, want generation 2 pending", h)
	}

	srv.Start() // empty, as a server without persistence comes back
	eventually(t, "snapshot written back", func() bool {
		h := v.Health()
		return h.RedisOK && !h.PendingWrite
	})
	if g := storedGeneration(t, client, prefix); g != "2" {
		t.Fatalf("stored generation after recovery %q, want 2", g)
	}

	// A replica started now gets the written-back snapshot.
	srcB := newSource(0)
	b := newView(t, srv.Client(), prefix, srcB, newRecorder())
	startView(t, b)
	s, err := b.Current(ctx)
	if err != nil || s.Generation != 2 || s.Tree.Len() != 150 || srcB.calls.Load() != 0 {
		t.Errorf("new replica: generation %d, %d orgs, %d listings, err %v; want 2, 150, 0",
			s.Generation, s.Tree.Len(), srcB.calls.Load(), err)
	}
}

func TestRedisDownAtStartStillServes(t *testing.T) {
	srv := cachetest.StartServer(t)
	client := srv.Client()
	srv.Stop()
	src := newSource(10)
	obs := newRecorder()
	v := newView(t, client, cachetest.Prefix(t), src, obs)
	startView(t, v)

	s, err := v.Current(testContext(t))
	if err != nil || s.Generation != 1 || s.Tree.Len() != 10 {
		t.Fatalf("generation %d, err %v; want generation 1 built from the source", s.Generation, err)
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeLocal {
		t.Errorf("outcome %q, want %q", o, cache.OutcomeLocal)
	}
	if h := v.Health(); h.RedisOK || !h.PendingWrite || !h.Loaded {
		t.Errorf("health %+v, want loaded, redis down, write pending", h)
	}
}

func TestLostLockFencesTheStore(t *testing.T) {
	client, prefix := cachetest.Client(t)
	checkLostLockFencesTheStore(t, client, prefix)
}

// checkLostLockFencesTheStore: a rebuild whose lock is taken over by
// another replica while it lists stores nothing, leaves the other holder's
// lock alone and is not served (also run on a Redis Cluster).
func checkLostLockFencesTheStore(t *testing.T, client redis.UniversalClient, prefix string) {
	t.Helper()
	src := newSource(20).held()
	obs := newRecorder()
	v := newView(t, client, prefix, src, obs)
	ctx := testContext(t)

	done := make(chan error, 1)
	go func() { done <- v.Refresh(ctx) }()
	<-src.entered
	// The lock expires and another replica takes it while this one lists.
	lockKey := prefix + "{hierarchy}:lock"
	if err := client.Set(ctx, lockKey, "999:intruder", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	src.release()

	if err := <-done; !errors.Is(err, cache.ErrLockLost) {
		t.Fatalf("Refresh = %v, want a lost lock", err)
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeFenced {
		t.Errorf("outcome %q, want %q", o, cache.OutcomeFenced)
	}
	if g := storedGeneration(t, client, prefix); g != "" {
		t.Errorf("a fenced replica stored generation %q", g)
	}
	if n, _ := client.Exists(ctx, prefix+"{hierarchy}:snapshot").Result(); n != 0 {
		t.Error("a fenced replica stored a snapshot")
	}
	if got, _ := client.Get(ctx, lockKey).Result(); got != "999:intruder" {
		t.Errorf("the other holder's lock became %q", got)
	}
	if v.Ready() {
		t.Error("the fenced build is served")
	}
}

func TestAnnouncementReachesOtherReplica(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	a := newView(t, client, prefix, newSource(40), newRecorder(), withClock(clock))
	srcB := newSource(0)
	b := newView(t, client, prefix, srcB, newRecorder(), withClock(clock))
	startView(t, a)
	startView(t, b)
	ctx := testContext(t)

	if _, err := a.Current(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AwaitGeneration(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// b polls only hourly: generation 2 can reach it only by pub/sub.
	clock.Advance(time.Second)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := b.AwaitGeneration(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.Generation != 2 || s.Tree.Len() != 40 || srcB.calls.Load() != 0 {
		t.Errorf("b: generation %d, %d orgs, %d listings; want 2, 40, 0", s.Generation, s.Tree.Len(), srcB.calls.Load())
	}
}

func TestMissedAnnouncementNoticedByCheck(t *testing.T) {
	client, prefix := cachetest.Client(t)
	ctx := testContext(t)
	// Build a generation-2 snapshot under another prefix...
	other := prefix + "other:"
	clock := newFakeClock()
	a := newView(t, client, other, newSource(30), newRecorder(), withClock(clock))
	if _, err := a.Current(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	blob, err := client.Get(ctx, other+"{hierarchy}:snapshot").Bytes()
	if err != nil {
		t.Fatal(err)
	}

	srcB := newSource(0)
	b := newView(t, client, prefix, srcB, newRecorder(), withCheck(10*time.Millisecond))
	startView(t, b)
	// ...and store it as b's, without announcing it.
	if err := client.Set(ctx, prefix+"{hierarchy}:snapshot", blob, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.Set(ctx, prefix+"{hierarchy}:generation", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s, err := b.AwaitGeneration(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.Tree.Len() != 30 || srcB.calls.Load() != 0 {
		t.Errorf("b: %d orgs, %d listings; want 30, 0", s.Tree.Len(), srcB.calls.Load())
	}
}

func TestUnknownSnapshotFormatIsAbsent(t *testing.T) {
	client, prefix := cachetest.Client(t)
	ctx := testContext(t)
	future := append([]byte("LPXH\x00\x09\x00\x01"), make([]byte, 64)...) // format version 9
	if err := client.Set(ctx, prefix+"{hierarchy}:snapshot", future, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.Set(ctx, prefix+"{hierarchy}:generation", "5", 0).Err(); err != nil {
		t.Fatal(err)
	}
	src := newSource(25)
	v := newView(t, client, prefix, src, newRecorder())
	startView(t, v)

	s, err := v.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Generation != 6 || s.Tree.Len() != 25 || src.calls.Load() != 1 {
		t.Errorf("generation %d, %d orgs, %d listings; want 6 (above the unknown 5), 25, 1",
			s.Generation, s.Tree.Len(), src.calls.Load())
	}
	if g := storedGeneration(t, client, prefix); g != "6" {
		t.Errorf("stored generation %q, want 6", g)
	}
}

func TestApplyStoresAndAnnouncesAChange(t *testing.T) {
	client, prefix := cachetest.Client(t)
	srcA := newSource(60)
	a := newView(t, client, prefix, srcA, newRecorder())
	b := newView(t, client, prefix, newSource(0), newRecorder())
	startView(t, a)
	startView(t, b)
	ctx := testContext(t)

	if _, err := a.Apply(ctx, func(r []hierarchy.Record) []hierarchy.Record { return r }); !errors.Is(err, cache.ErrNotLoaded) {
		t.Fatalf("Apply with nothing loaded = %v, want ErrNotLoaded", err)
	}
	first, err := a.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := a.Apply(ctx, func(r []hierarchy.Record) []hierarchy.Record {
		return append(r, hierarchy.Record{ID: "new000000001", Name: "created by webhook"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if gen != 2 {
		t.Fatalf("Apply gave generation %d, want 2", gen)
	}
	s, err := b.AwaitGeneration(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.Tree.Len() != 61 || !s.BuiltAt.Equal(first.BuiltAt) {
		t.Errorf("b: %d orgs built %v, want 61 built %v (a change keeps the listing's time)", s.Tree.Len(), s.BuiltAt, first.BuiltAt)
	}
	if n := srcA.calls.Load(); n != 1 {
		t.Errorf("source listed %d times, want 1", n)
	}
	if cur, _ := a.Current(ctx); cur.Tree.Len() != 61 || first.Tree.Len() != 60 {
		t.Errorf("a serves %d orgs, first snapshot now %d; want 61 and 60 (snapshots are immutable)", cur.Tree.Len(), first.Tree.Len())
	}
}

func TestConcurrentAppliesOnTwoReplicasKeepEveryChange(t *testing.T) {
	client, prefix := cachetest.Client(t)
	a := newView(t, client, prefix, newSource(10), newRecorder())
	b := newView(t, client, prefix, newSource(10), newRecorder())
	startView(t, a)
	startView(t, b)
	ctx := testContext(t)
	if _, err := a.Current(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AwaitGeneration(ctx, 1); err != nil {
		t.Fatal(err)
	}

	const perReplica = 10
	var wg sync.WaitGroup
	gens := make(chan uint64, 2*perReplica)
	for r, v := range []*cache.HierarchyView{a, b} {
		for i := range perReplica {
			wg.Add(1)
			go func() {
				defer wg.Done()
				gen, err := v.Apply(ctx, func(recs []hierarchy.Record) []hierarchy.Record {
					return append(recs, hierarchy.Record{ID: fmt.Sprintf("r%d-%d", r, i)})
				})
				if err != nil {
					t.Error(err)
				}
				gens <- gen
			}()
		}
	}
	wg.Wait()
	close(gens)
	var last uint64
	for g := range gens {
		last = max(last, g)
	}
	for _, v := range []*cache.HierarchyView{a, b} {
		s, err := v.AwaitGeneration(ctx, last)
		if err != nil {
			t.Fatal(err)
		}
		if s.Generation != last || s.Tree.Len() != 10+2*perReplica {
			t.Errorf("generation %d with %d orgs, want %d with %d", s.Generation, s.Tree.Len(), last, 10+2*perReplica)
		}
	}
}

func TestAppliesWaitingForTheLockCommitAsOneGeneration(t *testing.T) {
	client, prefix := cachetest.Client(t)
	obs := newRecorder()
	v := newView(t, client, prefix, newSource(10), obs)
	ctx := testContext(t)
	if _, err := v.Current(ctx); err != nil {
		t.Fatal(err)
	}
	// Another replica holds the lock while five changes arrive here.
	other, err := cache.NewTestLock(client, prefix, time.Minute).TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const changes = 5
	gens := make(chan uint64, changes)
	for i := range changes {
		go func() {
			gen, err := v.Apply(ctx, func(recs []hierarchy.Record) []hierarchy.Record {
				if i == 3 {
					panic("a faulty change")
				}
				return append(recs, hierarchy.Record{ID: fmt.Sprintf("c%d", i)})
			})
			if (err != nil) != (i == 3) {
				t.Errorf("change %d: err = %v", i, err)
			}
			gens <- gen
		}()
	}
	eventually(t, "all changes queued", func() bool { return cache.ApplyQueueLen(v) == changes })
	if err := other.Free(ctx); err != nil {
		t.Fatal(err)
	}
	for range changes {
		if g := <-gens; g != 2 && g != 0 {
			t.Errorf("a change committed as generation %d, want all in 2", g)
		}
	}
	s, err := v.Current(ctx)
	if err != nil || s.Generation != 2 || s.Tree.Len() != 10+changes-1 {
		t.Errorf("generation %d with %d orgs (%v), want 2 with %d", s.Generation, s.Tree.Len(), err, 10+changes-1)
	}
}

func TestHierarchyConfigValidation(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := func(context.Context) ([]hierarchy.Record, error) { return nil, nil }
	bad := map[string]cache.HierarchyConfig{
		"no client":       {Source: src},
		"no source":       {Client: client},
		"negative":        {Client: client, Source: src, LockTTL: -time.Second},
		"hard below soft": {Client: client, Source: src, SoftTTL: time.Hour, HardTTL: time.Minute},
	}
	for name, cfg := range bad {
		if _, err := cache.NewHierarchyView(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	v, err := cache.NewHierarchyView(cache.HierarchyConfig{Client: client, Prefix: prefix, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Start(testContext(t)); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	if _, err := v.Current(testContext(t)); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Current on a closed, empty view = %v, want ErrClosed", err)
	}
}

func TestSourcePanicIsAnError(t *testing.T) {
	client, prefix := cachetest.Client(t)
	v, err := cache.NewHierarchyView(cache.HierarchyConfig{
		Client: client, Prefix: prefix,
		Source: func(context.Context) ([]hierarchy.Record, error) { panic("boom") },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	if _, err := v.Current(testContext(t)); err == nil {
		t.Fatal("a panicking source gave no error")
	}
}

func TestRebuildLock(t *testing.T) {
	client, prefix := cachetest.Client(t)
	checkRebuildLock(t, client, prefix)
}

// checkRebuildLock: the rebuild lock alone is exclusive, renewable by its
// holder, fenced by growing tokens, and an old holder cannot free a new
// one's lock; it ends free (also run on a Redis Cluster).
func checkRebuildLock(t *testing.T, client redis.UniversalClient, prefix string) {
	t.Helper()
	ctx := testContext(t)
	lock := cache.NewTestLock(client, prefix, time.Minute)

	first, err := lock.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.TryAcquire(ctx); !errors.Is(err, cache.ErrLockHeld) {
		t.Fatalf("second acquire = %v, want ErrLockHeld", err)
	}
	if err := first.Extend(ctx); err != nil {
		t.Fatalf("holder's extend: %v", err)
	}
	if err := first.Free(ctx); err != nil {
		t.Fatal(err)
	}
	if err := first.Extend(ctx); !errors.Is(err, cache.ErrLockLost) {
		t.Errorf("extend after free = %v, want ErrLockLost", err)
	}
	second, err := lock.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Fencing tokens grow, and an old holder cannot free a new one's lock.
	if !fenceLess(t, first.Token(), second.Token()) {
		t.Errorf("tokens %q then %q do not grow", first.Token(), second.Token())
	}
	if err := first.Free(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.TryAcquire(ctx); !errors.Is(err, cache.ErrLockHeld) {
		t.Errorf("a stale holder's free released the lock: %v", err)
	}
	if err := second.Free(ctx); err != nil {
		t.Fatal(err)
	}
}

// fenceLess compares the counter part of two fencing tokens.
func fenceLess(t *testing.T, a, b string) bool {
	t.Helper()
	num := func(token string) int {
		fence, _, ok := strings.Cut(token, ":")
		n, err := strconv.Atoi(fence)
		if !ok || err != nil {
			t.Fatalf("token %q has no fence number", token)
		}
		return n
	}
	return num(a) < num(b)
}

func TestCloseEndsARefreshInProgress(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := newSource(5).held()
	v := newView(t, client, prefix, src, newRecorder())
	ctx := testContext(t)

	done := make(chan error, 1)
	go func() { done <- v.Refresh(ctx) }()
	<-src.entered
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	// Close cancelled the listing and waited for it.
	if n := src.finished.Load(); n != 1 {
		t.Fatal("Close returned while the Refresh was still listing")
	}
	if err := <-done; err == nil {
		t.Error("a Refresh cut short by Close reported success")
	}
	if _, err := v.Apply(ctx, func(r []hierarchy.Record) []hierarchy.Record { return r }); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Apply after Close = %v, want ErrClosed", err)
	}
}
