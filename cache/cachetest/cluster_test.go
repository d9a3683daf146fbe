package cachetest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache/cachetest"
)

// The helpers are tested on what the cache's tests rely on: a cluster
// serving every slot, with a password; DeletePrefix reaching every master;
// a master restarted empty and rejoining; a Sentinel promoting the replica
// with no acknowledged write lost; and nothing left running afterwards.

func TestClusterHelper(t *testing.T) {
	var cl *cachetest.Cluster
	t.Run("cluster", func(t *testing.T) {
		cl = cachetest.StartCluster(t, cachetest.ClusterOptions{Password: "cluster-secret"})
		addrs := cl.Addrs()
		if len(addrs) != 3 {
			t.Fatalf("%d nodes, want 3", len(addrs))
		}
		c := cl.Client()
		ctx := testContext(t)
		prefix := cachetest.Prefix(t)

		// Keys spread over every master; DeletePrefix finds them all.
		keys := map[int]string{}
		for i := 0; len(keys) < 3 && i < 1000; i++ {
			k := fmt.Sprintf("%sk%d", prefix, i)
			keys[cl.Master(k)] = k
		}
		if len(keys) != 3 {
			t.Fatalf("keys landed on %d masters, want 3", len(keys))
		}
		for _, k := range keys {
			if err := c.Set(ctx, k, "v", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
		other := cachetest.Prefix(t) + "kept"
		if err := c.Set(ctx, other, "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := cachetest.DeletePrefix(ctx, c, prefix); err != nil {
			t.Fatal(err)
		}
		for m, k := range keys {
			if n, err := c.Exists(ctx, k).Result(); err != nil || n != 0 {
				t.Errorf("key on master %d survived DeletePrefix (%d, %v)", m, n, err)
			}
		}
		if n, _ := c.Exists(ctx, other).Result(); n != 1 {
			t.Error("DeletePrefix deleted a key under another prefix")
		}

		// A master restarts empty, rejoins, and serves its slots again.
		for _, k := range keys {
			if err := c.Set(ctx, k, "before", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		cl.StopMaster(1)
		cl.WaitMasterFailed(1)
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := c.Get(short, keys[0]).Err()
		cancel()
		if err == nil {
			t.Error("a cluster with a failed master still answered")
		}
		cl.StartMaster(1)
		if err := c.Get(ctx, keys[1]).Err(); !errors.Is(err, redis.Nil) {
			t.Errorf("the restarted master's key: %v, want none (it restarts empty)", err)
		}
		if v, err := c.Get(ctx, keys[0]).Result(); err != nil || v != "before" {
			t.Errorf("another master's key: %q, %v", v, err)
		}
		if err := c.Set(ctx, keys[1], "after", 0).Err(); err != nil {
			t.Errorf("write to the restarted master: %v", err)
		}

		// The password is required.
		anon := redis.NewClient(&redis.Options{Addr: addrs[0], MaxRetries: -1})
		defer anon.Close()
		if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Errorf("a client without the password: %v, want NOAUTH", err)
		}
	})
	if cl != nil {
		if err := cl.Stopped(); err != nil {
			t.Error(err)
		}
	}
}

func TestSentinelHelper(t *testing.T) {
	var s *cachetest.Sentinel
	t.Run("sentinel", func(t *testing.T) {
		s = cachetest.StartSentinel(t, cachetest.SentinelOptions{Password: "sentinel-secret"})
		c := s.Client()
		ctx := testContext(t)
		key := cachetest.Prefix(t) + "k"
		if err := c.Set(ctx, key, "before", 0).Err(); err != nil {
			t.Fatal(err)
		}
		s.WaitReplicated()
		old := s.KillMaster()
		promoted := s.WaitFailover(old)
		if promoted == old {
			t.Fatal("failed over to the dead master")
		}
		// The client follows the Sentinel to the promoted replica, which
		// holds the replicated write and takes new ones.
		var v string
		err := retry(ctx, func() error {
			var err error
			v, err = c.Get(ctx, key).Result()
			return err
		})
		if err != nil || v != "before" {
			t.Errorf("after the failover: %q, %v; want the replicated value", v, err)
		}
		if err := c.Set(ctx, key, "after", 0).Err(); err != nil {
			t.Errorf("write after the failover: %v", err)
		}
		if v, _ := s.ServerClient(promoted).Get(ctx, key).Result(); v != "after" {
			t.Errorf("the promoted master holds %q, want the write made through the client", v)
		}
	})
	if s != nil {
		if err := s.Stopped(); err != nil {
			t.Error(err)
		}
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// retry calls f until it succeeds, for as long as ctx lasts: a client's
// first command after a failover may still meet a connection to the old
// master.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
