package cache

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// sync reads the stored generation and, when Redis holds a snapshot this
// replica should serve instead of its own, loads it. It returns the stored
// generation (0 when there is none).
func (v *snapshotView[R, T]) sync(ctx context.Context) (uint64, error) {
	gen, err := v.store.generation(ctx)
	if err != nil {
		return 0, err
	}
	v.noteRedisGen(gen)
	if v.wantsStored(gen) {
		if err := v.loadStored(ctx); err != nil {
			return gen, err
		}
	}
	return gen, nil
}

// wantsStored reports whether the stored generation gen should replace what
// this replica serves: it is newer, or it is as new as a snapshot built here
// while Redis was down (Redis's copy wins, so all replicas agree on what a
// generation holds). A generation that failed to decode is not retried.
func (v *snapshotView[R, T]) wantsStored(gen uint64) bool {
	if gen == 0 || gen == v.skipGen.Load() {
		return false
	}
	cur := v.current.Load()
	if cur == nil || gen > cur.gen {
		return true
	}
	return gen == cur.gen && v.pendingGen.Load() == cur.gen
}

// loadStored loads the stored snapshot and installs it when wanted. Loads
// are shared by concurrent callers. A snapshot in a format this binary does
// not know, or that does not decode, counts as absent.
func (v *snapshotView[R, T]) loadStored(ctx context.Context) error {
	_, err, _ := v.flights.Do("load", func() (any, error) {
		blob, err := v.store.snapshot(ctx)
		if err != nil || blob == nil {
			return nil, err
		}
		h, err := v.spec.codec.header(blob)
		if err == nil && !v.wantsStored(h.generation) {
			return nil, nil
		}
		var data snapshotData[R]
		if err == nil {
			data, err = v.spec.codec.decode(blob)
		}
		if err != nil {
			gen := h.generation
			if gen == 0 {
				gen = v.redisGen.Load()
			}
			v.skipGen.Store(gen)
			v.log.Warn("stored snapshot ignored", "generation", gen, "err", err)
			return nil, nil
		}
		derived := v.spec.derive(data.records)
		st := &vstate[R, T]{derived: derived, records: data.records, gen: data.generation, builtAt: data.builtAt}
		if v.install(st, v.pendingGen.Load() == data.generation) {
			v.log.Debug("snapshot loaded from redis", "generation", st.gen, "entries", v.spec.size(derived))
		}
		return nil, nil
	})
	return err
}

// noteRedisGen remembers the highest generation seen in Redis, so that a
// snapshot built while Redis is down is numbered above it.
func (v *snapshotView[R, T]) noteRedisGen(gen uint64) {
	for {
		seen := v.redisGen.Load()
		if gen <= seen || v.redisGen.CompareAndSwap(seen, gen) {
			return
		}
	}
}

// check is the periodic reconciliation with Redis: it loads a newer stored
// generation (an announcement may have been missed) and writes this
// replica's snapshot back when Redis holds an older one or none (Redis was
// down during a rebuild, or restarted empty).
func (v *snapshotView[R, T]) check(ctx context.Context) {
	gen, err := v.sync(ctx)
	if err != nil {
		v.log.Debug("generation check failed", "err", err)
		return
	}
	if cur := v.current.Load(); cur != nil && cur.gen > gen {
		v.writeBack(ctx)
	}
}

// writeBack stores the snapshot in memory under its own generation, if no
// other writer of this replica is busy and no replica holds the lock (the
// next check retries otherwise).
func (v *snapshotView[R, T]) writeBack(ctx context.Context) {
	if !v.tryTakeWriter() {
		return
	}
	defer v.dropWriter()
	l, err := v.lock.tryAcquire(ctx)
	if v.health.note("lock", err) != nil {
		if errors.Is(err, errLockHeld) {
			v.obs.LockContended(v.spec.name)
		}
		return
	}
	defer v.freeLock(l)

	gen, err := v.sync(ctx)
	cur := v.current.Load()
	if err != nil || cur == nil || cur.gen <= gen {
		return
	}
	blob, err := v.spec.codec.encode(cur.gen, cur.builtAt, cur.records)
	if err != nil {
		v.log.Error("snapshot not written back", "err", err)
		return
	}
	if err := v.store.store(ctx, l, cur.gen, blob); err != nil {
		v.log.Warn("snapshot not written back", "generation", cur.gen, "err", err)
		return
	}
	v.pendingGen.CompareAndSwap(cur.gen, 0)
	v.noteRedisGen(cur.gen)
	v.log.Info("snapshot written back to redis", "generation", cur.gen)
	_ = v.store.announce(ctx, cur.gen)
}

// watch runs check every CheckInterval, and at once when asked through
// kick (after the subscription is re-established, say).
func (v *snapshotView[R, T]) watch(ctx context.Context) {
	ticker := time.NewTicker(v.cfg.CheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-v.kick:
		}
		v.check(ctx)
	}
}

// requestCheck asks the watcher for a check as soon as possible.
func (v *snapshotView[R, T]) requestCheck() {
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// listen follows the announcement channel. go-redis re-subscribes by itself
// after a connection loss; each (re)subscription triggers a check, since
// announcements made meanwhile are lost.
func (v *snapshotView[R, T]) listen(ctx context.Context) {
	msgs := v.pubsub.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					v.requestCheck()
				}
			case *redis.Message:
				v.onAnnounce(ctx, m.Payload)
			}
		}
	}
}

// onAnnounce loads an announced generation that is newer than the one
// served. A malformed announcement is ignored.
func (v *snapshotView[R, T]) onAnnounce(ctx context.Context, payload string) {
	gen, err := strconv.ParseUint(payload, 10, 64)
	if err != nil {
		v.log.Warn("malformed generation announcement ignored", "err", err)
		return
	}
	v.noteRedisGen(gen)
	if !v.wantsStored(gen) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 4*v.cfg.RedisTimeout)
	defer cancel()
	if err := v.loadStored(ctx); err != nil {
		v.log.Warn("announced generation not loaded; the next check retries", "generation", gen, "err", err)
	}
}
