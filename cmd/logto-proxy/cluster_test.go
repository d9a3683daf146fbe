package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// Replicas wired by newApp against a real Redis Cluster and a real Sentinel
// setup (cachetest; skipped where redis-server is absent), configured as an
// operator would: REDIS_ADDRS, REDIS_PASSWORD and, for Sentinel,
// REDIS_MASTER_NAME. They serve organization reads, share the snapshot and
// the revocations through Redis, and ride out a master restart (Cluster)
// and a failover (Sentinel): reads through service tokens never fail,
// session tokens are answered or refused with the documented 503 only.

const redisTestPassword = "redis-test-password"

// addrsConfig is a replica configuration against front with REDIS_URL
// unset, the snapshot TTLs at their defaults, and env's variables (name,
// value pairs) set.
func addrsConfig(t testing.TB, front *logtoFront, prefix string, env ...string) config {
	t.Helper()
	return faultConfig(t, front, "", prefix, append([]string{
		"SNAPSHOT_SOFT_TTL", "10m", "SNAPSHOT_HARD_TTL", "1h", "REDIS_PASSWORD", redisTestPassword,
	}, env...)...)
}

// addrsEnv is what a test reads replicas with: tokens, and the catalog of
// the tree served before a fault.
type addrsEnv struct {
	front   *logtoFront
	cfg     config
	tk      *tokens
	service string
	cat     *catalog
	bound   time.Duration
}

func newAddrsEnv(t testing.TB, cfg config, front *logtoFront) *addrsEnv {
	tk := newTokens(t, cfg, front)
	return &addrsEnv{front: front, cfg: cfg, tk: tk, service: tk.service(t, ""), bound: cfg.LogtoTimeout + answerBoundSlack}
}

// waitReady waits until the replica c reaches is ready with Redis.
func waitReady(t testing.TB, c *client) {
	t.Helper()
	eventually(t, "the replica is ready", func() bool {
		status, body := c.ready(t)
		return status == http.StatusOK && body.Status == "ready" && body.Redis == "ok"
	})
}

// httpTraffic reads organizations from replicas in the background, through
// a service token (every answer must be a 200 within bound) and a session
// token (a 200, or the documented 503 while revocations cannot be checked).
type httpTraffic struct {
	stop                      chan struct{}
	wg                        sync.WaitGroup
	served, refused, sessions atomic.Int64
	slowestSession            atomic.Int64 // ns
	mu                        sync.Mutex
	failures                  []string
}

func (env *addrsEnv) traffic(t testing.TB, session string, clients ...*client) *httpTraffic {
	tr := &httpTraffic{stop: make(chan struct{})}
	var paths []string
	for _, p := range env.cat.paths {
		paths = append(paths, p)
	}
	fail := func(what string, r answer) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.failures = append(tr.failures, fmt.Sprintf("%s: %v %d %s", what, r.err, r.status, r.body))
	}
	loop := func(read func(path string)) {
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			read(paths[i%len(paths)])
		}
	}
	for _, c := range clients {
		tr.wg.Go(func() {
			loop(func(path string) {
				if r := c.get(path, env.service); r.err != nil || r.status != http.StatusOK || r.took > env.bound {
					fail("service "+path+" in "+r.took.String(), r)
				} else {
					tr.served.Add(1)
				}
			})
		})
		tr.wg.Go(func() {
			loop(func(path string) {
				tr.sessions.Add(1)
				r := c.get(path, session)
				for took := int64(r.took); ; {
					if cur := tr.slowestSession.Load(); took <= cur || tr.slowestSession.CompareAndSwap(cur, took) {
						break
					}
				}
				switch {
				case r.status == http.StatusServiceUnavailable && r.message() == "security service temporarily unavailable":
					tr.refused.Add(1)
				case r.err != nil || r.status != http.StatusOK:
					fail("session "+path, r)
				}
			})
		})
	}
	t.Cleanup(tr.halt)
	return tr
}

func (tr *httpTraffic) halt() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.wg.Wait()
}

// check stops the traffic and reports every failure.
func (tr *httpTraffic) check(t testing.TB) {
	t.Helper()
	tr.halt()
	for _, f := range tr.failures {
		t.Error(f)
	}
	if tr.served.Load() == 0 {
		t.Error("no request was served")
	}
}

