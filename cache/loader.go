package cache

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

// ErrNotFound is what a Loader's Fetch returns (possibly wrapped) for a key
// the source does not have, and what Get returns for it, from the source or
// from a cached negative entry.
var ErrNotFound = errors.New("cache: not found")

// LoaderConfig configures a Loader. Client, Namespace and Fetch are
// required; every other field has a default.
type LoaderConfig[V any] struct {
	// Client reaches Redis (see HierarchyConfig.Client).
	Client redis.UniversalClient
	// Prefix starts every key (default DefaultPrefix).
	Prefix string
	// Namespace names the kind of entry ("user", "org"); it is part of the
	// keys and the view label reported to the Observer. It must be non-empty
	// and must not contain ':', '{' or '}'.
	Namespace string
	// Fetch reads one entry from the source. It returns an error wrapping
	// ErrNotFound when the source has no such key, which is then cached as a
	// negative entry; any other error is returned and not cached.
	Fetch func(ctx context.Context, key string) (V, error)

	// Marshal and Unmarshal encode values for Redis (default JSON).
	Marshal   func(V) ([]byte, error)
	Unmarshal func([]byte) (V, error)

	// SoftTTL is the age past which an entry is still served but refreshed
	// in the background (default 1m).
	SoftTTL time.Duration
	// HardTTL is when Redis drops an entry (default 10m).
	HardTTL time.Duration
	// NegativeTTL is how long a miss is remembered (default 30s).
	NegativeTTL time.Duration
	// Jitter spreads each TTL by up to this fraction of it (default 0.1), so
	// that entries filled together do not all expire together.
	Jitter float64
	// RedisTimeout bounds each Redis call (default 1s).
	RedisTimeout time.Duration
	// FetchTimeout bounds one call of Fetch (default 10s).
	FetchTimeout time.Duration

	// Logger receives the loader's logs (default slog.Default()).
	Logger *slog.Logger
	// Observer receives the loader's measurements, labelled by Namespace
	// (default NopObserver).
	Observer Observer
	// Now is the clock the TTLs are measured with (default time.Now).
	Now func() time.Time
}

