package cache_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// These tests run the views, the loader and the session store on a real
// three-master Redis Cluster (cachetest.StartCluster; skipped where
// redis-server is absent). Each replica has its own cluster client, as
// each process has. What they prove beyond the single-server suites: every
// script's keys hash to one slot (a cluster refuses the script otherwise,
// and scriptKeys checks it explicitly), announcements published on one
// node reach subscribers connected to another, and a master restart is
// ridden out from memory and repaired by writing the snapshot back.

func TestRedisCluster(t *testing.T) {
	var cl *cachetest.Cluster
	t.Run("cluster", func(t *testing.T) {
		cl = cachetest.StartCluster(t, cachetest.ClusterOptions{})
		scripts := &scriptKeys{}
		t.Run("hierarchy view", func(t *testing.T) { clusterHierarchy(t, cl, scripts) })
		t.Run("lost lock fences the store", func(t *testing.T) { clusterFencing(t, cl, scripts) })
		t.Run("users view", func(t *testing.T) { clusterUsers(t, cl, scripts) })
		t.Run("loader", func(t *testing.T) { clusterLoader(t, cl, scripts) })
		t.Run("session store", func(t *testing.T) { clusterSessions(t, cl, scripts) })
		t.Run("revocations mirror", func(t *testing.T) { clusterRevocations(t, cl, scripts) })
		// Last: it restarts a master.
		t.Run("master restart", func(t *testing.T) { clusterMasterRestart(t, cl, scripts) })
		scripts.check(t, cl.Client())
	})
	if cl != nil {
		if err := cl.Stopped(); err != nil {
			t.Error(err)
		}
	}
}

// clusterClient is one replica's client of the cluster, its script calls
// recorded in scripts.
func clusterClient(cl *cachetest.Cluster, scripts *scriptKeys) redis.UniversalClient {
	c := cl.Client()
	c.AddHook(scripts)
	return c
}

// scriptKeys is a go-redis hook that records the keys of every script call
// (EVAL, EVALSHA) and of every transaction (MULTI … EXEC), so that check
// can prove each one's keys share a slot: a cluster refuses a script whose
// keys do not, but a cluster client splits such a transaction per slot
// without a word, and it would no longer be atomic.
type scriptKeys struct {
	mu    sync.Mutex
	calls map[string][]string // distinct key lists by kind and keys
	n     map[string]int      // calls by kind
}

func (s *scriptKeys) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *scriptKeys) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.recordScript(cmd)
		return next(ctx, cmd)
	}
}

func (s *scriptKeys) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 2 && cmds[0].Name() == "multi" {
			// Every command the views' transactions send has its key first.
			var keys []string
			for _, cmd := range cmds[1 : len(cmds)-1] {
				keys = append(keys, fmt.Sprint(cmd.Args()[1]))
			}
			s.record("transaction", keys)
		}
		for _, cmd := range cmds {
			s.recordScript(cmd)
		}
		return next(ctx, cmds)
	}
}

// recordScript keeps the keys of a script call: EVALSHA sha numkeys key…
func (s *scriptKeys) recordScript(cmd redis.Cmder) {
	if name := cmd.Name(); name != "eval" && name != "evalsha" {
		return
	}
	args := cmd.Args()
	n, _ := strconv.Atoi(fmt.Sprint(args[2]))
	keys := make([]string, 0, n)
	for _, k := range args[3 : 3+n] {
		keys = append(keys, fmt.Sprint(k))
	}
	s.record("script", keys)
}

func (s *scriptKeys) record(kind string, keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls, s.n = map[string][]string{}, map[string]int{}
	}
	s.calls[kind+" "+strings.Join(keys, " ")] = keys
	s.n[kind]++
}

