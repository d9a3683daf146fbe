package cache_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
)

const (
	refreshTTL = 168 * time.Hour
	accessTTL  = 30 * time.Minute
)

func newSessionStore(t *testing.T, client redis.UniversalClient, prefix string, clock *fakeClock, obs cache.Observer) *cache.SessionStore {
	t.Helper()
	s, err := cache.NewSessionStore(cache.SessionStoreConfig{Client: client, Prefix: prefix, Now: clock.Now, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func useRefresh(t *testing.T, s *cache.SessionStore, user, id string) cache.RefreshOutcome {
	t.Helper()
	got, err := s.UseRefresh(testContext(t), user, id, refreshTTL)
	if err != nil {
		t.Fatalf("use %s/%s: %v", user, id, err)
	}
	return got
}

func issueRefresh(t *testing.T, s *cache.SessionStore, user, id string) {
	t.Helper()
	if err := s.IssueRefresh(testContext(t), user, id, refreshTTL); err != nil {
		t.Fatalf("issue %s/%s: %v", user, id, err)
	}
}

func TestRefreshTokensAreOneShotWithAGraceForRetries(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	checkRefreshOneShot(t, newSessionStore(t, client, prefix, clock, cache.NopObserver{}), clock)
}

// checkRefreshOneShot: a refresh token rotates once, a reuse within 30 s is
// a retry's grace, a reuse past it burns the user's tokens and the access
// tokens issued before, and nobody else's; a new login works again (also
// run on a Redis Cluster). It uses the users u1 and u2.
func checkRefreshOneShot(t *testing.T, s *cache.SessionStore, clock *fakeClock) {
	t.Helper()
	issueRefresh(t, s, "u1", "a")
	issueRefresh(t, s, "u1", "b")
	issueRefresh(t, s, "u2", "c")
	if got := useRefresh(t, s, "u1", "a"); got != cache.RefreshRotated {
		t.Fatalf("first use of a live token: %v", got)
	}
	clock.Advance(29 * time.Second)
	if got := useRefresh(t, s, "u1", "a"); got != cache.RefreshGrace {
		t.Fatalf("reuse 29s after rotation: %v, want grace", got)
	}
	// Access tokens minted before the burn (same second as the fake clock
	// now, then one second later) tell which side of the burn they are on.
	before := clock.Now().Add(-time.Second)
	clock.Advance(2 * time.Second)
	if got := useRefresh(t, s, "u1", "a"); got != cache.RefreshReused {
		t.Fatalf("reuse 31s after rotation: %v, want reused", got)
	}
	if got := useRefresh(t, s, "u1", "b"); got != cache.RefreshRevoked {
		t.Errorf("another live token of the burned user: %v, want revoked", got)
	}
	if got := useRefresh(t, s, "u2", "c"); got != cache.RefreshRotated {
		t.Errorf("another user's token after the burn: %v, want rotated", got)
	}
	ctx := testContext(t)
	reason, revoked, err := s.CheckToken(ctx, "digest1", "u1", before)
	if err != nil || !revoked || reason != cache.ReasonRefreshReuse {
		t.Errorf("access token issued before the burn: %q %v %v", reason, revoked, err)
	}
	if _, revoked, err := s.CheckToken(ctx, "digest1", "u1", clock.Now().Add(time.Second)); err != nil || revoked {
		t.Errorf("access token issued after the burn: revoked=%v %v", revoked, err)
	}
	if _, revoked, err := s.CheckToken(ctx, "digest1", "u2", before); err != nil || revoked {
		t.Errorf("another user's access token: revoked=%v %v", revoked, err)
	}
	// A login after the burn starts a new, working chain.
	issueRefresh(t, s, "u1", "d")
	if got := useRefresh(t, s, "u1", "d"); got != cache.RefreshRotated {
		t.Errorf("token issued after the burn: %v, want rotated", got)
	}
}

func TestUnknownRefreshTokensAreRefused(t *testing.T) {
	client, prefix := cachetest.Client(t)
	s := newSessionStore(t, client, prefix, newFakeClock(), cache.NopObserver{})
	if got := useRefresh(t, s, "u1", "never-issued"); got != cache.RefreshUnknown {
		t.Errorf("never issued: %v", got)
	}
	issueRefresh(t, s, "u1", "a")
	if got := useRefresh(t, s, "u2", "a"); got != cache.RefreshUnknown {
		t.Errorf("token id presented for another user: %v", got)
	}
}

func TestRevokeUserEndsEarlierRefreshTokensOnly(t *testing.T) {
	client, prefix := cachetest.Client(t)
	s := newSessionStore(t, client, prefix, newFakeClock(), cache.NopObserver{})
	ctx := testContext(t)
	issueRefresh(t, s, "u1", "old")
	if err := s.RevokeUser(ctx, "u1", time.Hour); err != nil {
		t.Fatal(err)
	}
	issueRefresh(t, s, "u1", "new")
	if got := useRefresh(t, s, "u1", "old"); got != cache.RefreshRevoked {
		t.Errorf("token issued before the revocation: %v", got)
	}
	if got := useRefresh(t, s, "u1", "new"); got != cache.RefreshRotated {
		t.Errorf("token issued after the revocation: %v", got)
	}
	// The epoch must outlive every token recorded under it: issuing a token
	// that lives longer than the revocation is remembered stretches it.
	left, err := client.PTTL(ctx, prefix+"{session:u1}:epoch").Result()
	if err != nil || left < refreshTTL-time.Minute {
		t.Errorf("epoch TTL %v (%v), want at least the refresh lifetime", left, err)
	}
	// A second revocation with a shorter memory never shortens it.
	if err := s.RevokeUser(ctx, "u1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if left, err := client.PTTL(ctx, prefix+"{session:u1}:epoch").Result(); err != nil || left < refreshTTL-time.Minute {
		t.Errorf("epoch TTL shortened to %v (%v)", left, err)
	}
}

func TestRevokedAccessTokens(t *testing.T) {
	client, prefix := cachetest.Client(t)
	clock := newFakeClock()
	s := newSessionStore(t, client, prefix, clock, cache.NopObserver{})
	ctx := testContext(t)
	now := time.Now()
	if err := s.RevokeToken(ctx, "d1", "user logout", accessTTL); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "d2", "user logout", 0); err != nil {
		t.Fatal(err)
	}
	reason, revoked, err := s.CheckToken(ctx, "d1", "u1", now)
	if err != nil || !revoked || reason != "user logout" {
		t.Errorf("revoked digest: %q %v %v", reason, revoked, err)
	}
	for _, d := range []string{"d2", "d3"} {
		if _, revoked, err := s.CheckToken(ctx, d, "u1", now); err != nil || revoked {
			t.Errorf("digest %s: revoked=%v %v", d, revoked, err)
		}
	}
	left, err := client.PTTL(ctx, prefix+"{session:revoked}:tokens").Result()
	if err != nil || left <= 0 || left > accessTTL {
		t.Errorf("revocation TTL %v (%v), want the token's remaining life", left, err)
	}
	if exp, err := client.ZScore(ctx, prefix+"{session:revoked}:tokens", "d1").Result(); err != nil ||
		int64(exp) != clock.Now().Add(accessTTL).UnixMilli() {
		t.Errorf("revocation of d1 recorded until %v (%v), want the token's expiry", exp, err)
	}
	// A user id that cannot be a key only skips the per-user check.
	if _, revoked, err := s.CheckToken(ctx, "d3", "bad}id", now); err != nil || revoked {
		t.Errorf("bad user id: revoked=%v %v", revoked, err)
	}
}

func TestSessionKeysAreValidated(t *testing.T) {
	client, prefix := cachetest.Client(t)
	s := newSessionStore(t, client, prefix, newFakeClock(), cache.NopObserver{})
	ctx := testContext(t)
	for _, bad := range []string{"", "a}b", "{x}", "a:b", "a b", "é", string(make([]byte, 300))} {
		if err := s.IssueRefresh(ctx, bad, "t", time.Minute); !errors.Is(err, cache.ErrBadSessionKey) {
			t.Errorf("issue for user %q: %v", bad, err)
		}
		if _, err := s.UseRefresh(ctx, "u", bad, time.Minute); !errors.Is(err, cache.ErrBadSessionKey) {
			t.Errorf("use token %q: %v", bad, err)
		}
		if err := s.RevokeToken(ctx, bad, "r", time.Minute); !errors.Is(err, cache.ErrBadSessionKey) {
			t.Errorf("revoke digest %q: %v", bad, err)
		}
		if err := s.RevokeUser(ctx, bad, time.Minute); !errors.Is(err, cache.ErrBadSessionKey) {
			t.Errorf("revoke user %q: %v", bad, err)
		}
	}
}

func TestConcurrentUsesRotateExactlyOnce(t *testing.T) {
	client, prefix := cachetest.Client(t)
	s := newSessionStore(t, client, prefix, newFakeClock(), cache.NopObserver{})
	issueRefresh(t, s, "u1", "a")
	const n = 16
	outcomes := make(chan cache.RefreshOutcome, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			got, err := s.UseRefresh(testContext(t), "u1", "a", refreshTTL)
			if err != nil {
				t.Error(err)
			}
			outcomes <- got
		})
	}
	wg.Wait()
	close(outcomes)
	counts := map[cache.RefreshOutcome]int{}
	for o := range outcomes {
		counts[o]++
	}
	if counts[cache.RefreshRotated] != 1 || counts[cache.RefreshGrace] != n-1 {
		t.Errorf("outcomes %v, want one rotation and %d grace reuses", counts, n-1)
	}
}

func TestSessionStoreReportsRedisOutages(t *testing.T) {
	srv := cachetest.StartServer(t)
	obs := newRecorder()
	s := newSessionStore(t, srv.Client(), cachetest.Prefix(t), newFakeClock(), obs)
	srv.Stop()
	ctx := testContext(t)
	if _, _, err := s.CheckToken(ctx, "d", "u", time.Now()); err == nil {
		t.Error("check with Redis down: no error")
	}
	if _, err := s.UseRefresh(ctx, "u", "t", time.Minute); err == nil {
		t.Error("use with Redis down: no error")
	}
	if err := s.IssueRefresh(ctx, "u", "t", time.Minute); err == nil {
		t.Error("issue with Redis down: no error")
	}
	if err := s.RevokeToken(ctx, "d", "r", time.Minute); err == nil {
		t.Error("revoke with Redis down: no error")
	}
	if got := obs.count(&obs.redisErrors); got < 4 {
		t.Errorf("%d Redis errors reported, want 4", got)
	}
}
