package cache

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	// errLockHeld: another holder has the lock right now.
	errLockHeld = errors.New("lock held by another replica")
	// errLockLost: the lease's token is no longer the lock's value (it
	// expired, and perhaps another replica took it).
	errLockLost = errors.New("lock lost")
)

// acquireScript takes the lock if it is free and returns the new fencing
// token "<n>:<random>", where n comes from a counter that only grows; it
// returns nil when the lock is held. KEYS: lock, fence. ARGV: random, ttl ms.
const acquireScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return token`

// releaseScript deletes the lock only if it still holds the caller's token,
// so a holder whose lease expired cannot release someone else's lock.
// KEYS: lock. ARGV: token.
const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

// renewScript extends the lock only if it still holds the caller's token.
// KEYS: lock. ARGV: token, ttl ms.
const renewScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`

// redisLock is a cluster-wide mutex: SET NX PX semantics with a fencing
// token, so that writes made under the lock can be checked against it (see
// storeScript). The lock and fence keys must share a hash tag.
type redisLock struct {
	client   redis.UniversalClient
	key      string
	fenceKey string
	ttl      time.Duration
	timeout  time.Duration // bound of each Redis call

	acquire *redis.Script
	release *redis.Script
	renew   *redis.Script
}

func newRedisLock(client redis.UniversalClient, key, fenceKey string, ttl, timeout time.Duration) *redisLock {
	return &redisLock{
		client:   client,
		key:      key,
		fenceKey: fenceKey,
		ttl:      ttl,
		timeout:  timeout,
		acquire:  redis.NewScript(acquireScript),
		release:  redis.NewScript(releaseScript),
		renew:    redis.NewScript(renewScript),
	}
}

// lease is one holding of a redisLock; its token is the fencing token.
type lease struct {
	lock  *redisLock
	token string
}

// tryAcquire takes the lock without waiting. It returns errLockHeld when
// another holder has it and a wrapped Redis error when Redis cannot answer.
func (l *redisLock) tryAcquire(ctx context.Context) (*lease, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	token, err := l.acquire.Run(ctx, l.client, []string{l.key, l.fenceKey},
		rand.Text(), l.ttl.Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		return nil, errLockHeld
	}
	if err != nil {
		return nil, fmt.Errorf("acquire lock: %w", err)
	}
	return &lease{lock: l, token: token}, nil
}

// extend pushes the lease's expiry one lock TTL ahead. It returns
// errLockLost when the lock no longer holds this lease's token.
func (le *lease) extend(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, le.lock.timeout)
	defer cancel()
	n, err := le.lock.renew.Run(ctx, le.lock.client, []string{le.lock.key},
		le.token, le.lock.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("renew lock: %w", err)
	}
	if n == 0 {
		return errLockLost
	}
	return nil
}

// free releases the lock if this lease still holds it. A lease that expired
// is not an error: there is nothing left to release.
func (le *lease) free(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, le.lock.timeout)
	defer cancel()
	if err := le.lock.release.Run(ctx, le.lock.client, []string{le.lock.key}, le.token).Err(); err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	return nil
}