// check asks the cluster for the slot of every recorded key and fails t
// for a call whose keys span two slots.
func (s *scriptKeys) check(t *testing.T, c redis.UniversalClient) {
	t.Helper()
	ctx := testContext(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	multi := map[string]int{}
	for id, keys := range s.calls {
		slots := map[int64]bool{}
		for _, k := range keys {
			slot, err := c.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			slots[slot] = true
		}
		kind, _, _ := strings.Cut(id, " ")
		if len(slots) != 1 {
			t.Errorf("a %s's keys span %d slots: %v", kind, len(slots), keys)
		}
		if len(slots) > 0 && len(keys) > 1 {
			multi[kind]++
		}
	}
	if multi["script"] == 0 || multi["transaction"] == 0 {
		t.Errorf("scripts and transactions with several keys: %v; the check proved nothing", multi)
	}
	t.Logf("checked %d script calls and %d transactions (%v distinct with several keys)", s.n["script"], s.n["transaction"], multi)
}

func clusterHierarchy(t *testing.T, cl *cachetest.Cluster, scripts *scriptKeys) {
	prefix := cachetest.Prefix(t)
	clock := newFakeClock()
	src := newSource(300).held()
	obsA, obsB := newRecorder(), newRecorder()
	ca := clusterClient(cl, scripts)
	a := newView(t, ca, prefix, src, obsA, withClock(clock))
	b := newView(t, clusterClient(cl, scripts), prefix, src, obsB, withClock(clock))
	startView(t, a)
	startView(t, b)
	ctx := testContext(t)

	// Cold start: readers on both replicas, one listing cluster-wide.
	const readers = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2*readers)
	read := func(v *cache.HierarchyView) {
		s, err := v.Current(ctx)
		if err == nil && (s.Generation != 1 || s.Tree.Len() != 300) {
			err = fmt.Errorf("generation %d with %d orgs, want 1 with 300", s.Generation, s.Tree.Len())
		}
		if err != nil {
			errs <- err
		}
	}
	for range readers {
		wg.Go(func() { read(a) })
	}
	<-src.entered // a holds the cluster-wide lock and lists
	for range readers {
		wg.Go(func() { read(b) })
	}
	eventually(t, "b waits for a's lock", func() bool { return obsB.count(&obsB.contended) > 0 })
	src.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("the source was listed %d times by two replicas, want 1", n)
	}
	if o := obsB.nextOutcome(t); o != cache.OutcomeLoaded {
		t.Errorf("b's outcome %q, want %q", o, cache.OutcomeLoaded)
	}
	if g := storedGeneration(t, ca, prefix); g != "1" {
		t.Errorf("stored generation %q, want 1", g)
	}

	// A replica started now loads the snapshot without the source.
	srcC := newSource(0)
	c := newView(t, clusterClient(cl, scripts), prefix, srcC, newRecorder(), withClock(clock))
	startView(t, c)
	if !c.Ready() {
		t.Fatal("a third replica is not ready after Start")
	}
	if s, err := c.Current(ctx); err != nil || s.Generation != 1 || s.Tree.Len() != 300 || srcC.calls.Load() != 0 {
		t.Fatalf("third replica: generation %d, %d orgs, %d listings, %v; want 1, 300, 0", s.Generation, s.Tree.Len(), srcC.calls.Load(), err)
	}

	// A rebuild, a change and a re-read, each made on one replica, reach
	// the others by pub/sub alone (they poll Redis only hourly).
	clock.Advance(time.Second)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, 2, b, c)
	if _, err := b.Apply(ctx, func(r []hierarchy.Record) []hierarchy.Record {
		return append(r, hierarchy.Record{ID: "new000000001", Name: "created by webhook"})
	}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, 3, a, c)
	id := src.records[7].ID
	if gen, err := c.Resync(ctx, renameTo(id, "renamed on c")); err != nil || gen != 4 {
		t.Fatalf("resync = %d, %v; want generation 4", gen, err)
	}
	for _, s := range awaitAll(t, 4, a, b) {
		if o, _ := s.Tree.Org(id); s.Tree.Len() != 301 || o.Name != "renamed on c" {
			t.Errorf("generation 4 serves %d orgs, %s named %q; want 301, renamed", s.Tree.Len(), id, o.Name)
		}
	}
	if n := src.calls.Load() + srcC.calls.Load(); n != 2 {
		t.Errorf("the source was listed %d times, want 2 (the cold start and the refresh)", n)
	}
}

// awaitAll waits until every view serves generation gen.
func awaitAll(t *testing.T, gen uint64, views ...*cache.HierarchyView) []cache.Snapshot {
	t.Helper()
	var out []cache.Snapshot
	for i, v := range views {
		s, err := v.AwaitGeneration(testContext(t), gen)
		if err != nil {
			t.Fatalf("view %d: %v", i, err)
		}
		out = append(out, s)
	}
	return out
}

