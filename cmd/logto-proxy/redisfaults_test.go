package main

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// The Redis fault suite: real replicas against a private Redis that the
// test stops, restarts empty or slows down (never the shared one). Cached
// reads never touch Redis, so they keep being answered; session tokens
// fail closed (503 security service temporarily unavailable, as the README
// says under "Tokens") while Redis cannot say whether they were revoked;
// service tokens never need Redis; readiness says degraded; and when Redis
// is back the snapshot this replica serves is written back to it.

func TestRedisFaultsKeepAnswering(t *testing.T) {
	checkNoLeaks(t)
	scenarios := []struct {
		name string
		run  func(t testing.TB)
	}{{"down at start", func(t testing.TB) {
		env := newRedisFaultEnv(t, false)
		env.srv.Stop()
		env.start(t)
		eventually(t, "the replica serves the tree built without Redis", func() bool {
			status, body := env.c.ready(t)
			return status == http.StatusOK && body.Status == "degraded" && body.Redis == "unreachable"
		})
		env.checkRedisDown(t)
		env.srv.Start()
		env.checkRedisBack(t)
	}}, {"down mid-traffic, restarted empty", func(t testing.TB) {
		env := newRedisFaultEnv(t, false)
		env.start(t)
		env.waitReady(t)
		traffic := env.traffic(t)
		env.srv.Stop()
		// Logto changes while Redis is down: the replica rebuilds alone,
		// serves the change, and writes it back later.
		renamed := env.cat.someCustomer(t)
		if _, err := env.front.sim.UpdateOrganization(renamed, map[string]any{"name": "Renamed While Redis Was Down"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the change is served from a tree built without Redis", func() bool {
			return orgName(t, env.c.get("/api/customers/"+renamed, env.service)) == "Renamed While Redis Was Down"
		})
		env.cat.names[renamed] = "Renamed While Redis Was Down"
		env.checkRedisDown(t)
		env.srv.Start() // empty, like a server without persistence
		env.checkRedisBack(t)
		traffic.check(t)
	}}, {"slow", func(t testing.TB) {
		env := newRedisFaultEnv(t, true)
		env.start(t)
		env.waitReady(t)
		traffic := env.traffic(t)

		// Slower than usual but within every timeout: everything answers.
		env.relay.setDelay(100 * time.Millisecond)
		env.cat.check(t, env.c, env.service, "", env.bound)
		if r := env.c.get("/api/customers?page_size=1", env.session); r.status != http.StatusOK {
			t.Errorf("session token with a slow Redis: %d %s", r.status, r.body)
		}

		// Slower than every timeout: as good as down.
		env.relay.setDelay(3 * time.Second)
		eventually(t, "readiness says Redis is unreachable", func() bool {
			status, body := env.c.ready(t)
			return status == http.StatusOK && body.Status == "degraded" && body.Redis == "unreachable"
		})
		env.checkRedisDown(t)
		env.relay.setDelay(0)
		eventually(t, "readiness recovers", func() bool {
			status, body := env.c.ready(t)
			return status == http.StatusOK && body.Status == "ready"
		})
		eventually(t, "session tokens are accepted again", func() bool {
			return env.c.get("/api/customers?page_size=1", env.session).status == http.StatusOK
		})
		traffic.check(t)
	}}}
	concurrently(t, len(scenarios), func(i int) string { return scenarios[i].name }, func(t testing.TB, i int) {
		scenarios[i].run(t)
	})
}

// redisFaultEnv is one replica against a private Redis (through a slow
// relay when asked), and what the test reads it with.
type redisFaultEnv struct {
	front            *logtoFront
	srv              *cachetest.Server
	relay            *slowRelay // nil unless asked for
	url, prefix      string
	cfg              config
	a                *app
	c                *client
	session, service string
	cat              *catalog
	bound            time.Duration
}

func newRedisFaultEnv(t testing.TB, slow bool) *redisFaultEnv {
	env := &redisFaultEnv{front: newLogtoFront(t, logtotest.Options{}, faultBulk), srv: cachetest.StartServer(t), prefix: cachetest.Prefix(t)}
	addr := env.srv.Addr()
	if slow {
		env.relay = newSlowRelay(t, addr)
		addr = env.relay.addr()
	}
	env.url = "redis://" + addr
	env.cfg = faultConfig(t, env.front, env.url, env.prefix)
	env.bound = env.cfg.LogtoTimeout + answerBoundSlack
	tk := newTokens(t, env.cfg, env.front)
	env.session, env.service = tk.owner(t), tk.service(t, "")
	return env
}

