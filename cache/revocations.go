package cache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Every session request asks whether its token was revoked, and asking
// Redis costs a round trip (~80 µs, more than answering the request). So
// each replica keeps a copy of the revocations in memory — the mirror — and
// answers from it while it is known to be complete:
//
//   - Every revocation is written by a script that also publishes it on
//     the revocations channel, atomically: no revocation exists in Redis
//     without its announcement having gone out to every subscriber.
//   - A replica subscribes first, then reads the whole revocation state (a
//     resync), and only then trusts its mirror. Announcements arriving
//     meanwhile are applied after, so nothing falls in between.
//   - The replica that revokes applies the revocation to its own mirror
//     before answering, so a logout holds at once on that replica; on the
//     others it holds as soon as the announcement arrives, which is the time
//     Redis takes to push a message over an open connection — well under a
//     millisecond, shorter than a client's next request to another replica.
//   - Fail closed: while the subscription is down, or has not been
//     resynced since it was (re)established, the mirror is not trusted and
//     every check goes to Redis as before (and fails when Redis cannot
//     answer). A connection that fails silently is detected by heartbeats:
//     an idle subscription is pinged every Heartbeat and dropped when a ping
//     goes unanswered, so a replica cut off from Redis stops trusting its
//     mirror within two heartbeats.
//   - A full resync every Resync repairs anything an announcement could
//     still miss (a Redis Cluster node losing pub/sub traffic on its bus).
//
// Revocations only ever accumulate until they expire, so applying an
// announcement twice, or a resync and an announcement in any order, gives
// the same mirror.

// revocationKeys names the revocation state in Redis. The keys share one
// hash tag, so that the scripts writing them run on one Cluster slot.
type revocationKeys struct {
	tokens  string // zset: digest → expiry (unix ms)
	reasons string // hash: digest → reason
	users   string // zset: user id → expiry (unix ms) of a reuse burn
	burned  string // hash: user id → burn time (unix s)
	channel string // pub/sub: every revocation, as an event (see parseEvent)
}

func newRevocationKeys(prefix string) revocationKeys {
	base := prefix + "{session:revoked}:"
	return revocationKeys{
		tokens:  base + "tokens",
		reasons: base + "reasons",
		users:   base + "users",
		burned:  base + "burned",
		channel: prefix + "session:revocations",
	}
}

// pruneLua defines prune(zset, hash, now): it drops up to 500 entries that
// expired by now from a zset and its companion hash, so the state never
// outgrows the live revocations.
const pruneLua = `
local function prune(zset, hash, now)
  local old = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 500)
  if #old > 0 then
    redis.call('ZREM', zset, unpack(old))
    redis.call('HDEL', hash, unpack(old))
  end
end
`

// revokeTokenScript: KEYS = tokens, reasons; ARGV = digest, reason, expiry
// ms, now ms, channel. Records the revocation (keeping the later expiry of
// two) and announces it, in one step.
const revokeTokenScript = keepEpochLua + pruneLua + `
local now = tonumber(ARGV[4])
prune(KEYS[1], KEYS[2], now)
local exp = ARGV[3]
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if cur and tonumber(cur) > tonumber(exp) then exp = cur end
redis.call('ZADD', KEYS[1], exp, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
keep(KEYS[1], tonumber(exp) - now)
keep(KEYS[2], tonumber(exp) - now)
redis.call('PUBLISH', ARGV[5], 't ' .. exp .. ' ' .. ARGV[1] .. ' ' .. ARGV[2])
return 1
`

// recordBurnScript: KEYS = users, burned; ARGV = user id, burn time s,
// expiry ms, now ms. Indexes a reuse burn for resyncs (useScript already
// wrote the user's burned-at key and announced it).
const recordBurnScript = keepEpochLua + pruneLua + `
local now = tonumber(ARGV[4])
prune(KEYS[1], KEYS[2], now)
local exp = ARGV[3]
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if cur and tonumber(cur) > tonumber(exp) then exp = cur end
local at = ARGV[2]
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if prev and tonumber(prev) > tonumber(at) then at = prev end
redis.call('ZADD', KEYS[1], exp, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], at)
keep(KEYS[1], tonumber(exp) - now)
keep(KEYS[2], tonumber(exp) - now)
return 1
`

// revokedToken is a revoked access token in the mirror.
type revokedToken struct {
	reason  string
	expires int64 // unix ms
}

