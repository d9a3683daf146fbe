package proxy

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// TestRememberedTokensStillExpire: a token answered from the memo stops
// working at its exp, session or service, as if verified every time.
func TestRememberedTokensStillExpire(t *testing.T) {
	clock := &skewClock{}
	h := newHarness(t, harnessOptions{Clock: clock.Now})
	session := h.exchange(t, "d1").Token
	service := h.logtoToken(t, logtotest.UserTokenOptions{Lifetime: 10 * time.Minute, Scopes: []string{"read:customers"}})
	for _, tok := range []string{session, service, session} { // each verified, then remembered
		if r := h.get(t, "", "/api/customers", "Authorization", "Bearer "+tok); r.Status != http.StatusOK {
			t.Fatalf("fresh token: %d %s", r.Status, r.Body)
		}
	}
	clock.Advance(11 * time.Minute)
	if r := h.get(t, "", "/api/customers", "Authorization", "Bearer "+service); r.Status != http.StatusUnauthorized || r.Env.Message != "invalid token" {
		t.Errorf("expired remembered service token: %d %s", r.Status, r.Body)
	}
	if r := h.get(t, "", "/api/customers", "Authorization", "Bearer "+session); r.Status != http.StatusOK {
		t.Errorf("session token within its 30 minutes: %d %s", r.Status, r.Body)
	}
	clock.Advance(20 * time.Minute)
	if r := h.get(t, "", "/api/customers", "Authorization", "Bearer "+session); r.Status != http.StatusUnauthorized || r.Env.Message != "invalid token" {
		t.Errorf("expired remembered session token: %d %s", r.Status, r.Body)
	}
}

// TestRememberedSessionsAreCheckedForRevocation: the memo skips the
// signature, never the revocation check.
func TestRememberedSessionsAreCheckedForRevocation(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	pair := h.exchange(t, "d1r1")
	for range 3 {
		if r := h.do(t, http.MethodGet, "/api/me", pair.Token, nil); r.Status != http.StatusOK {
			t.Fatalf("/me: %d %s", r.Status, r.Body)
		}
	}
	if _, ok := h.server.auth.memo.get(sha256.Sum256([]byte(pair.Token)), time.Now()); !ok {
		t.Fatal("a verified session token is not remembered")
	}
	if r := h.do(t, http.MethodPost, "/api/auth/logout", pair.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if r := h.do(t, http.MethodGet, "/api/me", pair.Token, nil); r.Status != http.StatusUnauthorized || r.Env.Message != "token has been revoked" {
		t.Errorf("remembered token after logout: %d %s", r.Status, r.Body)
	}
}

// TestMemoKeepsNoTokens: what is remembered is keyed by a digest and holds
// no token, only the digest that names the token in the revocation store;
// the requests of one token share its verified Caller (nothing to copy per
// request).
func TestMemoKeepsNoTokens(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.exchange(t, "d1").Token
	a := h.server.auth
	first, err := a.resolve(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	second, err := a.resolve(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("the second request re-verified the token: Callers %p and %p", first, second)
	}
	if first.TokenDigest != TokenDigest(tok) {
		t.Errorf("Caller's digest %q, want the token's revocation key", first.TokenDigest)
	}
	a.memo.mu.RLock()
	defer a.memo.mu.RUnlock()
	if len(a.memo.entries) == 0 {
		t.Fatal("nothing remembered")
	}
	for _, v := range a.memo.entries {
		if strings.Contains(fmt.Sprintf("%+v %+v %+v", *v.caller, v.caller.Session, v.caller.User), tok) {
			t.Error("the memo keeps the token")
		}
	}
}

// TestMemoIsBounded: a flood of distinct tokens never grows the memo past
// its bound, and when it is full, expired entries are dropped first.
func TestMemoIsBounded(t *testing.T) {
	now := time.Now()
	caller := &Caller{}
	key := func(i int) [sha256.Size]byte { return sha256.Sum256([]byte("token-" + strconv.Itoa(i))) }

	flood := newVerifiedCallers(100)
	for i := range 1000 {
		flood.put(key(i), verifiedCaller{caller: caller, expires: now.Add(time.Hour)}, now)
		if len(flood.entries) > 100 {
			t.Fatalf("%d entries after %d puts, want at most 100", len(flood.entries), i+1)
		}
	}

	m := newVerifiedCallers(100)
	for i := range 100 { // full: half expire in a minute, half in an hour
		expires := now.Add(time.Hour)
		if i%2 == 0 {
			expires = now.Add(time.Minute)
		}
		m.put(key(i), verifiedCaller{caller: caller, expires: expires}, now)
	}
	later := now.Add(2 * time.Minute)
	m.put(key(1000), verifiedCaller{caller: caller, expires: later.Add(time.Hour)}, later)
	if len(m.entries) != 51 {
		t.Errorf("%d entries after the shrink, want the 50 live ones and the new one", len(m.entries))
	}
	for i := 1; i < 100; i += 2 {
		if _, ok := m.get(key(i), later); !ok {
			t.Fatalf("live entry %d was dropped while expired ones could go", i)
		}
	}
	if _, ok := m.get(key(1000), later); !ok {
		t.Error("the newest entry is missing")
	}

	m.put(key(2000), verifiedCaller{caller: caller, expires: now}, now)
	if _, ok := m.get(key(2000), now); ok {
		t.Error("an already expired entry was remembered")
	}
	var none *verifiedCallers
	none.put(key(1), verifiedCaller{caller: caller, expires: later}, now)
	if _, ok := none.get(key(1), now); ok {
		t.Error("a nil memo remembered something")
	}
}

// TestLogoutHoldsAtOnceWithRevocationsInMemory: with the session store
// answering from memory (as in production), a logout is refused on the very
// next request, without waiting for its own announcement.
func TestLogoutHoldsAtOnceWithRevocationsInMemory(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	if err := h.store.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.store.Close)
	deadline := time.Now().Add(10 * time.Second) // a liveness bound, not a measurement
	for !h.store.Synced() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !h.store.Synced() {
		t.Fatal("the session store did not sync")
	}
	pair := h.exchange(t, "d1r1")
	if r := h.do(t, http.MethodGet, "/api/me", pair.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("/me: %d %s", r.Status, r.Body)
	}
	if r := h.do(t, http.MethodPost, "/api/auth/logout", pair.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if r := h.do(t, http.MethodGet, "/api/me", pair.Token, nil); r.Status != http.StatusUnauthorized || r.Env.Message != "token has been revoked" {
		t.Errorf("the next request after logout: %d %s", r.Status, r.Body)
	}
}