// logout logs a session token out through c, and reports the status.
func logout(c *client, session string) int {
	return c.do(context.Background(), http.MethodPost, "/api/auth/logout", session, nil).status
}

func TestReplicasOnRedisCluster(t *testing.T) {
	checkNoLeaks(t)
	var cl *cachetest.Cluster
	t.Run("cluster", func(t *testing.T) {
		cl = cachetest.StartCluster(t, cachetest.ClusterOptions{Password: redisTestPassword})
		front := newLogtoFront(t, logtotest.Options{}, faultBulk)
		prefix := cachetest.Prefix(t)
		// One seed address is enough: the client discovers the others.
		cfgA := addrsConfig(t, front, prefix, "REDIS_ADDRS", cl.Addrs()[0])
		a := startReplica(t, cfgA)
		if _, ok := a.redis.(*redis.ClusterClient); !ok {
			t.Fatalf("REDIS_ADDRS without REDIS_MASTER_NAME built a %T, want a cluster client", a.redis)
		}
		ca := newClient(t, a)
		waitReady(t, ca)
		env := newAddrsEnv(t, cfgA, front)
		env.cat = catalogOf(t, ca, env.service)
		session := env.tk.owner(t)
		env.cat.check(t, ca, session, "HIT", env.bound)

		// A second replica, given every node, loads the snapshots from the
		// cluster without listing Logto, and serves the same tree.
		front.sim.ResetCalls()
		b := startReplica(t, addrsConfig(t, front, prefix, "REDIS_ADDRS", strings.Join(cl.Addrs(), ",")))
		cb := newClient(t, b)
		waitReady(t, cb)
		env.cat.check(t, cb, session, "HIT", env.bound)
		usersTotal(t, cb, session, "HIT")
		for group, n := range front.callsByGroup() {
			if n != 0 {
				t.Errorf("the second replica called Logto's %s %d times, want 0", group, n)
			}
		}
		if ga, gb := a.view.Health().Generation, b.view.Health().Generation; ga != gb {
			t.Errorf("replicas serve generations %d and %d", ga, gb)
		}

		// A logout on one replica holds on the other.
		path := env.cat.paths[env.cat.someCustomer(t)]
		if status := logout(ca, session); status != http.StatusOK {
			t.Fatalf("logout: %d", status)
		}
		eventually(t, "the other replica refuses the logged-out token", func() bool {
			r := cb.get(path, session)
			return r.status == http.StatusUnauthorized && r.message() == "token has been revoked"
		})

		// The master of the hierarchy's slot crashes mid-traffic, and long
		// enough for the cluster to refuse every command; it comes back
		// empty.
		session = env.tk.owner(t)
		master := cl.Master(prefix + "{hierarchy}:snapshot")
		tr := env.traffic(t, session, ca, cb)
		stopped := time.Now()
		cl.StopMaster(master)
		cl.WaitMasterFailed(master)
		eventually(t, "readiness says degraded", func() bool {
			status, body := ca.ready(t)
			return status == http.StatusOK && body.Status == "degraded"
		})
		restarted := time.Now()
		cl.StartMaster(master)
		rdb := cl.Client()
		eventually(t, "the snapshots are written back", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			users, err := rdb.Get(ctx, prefix+"{users}:generation").Uint64()
			return err == nil && users == a.users.Health().Generation && storedGeneration(t, rdb, prefix) == a.view.Health().Generation
		})
		waitReady(t, ca)
		waitReady(t, cb)
		recovered := time.Now()
		tr.check(t)
		t.Logf("cluster master %d down %v: %d service-token reads, all served; %d session-token reads, %d refused with 503, "+
			"the slowest answered in %v; snapshots written back and both replicas ready %v after the restart",
			master, restarted.Sub(stopped).Round(time.Millisecond), tr.served.Load(), tr.sessions.Load(), tr.refused.Load(),
			time.Duration(tr.slowestSession.Load()).Round(time.Millisecond), recovered.Sub(restarted).Round(time.Millisecond))
		env.cat.check(t, cb, session, "HIT", env.bound)
	})
	if cl != nil {
		if err := cl.Stopped(); err != nil {
			t.Error(err)
		}
	}
}