// burnedUser is a user whose earlier access tokens a refresh reuse revoked.
type burnedUser struct {
	at      int64 // unix s: tokens issued before are revoked
	expires int64 // unix ms
}

// revocationMirror is one replica's copy of the revocations. trusted says
// whether it is complete (see the top of this file); checks read it only
// then.
type revocationMirror struct {
	trusted atomic.Bool
	mu      sync.RWMutex
	tokens  map[string]revokedToken
	users   map[string]burnedUser
}

func newRevocationMirror() *revocationMirror {
	return &revocationMirror{tokens: map[string]revokedToken{}, users: map[string]burnedUser{}}
}

// check answers CheckToken from the mirror.
func (m *revocationMirror) check(digest, userID string, issuedAt time.Time, nowMs int64) (string, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if t, ok := m.tokens[digest]; ok && t.expires > nowMs {
		return t.reason, true
	}
	if b, ok := m.users[userID]; ok && b.expires > nowMs && issuedAt.Unix() < b.at {
		return ReasonRefreshReuse, true
	}
	return "", false
}

// addToken records a revoked token, keeping the later expiry.
func (m *revocationMirror) addToken(digest, reason string, expires int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.tokens[digest]; ok && cur.expires > expires {
		expires = cur.expires
	}
	m.tokens[digest] = revokedToken{reason: reason, expires: expires}
}

// addBurn records a reuse burn, keeping the later time and expiry.
func (m *revocationMirror) addBurn(userID string, at, expires int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.users[userID]; ok {
		at, expires = max(at, cur.at), max(expires, cur.expires)
	}
	m.users[userID] = burnedUser{at: at, expires: expires}
}

// prune forgets what expired by nowMs.
func (m *revocationMirror) prune(nowMs int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d, t := range m.tokens {
		if t.expires <= nowMs {
			delete(m.tokens, d)
		}
	}
	for u, b := range m.users {
		if b.expires <= nowMs {
			delete(m.users, u)
		}
	}
}

// apply applies one announcement; a malformed one is an error and changes
// nothing.
func (m *revocationMirror) apply(payload string) error {
	kind, exp, subject, rest, err := parseEvent(payload)
	if err != nil {
		return err
	}
	switch kind {
	case "t":
		m.addToken(subject, rest, exp)
	case "u":
		at, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return fmt.Errorf("revocation event: bad burn time %q", rest)
		}
		m.addBurn(subject, at, exp)
	}
	return nil
}

// parseEvent reads an announcement: "t <expiry ms> <digest> <reason>" for
// a revoked token, "u <expiry ms> <user id> <burn time s>" for a burned
// user. The reason is the rest of the line and may hold spaces.
func parseEvent(payload string) (kind string, expires int64, subject, rest string, err error) {
	parts := strings.SplitN(payload, " ", 4)
	if len(parts) != 4 || (parts[0] != "t" && parts[0] != "u") {
		return "", 0, "", "", errors.New("revocation event: malformed")
	}
	expires, err = strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", 0, "", "", fmt.Errorf("revocation event: bad expiry %q", parts[1])
	}
	if checkSessionKey(parts[2]) != nil {
		return "", 0, "", "", errors.New("revocation event: bad subject")
	}
	return parts[0], expires, parts[2], parts[3], nil
}

// Start makes the store answer CheckToken from memory: it subscribes to the
// revocation announcements, loads every live revocation, and keeps both up
// to date until Close. Until the first load completes, and whenever the
// subscription is lost, checks go to Redis as if Start had not been called.
// Start does no I/O itself and never fails but for a second call or a
// closed store.
func (s *SessionStore) Start() error {
	s.life.Lock()
	defer s.life.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return errors.New("cache: session store already started")
	}
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.following.Add(1)
	go func() {
		defer s.following.Done()
		s.follow(ctx)
	}()
	return nil
}

// Close stops following revocations (checks go to Redis from then on) and
// waits for the follower to finish.
func (s *SessionStore) Close() {
	s.life.Lock()
	s.closed = true
	stop := s.stop
	s.life.Unlock()
	if stop != nil {
		stop()
	}
	s.following.Wait()
	s.mirror.trusted.Store(false)
}

// Synced reports whether CheckToken currently answers from memory (for
// readiness reports and tests).
func (s *SessionStore) Synced() bool { return s.mirror.trusted.Load() }

