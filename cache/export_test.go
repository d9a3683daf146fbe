package cache

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file exposes internals to the external test package, which can use
// cachetest (the internal one cannot: cachetest imports cache).

var (
	ErrLockHeld = errLockHeld
	ErrLockLost = errLockLost
)

// TestLock wraps the hierarchy view's rebuild lock for tests.
type TestLock struct{ l *redisLock }

// TestLease wraps one holding of a TestLock.
type TestLease struct{ l *lease }

func NewTestLock(c redis.UniversalClient, prefix string, ttl time.Duration) *TestLock {
	keys := newHierarchyKeys(prefix)
	return &TestLock{newRedisLock(c, keys.lock, keys.fence, ttl, time.Second)}
}

func (t *TestLock) TryAcquire(ctx context.Context) (*TestLease, error) {
	l, err := t.l.tryAcquire(ctx)
	if err != nil {
		return nil, err
	}
	return &TestLease{l}, nil
}

func (t *TestLease) Token() string                    { return t.l.token }
func (t *TestLease) Extend(ctx context.Context) error { return t.l.extend(ctx) }
func (t *TestLease) Free(ctx context.Context) error   { return t.l.free(ctx) }

// ApplyQueueLen is how many Apply calls wait for the next group commit.
func ApplyQueueLen(v *HierarchyView) int {
	v.v.queueMu.Lock()
	defer v.v.queueMu.Unlock()
	return len(v.v.queue)
}
