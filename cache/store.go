package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// storeScript writes a snapshot and its generation atomically, fenced: only
// while the lock still holds the writer's token, and only if the generation
// grows. It returns 0 when stored, -1 when the writer no longer holds the
// lock, and the current generation when that is not lower than the new one.
// KEYS: lock, generation, snapshot. ARGV: token, generation, snapshot.
const storeScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if cur >= tonumber(ARGV[2]) then return cur end
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2])
return 0`

// errNotNewer: the store refused a snapshot because Redis already holds
// that generation or a later one.
var errNotNewer = errors.New("redis holds a newer generation")

// redisHealth remembers whether the last Redis call succeeded and counts
// failures, so that every Redis call site reports the same way.
type redisHealth struct {
	obs Observer
	ok  atomic.Bool
}

// note records the outcome of one Redis operation and returns err unchanged.
// redis.Nil (a missing key) is an answer, not a failure.
func (h *redisHealth) note(op string, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		h.ok.Store(true)
		return err
	}
	if errors.Is(err, errLockHeld) || errors.Is(err, errLockLost) {
		h.ok.Store(true) // Redis answered; the answer was no.
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err // the caller gave up; that says nothing about Redis
	}
	h.ok.Store(false)
	h.obs.RedisError(op)
	return err
}

// snapshotStore is the Redis side of a snapshot view: the generation
// key, the snapshot key and the announcement channel. Each call is bounded
// by timeout and reported to health.
type snapshotStore struct {
	client  redis.UniversalClient
	keys    viewKeys
	timeout time.Duration
	health  *redisHealth
	put     *redis.Script
}

func newSnapshotStore(client redis.UniversalClient, keys viewKeys, timeout time.Duration, health *redisHealth) *snapshotStore {
	return &snapshotStore{
		client:  client,
		keys:    keys,
		timeout: timeout,
		health:  health,
		put:     redis.NewScript(storeScript),
	}
}

// generation returns the generation of the stored snapshot, 0 when there is
// none.
func (s *snapshotStore) generation(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	raw, err := s.client.Get(ctx, s.keys.generation).Result()
	if errors.Is(err, redis.Nil) {
		s.health.note("generation", nil)
		return 0, nil
	}
	if err := s.health.note("generation", err); err != nil {
		return 0, fmt.Errorf("get generation: %w", err)
	}
	gen, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("get generation: bad value: %w", err)
	}
	return gen, nil
}

// snapshot returns the stored snapshot's bytes, nil when there is none.
func (s *snapshotStore) snapshot(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	blob, err := s.client.Get(ctx, s.keys.snapshot).Bytes()
	if errors.Is(err, redis.Nil) {
		s.health.note("snapshot_get", nil)
		return nil, nil
	}
	if err := s.health.note("snapshot_get", err); err != nil {
		return nil, fmt.Errorf("get snapshot: %w", err)
	}
	return blob, nil
}

// store writes blob as generation gen, fenced by the lease's token. It
// returns errLockLost when the lease no longer holds the lock and
// errNotNewer when Redis already holds gen or later.
func (s *snapshotStore) store(ctx context.Context, l *lease, gen uint64, blob []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	keys := []string{s.keys.lock, s.keys.generation, s.keys.snapshot}
	res, err := s.put.Run(ctx, s.client, keys, l.token, gen, blob).Int64()
	if err := s.health.note("snapshot_put", err); err != nil {
		return fmt.Errorf("store snapshot: %w", err)
	}
	switch {
	case res == 0:
		return nil
	case res < 0:
		return fmt.Errorf("store snapshot generation %d: %w", gen, errLockLost)
	default:
		return fmt.Errorf("store snapshot generation %d: generation %d stored: %w", gen, res, errNotNewer)
	}
}

// announce tells the other replicas that generation gen is stored. Losing
// an announcement is harmless: replicas also poll the generation key.
func (s *snapshotStore) announce(ctx context.Context, gen uint64) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := s.client.Publish(ctx, s.keys.announce, strconv.FormatUint(gen, 10)).Err()
	if err := s.health.note("publish", err); err != nil {
		return fmt.Errorf("announce generation %d: %w", gen, err)
	}
	return nil
}