func clusterFencing(t *testing.T, cl *cachetest.Cluster, scripts *scriptKeys) {
	client := clusterClient(cl, scripts)
	prefix := cachetest.Prefix(t)
	// The lock alone: exclusive, renewable, fenced by growing tokens.
	checkRebuildLock(t, client, prefix)

	// A rebuild whose lock is taken over mid-listing stores nothing.
	checkLostLockFencesTheStore(t, client, prefix)
}

func clusterUsers(t *testing.T, cl *cachetest.Cluster, scripts *scriptKeys) {
	prefix := cachetest.Prefix(t)
	clock := newFakeClock()
	tree, orgs := testTree(100)
	src := newUserSource(tree, orgs, 250)
	a := newUsersView(t, clusterClient(cl, scripts), prefix, src, newUsersRecorder(), usersClock(clock))
	ctx := testContext(t)
	first, err := a.Current(ctx, tree)
	if err != nil || first.Generation != 1 || first.Users.Len() != 250 {
		t.Fatalf("cold start: generation %d, %v", first.Generation, err)
	}

	srcB := &userSource{}
	b := newUsersView(t, clusterClient(cl, scripts), prefix, srcB, newUsersRecorder(), usersClock(clock))
	got, err := b.Current(ctx, tree)
	if err != nil || got.Generation != 1 || got.Waited || srcB.calls.Load() != 0 {
		t.Fatalf("second replica: generation %d (waited %v), %d listings, %v; want 1 loaded, 0", got.Generation, got.Waited, srcB.calls.Load(), err)
	}
	owner := hierarchy.Principal{OrgID: tree.OwnerID(), Role: hierarchy.RoleOwner}
	pa, pb := first.Users.List(owner, everyone), got.Users.List(owner, everyone)
	if pa.Total != pb.Total || !slices.Equal(ids(pa), ids(pb)) {
		t.Fatalf("the replicas list different users: %d %v / %d %v", pa.Total, ids(pa), pb.Total, ids(pb))
	}

	// A change made on a reaches b by pub/sub.
	if _, err := a.Apply(ctx, func(r []cache.UserRecord) []cache.UserRecord {
		return append(slices.Clone(r), cache.UserRecord{ID: "newuser00001", Username: "webhook-user", HomeOrgID: orgs[3]})
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.AwaitGeneration(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if s, _ := b.Current(ctx, tree); s.Generation != 2 || s.Users.Len() != 251 {
		t.Errorf("b: generation %d with %d users, want 2 with 251", s.Generation, s.Users.Len())
	}
}

func clusterLoader(t *testing.T, cl *cachetest.Cluster, scripts *scriptKeys) {
	prefix := cachetest.Prefix(t)
	src := &profileSource{}
	l := newLoader(t, clusterClient(cl, scripts), prefix, src, cache.NopObserver{}, nil)
	ctx := testContext(t)
	masters := map[int]bool{}
	for i := range 12 {
		key := fmt.Sprintf("u%d", i)
		if _, err := l.Get(ctx, key); err != nil {
			t.Fatal(err)
		}
		masters[cl.Master(prefix+"user:"+key)] = true
	}
	if len(masters) < 2 {
		t.Errorf("12 loader entries all live on one master; they are meant to spread")
	}
	if _, err := l.Get(ctx, "missing"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("missing key: %v", err)
	}
	// Another replica reads every entry, the negative one included, from
	// the cluster.
	other := &profileSource{}
	l2 := newLoader(t, clusterClient(cl, scripts), prefix, other, cache.NopObserver{}, nil)
	for i := range 12 {
		if got, err := l2.Get(ctx, fmt.Sprintf("u%d", i)); err != nil || got.Name != fmt.Sprintf("call %d", i+1) {
			t.Errorf("second loader, u%d: %+v, %v", i, got, err)
		}
	}
	if _, err := l2.Get(ctx, "missing"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("second loader, missing key: %v", err)
	}
	if n := other.calls.Load(); n != 0 {
		t.Errorf("the second loader fetched %d times, want 0", n)
	}
}

func clusterSessions(t *testing.T, cl *cachetest.Cluster, scripts *scriptKeys) {
	client := clusterClient(cl, scripts)
	prefix := cachetest.Prefix(t)
	clock := newFakeClock()
	s := newSessionStore(t, client, prefix, clock, cache.NopObserver{}) // not started: every check asks Redis
	ctx := testContext(t)

	// Refresh tokens: one-shot, a grace for retries, a burn past it.
	checkRefreshOneShot(t, s, clock)

	// Logout: the user's refresh tokens end, the access token is revoked.
	issueRefresh(t, s, "u3", "old")
	if err := s.RevokeUser(ctx, "u3", time.Hour); err != nil {
		t.Fatal(err)
	}
	issueRefresh(t, s, "u3", "new")
	if got := useRefresh(t, s, "u3", "old"); got != cache.RefreshRevoked {
		t.Errorf("token issued before the logout: %v", got)
	}
	if got := useRefresh(t, s, "u3", "new"); got != cache.RefreshRotated {
		t.Errorf("token issued after the logout: %v", got)
	}
	if err := s.RevokeToken(ctx, "digest3", "user logout", accessTTL); err != nil {
		t.Fatal(err)
	}
	if reason, revoked, err := s.CheckToken(ctx, "digest3", "u3", clock.Now()); err != nil || !revoked || reason != "user logout" {
		t.Errorf("logged-out access token: %q %v %v", reason, revoked, err)
	}
	if _, revoked, err := s.CheckToken(ctx, "digest4", "u3", clock.Now()); err != nil || revoked {
		t.Errorf("another access token: revoked %v, %v", revoked, err)
	}
}

func clusterRevocations(t *testing.T, cl *cachetest.Cluster, scripts *scriptKeys) {
	prefix := cachetest.Prefix(t)
	clock := newFakeClock()
	ctx := testContext(t)
	issued := clock.Now()

	// A revocation made before a replica starts is loaded by its resync.
	writer := newSessionStore(t, clusterClient(cl, scripts), prefix, clock, cache.NopObserver{})
	if err := writer.RevokeToken(ctx, "d0", "user logout", accessTTL); err != nil {
		t.Fatal(err)
	}
	a := replica(t, clusterClient(cl, scripts), prefix, clock, nil)
	b := replica(t, clusterClient(cl, scripts), prefix, clock, nil)
	if !revoked(t, a, "d0", "u0", issued) || !revoked(t, b, "d0", "u0", issued) {
		t.Error("a revocation made before the start is not known")
	}

	// Revocations and burns made on a reach b's memory by pub/sub.
	if err := a.RevokeToken(ctx, "d1", "user logout", accessTTL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b learns the revocation", func() bool { return revoked(t, b, "d1", "u1", issued) })
	issueRefresh(t, a, "u2", "r1")
	useRefresh(t, a, "u2", "r1")
	clock.Advance(time.Minute)
	if got := useRefresh(t, a, "u2", "r1"); got != cache.RefreshReused {
		t.Fatalf("reuse past the grace: %v", got)
	}
	eventually(t, "b learns the burn", func() bool { return revoked(t, b, "d2", "u2", issued) })
	if revoked(t, b, "d3", "u3", issued) || !b.Synced() {
		t.Error("b revokes an unrelated token, or stopped answering from memory")
	}
}

// traffic reads views from memory in the background, as requests do,
// counting the reads and keeping every failure.
type traffic struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	reads    atomic.Int64
	mu       sync.Mutex
	failures []error
}

// startTraffic runs each read in a loop of its own until halt.
func startTraffic(reads ...func(ctx context.Context) error) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	for _, read := range reads {
		tr.wg.Go(func() {
			for {
				select {
				case <-tr.stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				err := read(ctx)
				cancel()
				tr.reads.Add(1)
				if err != nil {
					tr.mu.Lock()
					tr.failures = append(tr.failures, err)
					tr.mu.Unlock()
				}
			}
		})
	}
	return tr
}

// halt stops the readers and returns the failures.
func (tr *traffic) halt() []error {
	close(tr.stop)
	tr.wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.failures
}

// readHierarchy is a traffic read of a hierarchy view that must serve
// orgs organizations.
func readHierarchy(v *cache.HierarchyView, orgs int) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		s, err := v.Current(ctx)
		if err == nil && s.Tree.Len() != orgs {
			err = fmt.Errorf("served %d orgs, want %d", s.Tree.Len(), orgs)
		}
		return err
	}
}

// whenStored reports when c's generation key under prefix reads gen,
// watching from now on (errors meanwhile are the outage being watched);
// the zero time if that does not happen within testTimeout.
func whenStored(c redis.UniversalClient, prefix, gen string) <-chan time.Time {
	at := make(chan time.Time, 1)
	go func() {
		deadline := time.Now().Add(testTimeout)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			got, err := c.Get(ctx, prefix+"{hierarchy}:generation").Result()
			cancel()
			if err == nil && got == gen {
				at <- time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		at <- time.Time{}
	}()
	return at
}

func clusterMasterRestart(t *testing.T, cl *cachetest.Cluster, scripts *scriptKeys) {
	prefix := cachetest.Prefix(t)
	clock := newFakeClock()
	check := withCheck(20 * time.Millisecond)
	src := newSource(200)
	ca, cb := clusterClient(cl, scripts), clusterClient(cl, scripts)
	a := newView(t, ca, prefix, src, newRecorder(), withClock(clock), check)
	b := newView(t, cb, prefix, newSource(0), newRecorder(), withClock(clock), check)
	startView(t, a)
	startView(t, b)
	tree, orgs := testTree(50)
	usrc := newUserSource(tree, orgs, 80)
	ua := newUsersView(t, ca, prefix, usrc, newUsersRecorder(), usersClock(clock),
		func(c *cache.UsersConfig) { c.CheckInterval = 20 * time.Millisecond })
	ctx := testContext(t)
	if _, err := a.Current(ctx); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, 1, b)
	if _, err := ua.Current(ctx, tree); err != nil {
		t.Fatal(err)
	}

	master := cl.Master(prefix + "{hierarchy}:snapshot")
	tr := startTraffic(readHierarchy(a, 200), readHierarchy(b, 200), func(ctx context.Context) error {
		_, err := ua.Current(ctx, tree)
		return err
	})
	readsBefore, stopped := tr.reads.Load(), time.Now()
	cl.StopMaster(master)
	cl.WaitMasterFailed(master) // from now on the whole cluster refuses commands
	eventually(t, "both replicas notice", func() bool { return !a.Health().RedisOK && !b.Health().RedisOK })
	// a rebuilds while the cluster is down: built from the source, served,
	// kept for writing back.
	clock.Advance(time.Second)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if h := a.Health(); h.Generation != 2 || !h.PendingWrite {
		t.Fatalf("after a rebuild with the cluster down: %+v, want generation 2 pending", h)
	}
	readsDown := tr.reads.Load() - readsBefore
	restarted := time.Now()
	writtenBack := whenStored(ca, prefix, "2")
	cl.StartMaster(master) // empty: persistence is off
	back := time.Now()
	written := <-writtenBack
	if written.IsZero() {
		t.Fatal("a never wrote its generation 2 back")
	}
	eventually(t, "a knows its snapshot is stored", func() bool { h := a.Health(); return h.RedisOK && !h.PendingWrite })
	awaitAll(t, 2, b)
	eventually(t, "the users snapshot is written back", func() bool {
		n, err := ca.Exists(ctx, prefix+"{users}:snapshot").Result()
		return err == nil && n == 1
	})
	failures := tr.halt()
	for _, err := range failures {
		t.Errorf("a read failed: %v", err)
	}
	t.Logf("master %d down %v (the cluster refusing commands for most of it): %d reads served from memory meanwhile, "+
		"%d in all, %d failed; cluster healthy %v after the restart, snapshot written back %v after it",
		master, restarted.Sub(stopped).Round(time.Millisecond), readsDown, tr.reads.Load(), len(failures),
		back.Sub(restarted).Round(time.Millisecond), written.Sub(restarted).Round(time.Millisecond))

	// A replica started now gets the written-back snapshot, not the source.
	srcC := newSource(0)
	c := newView(t, clusterClient(cl, scripts), prefix, srcC, newRecorder(), withClock(clock))
	startView(t, c)
	if s, err := c.Current(ctx); err != nil || s.Generation != 2 || s.Tree.Len() != 200 || srcC.calls.Load() != 0 {
		t.Errorf("new replica: generation %d, %d orgs, %d listings, %v; want 2, 200, 0", s.Generation, s.Tree.Len(), srcC.calls.Load(), err)
	}
}
