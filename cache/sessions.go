package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SessionStore is the server-side state of the dashboard's session tokens,
// which are otherwise stateless JWTs: which access tokens were revoked
// (logout), which refresh tokens are still live (they are one-shot and
// rotate), and which users had all their tokens revoked at once. It lives in
// Redis so that every replica sees a logout or a rotation at once.
//
// Keys (keys written together share a hash tag, so that the scripts
// touching several of them run on one Redis Cluster slot):
//
//	<prefix>{session:revoked}:tokens            zset    revoked access tokens: digest → expiry (unix ms)
//	<prefix>{session:revoked}:reasons           hash    digest → revocation reason
//	<prefix>{session:revoked}:users             zset    users burned by a refresh reuse: user → expiry (unix ms)
//	<prefix>{session:revoked}:burned            hash    user → burn time (unix s), for resyncs
//	<prefix>session:revocations                 channel every revocation, announced by the script that writes it
//	<prefix>{session:<user>}:refresh:<token id>  string  "live:<epoch>" or "used:<epoch>:<unix ms>"; PX = the token's life
//	<prefix>{session:<user>}:epoch              string  counter; bumping it ends every refresh token issued before
//	<prefix>{session:<user>}:burned-at          string  unix seconds of a reuse burn: earlier access tokens are revoked
//
// Tokens are never stored, only a digest the caller computes (access
// tokens) or the token's id (refresh tokens). Every call is bounded by the
// configured timeout and reported to the Observer. Once started, the store
// answers CheckToken from memory, without a round trip (revocations.go).
type SessionStore struct {
	cfg         SessionStoreConfig
	keys        revocationKeys
	health      redisHealth
	issue       *redis.Script
	use         *redis.Script
	revoke      *redis.Script
	revokeToken *redis.Script
	recordBurn  *redis.Script

	// mirror is the in-memory copy of the revocations Start maintains.
	mirror    *revocationMirror
	life      sync.Mutex // guards started, closed and stop
	started   bool
	closed    bool
	stop      context.CancelFunc
	following sync.WaitGroup
}

// SessionStoreConfig configures a SessionStore. Client is required.
type SessionStoreConfig struct {
	// Client reaches Redis (see HierarchyConfig.Client).
	Client redis.UniversalClient
	// Prefix starts every key (default DefaultPrefix).
	Prefix string
	// ReuseGrace is how long after its rotation a refresh token may be
	// presented again without being taken for a stolen one (default 30s,
	// the upstream's): a browser whose refresh answer was lost retries.
	ReuseGrace time.Duration
	// Timeout bounds each Redis call (default 500ms); the store sits on
	// the request path.
	Timeout time.Duration
	// Heartbeat is how often an idle revocation subscription is pinged
	// (default 1s): a subscription silent for two heartbeats is dropped and
	// the in-memory revocations are not trusted until resynced.
	Heartbeat time.Duration
	// Resync is how often the in-memory revocations are reloaded whole
	// while subscribed (default 30s), and ResyncTimeout bounds one reload
	// (default 5s).
	Resync, ResyncTimeout time.Duration
	// Logger receives the subscription's state changes (default
	// slog.Default()).
	Logger *slog.Logger
	// Observer receives failed Redis operations (default NopObserver).
	Observer Observer
	// Now is the clock rotations are timed with (default time.Now).
	Now func() time.Time
}

// RefreshOutcome is what presenting a refresh token to UseRefresh did.
type RefreshOutcome int

const (
	// RefreshRotated: the token was live and is now used; issue a new pair.
	RefreshRotated RefreshOutcome = iota + 1
	// RefreshGrace: the token was rotated within ReuseGrace; tolerated,
	// issue a new pair again.
	RefreshGrace
	// RefreshReused: the token was rotated longer ago than ReuseGrace, the
	// mark of a stolen token: every token of the user is now revoked.
	RefreshReused
	// RefreshRevoked: the user's tokens were revoked (logout, or a reuse
	// burn) after this one was issued.
	RefreshRevoked
	// RefreshUnknown: the token was never recorded here, or has expired.
	RefreshUnknown
)

// String names the outcome for logs.
func (o RefreshOutcome) String() string {
	switch o {
	case RefreshRotated:
		return "rotated"
	case RefreshGrace:
		return "grace"
	case RefreshReused:
		return "reused"
	case RefreshRevoked:
		return "revoked"
	case RefreshUnknown:
		return "unknown"
	}
	return "invalid"
}

// ReasonRefreshReuse is the revocation reason reported for access tokens
// revoked by a refresh-token reuse burn.
const ReasonRefreshReuse = "refresh token reuse detected"

// ErrBadSessionKey is returned for a user id, token id or digest that cannot
// be part of a key (empty, too long, or with characters outside
// [A-Za-z0-9._-]); such a token is simply not valid.
var ErrBadSessionKey = errors.New("cache: bad session key")

