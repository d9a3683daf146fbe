package cache_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
)

// These tests cover the in-memory revocations (revocations.go): a started
// store answers CheckToken without Redis once synced, learns revocations
// made by other replicas from their announcements and from resyncs, and
// goes back to asking Redis — failing closed — whenever its subscription is
// lost.

// replica is a started session store, as one replica of the proxy has.
func replica(t *testing.T, client redis.UniversalClient, prefix string, clock *fakeClock, tweak func(*cache.SessionStoreConfig)) *cache.SessionStore {
	t.Helper()
	cfg := cache.SessionStoreConfig{Client: client, Prefix: prefix, Now: clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := cache.NewSessionStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	eventually(t, "the store syncs its revocations", s.Synced)
	return s
}

// commandCounter counts the commands a client sends (pipelines included;
// pub/sub traffic does not go through hooks).
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func revoked(t *testing.T, s *cache.SessionStore, digest, user string, issued time.Time) bool {
	t.Helper()
	_, r, err := s.CheckToken(testContext(t), digest, user, issued)
	if err != nil {
		t.Fatalf("check %s: %v", digest, err)
	}
	return r
}

func TestSyncedStoreChecksWithoutRedis(t *testing.T) {
	client, prefix := cachetest.Client(t)
	counter := &commandCounter{}
	client.AddHook(counter)
	clock := newFakeClock()
	noResync := func(c *cache.SessionStoreConfig) { c.Resync = time.Hour }
	a := replica(t, client, prefix, clock, noResync)
	b := replica(t, client, prefix, clock, noResync)
	issued := clock.Now()

	before := counter.n.Load()
	for range 100 {
		if revoked(t, b, "d1", "u1", issued) {
			t.Fatal("d1 revoked before anyone revoked it")
		}
	}
	if n := counter.n.Load() - before; n != 0 {
		t.Errorf("100 checks of a synced store sent %d commands to Redis, want none", n)
	}

	if err := a.RevokeToken(testContext(t), "d1", "user logout", accessTTL); err != nil {
		t.Fatal(err)
	}
	// The revoking replica knows at once, without waiting for its own
	// announcement; the other learns it from the announcement.
	if !revoked(t, a, "d1", "u1", issued) {
		t.Error("the revoking replica still accepts d1")
	}
	eventually(t, "the other replica learns the revocation", func() bool { return revoked(t, b, "d1", "u1", issued) })
	reason, _, err := b.CheckToken(testContext(t), "d1", "u1", issued)
	if err != nil || reason != "user logout" {
		t.Errorf("reason %q (%v), want the revoker's", reason, err)
	}
	if revoked(t, b, "d2", "u1", issued) {
		t.Error("another token is revoked too")
	}
}

func TestStoreStartedLaterLoadsEarlierRevocations(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	writer := newSessionStore(t, client, prefix, clock, cache.NopObserver{}) // never started: writes only
	ctx := testContext(t)
	issued := clock.Now()
	if err := writer.RevokeToken(ctx, "d1", "user logout", accessTTL); err != nil {
		t.Fatal(err)
	}
	issueRefresh(t, writer, "u2", "r1")
	useRefresh(t, writer, "u2", "r1")
	clock.Advance(time.Minute) // past the reuse grace
	if got := useRefresh(t, writer, "u2", "r1"); got != cache.RefreshReused {
		t.Fatalf("reuse after the grace: %v", got)
	}

	late := replica(t, client, prefix, clock, nil)
	if !revoked(t, late, "d1", "u1", issued) {
		t.Error("a revocation made before the start is not known")
	}
	if !revoked(t, late, "d2", "u2", issued) {
		t.Error("a burn made before the start does not revoke the user's earlier token")
	}
	if revoked(t, late, "d3", "u2", clock.Now().Add(time.Second)) {
		t.Error("a token issued after the burn is revoked")
	}
}

func TestBurnsAreAnnounced(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	a := replica(t, client, prefix, clock, nil)
	b := replica(t, client, prefix, clock, nil)
	issued := clock.Now()
	issueRefresh(t, a, "u1", "r1")
	useRefresh(t, a, "u1", "r1")
	clock.Advance(time.Minute)
	if got := useRefresh(t, a, "u1", "r1"); got != cache.RefreshReused {
		t.Fatalf("reuse after the grace: %v", got)
	}
	if !revoked(t, a, "d1", "u1", issued) {
		t.Error("the burning replica still accepts the user's earlier token")
	}
	eventually(t, "the other replica learns the burn", func() bool { return revoked(t, b, "d1", "u1", issued) })
	reason, _, err := b.CheckToken(testContext(t), "d1", "u1", issued)
	if err != nil || reason != cache.ReasonRefreshReuse {
		t.Errorf("reason %q (%v)", reason, err)
	}
	if revoked(t, b, "d2", "u1", clock.Now().Add(time.Second)) || revoked(t, b, "d1", "u9", issued) {
		t.Error("the burn revokes a later token or another user's")
	}
}

func TestLostAnnouncementsAreRepairedByResync(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	b := replica(t, client, prefix, clock, func(c *cache.SessionStoreConfig) { c.Resync = 50 * time.Millisecond })
	issued := clock.Now()
	// A revocation whose announcement never arrived: written straight to
	// the index, as the script would, without publishing.
	ctx := testContext(t)
	key := prefix + "{session:revoked}:"
	if err := client.ZAdd(ctx, key+"tokens", redis.Z{Score: float64(clock.Now().Add(accessTTL).UnixMilli()), Member: "d1"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.HSet(ctx, key+"reasons", "d1", "user logout").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a resync picks up the unannounced revocation", func() bool { return revoked(t, b, "d1", "u1", issued) })
}

func TestMalformedAnnouncementsAreIgnored(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	b := replica(t, client, prefix, clock, nil)
	issued := clock.Now()
	ctx := testContext(t)
	exp := clock.Now().Add(accessTTL).UnixMilli()
	for _, junk := range []string{"", "t", "x 1 d1 r", "t notanumber d1 r", "t 99999999999999 bad}digest r",
		"u 99999999999999 u1 notanumber", "t 99999999999999 d1"} {
		if err := client.Publish(ctx, prefix+"session:revocations", junk).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// A valid announcement after the junk is applied: the follower survived.
	if err := client.Publish(ctx, prefix+"session:revocations", "t "+strconv.FormatInt(exp, 10)+" d2 user logout").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the valid announcement is applied", func() bool { return revoked(t, b, "d2", "u1", issued) })
	if revoked(t, b, "d1", "u1", issued) || !b.Synced() {
		t.Error("junk announcements changed the store")
	}
}

func TestExpiredRevocationsAreForgotten(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	started := replica(t, client, prefix, clock, nil)
	plain := newSessionStore(t, client, prefix, clock, cache.NopObserver{})
	ctx := testContext(t)
	issued := clock.Now()
	if err := started.RevokeToken(ctx, "d1", "user logout", time.Minute); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, started, "d1", "u1", issued) || !revoked(t, plain, "d1", "u1", issued) {
		t.Fatal("a fresh revocation is not seen")
	}
	clock.Advance(2 * time.Minute)
	if revoked(t, started, "d1", "u1", issued) || revoked(t, plain, "d1", "u1", issued) {
		t.Error("a revocation is still reported after the token's expiry")
	}
}

func TestStoreFailsClosedWhileUnsubscribed(t *testing.T) {
	srv := cachetest.StartServer(t)
	prefix := cachetest.Prefix(t)
	clock := newFakeClock()
	obs := newRecorder()
	tweak := func(c *cache.SessionStoreConfig) {
		c.Heartbeat, c.Timeout, c.Observer = 50*time.Millisecond, 200*time.Millisecond, obs
	}
	b := replica(t, srv.Client(), prefix, clock, tweak)
	issued := clock.Now()

	srv.Stop()
	eventually(t, "the store stops trusting its copy", func() bool { return !b.Synced() })
	if _, _, err := b.CheckToken(testContext(t), "d1", "u1", issued); err == nil {
		t.Error("a check with the subscription and Redis down succeeded; it must fail closed")
	}
	if obs.count(&obs.redisErrors) == 0 {
		t.Error("the lost subscription was not reported")
	}

	// Redis comes back (empty): the store resubscribes, resyncs, and
	// learns what is revoked from then on.
	srv.Start()
	eventually(t, "the store resyncs after Redis returns", b.Synced)
	a := newSessionStore(t, srv.Client(), prefix, clock, cache.NopObserver{})
	if err := a.RevokeToken(testContext(t), "d1", "user logout", accessTTL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a revocation after the outage arrives", func() bool { return revoked(t, b, "d1", "u1", issued) })
}

func TestSessionStoreLifecycle(t *testing.T) {
	client, prefix := cachetest.Client(t)
	s := newSessionStore(t, client, prefix, newFakeClock(), cache.NopObserver{})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Error("a second Start succeeded")
	}
	s.Close()
	if s.Synced() {
		t.Error("a closed store still answers from memory")
	}
	if err := s.Start(); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	s.Close() // twice is fine
}

// TestSilentSubscriptionIsDetected: a connection that stops carrying data
// without closing (a network partition) is noticed by the heartbeat: the
// store stops trusting its copy within a few heartbeats and fails closed,
// then recovers once traffic flows again.
func TestSilentSubscriptionIsDetected(t *testing.T) {
	base, prefix := cachetest.Client(t)
	plain, ok := base.(*redis.Client)
	if !ok {
		t.Fatalf("cachetest client is a %T", base)
	}
	link := newFreezer(t, plain.Options().Addr)
	o := plain.Options()
	client := redis.NewClient(&redis.Options{Addr: link.addr(), Username: o.Username, Password: o.Password, DB: o.DB,
		ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })

	clock := newFakeClock()
	b := replica(t, client, prefix, clock, func(c *cache.SessionStoreConfig) {
		c.Heartbeat, c.Timeout = 50*time.Millisecond, 100*time.Millisecond
	})
	link.freeze()
	eventually(t, "the store notices the silent subscription", func() bool { return !b.Synced() })
	if _, _, err := b.CheckToken(testContext(t), "d1", "u1", clock.Now()); err == nil {
		t.Error("a check through a silent connection succeeded; it must fail closed")
	}
	link.thaw()
	eventually(t, "the store resyncs once traffic flows", b.Synced)
	writer := newSessionStore(t, base, prefix, clock, cache.NopObserver{})
	if err := writer.RevokeToken(testContext(t), "d1", "user logout", accessTTL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "announcements arrive again", func() bool { return revoked(t, b, "d1", "u1", clock.Now()) })
}

// freezer is a TCP relay to a Redis server that can stop carrying data in
// both directions without closing anything, as a network partition does.
type freezer struct {
	ln     net.Listener
	mu     sync.Mutex
	thawed *sync.Cond
	frozen bool
}

func newFreezer(t *testing.T, upstream string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	f.thawed = sync.NewCond(&f.mu)
	var conns sync.WaitGroup
	t.Cleanup(func() {
		f.thaw()
		_ = ln.Close()
		conns.Wait()
	})
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = down.Close()
				continue
			}
			conns.Add(2)
			go func() { defer conns.Done(); f.relay(up, down) }()
			go func() { defer conns.Done(); f.relay(down, up) }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return f
}

func (f *freezer) addr() string { return f.ln.Addr().String() }

// relay copies src to dst, holding data while frozen; it closes both when
// either side ends.
func (f *freezer) relay(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			for f.frozen {
				f.thawed.Wait()
			}
			f.mu.Unlock()
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	f.frozen = true
	f.mu.Unlock()
}

func (f *freezer) thaw() {
	f.mu.Lock()
	f.frozen = false
	f.mu.Unlock()
	f.thawed.Broadcast()
}
