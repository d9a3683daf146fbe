package proxy

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// TestExchangeEveryPersona signs every fixture persona in through the real
// exchange (a Logto token checked at /oidc/me, the profile read from the
// Management API) and checks the profile field by field against what the
// upstream would build, then that the session token it returns works.
func TestExchangeEveryPersona(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, persona := range personas {
		t.Run(persona, func(t *testing.T) {
			pair := h.exchange(t, persona)
			want := h.personaUser(t, persona)
			if !sameUser(pair.User, want) {
				t.Errorf("exchanged user\n got %+v\nwant %+v", pair.User, want)
			}
			if pair.ExpiresIn != int64(h.sessions.AccessTTL()/time.Second) {
				t.Errorf("expires_in %d", pair.ExpiresIn)
			}
			claims, err := h.sessions.VerifyAccess(pair.Token)
			if err != nil || !sameUser(claims.User, want) {
				t.Fatalf("access token claims: %v %+v", err, claims)
			}
			me := h.do(t, http.MethodGet, "/api/me", pair.Token, nil)
			var got SessionUser
			if me.Status != http.StatusOK || me.Env.Message != "user information retrieved successfully" ||
				json.Unmarshal(me.Env.Data, &got) != nil || !sameUser(got, want) {
				t.Errorf("/me: %d %s", me.Status, me.Body)
			}
		})
	}
}

// TestExchangeWireShape pins the exchange answer's keys: the dashboard reads
// them by name.
func TestExchangeWireShape(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	logtoToken, err := h.sim.IssueUserToken(h.fixture.Users["d1r1c1"], logtotest.UserTokenOptions{Opaque: true})
	if err != nil {
		t.Fatal(err)
	}
	r := h.postJSON(t, "/api/auth/exchange", map[string]string{"access_token": logtoToken})
	var data map[string]json.RawMessage
	if err := json.Unmarshal(r.Env.Data, &data); err != nil {
		t.Fatal(err)
	}
	if got := jsonKeys(data); !reflect.DeepEqual(got, []string{"expires_in", "refresh_token", "token", "user"}) {
		t.Errorf("data keys %v", got)
	}
	var user map[string]json.RawMessage
	if err := json.Unmarshal(data["user"], &user); err != nil {
		t.Fatal(err)
	}
	want := []string{"email", "id", "logto_id", "name", "org_permissions", "org_role", "org_role_id", "organization_id",
		"organization_name", "phone", "user_permissions", "user_role_ids", "user_roles", "username"}
	if got := jsonKeys(user); !reflect.DeepEqual(got, want) {
		t.Errorf("user keys %v", got)
	}
	if string(user["org_permissions"]) != "[]" || string(user["phone"]) != "null" || string(user["org_role"]) != `"Customer"` {
		t.Errorf("customer user: %s", data["user"])
	}
}

func jsonKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestExchangeRefusals(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	expired, err := h.sim.IssueUserToken(h.fixture.Users["d1"], logtotest.UserTokenOptions{Opaque: true,
		ExpiresAt: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, body string
		status     int
		message    string
	}{
		{"not json", "access_token=x", http.StatusBadRequest, "invalid request body: "},
		{"empty body", "", http.StatusBadRequest, "invalid request body: EOF"},
		{"no token", `{}`, http.StatusBadRequest, "invalid request body: access_token is required"},
		{"wrong type", `{"access_token": 42}`, http.StatusBadRequest, "invalid request body: "},
		{"too large", `{"access_token":"` + strings.Repeat("a", maxAuthBody) + `"}`, http.StatusBadRequest, "invalid request body: "},
		{"unknown token", `{"access_token":"not-a-logto-token"}`, http.StatusUnauthorized, "invalid access token: logto answered 401"},
		{"expired token", `{"access_token":"` + expired + `"}`, http.StatusUnauthorized, "invalid access token: logto answered 401"},
		{"token with blanks", `{"access_token":"a b"}`, http.StatusUnauthorized, "invalid access token: unauthorized"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, http.MethodPost, "/api/auth/exchange", "", strings.NewReader(tc.body), "Content-Type", "application/json")
			if r.Status != tc.status || !strings.HasPrefix(r.Env.Message, tc.message) || string(r.Env.Data) != "null" {
				t.Errorf("got %d %s, want %d %q…", r.Status, r.Body, tc.status, tc.message)
			}
			if strings.Contains(r.Env.Message, expired) || strings.Contains(r.Env.Message, "not-a-logto-token") {
				t.Errorf("the answer echoes the token: %s", r.Body)
			}
		})
	}
	t.Run("logto down", func(t *testing.T) {
		valid, err := h.sim.IssueUserToken(h.fixture.Users["d1"], logtotest.UserTokenOptions{Opaque: true})
		if err != nil {
			t.Fatal(err)
		}
		h.sim.Faults().SetOutage(true)
		defer h.sim.Faults().SetOutage(false)
		r := h.postJSON(t, "/api/auth/exchange", map[string]string{"access_token": valid})
		if r.Status != http.StatusServiceUnavailable || r.Env.Message != "identity provider temporarily unavailable" {
			t.Errorf("got %d %s", r.Status, r.Body)
		}
	})
}