// follow keeps the mirror in step with Redis until ctx ends, subscribing
// again after every loss, a heartbeat apart.
func (s *SessionStore) follow(ctx context.Context) {
	for {
		err := s.subscription(ctx)
		wasTrusted := s.mirror.trusted.Swap(false)
		if ctx.Err() != nil {
			return
		}
		s.health.note("session_subscribe", err)
		if wasTrusted {
			s.cfg.Logger.Warn("revocation announcements lost; checking revocations in redis until resynced", "err", err)
		} else {
			s.cfg.Logger.Debug("revocation subscription failed again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Heartbeat):
		}
	}
}

// errHeartbeat is a subscription that stopped answering pings.
var errHeartbeat = errors.New("cache: revocation subscription did not answer a heartbeat")

// subscription runs one subscription until it fails: it resyncs once the
// subscription is confirmed, then applies announcements, pings the
// connection when it has been idle for a heartbeat (and gives up when a
// ping goes unanswered for another), and resyncs every Resync.
func (s *SessionStore) subscription(ctx context.Context) error {
	ps := s.cfg.Client.Subscribe(ctx)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() }) // unblocks a pending receive
	defer stop()
	subCtx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	err := ps.Subscribe(subCtx, s.keys.channel)
	cancel()
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	var lastSync, pingedAt time.Time
	lastHeard := time.Now()
	subscribed := false
	for {
		wait := s.cfg.Heartbeat
		if subscribed && !lastSync.IsZero() {
			wait = min(wait, max(time.Until(lastSync.Add(s.cfg.Resync)), time.Millisecond))
		}
		msg, err := ps.ReceiveTimeout(ctx, wait)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case isTimeout(err) && !pingedAt.IsZero():
			if time.Since(pingedAt) >= s.cfg.Heartbeat {
				return errHeartbeat
			}
		case isTimeout(err):
			if time.Since(lastHeard) >= s.cfg.Heartbeat {
				pingCtx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
				err = ps.Ping(pingCtx)
				cancel()
				if err != nil {
					return fmt.Errorf("heartbeat: %w", err)
				}
				pingedAt = time.Now()
			}
		case err != nil:
			return fmt.Errorf("receive: %w", err)
		default:
			lastHeard, pingedAt = time.Now(), time.Time{}
			switch m := msg.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					// Confirmed: from now on nothing announced is missed,
					// so what Redis holds now is what must be loaded.
					subscribed, lastSync = true, time.Time{}
				}
			case *redis.Message:
				if err := s.mirror.apply(m.Payload); err != nil {
					s.cfg.Logger.Warn("revocation announcement ignored", "err", err)
				}
			}
		}
		if subscribed && (lastSync.IsZero() || time.Since(lastSync) >= s.cfg.Resync) {
			if err := s.resync(ctx); err != nil {
				return err
			}
			lastSync = time.Now()
		}
	}
}

// isTimeout reports a receive that found nothing within its timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// resync loads every live revocation into the mirror (one transaction, so
// a consistent view) and then trusts it.
func (s *SessionStore) resync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ResyncTimeout)
	defer cancel()
	now := s.cfg.Now().UnixMilli()
	live := &redis.ZRangeBy{Min: "(" + strconv.FormatInt(now, 10), Max: "+inf"}
	var tokens, users *redis.ZSliceCmd
	var reasons, burned *redis.MapStringStringCmd
	_, err := s.cfg.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		tokens = p.ZRangeByScoreWithScores(ctx, s.keys.tokens, live)
		reasons = p.HGetAll(ctx, s.keys.reasons)
		users = p.ZRangeByScoreWithScores(ctx, s.keys.users, live)
		burned = p.HGetAll(ctx, s.keys.burned)
		return nil
	})
	if s.health.note("session_resync", err) != nil {
		return fmt.Errorf("resync revocations: %w", err)
	}
	why := reasons.Val()
	for _, z := range tokens.Val() {
		digest, _ := z.Member.(string)
		s.mirror.addToken(digest, why[digest], int64(z.Score))
	}
	at := burned.Val()
	for _, z := range users.Val() {
		user, _ := z.Member.(string)
		if t, err := strconv.ParseInt(at[user], 10, 64); err == nil {
			s.mirror.addBurn(user, t, int64(z.Score))
		}
	}
	s.mirror.prune(now)
	if !s.mirror.trusted.Swap(true) {
		s.cfg.Logger.Info("revocations resynced; checking them in memory", "tokens", len(tokens.Val()), "users", len(users.Val()))
	}
	return nil
}