func TestReplicaOnRedisSentinel(t *testing.T) {
	checkNoLeaks(t)
	var s *cachetest.Sentinel
	t.Run("sentinel", func(t *testing.T) {
		s = cachetest.StartSentinel(t, cachetest.SentinelOptions{Password: redisTestPassword})
		front := newLogtoFront(t, logtotest.Options{}, faultBulk)
		prefix := cachetest.Prefix(t)
		cfg := addrsConfig(t, front, prefix, "REDIS_ADDRS", strings.Join(s.SentinelAddrs(), ","),
			"REDIS_MASTER_NAME", cachetest.SentinelMasterName)
		a := startReplica(t, cfg)
		c := newClient(t, a)
		waitReady(t, c)
		env := newAddrsEnv(t, cfg, front)
		env.cat = catalogOf(t, c, env.service)
		session := env.tk.owner(t)
		env.cat.check(t, c, session, "HIT", env.bound)
		if g := storedGeneration(t, s.ServerClient(s.MasterAddr()), prefix); g == 0 || g != a.view.Health().Generation {
			t.Fatalf("the master holds generation %d, the replica serves %d", g, a.view.Health().Generation)
		}

		// The master crashes mid-traffic; the Sentinel promotes the replica,
		// which holds the replicated snapshot and takes the next writes.
		s.WaitReplicated()
		tr := env.traffic(t, session, c)
		killed := time.Now()
		old := s.KillMaster()
		promoted := s.WaitFailover(old)
		failedOver := time.Now()
		if g := storedGeneration(t, s.ServerClient(promoted), prefix); g != a.view.Health().Generation {
			t.Errorf("the promoted replica holds generation %d, the replica serves %d", g, a.view.Health().Generation)
		}
		logoutAttempts := 0
		eventually(t, "a logout is recorded on the new master", func() bool {
			logoutAttempts++
			return logout(c, env.tk.owner(t)) == http.StatusOK
		})
		waitReady(t, c)
		eventually(t, "session tokens are answered again", func() bool {
			return c.get(env.cat.paths[env.cat.someCustomer(t)], session).status == http.StatusOK
		})
		tr.check(t)
		t.Logf("master killed, replica promoted %v later: %d service-token reads, all served; %d session-token reads, %d refused with 503, "+
			"the slowest answered in %v; %d logout attempt(s) until the first on the new master",
			failedOver.Sub(killed).Round(time.Millisecond), tr.served.Load(), tr.sessions.Load(), tr.refused.Load(),
			time.Duration(tr.slowestSession.Load()).Round(time.Millisecond), logoutAttempts)
	})
	if s != nil {
		if err := s.Stopped(); err != nil {
			t.Error(err)
		}
	}
}

// REDIS_ADDRS selects a Cluster client, even with one seed address; with
// REDIS_MASTER_NAME a Sentinel failover client; REDIS_URL one server; and
// a master name without Sentinels to ask is refused at start.
func TestRedisClientKinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config
		want string
	}{
		{"one cluster seed", config{RedisAddrs: []string{"127.0.0.1:7000"}}, "cluster"},
		{"cluster seeds", config{RedisAddrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}}, "cluster"},
		{"sentinel", config{RedisAddrs: []string{"127.0.0.1:26379"}, RedisMasterName: "m"}, "failover"},
		{"url", config{RedisURL: "redis://127.0.0.1:6390/2"}, "127.0.0.1:6390"},
		{"master name with a url", config{RedisURL: "redis://127.0.0.1:6390", RedisMasterName: "m"}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.RedisPassword = "pw"
			c, err := redisClient(tc.cfg)
			got := "error"
			switch c := c.(type) {
			case *redis.ClusterClient:
				got = "cluster"
				if c.Options().Password != "pw" || !c.Options().ContextTimeoutEnabled {
					t.Errorf("cluster options: password %q, context timeouts %v", c.Options().Password, c.Options().ContextTimeoutEnabled)
				}
			case *redis.Client:
				got = c.Options().Addr
				if got == "FailoverClient" {
					got = "failover"
				}
				if !c.Options().ContextTimeoutEnabled {
					t.Error("context deadlines do not bound socket I/O")
				}
			}
			if c != nil {
				_ = c.Close()
			}
			if got != tc.want {
				t.Errorf("got %s (%v), want %s", got, err, tc.want)
			}
			if (err != nil) != (tc.want == "error") {
				t.Errorf("err = %v", err)
			}
		})
	}
}
