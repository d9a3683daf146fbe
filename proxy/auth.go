package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
)

// Caller is who is asking, resolved once per request by authenticate from
// either kind of bearer token. Handlers read it with callerOf and never look
// at tokens themselves.
type Caller struct {
	// Principal is what the hierarchy needs for visibility and gates.
	Principal hierarchy.Principal
	// User is the session's user (nil for a service token).
	User *SessionUser
	// Session holds the verified session claims (nil for a service token).
	Session *AccessClaims
	// Service holds the verified service token claims (nil for a session).
	Service *ServiceClaims
	// TokenDigest names the bearer token in the revocation store (its hex
	// SHA-256, see TokenDigest): logout revokes it. The token itself is
	// never kept.
	TokenDigest string
}

// A Caller is shared by every request bearing the same token (see
// authmemo.go): handlers read it and never modify it.

// callerKey is the echo context key of the Caller.
const callerKey = "logto-proxy.caller"

// callerOf returns the request's authenticated caller; routes behind
// authenticate always have one.
func callerOf(c echo.Context) *Caller {
	caller, _ := c.Get(callerKey).(*Caller)
	return caller
}

// Upstream 401 and 503 messages (upstream-my-contract §1.3); clients match
// on them.
const (
	msgAuthHeaderRequired  = "authorization header required"
	msgAuthHeaderFormat    = "invalid authorization header format"
	msgTokenNotProvided    = "token not provided"
	msgInvalidToken        = "invalid token"
	msgTokenRevoked        = "token has been revoked"
	msgSecurityUnavailable = "security service temporarily unavailable"
)

// bearer extracts the token of an `Authorization: Bearer …` header, with the
// upstream's three distinct refusals. HTTP servers trim trailing blanks from
// header values, so "Bearer " arrives as "Bearer": that is a missing token,
// not a wrong scheme.
func bearer(r *http.Request) (string, string) {
	h := r.Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return "", msgAuthHeaderRequired
	}
	scheme, token, _ := strings.Cut(h, " ")
	if scheme != "Bearer" {
		return "", msgAuthHeaderFormat
	}
	if token = strings.TrimSpace(token); token == "" {
		return "", msgTokenNotProvided
	}
	return token, ""
}

// TokenDigest is how a token is named in Redis and in memory: the hex
// SHA-256 of the whole token (as the upstream's jwt_blacklist keys), so the
// token itself is never stored.
func TokenDigest(token string) string {
	sum := tokenSum(token)
	return hex.EncodeToString(sum[:])
}

// tokenSum is the SHA-256 of a token, hashed in place: converting the
// string to a []byte would copy the token (hundreds of bytes) on every
// request. Sum256 only reads its input, so the shared bytes are never
// written.
func tokenSum(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// authenticator resolves bearer tokens into Callers and serves the login
// routes (authroutes.go).
type authenticator struct {
	sessions *Sessions
	store    *cache.SessionStore
	profiles *Profiles
	service  *ServiceTokens // nil: service tokens are disabled
	logto    *logto.Client
	failOpen bool
	now      func() time.Time
	log      *slog.Logger
	memo     *verifiedCallers // nil: every token is verified every time
}

func newAuthenticator(cfg Config) (*authenticator, error) {
	if cfg.Auth.Store == nil || cfg.Auth.Profiles == nil || cfg.Logto == nil {
		return nil, errors.New("proxy: Auth.Store, Auth.Profiles and Logto are required for authentication")
	}
	now := cfg.Auth.Now
	if now == nil {
		now = time.Now
	}
	return &authenticator{
		sessions: cfg.Sessions, store: cfg.Auth.Store, profiles: cfg.Auth.Profiles, service: cfg.Auth.Service,
		logto: cfg.Logto, failOpen: cfg.Auth.RevocationFailOpen, now: now, log: cfg.Logger,
		memo: newVerifiedCallers(defaultMemoSize),
	}, nil
}

// Why a token was refused; the answer depends on which (refuse).
var (
	errServiceDisabled     = errors.New("service tokens are not enabled (LOGTO_API_RESOURCE unset)")
	errSecurityUnavailable = errors.New("revocation state unavailable")
)

// revokedError refuses a token that verified but was revoked.
type revokedError struct{ reason string }

func (e *revokedError) Error() string { return "token revoked: " + e.reason }

// authenticate is the middleware in front of every /api route that needs a
// caller (see resolve). Every refusal is a 401 in the upstream's shape; why
// a token was refused is never echoed (it would help an attacker), only
// logged at debug level.
func (a *authenticator) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if unrouted(c) {
			return next(c) // an unknown path is 404 "api not found", signed in or not
		}
		token, refusal := bearer(c.Request())
		if refusal != "" {
			return fail(c, http.StatusUnauthorized, refusal)
		}
		caller, err := a.resolve(c.Request().Context(), token)
		if err != nil {
			return a.refuse(c, err)
		}
		c.Set(callerKey, caller)
		return next(c)
	}
}

