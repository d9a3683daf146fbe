package cache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
)

type profile struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// profileSource is a Loader source: known keys answer a profile whose name
// carries the call number, "missing" is not found, "broken" fails.
type profileSource struct {
	calls   atomic.Int32
	fetched chan string // receives each fetched key, if not nil
	gate    chan struct{}
}

func (s *profileSource) Fetch(ctx context.Context, key string) (profile, error) {
	n := s.calls.Add(1)
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return profile{}, ctx.Err()
		}
	}
	defer func() {
		if s.fetched != nil {
			s.fetched <- key
		}
	}()
	switch key {
	case "missing":
		return profile{}, fmt.Errorf("user %s: %w", key, cache.ErrNotFound)
	case "broken":
		return profile{}, errors.New("logto unavailable")
	}
	return profile{ID: key, Name: fmt.Sprintf("call %d", n)}, nil
}

func newLoader(t *testing.T, client redis.UniversalClient, prefix string, src *profileSource, obs cache.Observer, now func() time.Time) *cache.Loader[profile] {
	t.Helper()
	l, err := cache.NewLoader(cache.LoaderConfig[profile]{
		Client:       client,
		Prefix:       prefix,
		Namespace:    "user",
		Fetch:        src.Fetch,
		SoftTTL:      time.Minute,
		HardTTL:      10 * time.Minute,
		NegativeTTL:  30 * time.Second,
		RedisTimeout: 2 * time.Second,
		FetchTimeout: testTimeout,
		Logger:       slog.New(slog.DiscardHandler),
		Observer:     obs,
		Now:          now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLoaderReadThrough(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := &profileSource{}
	obs := newRecorder()
	l := newLoader(t, client, prefix, src, obs, nil)
	ctx := testContext(t)

	for i := range 3 {
		got, err := l.Get(ctx, "u1")
		if err != nil {
			t.Fatal(err)
		}
		if got != (profile{ID: "u1", Name: "call 1"}) {
			t.Fatalf("read %d = %+v, want the first fetch's answer", i, got)
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("fetched %d times, want 1", n)
	}
	if obs.count(&obs.misses) != 1 || obs.count(&obs.hits) != 2 {
		t.Errorf("misses %d, hits %d; want 1, 2", obs.count(&obs.misses), obs.count(&obs.hits))
	}
	// The entry lives at the documented key, for the hard TTL plus jitter.
	ttl, err := client.PTTL(ctx, prefix+"user:u1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 9*time.Minute || ttl > 11*time.Minute {
		t.Errorf("entry TTL %v, want within [10m, 11m] (hard TTL, 10%% jitter)", ttl)
	}
	// Another replica (another Loader) reads the same entry.
	other := &profileSource{}
	if got, err := newLoader(t, client, prefix, other, cache.NopObserver{}, nil).Get(ctx, "u1"); err != nil || got.Name != "call 1" || other.calls.Load() != 0 {
		t.Errorf("second loader: %+v, %v, %d fetches; want the cached entry", got, err, other.calls.Load())
	}
}

func TestLoaderNegativeEntries(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := &profileSource{}
	l := newLoader(t, client, prefix, src, cache.NopObserver{}, nil)
	ctx := testContext(t)

	for range 3 {
		if _, err := l.Get(ctx, "missing"); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("fetched %d times, want 1 (the miss is remembered)", n)
	}
	ttl, err := client.PTTL(ctx, prefix+"user:missing").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 25*time.Second || ttl > 33*time.Second {
		t.Errorf("negative entry TTL %v, want within [30s, 33s]", ttl)
	}
}

func TestLoaderErrorsAreNotCached(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := &profileSource{}
	l := newLoader(t, client, prefix, src, cache.NopObserver{}, nil)
	ctx := testContext(t)
	for range 2 {
		_, err := l.Get(ctx, "broken")
		if err == nil || errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("Get(broken) = %v, want the source's error", err)
		}
	}
	if n := src.calls.Load(); n != 2 {
		t.Errorf("fetched %d times, want 2 (errors are not cached)", n)
	}
}

func TestLoaderCoalescesConcurrentMisses(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := &profileSource{gate: make(chan struct{})}
	obs := newRecorder()
	l := newLoader(t, client, prefix, src, obs, nil)
	ctx := testContext(t)

	const readers = 200
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := l.Get(ctx, "u2"); err != nil || got.Name != "call 1" {
				t.Errorf("Get = %+v, %v", got, err)
			}
		}()
	}
	eventually(t, "all readers missed", func() bool { return obs.count(&obs.misses) == readers })
	close(src.gate)
	wg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Errorf("fetched %d times for %d concurrent readers, want 1", n, readers)
	}
}

