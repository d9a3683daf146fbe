package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// userSource is a users source that counts its calls, remembers the
// previous records it was handed, can fail, and can be held.
type userSource struct {
	records []cache.UserRecord
	calls   atomic.Int32
	failing atomic.Bool
	entered chan struct{} // receives once per call, if not nil
	gate    chan struct{} // calls wait for it to be closed, if not nil

	mu    sync.Mutex
	prevs [][]cache.UserRecord
}

// testTree is the hierarchy the users tests bind to, and the ids of its
// organizations.
func testTree(n int) (*hierarchy.Tree, []string) {
	records := cache.GenRecords(n, 3)
	ids := make([]string, len(records))
	for i, r := range records {
		ids[i] = r.ID
	}
	return hierarchy.Build(records, hierarchy.Options{}), ids
}

func newUserSource(tree *hierarchy.Tree, orgIDs []string, n int) *userSource {
	return &userSource{records: cache.GenUsers(orgIDs, tree.OwnerID(), n, uint64(n))}
}

func (s *userSource) held() *userSource {
	s.entered, s.gate = make(chan struct{}, 100), make(chan struct{})
	return s
}

func (s *userSource) release() { close(s.gate) }

func (s *userSource) List(ctx context.Context, prev []cache.UserRecord) ([]cache.UserRecord, error) {
	s.calls.Add(1)
	s.mu.Lock()
	s.prevs = append(s.prevs, prev)
	s.mu.Unlock()
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.failing.Load() {
		return nil, errSourceDown
	}
	return s.records, nil
}

// usersRecorder is a recorder that also remembers which view every
// measurement was labelled with.
type usersRecorder struct {
	*recorder
	mu        sync.Mutex
	views     []string // view label of every hit, miss and stale serve
	installs  []viewInstall
	outcomes  chan cache.RebuildOutcome
	rebuiltAs []string
}

type viewInstall struct {
	view    string
	gen     uint64
	entries int
}

func newUsersRecorder() *usersRecorder {
	return &usersRecorder{recorder: newRecorder(), outcomes: make(chan cache.RebuildOutcome, 100)}
}

func (r *usersRecorder) label(view string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.views = append(r.views, view)
}

func (r *usersRecorder) CacheHit(view string)    { r.label(view); r.recorder.CacheHit(view) }
func (r *usersRecorder) CacheMiss(view string)   { r.label(view); r.recorder.CacheMiss(view) }
func (r *usersRecorder) StaleServed(view string) { r.label(view); r.recorder.StaleServed(view) }

func (r *usersRecorder) SnapshotInstalled(view string, gen uint64, _ time.Time, entries int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.installs = append(r.installs, viewInstall{view, gen, entries})
}

func (r *usersRecorder) RebuildFinished(view string, _ time.Duration, o cache.RebuildOutcome) {
	r.mu.Lock()
	r.rebuiltAs = append(r.rebuiltAs, view)
	r.mu.Unlock()
	r.outcomes <- o
}

func (r *usersRecorder) nextOutcome(t *testing.T) cache.RebuildOutcome {
	t.Helper()
	select {
	case o := <-r.outcomes:
		return o
	case <-time.After(testTimeout):
		t.Fatal("no users rebuild finished")
		return ""
	}
}

type usersOpt func(*cache.UsersConfig)

func usersClock(c *fakeClock) usersOpt { return func(cfg *cache.UsersConfig) { cfg.Now = c.Now } }