func (env *redisFaultEnv) start(t testing.TB) {
	env.a, _ = startLoggedReplica(t, env.cfg)
	env.c = newClient(t, env.a)
}

// waitReady waits until the replica is ready with Redis, and catalogs the
// tree.
func (env *redisFaultEnv) waitReady(t testing.TB) {
	t.Helper()
	eventually(t, "the replica is ready", func() bool {
		status, body := env.c.ready(t)
		return status == http.StatusOK && body.Status == "ready"
	})
	env.cat = catalogOf(t, env.c, env.service)
	if r := env.c.get("/api/customers?page_size=1", env.session); r.status != http.StatusOK {
		t.Fatalf("session token with Redis up: %d %s", r.status, r.body)
	}
}

// checkRedisDown checks the answers while Redis cannot answer: the cached
// tree through service tokens, 503 for session tokens, and readiness
// degraded.
func (env *redisFaultEnv) checkRedisDown(t testing.TB) {
	t.Helper()
	if env.cat == nil {
		env.cat = catalogOf(t, env.c, env.service)
	}
	env.cat.check(t, env.c, env.service, "", env.bound)
	usersTotal(t, env.c, env.service, "")
	eventually(t, "session tokens fail closed", func() bool {
		r := env.c.get("/api/customers?page_size=1", env.session)
		if r.status != http.StatusOK && (r.status != http.StatusServiceUnavailable || r.message() != "security service temporarily unavailable") {
			t.Fatalf("session token with Redis down: %d %s", r.status, r.body)
		}
		return r.status == http.StatusServiceUnavailable
	})
	if status, body := env.c.ready(t); status != http.StatusOK || body.Status != "degraded" || body.Redis != "unreachable" {
		t.Errorf("readiness with Redis down: %d %+v", status, body)
	}
}

// checkRedisBack waits until the snapshots the replica serves are stored
// in the Redis that came back, readiness is ready and sessions work, then
// checks the tree again.
func (env *redisFaultEnv) checkRedisBack(t testing.TB) {
	t.Helper()
	rdb := redisOf(t, env.url)
	eventually(t, "the hierarchy and users snapshots are written back", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		users, err := rdb.Get(ctx, env.prefix+"{users}:generation").Uint64()
		return err == nil && users == env.a.users.Health().Generation && storedGeneration(t, rdb, env.prefix) == env.a.view.Health().Generation
	})
	eventually(t, "readiness says ready", func() bool {
		status, body := env.c.ready(t)
		return status == http.StatusOK && body.Status == "ready"
	})
	eventually(t, "session tokens are accepted again", func() bool {
		return env.c.get("/api/customers?page_size=1", env.session).status == http.StatusOK
	})
	env.cat.check(t, env.c, env.service, "", env.bound)
	env.cat.check(t, env.c, env.session, "", env.bound)
}

// background is traffic sent while a test breaks Redis: service-token reads
// of the catalog, which must all be answered, and session-token reads,
// which may only be answered or refused with the documented 503.
type background struct {
	stop     chan struct{}
	done     sync.WaitGroup
	mu       sync.Mutex
	failures []string
	refused  atomic.Int64
}

func (env *redisFaultEnv) traffic(t testing.TB) *background {
	b := &background{stop: make(chan struct{})}
	paths := make([]string, 0, len(env.cat.paths))
	for _, p := range env.cat.paths {
		paths = append(paths, p)
	}
	fail := func(format string, r answer) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.failures = append(b.failures, format+": "+http.StatusText(r.status)+" "+string(r.body))
	}
	for range 2 {
		b.done.Go(func() {
			for {
				select {
				case <-b.stop:
					return
				default:
				}
				path := paths[rand.IntN(len(paths))]
				if r := env.c.get(path, env.service); r.err != nil || r.status != http.StatusOK || r.took > env.bound {
					fail("service "+path+" took "+r.took.String(), r)
				}
				switch r := env.c.get(path, env.session); {
				case r.status == http.StatusServiceUnavailable && r.message() == "security service temporarily unavailable":
					b.refused.Add(1)
				case r.err != nil || r.status != http.StatusOK:
					fail("session "+path, r)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	t.Cleanup(b.halt)
	return b
}

func (b *background) halt() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	b.done.Wait()
}

// check stops the traffic and reports what went wrong during it.
func (b *background) check(t testing.TB) {
	t.Helper()
	b.halt()
	for _, f := range b.failures {
		t.Error(f)
	}
	if b.refused.Load() == 0 {
		t.Error("no session request was refused while Redis was out")
	}
}
