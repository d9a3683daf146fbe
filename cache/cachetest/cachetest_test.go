package cachetest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache/cachetest"
)

func TestDeletePrefixDeletesOnlyThePrefix(t *testing.T) {
	c, prefix := cachetest.Client(t)
	other := cachetest.Prefix(t)
	t.Cleanup(func() { _ = cachetest.DeletePrefix(context.Background(), c, other) })
	ctx := t.Context()
	for _, k := range []string{prefix + "a", prefix + "{tag}:b", other + "x"} {
		if err := c.Set(ctx, k, "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cachetest.DeletePrefix(ctx, c, prefix); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, prefix+"a", prefix+"{tag}:b").Result(); n != 0 {
		t.Errorf("%d keys under the prefix survived", n)
	}
	if n, _ := c.Exists(ctx, other+"x").Result(); n != 1 {
		t.Error("a key under another prefix was deleted")
	}
}

func TestPrefixIsUniqueAndGlobFree(t *testing.T) {
	t.Run("odd/name*with?[glob]", func(t *testing.T) {
		a, b := cachetest.Prefix(t), cachetest.Prefix(t)
		if a == b {
			t.Errorf("two prefixes are equal: %q", a)
		}
		if !strings.HasPrefix(a, "lptest:") || strings.ContainsAny(a, `*?[]\`) {
			t.Errorf("prefix %q is not a plain lptest: prefix", a)
		}
	})
}

func TestServerRestartsEmpty(t *testing.T) {
	srv := cachetest.StartServer(t)
	c := srv.Client()
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("a stopped server answered")
	}
	srv.Start()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("restarted server: %v", err)
	}
	if _, err := c.Get(ctx, "k").Result(); !errors.Is(err, redis.Nil) {
		t.Errorf("a key survived the restart: %v", err)
	}
}