// newUsersView returns a users view for a test, closed at cleanup.
func newUsersView(t *testing.T, client redis.UniversalClient, prefix string, src *userSource, obs cache.Observer, opts ...usersOpt) *cache.UsersView {
	t.Helper()
	cfg := cache.UsersConfig{
		Client: client, Prefix: prefix, Source: src.List,
		SoftTTL: time.Minute, HardTTL: 10 * time.Minute, RedisTimeout: 2 * time.Second,
		SourceTimeout: testTimeout, LockTTL: 5 * time.Second, LockWait: testTimeout,
		CheckInterval: time.Hour, RetryBackoff: 30 * time.Second,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Observer: obs,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	v, err := cache.NewUsersView(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err := v.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	return v
}

var everyone = cache.UserQuery{Status: []string{"enabled", "suspended", "deleted"}, PageSize: 100, SortBy: "username"}

func TestUsersColdStartThousandReadersOneRebuild(t *testing.T) {
	client, prefix := cachetest.Client(t)
	tree, orgs := testTree(200)
	src := newUserSource(tree, orgs, 300).held()
	obs := newUsersRecorder()
	v := newUsersView(t, client, prefix, src, obs)
	ctx := testContext(t)

	const readers = 1000
	var wg sync.WaitGroup
	snaps := make([]cache.UsersSnapshot, readers)
	errs := make([]error, readers)
	for i := range readers {
		wg.Go(func() { snaps[i], errs[i] = v.Current(ctx, tree) })
	}
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
		if s := snaps[i]; s.Generation != 1 || s.Users.Len() != 300 || s.Stale || !s.Waited {
			t.Fatalf("reader %d: generation %d, %d users, stale %v, waited %v", i, s.Generation, s.Users.Len(), s.Stale, s.Waited)
		}
		if snaps[i].Users != snaps[0].Users {
			t.Fatal("readers of one snapshot and one tree got different bindings")
		}
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeBuilt {
		t.Errorf("outcome %q, want %q", o, cache.OutcomeBuilt)
	}
	if h := v.Health(); !h.Loaded || !h.RedisOK || h.Users != 300 || h.Generation != 1 || h.LastError != nil {
		t.Errorf("health = %+v", h)
	}
}

func TestUsersSecondReplicaLoadsSnapshotWithoutSource(t *testing.T) {
	client, prefix := cachetest.Client(t)
	tree, orgs := testTree(200)
	srcA := newUserSource(tree, orgs, 400)
	a := newUsersView(t, client, prefix, srcA, newUsersRecorder())
	ctx := testContext(t)
	first, err := a.Current(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}

	srcB := &userSource{}
	b := newUsersView(t, client, prefix, srcB, newUsersRecorder())
	if !b.Ready() {
		t.Fatal("second replica not ready after Start")
	}
	got, err := b.Current(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if n := srcB.calls.Load(); n != 0 {
		t.Errorf("second replica listed the source %d times, want 0", n)
	}
	if got.Generation != first.Generation || !got.BuiltAt.Equal(first.BuiltAt) || got.Waited {
		t.Errorf("second replica: generation %d built %v (waited %v), want %d built %v",
			got.Generation, got.BuiltAt, got.Waited, first.Generation, first.BuiltAt)
	}
	owner := hierarchy.Principal{OrgID: tree.OwnerID(), Role: hierarchy.RoleOwner}
	for page := 1; page <= 4; page++ {
		q := everyone
		q.Page = page
		pa, pb := first.Users.List(owner, q), got.Users.List(owner, q)
		if pa.Total != pb.Total || !slices.Equal(ids(pa), ids(pb)) {
			t.Fatalf("page %d differs between replicas: %v / %v", page, ids(pa), ids(pb))
		}
	}
}

func TestUsersStaleServingDuringSourceOutage(t *testing.T) {
	client, prefix := cachetest.Client(t)
	tree, orgs := testTree(50)
	clock := newFakeClock()
	src := newUserSource(tree, orgs, 60)
	obs := newUsersRecorder()
	v := newUsersView(t, client, prefix, src, obs, usersClock(clock))
	ctx := testContext(t)

	if _, err := v.Current(ctx, tree); err != nil {
		t.Fatal(err)
	}
	obs.nextOutcome(t)
	src.failing.Store(true)

	clock.Advance(2 * time.Minute) // past the soft TTL
	s, err := v.Current(ctx, tree)
	if err != nil || s.Generation != 1 || s.Stale {
		t.Fatalf("past soft TTL: generation %d, stale %v, err %v", s.Generation, s.Stale, err)
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeFailed {
		t.Fatalf("outcome %q, want %q", o, cache.OutcomeFailed)
	}
	if h := v.Health(); !errors.Is(h.LastError, errSourceDown) {
		t.Errorf("health's last error = %v", h.LastError)
	}

	clock.Advance(9 * time.Minute) // past the hard TTL
	s, err = v.Current(ctx, tree)
	if err != nil || s.Generation != 1 || !s.Stale || s.Users.Len() != 60 {
		t.Fatalf("past hard TTL: generation %d, stale %v, err %v", s.Generation, s.Stale, err)
	}
	if n := obs.count(&obs.stale); n != 1 {
		t.Errorf("stale serves counted %d, want 1", n)
	}
	obs.nextOutcome(t)

	src.failing.Store(false)
	clock.Advance(time.Minute)
	if _, err := v.Current(ctx, tree); err != nil {
		t.Fatal(err)
	}
	if o := obs.nextOutcome(t); o != cache.OutcomeBuilt {
		t.Fatalf("outcome %q, want %q", o, cache.OutcomeBuilt)
	}
	if s, _ := v.Current(ctx, tree); s.Generation != 2 || s.Stale {
		t.Errorf("after recovery: generation %d, stale %v", s.Generation, s.Stale)
	}
}

func TestUsersSourceGetsTheServedRecords(t *testing.T) {
	client, prefix := cachetest.Client(t)
	tree, orgs := testTree(20)
	src := newUserSource(tree, orgs, 30)
	v := newUsersView(t, client, prefix, src, newUsersRecorder())
	ctx := testContext(t)
	if _, err := v.Current(ctx, tree); err != nil {
		t.Fatal(err)
	}
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.prevs) != 2 || src.prevs[0] != nil || len(src.prevs[1]) != 30 || src.prevs[1][0].ID != src.records[0].ID {
		t.Errorf("the source was handed %d, then %d records; want none, then the 30 served", len(src.prevs[0]), len(src.prevs[len(src.prevs)-1]))
	}
}

func TestUsersReportUnderTheirOwnLabel(t *testing.T) {
	client, prefix := cachetest.Client(t)
	tree, orgs := testTree(20)
	obs := newUsersRecorder()
	v := newUsersView(t, client, prefix, newUserSource(tree, orgs, 25), obs)
	ctx := testContext(t)
	for range 3 {
		if _, err := v.Current(ctx, tree); err != nil {
			t.Fatal(err)
		}
	}
	obs.nextOutcome(t)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.views) != 3 || slices.ContainsFunc(obs.views, func(s string) bool { return s != cache.ViewUsers }) {
		t.Errorf("reads counted under %v, want three under %q", obs.views, cache.ViewUsers)
	}
	// Every snapshot measurement carries the users label, so the users
	// view never overwrites the hierarchy's gauges.
	if len(obs.installs) != 1 || obs.installs[0] != (viewInstall{cache.ViewUsers, 1, 25}) {
		t.Errorf("installs %+v, want generation 1 of 25 users", obs.installs)
	}
	if !slices.Equal(obs.rebuiltAs, []string{cache.ViewUsers}) {
		t.Errorf("rebuilds reported as %v", obs.rebuiltAs)
	}
}

func TestUsersBindingFollowsTheTree(t *testing.T) {
	client, prefix := cachetest.Client(t)
	records := cache.GenRecords(30, 5)
	tree := hierarchy.Build(records, hierarchy.Options{})
	var customer string
	for _, r := range records {
		if o, ok := tree.Org(r.ID); ok && o.Type == hierarchy.TypeCustomer && !o.Suspended() && !o.Deleted() {
			customer = r.ID
			break
		}
	}
	src := &userSource{records: []cache.UserRecord{{ID: "u1", HomeOrgID: customer, HomeSource: cache.HomeCustomData}}}
	v := newUsersView(t, client, prefix, src, newUsersRecorder())
	ctx := testContext(t)
	before, err := v.Current(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := v.Current(ctx, tree); again.Users != before.Users {
		t.Error("the same snapshot and tree were bound twice")
	}
	owner := hierarchy.Principal{OrgID: tree.OwnerID(), Role: hierarchy.RoleOwner}
	if p := before.Users.List(owner, cache.UserQuery{Status: []string{"suspended"}}); p.Total != 0 {
		t.Fatalf("suspended before: %v", ids(p))
	}

	// The customer is suspended in a new tree: the users follow at once.
	for i, r := range records {
		if r.ID == customer {
			records[i].CustomData = []byte(`{"type":"customer","suspendedAt":"2025-05-05T05:05:05Z","createdBy":` +
				string(jsonField(t, r.CustomData, "createdBy")) + `}`)
		}
	}
	after, err := v.Current(ctx, hierarchy.Build(records, hierarchy.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	p := after.Users.List(owner, cache.UserQuery{Status: []string{"suspended"}})
	if p.Total != 1 || p.Users[0].SuspendedByOrgID != customer || p.Users[0].SuspendedAt.Year() != 2025 {
		t.Errorf("suspended after: %+v", p)
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("a new tree listed the users again (%d listings)", n)
	}
}

func TestUsersApplyReachesOtherReplica(t *testing.T) {
	client, prefix := cachetest.Client(t)
	tree, orgs := testTree(20)
	a := newUsersView(t, client, prefix, newUserSource(tree, orgs, 10), newUsersRecorder())
	srcB := &userSource{}
	b := newUsersView(t, client, prefix, srcB, newUsersRecorder())
	ctx := testContext(t)
	if _, err := a.Current(ctx, tree); err != nil {
		t.Fatal(err)
	}
	gen, err := a.Apply(ctx, func(us []cache.UserRecord) []cache.UserRecord {
		return append(us, cache.UserRecord{ID: "webhook-user", Username: "zzz_new"})
	})
	if err != nil || gen != 2 {
		t.Fatalf("Apply = %d, %v; want generation 2", gen, err)
	}
	if err := b.AwaitGeneration(ctx, 2); err != nil {
		t.Fatal(err)
	}
	s, err := b.Current(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Users.Get("webhook-user"); !ok || s.Users.Len() != 11 || srcB.calls.Load() != 0 {
		t.Errorf("b: %d users, webhook user found %v, %d listings", s.Users.Len(), ok, srcB.calls.Load())
	}
}

func TestUsersConfigValidation(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := func(context.Context, []cache.UserRecord) ([]cache.UserRecord, error) { return nil, nil }
	bad := map[string]cache.UsersConfig{
		"no client":       {Source: src},
		"no source":       {Client: client},
		"negative":        {Client: client, Source: src, LockWait: -time.Second},
		"hard below soft": {Client: client, Source: src, SoftTTL: time.Hour, HardTTL: time.Minute},
	}
	for name, cfg := range bad {
		if _, err := cache.NewUsersView(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	v, err := cache.NewUsersView(cache.UsersConfig{Client: client, Prefix: prefix, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Current(testContext(t), nil); err == nil {
		t.Error("a read without a tree succeeded")
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	tree, _ := testTree(3)
	if _, err := v.Current(testContext(t), tree); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Current on a closed, empty view = %v, want ErrClosed", err)
	}
}

// jsonField returns the raw value of key in a JSON object.
func jsonField(t *testing.T, raw []byte, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}