// unrouted reports a request that matched no route: echo sends those
// through the catch-all route it adds to every group with middleware (here
// /api and /api/*), whose handler answers 404. The upstream answers unknown
// paths 404 before any authentication, and so does this service.
func unrouted(c echo.Context) bool {
	p := c.Path()
	return p == "/api" || p == "/api/*"
}

// resolve turns a bearer token into its Caller: remembered when the token
// was verified before (authmemo.go), else verified now. A session token's
// revocation is checked on every request either way.
func (a *authenticator) resolve(ctx context.Context, token string) (*Caller, error) {
	sum := tokenSum(token)
	now := a.now()
	v, ok := a.memo.get(sum, now)
	if !ok {
		var err error
		if v, err = a.verify(ctx, token, sum, now); err != nil {
			return nil, err
		}
		a.memo.put(sum, v, now)
	}
	if v.caller.Session != nil {
		if err := a.checkRevoked(ctx, v); err != nil {
			return nil, err
		}
	}
	return v.caller, nil
}

// verify checks a token not seen before. A token whose header names HS256
// is a session token (the dashboard's, ours or the upstream backend's); any
// other is a Logto service token, verified against Logto's keys with an
// asymmetric algorithm only, so neither kind can be passed off as the
// other.
func (a *authenticator) verify(ctx context.Context, token string, sum [sha256.Size]byte, now time.Time) (verifiedCaller, error) {
	switch {
	case tokenAlg(token) == jwt.SigningMethodHS256.Alg():
		claims, err := a.sessions.VerifyAccess(token)
		if err != nil {
			return verifiedCaller{}, fmt.Errorf("session token: %w", err)
		}
		u := claims.User
		return remember(&Caller{Principal: u.Principal(), User: &u, Session: claims}, sum, expiry(claims.ExpiresAt), now), nil
	case a.service != nil:
		claims, err := a.service.Verify(ctx, token)
		if err != nil {
			return verifiedCaller{}, err
		}
		return remember(&Caller{Principal: claims.Principal(), Service: claims}, sum, expiry(claims.ExpiresAt), now), nil
	}
	return verifiedCaller{}, errServiceDisabled
}

// expiry is a token's exp as a time, nil when it has none.
func expiry(exp *jwt.NumericDate) *time.Time {
	if exp == nil {
		return nil
	}
	return &exp.Time
}

// checkRevoked asks the session store whether a verified session token was
// revoked (answered from memory once the store follows revocations).
//
// When the store cannot answer (Redis down or slower than the store's short
// timeout while its copy is not trusted), the default is the upstream's:
// fail closed with 503, because a logout must mean logout.
// RevocationFailOpen trades that for availability (a revoked token keeps
// working, at most until it expires, while Redis is down); service tokens
// never depend on Redis either way.
func (a *authenticator) checkRevoked(ctx context.Context, v verifiedCaller) error {
	var issued time.Time
	if iat := v.caller.Session.IssuedAt; iat != nil {
		issued = iat.Time
	}
	reason, revoked, err := a.store.CheckToken(ctx, v.caller.TokenDigest, v.caller.User.LogtoUserID(), issued)
	switch {
	case err != nil && !a.failOpen:
		return fmt.Errorf("%w: %w", errSecurityUnavailable, err)
	case err != nil:
		a.log.WarnContext(ctx, "revocation check failed; accepting the session token (fail-open)", slog.Any("error", err))
	case revoked:
		return &revokedError{reason: reason}
	}
	return nil
}

// refuse answers a refused token: 401 "token has been revoked" with the
// reason, 503 when revocation could not be checked, else 401 "invalid token".
func (a *authenticator) refuse(c echo.Context, err error) error {
	var revoked *revokedError
	switch {
	case errors.As(err, &revoked):
		return respond(c, http.StatusUnauthorized, msgTokenRevoked, map[string]string{"reason": revoked.reason})
	case errors.Is(err, errSecurityUnavailable):
		a.log.ErrorContext(c.Request().Context(), "session token refused: revocation state unavailable", slog.Any("error", err),
			slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)))
		return fail(c, http.StatusServiceUnavailable, msgSecurityUnavailable)
	}
	a.log.DebugContext(c.Request().Context(), "token refused", slog.Any("reason", err),
		slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)))
	return fail(c, http.StatusUnauthorized, msgInvalidToken)
}

// maxHeaderSegment bounds the JWT header decoded to route a token; real
// headers are under 200 bytes.
const maxHeaderSegment = 1024

// tokenAlg reads the `alg` of a JWT's header without verifying anything,
// only to choose the verifier; "" when the token has no readable header.
func tokenAlg(token string) string {
	head, _, ok := strings.Cut(token, ".")
	if !ok || len(head) > maxHeaderSegment {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return ""
	}
	return h.Alg
}