func TestLoaderRefreshesPastSoftTTL(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	src := &profileSource{fetched: make(chan string, 10)}
	l := newLoader(t, client, prefix, src, cache.NopObserver{}, clock.Now)
	ctx := testContext(t)

	if _, err := l.Get(ctx, "u3"); err != nil {
		t.Fatal(err)
	}
	<-src.fetched
	clock.Advance(2 * time.Minute) // past the soft TTL (1m + jitter)
	got, err := l.Get(ctx, "u3")
	if err != nil || got.Name != "call 1" {
		t.Fatalf("past soft TTL: %+v, %v; want the cached entry served", got, err)
	}
	<-src.fetched // the background refresh
	eventually(t, "refreshed entry stored", func() bool {
		got, err := l.Get(ctx, "u3")
		return err == nil && got.Name == "call 2"
	})
	if n := src.calls.Load(); n != 2 {
		t.Errorf("fetched %d times, want 2", n)
	}
}

func TestLoaderInvalidate(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := &profileSource{}
	l := newLoader(t, client, prefix, src, cache.NopObserver{}, nil)
	ctx := testContext(t)
	if _, err := l.Get(ctx, "u4"); err != nil {
		t.Fatal(err)
	}
	if err := l.Invalidate(ctx, "u4"); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Get(ctx, "u4"); err != nil || got.Name != "call 2" {
		t.Errorf("after Invalidate: %+v, %v; want a fresh fetch", got, err)
	}
}

func TestLoaderIgnoresUnreadableEntries(t *testing.T) {
	client, prefix := cachetest.Client(t)
	src := &profileSource{}
	l := newLoader(t, client, prefix, src, cache.NopObserver{}, nil)
	ctx := testContext(t)
	for key, raw := range map[string]string{
		"u5": "",                                                  // empty
		"u6": "\x09\x01garbage-from-the-future",                   // unknown version
		"u7": "\x01\x07\x00\x00\x00\x00\x00\x00\x00\x00",          // unknown kind
		"u8": "\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00{not json", // bad payload
	} {
		if err := client.Set(ctx, prefix+"user:"+key, raw, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := l.Get(ctx, key); err != nil || got.ID != key {
			t.Errorf("Get(%s) over an unreadable entry = %+v, %v; want a fetch", key, got, err)
		}
	}
	if n := src.calls.Load(); n != 4 {
		t.Errorf("fetched %d times, want 4", n)
	}
}

func TestLoaderWithoutRedisGoesToSource(t *testing.T) {
	srv := cachetest.StartServer(t)
	client := srv.Client()
	srv.Stop()
	src := &profileSource{}
	obs := newRecorder()
	l := newLoader(t, client, cachetest.Prefix(t), src, obs, nil)
	ctx := testContext(t)
	for range 2 {
		if got, err := l.Get(ctx, "u9"); err != nil || got.ID != "u9" {
			t.Fatalf("Get with redis down = %+v, %v; want the source's answer", got, err)
		}
	}
	if n := src.calls.Load(); n != 2 {
		t.Errorf("fetched %d times, want 2 (nothing can be cached)", n)
	}
	if obs.count(&obs.redisErrors) == 0 {
		t.Error("redis errors not counted")
	}
}

func TestLoaderConfigValidation(t *testing.T) {
	client, _ := cachetest.Client(t)
	fetch := func(context.Context, string) (int, error) { return 0, nil }
	bad := map[string]cache.LoaderConfig[int]{
		"no client":        {Namespace: "n", Fetch: fetch},
		"no fetch":         {Client: client, Namespace: "n"},
		"no namespace":     {Client: client, Fetch: fetch},
		"tagged namespace": {Client: client, Fetch: fetch, Namespace: "{n}"},
		"half a codec":     {Client: client, Fetch: fetch, Namespace: "n", Marshal: func(int) ([]byte, error) { return nil, nil }},
		"jitter":           {Client: client, Fetch: fetch, Namespace: "n", Jitter: 2},
		"hard below soft":  {Client: client, Fetch: fetch, Namespace: "n", SoftTTL: time.Hour, HardTTL: time.Minute},
	}
	for name, cfg := range bad {
		if _, err := cache.NewLoader(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