// TestProfilesFollowLogto checks the profile rules the fixture does not
// exercise (the Reader exception, a user without organization, a role named
// in lower case) and that profiles are cached until invalidated.
func TestProfilesFollowLogto(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d1 := h.orgID(t, "d1")
	reader, err := h.sim.CreateUser(map[string]any{"username": "reader1", "primaryEmail": "reader1@example.com",
		"primaryPhone": "390721000001", "name": "Reader One"})
	if err != nil {
		t.Fatal(err)
	}
	noErr(t, h.sim.AddOrganizationMembers(d1, reader.ID))
	noErr(t, h.sim.AssignOrganizationUserRoles(d1, reader.ID, h.fixture.OrgRoles["Distributor"]))
	noErr(t, h.sim.AssignUserRoles(reader.ID, h.fixture.UserRoles["Reader"]))

	user := h.exchangeUser(t, reader.ID)
	if user.OrgRole != "Distributor" || user.OrganizationID != d1 || user.Phone == nil || *user.Phone != "390721000001" {
		t.Errorf("reader profile: %+v", user)
	}
	if !reflect.DeepEqual(user.UserRoles, []string{"Reader"}) || !sameStrings(user.UserPermissions, []string{"read:users", "read:systems"}) {
		t.Errorf("reader roles %v permissions %v", user.UserRoles, user.UserPermissions)
	}
	if !sameStrings(user.OrgPermissions, []string{"read:resellers", "read:customers"}) {
		t.Errorf("reader org permissions %v, want the manage:* ones stripped", user.OrgPermissions)
	}

	// Cached: a change in Logto is not seen until the profile is dropped.
	calls := h.sim.Calls("GET /api/users/{id}")
	noErr(t, h.sim.RemoveOrganizationUserRole(d1, reader.ID, h.fixture.OrgRoles["Distributor"]))
	noErr(t, h.sim.AssignOrganizationUserRoles(d1, reader.ID, h.fixture.OrgRoles["Reseller"]))
	if again := h.exchangeUser(t, reader.ID); again.OrgRole != "Distributor" || h.sim.Calls("GET /api/users/{id}") != calls {
		t.Errorf("second exchange: role %q, %d user reads (want the cached profile)", again.OrgRole, h.sim.Calls("GET /api/users/{id}")-calls)
	}
	noErr(t, h.profiles.Invalidate(context.Background(), reader.ID))
	if fresh := h.exchangeUser(t, reader.ID); fresh.OrgRole != "Reseller" || !sameStrings(fresh.OrgPermissions, []string{"read:customers"}) {
		t.Errorf("after invalidation: %+v", fresh)
	}

	// No organization at all: no role, no organization, empty lists.
	loner, err := h.sim.CreateUser(map[string]any{"username": "loner", "primaryEmail": "loner@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	u := h.exchangeUser(t, loner.ID)
	if u.OrganizationID != "" || u.OrgRole != "" || u.OrgRoleID != "" || u.Name != "" || u.UserRoles == nil || u.OrgPermissions == nil {
		t.Errorf("user without organization: %+v", u)
	}
	if u.Principal().Role != hierarchy.RoleNone {
		t.Errorf("principal of a user without role: %+v", u.Principal())
	}

	// A user deleted after its Logto token was issued.
	gone, err := h.sim.CreateUser(map[string]any{"username": "gone"})
	if err != nil {
		t.Fatal(err)
	}
	gtok, err := h.sim.IssueUserToken(gone.ID, logtotest.UserTokenOptions{Opaque: true})
	if err != nil {
		t.Fatal(err)
	}
	noErr(t, h.sim.DeleteUser(gone.ID))
	if r := h.postJSON(t, "/api/auth/exchange", map[string]string{"access_token": gtok}); r.Status != http.StatusUnauthorized ||
		!strings.HasPrefix(r.Env.Message, "invalid access token: ") {
		t.Errorf("deleted user: %d %s", r.Status, r.Body)
	}
}

// exchangeUser signs any simulator user in and returns its profile.
func (h *harness) exchangeUser(t *testing.T, userID string) SessionUser {
	t.Helper()
	tok, err := h.sim.IssueUserToken(userID, logtotest.UserTokenOptions{Opaque: true})
	if err != nil {
		t.Fatal(err)
	}
	r := h.postJSON(t, "/api/auth/exchange", map[string]string{"access_token": tok})
	if r.Status != http.StatusOK {
		t.Fatalf("exchange for %s: %d %s", userID, r.Status, r.Body)
	}
	return decodePair(t, r).User
}

// TestRefreshRotation walks a refresh token through its life: rotation, a
// tolerated retry within the grace period, then a late reuse that revokes
// every token of the user, access tokens included.
func TestRefreshRotation(t *testing.T) {
	clock := &skewClock{}
	h := newHarness(t, harnessOptions{Clock: clock.Now})
	refresh := func(token string) reply {
		t.Helper()
		return h.postJSON(t, "/api/auth/refresh", map[string]string{"refresh_token": token})
	}

	first := h.exchange(t, "d1")
	r := refresh(first.RefreshToken)
	if r.Status != http.StatusOK || r.Env.Message != "token refresh successful" {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	second := decodePair(t, r)
	if second.RefreshToken == first.RefreshToken || second.Token == first.Token ||
		!sameUser(second.User, h.personaUser(t, "d1")) {
		t.Errorf("refreshed pair: %+v", second)
	}
	clock.Advance(20 * time.Second)
	if r := refresh(first.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("retry within the grace period: %d %s", r.Status, r.Body)
	}
	clock.Advance(15 * time.Second)
	if r := refresh(first.RefreshToken); r.Status != http.StatusUnauthorized || r.Env.Message != "refresh token has been revoked" {
		t.Errorf("reuse after the grace period: %d %s", r.Status, r.Body)
	}
	if r := refresh(second.RefreshToken); r.Status != http.StatusUnauthorized || r.Env.Message != "refresh token has been revoked" {
		t.Errorf("the burned user's newer refresh token: %d %s", r.Status, r.Body)
	}
	// Access tokens issued before the burn are revoked too.
	clock.Advance(time.Second)
	me := h.do(t, http.MethodGet, "/api/me", second.Token, nil)
	if me.Status != http.StatusUnauthorized || me.Env.Message != "token has been revoked" ||
		string(me.Env.Data) != `{"reason":"refresh token reuse detected"}` {
		t.Errorf("access token after the burn: %d %s", me.Status, me.Body)
	}
	// Other users are untouched, and signing in again works.
	other := h.exchange(t, "d2")
	if r := refresh(other.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("another user's refresh: %d %s", r.Status, r.Body)
	}
	again := h.exchange(t, "d1")
	if r := h.do(t, http.MethodGet, "/api/me", again.Token, nil); r.Status != http.StatusOK {
		t.Errorf("new session after the burn: %d %s", r.Status, r.Body)
	}
	if r := refresh(again.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("new refresh token after the burn: %d %s", r.Status, r.Body)
	}

	unrecorded, _, err := h.sessions.MintRefresh(h.fixture.Users["d1"])
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := NewSessions(SessionConfig{Secret: []byte(strings.Repeat("f", 40))})
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := foreign.MintRefresh(h.fixture.Users["d1"])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token, message string }{
		{"access token", again.Token, "invalid refresh token: token type"},
		{"garbage", "x.y.z", "invalid refresh token: "},
		{"other secret", forged, "invalid refresh token: "},
		{"never recorded", unrecorded, "invalid refresh token"},
	} {
		if r := refresh(tc.token); r.Status != http.StatusUnauthorized || !strings.HasPrefix(r.Env.Message, tc.message) {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Body)
		}
	}
	if r := h.postJSON(t, "/api/auth/refresh", map[string]string{}); r.Status != http.StatusBadRequest ||
		r.Env.Message != "invalid request body: refresh_token is required" {
		t.Errorf("no token: %d %s", r.Status, r.Body)
	}
}

// TestLogoutRevokes checks that a logged-out access token is refused with
// the upstream's message and reason, that the user's refresh tokens die
// with it, and that a new login works.
func TestLogoutRevokes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	pair := h.exchange(t, "d1r1")
	other := h.exchange(t, "d1r1") // a second tab of the same user
	r := h.do(t, http.MethodPost, "/api/auth/logout", pair.Token, nil)
	if r.Status != http.StatusOK || r.Env.Message != "logout successful" || string(r.Env.Data) != `{"message":"token has been invalidated"}` {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	me := h.do(t, http.MethodGet, "/api/me", pair.Token, nil)
	if me.Status != http.StatusUnauthorized || me.Env.Message != "token has been revoked" || string(me.Env.Data) != `{"reason":"user logout"}` {
		t.Errorf("revoked token: %d %s", me.Status, me.Body)
	}
	if r := h.get(t, "", "/api/customers", "Authorization", "Bearer "+pair.Token); r.Status != http.StatusUnauthorized {
		t.Errorf("revoked token on another route: %d %s", r.Status, r.Body)
	}
	for _, tok := range []string{pair.RefreshToken, other.RefreshToken} {
		if r := h.postJSON(t, "/api/auth/refresh", map[string]string{"refresh_token": tok}); r.Status != http.StatusUnauthorized ||
			r.Env.Message != "refresh token has been revoked" {
			t.Errorf("refresh after logout: %d %s", r.Status, r.Body)
		}
	}
	if r := h.do(t, http.MethodGet, "/api/me", other.Token, nil); r.Status != http.StatusOK {
		t.Errorf("the other tab's access token lives until it expires: %d %s", r.Status, r.Body)
	}
	fresh := h.exchange(t, "d1r1")
	if r := h.do(t, http.MethodGet, "/api/me", fresh.Token, nil); r.Status != http.StatusOK {
		t.Errorf("new login: %d %s", r.Status, r.Body)
	}
	if r := h.postJSON(t, "/api/auth/refresh", map[string]string{"refresh_token": fresh.RefreshToken}); r.Status != http.StatusOK {
		t.Errorf("new login's refresh: %d %s", r.Status, r.Body)
	}
	if r := h.do(t, http.MethodPost, "/api/auth/logout", "", nil); r.Status != http.StatusUnauthorized || r.Env.Message != "authorization header required" {
		t.Errorf("logout without a token: %d %s", r.Status, r.Body)
	}
	// A wrong method is an unknown route: 404 before any authentication.
	for _, route := range []struct{ method, path string }{{http.MethodGet, "/api/auth/logout"},
		{http.MethodGet, "/api/auth/exchange"}, {http.MethodPost, "/api/me"}} {
		if r := h.do(t, route.method, route.path, "", nil); r.Status != http.StatusNotFound || r.Env.Message != "api not found" {
			t.Errorf("%s %s: %d %s", route.method, route.path, r.Status, r.Body)
		}
	}
}

// TestRevocationCheckWithRedisDown pins the decision taken when Redis cannot
// say whether a session token was revoked: 503 by default (fail closed, as
// upstream), the request goes through with RevocationFailOpen.
func TestRevocationCheckWithRedisDown(t *testing.T) {
	srv := cachetest.StartServer(t)
	store, err := cache.NewSessionStore(cache.SessionStoreConfig{Client: srv.Client(), Prefix: cachetest.Prefix(t), Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := NewSessions(SessionConfig{Secret: []byte(strings.Repeat("s", 40))})
	if err != nil {
		t.Fatal(err)
	}
	logtoID := "user1"
	token, _, err := sessions.MintAccess(SessionUser{ID: UserUUID(logtoID), LogtoID: &logtoID, OrgRole: "Reseller", OrganizationID: "org1"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for _, failOpen := range []bool{false, true} {
		a := &authenticator{sessions: sessions, store: store, failOpen: failOpen, now: time.Now, log: discardLogger()}
		e := echo.New()
		req := httptest.NewRequest(http.MethodGet, "/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		c := e.NewContext(req, rec)
		c.SetPath("/api/me")
		reached := false
		err := a.authenticate(func(c echo.Context) error {
			reached = callerOf(c) != nil && callerOf(c).Principal.OrgID == "org1"
			return c.NoContent(http.StatusNoContent)
		})(c)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !failOpen && (rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"security service temporarily unavailable"`) || reached):
			t.Errorf("fail-closed: %d %s", rec.Code, rec.Body)
		case failOpen && (rec.Code != http.StatusNoContent || !reached):
			t.Errorf("fail-open: %d %s", rec.Code, rec.Body)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sameUser compares session users, the order of permissions aside (it is
// Logto's listing order, by scope name).
func sameUser(a, b SessionUser) bool {
	norm := func(u SessionUser) SessionUser {
		u.UserPermissions, u.OrgPermissions = slices.Sorted(slices.Values(u.UserPermissions)), slices.Sorted(slices.Values(u.OrgPermissions))
		return u
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// sameStrings reports whether a and b hold the same strings, in any order.
func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestOwnerProfilesExpireSooner: an Owner's cached profile is re-read after
// a minute, anyone else's after ten.
func TestOwnerProfilesExpireSooner(t *testing.T) {
	clock := &skewClock{}
	h := newHarness(t, harnessOptions{Clock: clock.Now})
	ctx := context.Background()
	for _, persona := range []string{"owner", "d1"} {
		if _, err := h.profiles.Get(ctx, h.fixture.Users[h.fixtureUserName(persona)]); err != nil {
			t.Fatal(err)
		}
	}
	for _, persona := range []string{"owner", "d1"} {
		if _, err := h.sim.UpdateUser(h.fixture.Users[h.fixtureUserName(persona)], map[string]any{"name": "Renamed"}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(61 * time.Second)
	owner, err := h.profiles.Get(ctx, h.fixture.Users["Owner"])
	if err != nil || owner.Name != "Renamed" {
		t.Errorf("owner profile after a minute: %q %v, want re-read", owner.Name, err)
	}
	d1, err := h.profiles.Get(ctx, h.fixture.Users["d1"])
	if err != nil || d1.Name != "d1 Admin" {
		t.Errorf("distributor profile after a minute: %q %v, want the cached one", d1.Name, err)
	}
	// Past its TTL an entry is served once more while it is re-read in the
	// background (Redis drops it on its own clock, which the test does not
	// move); the re-read lands shortly.
	clock.Advance(12 * time.Minute)
	deadline := time.Now().Add(10 * time.Second) // a liveness bound, not a measurement
	for d1.Name != "Renamed" && time.Now().Before(deadline) {
		if d1, err = h.profiles.Get(ctx, h.fixture.Users["d1"]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d1.Name != "Renamed" {
		t.Errorf("distributor profile after twelve minutes: %q, want re-read", d1.Name)
	}
}

// fixtureUserName is the fixture's name of a persona ("owner" → "Owner").
func (h *harness) fixtureUserName(persona string) string {
	if persona == "owner" {
		return "Owner"
	}
	return persona
}
