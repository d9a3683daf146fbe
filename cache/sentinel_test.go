package cache_test

import (
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
)

// TestRedisSentinelFailover runs two replicas' views and session stores on
// a Sentinel setup (cachetest.StartSentinel; skipped where redis-server is
// absent) through a failover: the master is killed, the Sentinel promotes
// the replica, reads are served from memory throughout, and afterwards the
// views and the revocations write to the new master and hear each other
// through it.
func TestRedisSentinelFailover(t *testing.T) {
	var s *cachetest.Sentinel
	t.Run("sentinel", func(t *testing.T) {
		s = cachetest.StartSentinel(t, cachetest.SentinelOptions{Password: "sentinel-test"})
		prefix := cachetest.Prefix(t)
		clock := newFakeClock()
		check := withCheck(20 * time.Millisecond)
		ca, cb := s.Client(), s.Client()
		src := newSource(150)
		a := newView(t, ca, prefix, src, newRecorder(), withClock(clock), check)
		b := newView(t, cb, prefix, newSource(0), newRecorder(), withClock(clock), check)
		startView(t, a)
		startView(t, b)
		quick := func(c *cache.SessionStoreConfig) { c.Heartbeat = 100 * time.Millisecond }
		ra, rb := replica(t, ca, prefix, clock, quick), replica(t, cb, prefix, clock, quick)
		ctx := testContext(t)
		if _, err := a.Current(ctx); err != nil {
			t.Fatal(err)
		}
		awaitAll(t, 1, b)
		if err := ra.RevokeToken(ctx, "d1", "user logout", accessTTL); err != nil {
			t.Fatal(err)
		}
		s.WaitReplicated()

		tr := startTraffic(readHierarchy(a, 150), readHierarchy(b, 150))
		readsBefore, killed := tr.reads.Load(), time.Now()
		old := s.KillMaster()
		promoted := s.WaitFailover(old)
		failedOver := time.Now()
		readsDuring := tr.reads.Load() - readsBefore

		// The views write their next generation to the new master and hear
		// each other through it.
		clock.Advance(time.Second)
		stored := whenStored(s.ServerClient(promoted), prefix, "2")
		if err := a.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		written := <-stored
		if written.IsZero() {
			t.Fatal("the new master never got generation 2")
		}
		awaitAll(t, 2, b)
		// The revocation replicated before the failover is still known,
		// and a new one reaches the other replica through the new master.
		issued := clock.Now()
		if !revoked(t, rb, "d1", "u1", issued) {
			t.Error("a revocation made before the failover is forgotten")
		}
		eventually(t, "the new master takes a revocation", func() bool {
			return ra.RevokeToken(ctx, "d2", "user logout", accessTTL) == nil
		})
		eventually(t, "b learns it", func() bool { return rb.Synced() && revoked(t, rb, "d2", "u2", issued) })

		failures := tr.halt()
		for _, err := range failures {
			t.Errorf("a read failed: %v", err)
		}
		t.Logf("master killed, replica promoted %v later: %d reads served from memory meanwhile, %d in all, %d failed; generation 2 stored on the new master %v after the promotion",
			failedOver.Sub(killed).Round(time.Millisecond), readsDuring, tr.reads.Load(), len(failures),
			written.Sub(failedOver).Round(time.Millisecond))

		// A replica started now loads generation 2 from the new master.
		srcC := newSource(0)
		c := newView(t, s.Client(), prefix, srcC, newRecorder(), withClock(clock))
		startView(t, c)
		if snap, err := c.Current(ctx); err != nil || snap.Generation != 2 || srcC.calls.Load() != 0 {
			t.Errorf("new replica: generation %d, %d listings, %v; want 2, 0", snap.Generation, srcC.calls.Load(), err)
		}
	})
	if s != nil {
		if err := s.Stopped(); err != nil {
			t.Error(err)
		}
	}
}