func (c LoaderConfig[V]) withDefaults() (LoaderConfig[V], error) {
	switch {
	case c.Client == nil:
		return c, errors.New("cache: loader: Client is required")
	case c.Fetch == nil:
		return c, errors.New("cache: loader: Fetch is required")
	case c.Namespace == "" || strings.ContainsAny(c.Namespace, ":{}"):
		return c, fmt.Errorf("cache: loader: bad namespace %q", c.Namespace)
	case (c.Marshal == nil) != (c.Unmarshal == nil):
		return c, errors.New("cache: loader: set both Marshal and Unmarshal, or neither")
	case c.Jitter < 0 || c.Jitter > 1:
		return c, errors.New("cache: loader: Jitter must be within [0, 1]")
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Marshal == nil {
		c.Marshal = func(v V) ([]byte, error) { return json.Marshal(v) }
		c.Unmarshal = func(b []byte) (V, error) {
			var v V
			err := json.Unmarshal(b, &v)
			return v, err
		}
	}
	setDefault(&c.SoftTTL, time.Minute)
	setDefault(&c.HardTTL, 10*time.Minute)
	setDefault(&c.NegativeTTL, 30*time.Second)
	setDefault(&c.RedisTimeout, time.Second)
	setDefault(&c.FetchTimeout, 10*time.Second)
	if c.Jitter == 0 {
		c.Jitter = 0.1
	}
	if c.SoftTTL < 0 || c.HardTTL < c.SoftTTL || c.NegativeTTL < 0 || c.RedisTimeout < 0 || c.FetchTimeout < 0 {
		return c, errors.New("cache: loader: TTLs and timeouts must be positive, with HardTTL >= SoftTTL")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Loader is a read-through cache for entries that are not part of a view:
// Redis first, then one Fetch per key at a time per replica (singleflight),
// with the result written back to Redis. Entries past the soft TTL are
// served while one background Fetch refreshes them; misses are remembered
// as negative entries so that repeated lookups of a missing key do not
// reach the source. When Redis is unreachable every Get goes to the source,
// still coalesced. All methods are safe for concurrent use.
type Loader[V any] struct {
	cfg     LoaderConfig[V]
	health  redisHealth
	flights singleflight.Group
}

// NewLoader validates cfg and returns a Loader.
func NewLoader[V any](cfg LoaderConfig[V]) (*Loader[V], error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Loader[V]{cfg: cfg}
	l.health.obs = cfg.Observer
	return l, nil
}

// Get returns the entry for key, or an error wrapping ErrNotFound when the
// source has none.
func (l *Loader[V]) Get(ctx context.Context, key string) (V, error) {
	var zero V
	e, err := l.read(ctx, key)
	switch {
	case err != nil:
		l.cfg.Logger.Debug("loader entry unreadable; asking the source", "namespace", l.cfg.Namespace, "err", err)
	case e != nil:
		l.cfg.Observer.CacheHit(l.cfg.Namespace)
		if e.negative {
			return zero, fmt.Errorf("cache: %s %q: %w", l.cfg.Namespace, key, ErrNotFound)
		}
		if !l.cfg.Now().Before(e.freshUntil) {
			l.refreshInBackground(ctx, key)
		}
		return e.value, nil
	}
	l.cfg.Observer.CacheMiss(l.cfg.Namespace)
	return l.load(ctx, key)
}

// Invalidate drops the entry for key (a webhook announced a change), so that
// the next Get reads the source.
func (l *Loader[V]) Invalidate(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.RedisTimeout)
	defer cancel()
	l.flights.Forget(key)
	err := l.cfg.Client.Del(ctx, loaderKey(l.cfg.Prefix, l.cfg.Namespace, key)).Err()
	if l.health.note("loader_del", err) != nil {
		return fmt.Errorf("cache: invalidate %s entry: %w", l.cfg.Namespace, err)
	}
	return nil
}

// load waits, within ctx, for the one Fetch of key that concurrent callers
// share. The Fetch runs detached from any one caller's cancellation, bounded
// by FetchTimeout, so a caller giving up does not fail the others.
func (l *Loader[V]) load(ctx context.Context, key string) (V, error) {
	var zero V
	ch := l.flights.DoChan(key, func() (any, error) {
		return l.fetchAndStore(context.WithoutCancel(ctx), key)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		v, _ := r.Val.(V) // a nil interface value fails the assertion; zero is right then
		return v, nil
	case <-ctx.Done():
		return zero, fmt.Errorf("cache: %s %q: %w", l.cfg.Namespace, key, ctx.Err())
	}
}

// refreshInBackground starts one Fetch of key unless one is running.
func (l *Loader[V]) refreshInBackground(ctx context.Context, key string) {
	l.flights.DoChan(key, func() (any, error) {
		return l.fetchAndStore(context.WithoutCancel(ctx), key)
	})
}

// fetchAndStore reads key from the source and caches the answer, positive
// or negative. A failure to cache is counted and logged but does not fail
// the read.
func (l *Loader[V]) fetchAndStore(ctx context.Context, key string) (V, error) {
	var zero V
	v, err := l.fetch(ctx, key)
	now := l.cfg.Now()
	switch {
	case errors.Is(err, ErrNotFound):
		l.write(ctx, key, entry[V]{negative: true, freshUntil: now}, l.jitter(l.cfg.NegativeTTL))
		return zero, fmt.Errorf("cache: %s %q: %w", l.cfg.Namespace, key, ErrNotFound)
	case err != nil:
		return zero, fmt.Errorf("cache: fetch %s %q: %w", l.cfg.Namespace, key, err)
	}
	e := entry[V]{value: v, freshUntil: now.Add(l.jitter(l.cfg.SoftTTL))}
	l.write(ctx, key, e, l.jitter(l.cfg.HardTTL))
	return v, nil
}

// fetch calls Fetch within FetchTimeout, turning a panic into an error.
func (l *Loader[V]) fetch(ctx context.Context, key string) (v V, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.FetchTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("loader fetch panicked: %v", r)
		}
	}()
	return l.cfg.Fetch(ctx, key)
}

// jitter returns d lengthened by a random fraction of up to Jitter.
func (l *Loader[V]) jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Float64()*l.cfg.Jitter*float64(d))
}

