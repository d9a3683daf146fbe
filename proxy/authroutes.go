package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/logto"
)

// AuthConfig is what authentication, the login exchange and service tokens
// need beyond the Sessions minter and the Logto client.
type AuthConfig struct {
	// Store keeps revocations and refresh-token state in Redis (required).
	Store *cache.SessionStore
	// Profiles builds and caches session profiles (required).
	Profiles *Profiles
	// Service verifies Logto-issued service tokens; nil disables them
	// (LOGTO_API_RESOURCE unset), and every non-session token is refused.
	Service *ServiceTokens
	// RevocationFailOpen accepts session tokens when Redis cannot say
	// whether they were revoked; the default (false) answers 503, as the
	// upstream does. See authenticator.sessionCaller.
	RevocationFailOpen bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Messages of the login routes (upstream-my-contract §1.4, §2.11).
const (
	msgExchanged         = "token exchange successful"
	msgRefreshed         = "token refresh successful"
	msgLoggedOut         = "logout successful"
	msgMe                = "user information retrieved successfully"
	msgBadBody           = "invalid request body: "
	msgBadAccessToken    = "invalid access token: "
	msgBadRefreshToken   = "invalid refresh token"
	msgRefreshRevoked    = "refresh token has been revoked"
	msgProfileFailed     = "failed to retrieve user information: "
	msgTokenFailed       = "failed to generate token"
	msgServiceTokenRoute = "this endpoint cannot be accessed with a service token"
	msgLogtoUnavailable  = "identity provider temporarily unavailable"
	reasonLogout         = "user logout"
)

// maxAuthBody bounds the JSON body of the login routes: a token or two.
const maxAuthBody = 64 << 10

// sessionTokens is the data of the exchange and refresh answers: the
// upstream's {token, refresh_token, expires_in, user}.
type sessionTokens struct {
	Token        string      `json:"token"`
	RefreshToken string      `json:"refresh_token"`
	ExpiresIn    int64       `json:"expires_in"`
	User         SessionUser `json:"user"`
}

// authRoutes registers the login exchange (/auth/exchange, /auth/refresh,
// /auth/logout) and /me. api is the unauthenticated /api group, authed the
// same group behind authenticate.
func (s *Server) authRoutes(api, authed *echo.Group) {
	api.POST("/auth/exchange", s.auth.exchange)
	api.POST("/auth/refresh", s.auth.refresh)
	authed.POST("/auth/logout", s.auth.logout)
	authed.GET("/me", s.auth.me)
}

// exchange turns a Logto user access token into a session: Logto's userinfo
// says whose token it is (any refusal is 401), the profile comes from the
// Management API through the cache, and a new token pair is minted.
func (a *authenticator) exchange(c echo.Context) error {
	var req struct {
		AccessToken string `json:"access_token"`
	}
	if err := bindBody(c, &req); err != nil {
		return fail(c, http.StatusBadRequest, msgBadBody+err.Error())
	}
	if req.AccessToken == "" {
		return fail(c, http.StatusBadRequest, msgBadBody+"access_token is required")
	}
	ctx := c.Request().Context()
	info, err := a.logto.UserInfo(ctx, req.AccessToken)
	if err != nil {
		if logtoUnavailable(err) {
			return a.unavailable(c, "userinfo", err)
		}
		return fail(c, http.StatusUnauthorized, msgBadAccessToken+logtoReason(err))
	}
	user, err := a.profiles.Get(ctx, info.Sub)
	if errors.Is(err, cache.ErrNotFound) {
		return fail(c, http.StatusUnauthorized, msgBadAccessToken+"user no longer exists")
	}
	if err != nil {
		return a.profileFailed(c, err)
	}
	return a.issue(c, msgExchanged, user)
}

// refresh rotates a refresh token: the token must verify, the profile is
// re-read through the cache (so permission changes apply), and Redis must
// find the token live. A token rotated less than the grace period ago is
// tolerated (a retry whose first answer was lost); one rotated earlier is
// taken for stolen, and every token of the user is revoked.
func (a *authenticator) refresh(c echo.Context) error {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := bindBody(c, &req); err != nil {
		return fail(c, http.StatusBadRequest, msgBadBody+err.Error())
	}
	if req.RefreshToken == "" {
		return fail(c, http.StatusBadRequest, msgBadBody+"refresh_token is required")
	}
	claims, err := a.sessions.VerifyRefresh(req.RefreshToken)
	if err != nil {
		return fail(c, http.StatusUnauthorized, msgBadRefreshToken+": "+err.Error())
	}
	ctx := c.Request().Context()
	user, err := a.profiles.Get(ctx, claims.UserID)
	if errors.Is(err, cache.ErrNotFound) {
		return fail(c, http.StatusUnauthorized, msgBadRefreshToken+": user no longer exists")
	}
	if err != nil {
		return a.profileFailed(c, err)
	}
	outcome, err := a.store.UseRefresh(ctx, claims.UserID, claims.ID, a.sessions.RefreshTTL())
	switch {
	case errors.Is(err, cache.ErrBadSessionKey):
		return fail(c, http.StatusUnauthorized, msgBadRefreshToken)
	case err != nil:
		a.log.ErrorContext(ctx, "refresh refused: session state unavailable", slog.Any("error", err))
		return fail(c, http.StatusServiceUnavailable, msgSecurityUnavailable)
	}
	switch outcome {
	case cache.RefreshRotated, cache.RefreshGrace:
		return a.issue(c, msgRefreshed, user)
	case cache.RefreshReused:
		a.log.WarnContext(ctx, "refresh token reused after rotation; every token of the user is revoked",
			slog.String("user_id", claims.UserID))
		return fail(c, http.StatusUnauthorized, msgRefreshRevoked)
	case cache.RefreshRevoked:
		return fail(c, http.StatusUnauthorized, msgRefreshRevoked)
	}
	return fail(c, http.StatusUnauthorized, msgBadRefreshToken)
}

// logout revokes the presented access token for the rest of its life and
// every refresh token of the user issued so far, and drops the cached
// profile. It fails (503) rather than pretend when Redis cannot record it.
func (a *authenticator) logout(c echo.Context) error {
	caller := callerOf(c)
	if caller.Session == nil {
		return fail(c, http.StatusForbidden, msgServiceTokenRoute)
	}
	ctx := c.Request().Context()
	userID := caller.User.LogtoUserID()
	var remaining time.Duration
	if caller.Session.ExpiresAt != nil {
		remaining = caller.Session.ExpiresAt.Sub(a.now())
	}
	err := a.store.RevokeToken(ctx, caller.TokenDigest, reasonLogout, remaining)
	if err == nil {
		err = a.store.RevokeUser(ctx, userID, a.sessions.RefreshTTL())
	}
	if err != nil && !errors.Is(err, cache.ErrBadSessionKey) {
		a.log.ErrorContext(ctx, "logout failed: session state unavailable", slog.Any("error", err))
		return fail(c, http.StatusServiceUnavailable, msgSecurityUnavailable)
	}
	if err := a.profiles.Invalidate(ctx, userID); err != nil {
		a.log.WarnContext(ctx, "cached profile not dropped at logout; it expires on its own", slog.Any("error", err))
	}
	return respond(c, http.StatusOK, msgLoggedOut, map[string]string{"message": "token has been invalidated"})
}

// me answers the session's user, from its token's claims, as the upstream
// does. A service token has no user: 403, as the upstream answers API keys.
func (a *authenticator) me(c echo.Context) error {
	caller := callerOf(c)
	if caller.User == nil {
		return fail(c, http.StatusForbidden, msgServiceTokenRoute)
	}
	return respond(c, http.StatusOK, msgMe, caller.User)
}

// issue mints a token pair for u and records the refresh token as live. If
// Redis cannot record it the pair is still returned: the access token works,
// and the refresh token will be refused, which sends the dashboard back
// through a (silent) exchange.
func (a *authenticator) issue(c echo.Context, message string, u SessionUser) error {
	ctx := c.Request().Context()
	access, _, err := a.sessions.MintAccess(u)
	if err != nil {
		a.log.ErrorContext(ctx, "mint access token", slog.Any("error", err))
		return fail(c, http.StatusInternalServerError, msgTokenFailed)
	}
	refresh, rc, err := a.sessions.MintRefresh(u.LogtoUserID())
	if err != nil {
		a.log.ErrorContext(ctx, "mint refresh token", slog.Any("error", err))
		return fail(c, http.StatusInternalServerError, msgTokenFailed)
	}
	if err := a.store.IssueRefresh(ctx, u.LogtoUserID(), rc.ID, a.sessions.RefreshTTL()); err != nil {
		a.log.WarnContext(ctx, "refresh token not recorded; it will be refused", slog.Any("error", err))
	}
	return respond(c, http.StatusOK, message, sessionTokens{
		Token: access, RefreshToken: refresh, ExpiresIn: int64(a.sessions.AccessTTL() / time.Second), User: u,
	})
}

// profileFailed answers a profile that could not be read: 503 while Logto is
// unavailable, 500 otherwise; the detail goes to the log.
func (a *authenticator) profileFailed(c echo.Context, err error) error {
	if logtoUnavailable(err) {
		return a.unavailable(c, "profile", err)
	}
	a.log.ErrorContext(c.Request().Context(), "profile read failed", slog.Any("error", err))
	return fail(c, http.StatusInternalServerError, msgProfileFailed+logtoReason(err))
}

// unavailable answers 503 while Logto cannot be asked.
func (a *authenticator) unavailable(c echo.Context, what string, err error) error {
	a.log.WarnContext(c.Request().Context(), "logto unavailable during login", slog.String("call", what), slog.Any("error", err))
	return fail(c, http.StatusServiceUnavailable, msgLogtoUnavailable)
}

// bindBody decodes a size-limited JSON object body.
func bindBody(c echo.Context, dst any) error {
	body := http.MaxBytesReader(c.Response(), c.Request().Body, maxAuthBody)
	if err := json.NewDecoder(body).Decode(dst); err != nil {
		return err
	}
	return nil
}

// logtoUnavailable reports a failure that says nothing about the token or
// the user, only that Logto could not answer now.
func logtoUnavailable(err error) bool {
	for _, target := range []error{logto.ErrServer, logto.ErrTransport, logto.ErrBreakerOpen,
		logto.ErrRateLimited, context.DeadlineExceeded} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// logtoReason describes a Logto failure for an answer: the status or kind,
// never Logto's message, a token or a credential.
func logtoReason(err error) string {
	var le *logto.Error
	if errors.As(err, &le) {
		if le.Status != 0 {
			return fmt.Sprintf("logto answered %d", le.Status)
		}
		return le.Kind.String()
	}
	return "unexpected error"
}
