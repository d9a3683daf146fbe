package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
)

func TestEmbeddedServesRESPAndExpiresKeys(t *testing.T) {
	e, err := cache.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := redis.ParseURL(e.URL())
	if err != nil {
		t.Fatal(err)
	}
	if opts.Addr != e.Addr() {
		t.Errorf("URL %q does not name %q", e.URL(), e.Addr())
	}
	c := e.Client()
	defer c.Close()
	ctx := testContext(t)
	if err := c.Set(ctx, "short", "v", 20*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "long", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	// Keys expire on the wall clock, as on a real server.
	eventually(t, "short key expired", func() bool {
		_, err := c.Get(ctx, "short").Result()
		return errors.Is(err, redis.Nil)
	})
	if v, err := c.Get(ctx, "long").Result(); err != nil || v != "v" {
		t.Errorf("long-lived key: %q, %v", v, err)
	}
	e.Close()
	// A short deadline: go-redis would otherwise retry for a while.
	pingCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := c.Ping(pingCtx).Err(); err == nil {
		t.Error("a closed embedded server answered")
	}
}