// read returns the cached entry for key, nil when there is none (or it is
// in a format this binary does not know).
func (l *Loader[V]) read(ctx context.Context, key string) (*entry[V], error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.RedisTimeout)
	defer cancel()
	raw, err := l.cfg.Client.Get(ctx, loaderKey(l.cfg.Prefix, l.cfg.Namespace, key)).Bytes()
	if errors.Is(err, redis.Nil) {
		l.health.note("loader_get", nil)
		return nil, nil
	}
	if l.health.note("loader_get", err) != nil {
		return nil, fmt.Errorf("read %s entry: %w", l.cfg.Namespace, err)
	}
	e, err := decodeEntry(raw, l.cfg.Unmarshal)
	if err != nil {
		l.cfg.Logger.Warn("loader entry ignored", "namespace", l.cfg.Namespace, "err", err)
		return nil, nil
	}
	return e, nil
}

// write caches e for ttl.
func (l *Loader[V]) write(ctx context.Context, key string, e entry[V], ttl time.Duration) {
	raw, err := encodeEntry(e, l.cfg.Marshal)
	if err != nil {
		l.cfg.Logger.Error("loader entry not cached", "namespace", l.cfg.Namespace, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.RedisTimeout)
	defer cancel()
	err = l.cfg.Client.Set(ctx, loaderKey(l.cfg.Prefix, l.cfg.Namespace, key), raw, ttl).Err()
	if l.health.note("loader_set", err) != nil {
		l.cfg.Logger.Warn("loader entry not cached", "namespace", l.cfg.Namespace, "err", err)
	}
}

// entry is one cached answer: a value, or the fact that there is none.
type entry[V any] struct {
	value      V
	negative   bool
	freshUntil time.Time // past it, the entry is refreshed in the background
}

// The stored form of an entry: a version byte, a kind byte, freshUntil as
// big-endian Unix milliseconds, then the marshalled value (positive only).
const (
	entryVersion  = 1
	entryPositive = 1
	entryNegative = 2
	entryHeader   = 10
)

func encodeEntry[V any](e entry[V], marshal func(V) ([]byte, error)) ([]byte, error) {
	kind := byte(entryPositive)
	var payload []byte
	if e.negative {
		kind = entryNegative
	} else {
		var err error
		if payload, err = marshal(e.value); err != nil {
			return nil, fmt.Errorf("marshal entry: %w", err)
		}
	}
	out := make([]byte, entryHeader, entryHeader+len(payload))
	out[0], out[1] = entryVersion, kind
	binary.BigEndian.PutUint64(out[2:], uint64(e.freshUntil.UnixMilli()))
	return append(out, payload...), nil
}

func decodeEntry[V any](raw []byte, unmarshal func([]byte) (V, error)) (*entry[V], error) {
	if len(raw) < entryHeader || raw[0] != entryVersion {
		return nil, errors.New("unknown entry format")
	}
	e := &entry[V]{freshUntil: time.UnixMilli(int64(binary.BigEndian.Uint64(raw[2:])))}
	switch raw[1] {
	case entryNegative:
		e.negative = true
	case entryPositive:
		v, err := unmarshal(raw[entryHeader:])
		if err != nil {
			return nil, fmt.Errorf("unmarshal entry: %w", err)
		}
		e.value = v
	default:
		return nil, fmt.Errorf("unknown entry kind %d", raw[1])
	}
	return e, nil
}