// NewSessionStore validates cfg and returns a store.
func NewSessionStore(cfg SessionStoreConfig) (*SessionStore, error) {
	if cfg.Client == nil {
		return nil, errors.New("cache: session store: Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	setDefault(&cfg.ReuseGrace, 30*time.Second)
	setDefault(&cfg.Timeout, 500*time.Millisecond)
	setDefault(&cfg.Heartbeat, time.Second)
	setDefault(&cfg.Resync, 30*time.Second)
	setDefault(&cfg.ResyncTimeout, 5*time.Second)
	if cfg.ReuseGrace < 0 || cfg.Timeout < 0 || cfg.Heartbeat < 0 || cfg.Resync < 0 || cfg.ResyncTimeout < 0 {
		return nil, errors.New("cache: session store: durations must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &SessionStore{cfg: cfg, keys: newRevocationKeys(cfg.Prefix), issue: redis.NewScript(issueScript),
		use: redis.NewScript(useScript), revoke: redis.NewScript(revokeUserScript),
		revokeToken: redis.NewScript(revokeTokenScript), recordBurn: redis.NewScript(recordBurnScript),
		mirror: newRevocationMirror()}
	s.health.obs = cfg.Observer
	return s, nil
}

// RevokeToken records that the access token whose digest is given is
// revoked, with a reason reported back by CheckToken, until ttl (the token's
// remaining life) has passed, and announces it to every replica.
func (s *SessionStore) RevokeToken(ctx context.Context, digest, reason string, ttl time.Duration) error {
	if err := checkSessionKey(digest); err != nil {
		return err
	}
	if ttl <= 0 {
		return nil // already expired: nothing can use it
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	now := s.cfg.Now().UnixMilli()
	expires := now + max(ttl.Milliseconds(), 1)
	err := s.revokeToken.Run(ctx, s.cfg.Client, []string{s.keys.tokens, s.keys.reasons},
		digest, reason, expires, now, s.keys.channel).Err()
	if s.health.note("session_revoke", err) != nil {
		return fmt.Errorf("cache: revoke token: %w", err)
	}
	s.mirror.addToken(digest, reason, expires) // this replica's next check must see it, announcement or not
	return nil
}

// CheckToken reports whether an access token is revoked, and why: its
// digest was revoked (logout), or its user's tokens were burned after it was
// issued (refresh-token reuse). Once Start has synced the in-memory copy of
// the revocations, it is answered from memory; otherwise it costs one round
// trip, and fails when Redis cannot answer.
func (s *SessionStore) CheckToken(ctx context.Context, digest, userID string, issuedAt time.Time) (reason string, revoked bool, err error) {
	if err := checkSessionKey(digest); err != nil {
		return "", false, err
	}
	now := s.cfg.Now().UnixMilli()
	if s.mirror.trusted.Load() {
		reason, revoked := s.mirror.check(digest, userID, issuedAt, now)
		return reason, revoked, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	pipe := s.cfg.Client.Pipeline()
	expires := pipe.ZScore(ctx, s.keys.tokens, digest)
	why := pipe.HGet(ctx, s.keys.reasons, digest)
	var burned *redis.StringCmd
	if checkSessionKey(userID) == nil {
		burned = pipe.Get(ctx, s.userKey(userID, "burned-at"))
	}
	_, err = pipe.Exec(ctx)
	if errors.Is(err, redis.Nil) {
		err = nil // a missing key is the common answer: not revoked
	}
	if s.health.note("session_check", err) != nil {
		return "", false, fmt.Errorf("cache: check token: %w", err)
	}
	if exp, err := expires.Result(); err == nil && int64(exp) > now {
		return why.Val(), true, nil
	}
	if burned != nil {
		if at, err := burned.Int64(); err == nil && issuedAt.Unix() < at {
			return ReasonRefreshReuse, true, nil
		}
	}
	return "", false, nil
}

// IssueRefresh records a newly minted refresh token of userID as live for
// ttl (its lifetime). Only recorded tokens can be used.
func (s *SessionStore) IssueRefresh(ctx context.Context, userID, tokenID string, ttl time.Duration) error {
	if err := checkSessionKeys(userID, tokenID); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	keys := []string{s.userKey(userID, "refresh:"+tokenID), s.userKey(userID, "epoch")}
	err := s.issue.Run(ctx, s.cfg.Client, keys, ttl.Milliseconds()).Err()
	if s.health.note("session_issue", err) != nil {
		return fmt.Errorf("cache: issue refresh token: %w", err)
	}
	return nil
}

// UseRefresh presents a refresh token of userID, atomically: a live token
// becomes used (RefreshRotated); a used one is tolerated within ReuseGrace
// (RefreshGrace) and past it burns the user (RefreshReused: every refresh
// token is ended, and every access token issued before now is revoked for
// keep, which must cover the longest token lifetime). A burn is announced
// to every replica by the same script; it is also indexed for resyncs, and
// an error then is reported (the burn itself has happened).
func (s *SessionStore) UseRefresh(ctx context.Context, userID, tokenID string, keep time.Duration) (RefreshOutcome, error) {
	if err := checkSessionKeys(userID, tokenID); err != nil {
		return RefreshUnknown, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	keys := []string{s.userKey(userID, "refresh:"+tokenID), s.userKey(userID, "epoch"), s.userKey(userID, "burned-at")}
	now := s.cfg.Now()
	expires := now.UnixMilli() + keep.Milliseconds()
	res, err := s.use.Run(ctx, s.cfg.Client, keys,
		now.UnixMilli(), s.cfg.ReuseGrace.Milliseconds(), keep.Milliseconds(), now.Unix(),
		expires, s.keys.channel, userID).Text()
	if s.health.note("session_use", err) != nil {
		return 0, fmt.Errorf("cache: use refresh token: %w", err)
	}
	switch res {
	case "rotated":
		return RefreshRotated, nil
	case "grace":
		return RefreshGrace, nil
	case "reused":
		s.mirror.addBurn(userID, now.Unix(), expires)
		err := s.recordBurn.Run(ctx, s.cfg.Client, []string{s.keys.users, s.keys.burned},
			userID, now.Unix(), expires, now.UnixMilli()).Err()
		if s.health.note("session_burn", err) != nil {
			return RefreshReused, fmt.Errorf("cache: index refresh reuse burn: %w", err)
		}
		return RefreshReused, nil
	case "revoked":
		return RefreshRevoked, nil
	}
	return RefreshUnknown, nil
}

// RevokeUser ends every refresh token of userID issued so far (logout); the
// fact is remembered for keep, which must cover the refresh token lifetime.
func (s *SessionStore) RevokeUser(ctx context.Context, userID string, keep time.Duration) error {
	if err := checkSessionKey(userID); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	err := s.revoke.Run(ctx, s.cfg.Client, []string{s.userKey(userID, "epoch")}, keep.Milliseconds()).Err()
	if s.health.note("session_revoke_user", err) != nil {
		return fmt.Errorf("cache: revoke user tokens: %w", err)
	}
	return nil
}

func (s *SessionStore) userKey(userID, suffix string) string {
	return s.cfg.Prefix + "{session:" + userID + "}:" + suffix
}

// maxSessionKey bounds ids and digests put into keys.
const maxSessionKey = 256

// checkSessionKey accepts what Logto ids, UUIDs and hex digests are made of,
// so that a claim can never inject a hash tag or a key separator.
func checkSessionKey(s string) error {
	if s == "" || len(s) > maxSessionKey {
		return ErrBadSessionKey
	}
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return ErrBadSessionKey
	}
	return nil
}

func checkSessionKeys(keys ...string) error {
	for _, k := range keys {
		if err := checkSessionKey(k); err != nil {
			return err
		}
	}
	return nil
}

// keepEpochLua defines keep(key, ms), which makes the epoch key live at
// least ms more milliseconds without ever shortening it: a token recorded
// under an epoch must never see the counter vanish (and read as 0) while it
// lives. A key without expiry (PTTL -1) gets one, so nothing stays forever.
const keepEpochLua = `
local function keep(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
`

// issueScript: KEYS = token, epoch; ARGV = ttl ms. Records the token as live
// under the user's current epoch.
const issueScript = keepEpochLua + `
local ttl = tonumber(ARGV[1])
local epoch = redis.call('GET', KEYS[2]) or '0'
if epoch ~= '0' then keep(KEYS[2], ttl) end
redis.call('SET', KEYS[1], 'live:' .. epoch, 'PX', ttl)
return epoch
`

// useScript: KEYS = token, epoch, burned-at; ARGV = now ms, grace ms, keep
// ms, now s, burn expiry ms, revocations channel, user id. See UseRefresh.
const useScript = keepEpochLua + `
local v = redis.call('GET', KEYS[1])
if not v then return 'unknown' end
local state, epoch, usedAt = string.match(v, '^(%a+):(%d+):?(%d*)$')
if not state then return 'unknown' end
if epoch ~= (redis.call('GET', KEYS[2]) or '0') then return 'revoked' end
local now = tonumber(ARGV[1])
if state == 'live' then
  redis.call('SET', KEYS[1], 'used:' .. epoch .. ':' .. ARGV[1], 'KEEPTTL')
  return 'rotated'
end
if usedAt ~= '' and now - tonumber(usedAt) <= tonumber(ARGV[2]) then return 'grace' end
redis.call('INCR', KEYS[2])
keep(KEYS[2], tonumber(ARGV[3]))
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[6], 'u ' .. ARGV[5] .. ' ' .. ARGV[7] .. ' ' .. ARGV[4])
return 'reused'
`

// revokeUserScript: KEYS = epoch; ARGV = keep ms. Bumps the epoch.
const revokeUserScript = keepEpochLua + `
redis.call('INCR', KEYS[1])
keep(KEYS[1], tonumber(ARGV[1]))
return 1
`
