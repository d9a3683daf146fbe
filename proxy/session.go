package proxy

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// SessionUser is the dashboard user a session token carries: the upstream
// backend's models.User, key for key, so that tokens minted by either
// backend are read by both and the dashboard's `data.user` is unchanged.
type SessionUser struct {
	// ID is the upstream's local database id; there is no database here, so
	// it is the UUIDv5 of the Logto user id (UserUUID), stable everywhere.
	ID               string   `json:"id"`
	LogtoID          *string  `json:"logto_id,omitempty"`
	Username         string   `json:"username"`
	Email            string   `json:"email"`
	Name             string   `json:"name"`
	Phone            *string  `json:"phone"`
	UserRoles        []string `json:"user_roles"`
	UserRoleIDs      []string `json:"user_role_ids"`
	UserPermissions  []string `json:"user_permissions"`
	OrgRole          string   `json:"org_role"`
	OrgRoleID        string   `json:"org_role_id"`
	OrgPermissions   []string `json:"org_permissions"`
	OrganizationID   string   `json:"organization_id"`
	OrganizationName string   `json:"organization_name"`
}

// LogtoUserID is the user's Logto id: logto_id when present, else id (the
// upstream's owner users have an empty local id and carry only logto_id).
func (u SessionUser) LogtoUserID() string {
	if u.LogtoID != nil && *u.LogtoID != "" {
		return *u.LogtoID
	}
	return u.ID
}

// Principal is what the hierarchy needs to know about this user: its
// organization, its organization role, and user ∪ organization permissions
// (the upstream's effective permission set).
func (u SessionUser) Principal() hierarchy.Principal {
	perms := make([]string, 0, len(u.UserPermissions)+len(u.OrgPermissions))
	perms = append(perms, u.UserPermissions...)
	for _, p := range u.OrgPermissions {
		if !slices.Contains(perms, p) {
			perms = append(perms, p)
		}
	}
	return hierarchy.Principal{OrgID: u.OrganizationID, Role: hierarchy.ParseRole(u.OrgRole), Permissions: perms}
}

// userNamespace is the UUIDv5 namespace of users' `id` (UUIDv5 of the URL
// namespace and "urn:logto-proxy:user"); fixed forever, like the
// organizations' one in hierarchy.
var userNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:logto-proxy:user"))

// UserUUID is a user's `id`: the same on every replica, for every token.
func UserUUID(logtoUserID string) string {
	return uuid.NewSHA1(userNamespace, []byte(logtoUserID)).String()
}

// Token types, as the upstream writes them in `token_type`; checking them
// keeps a refresh token from being used as an access token and vice versa.
const (
	tokenTypeAccess  = "access"
	tokenTypeRefresh = "refresh"
)

// AccessClaims are a session access token's claims (upstream CustomClaims).
type AccessClaims struct {
	TokenType string      `json:"token_type"`
	User      SessionUser `json:"user"`
	jwt.RegisteredClaims
}

// RefreshClaims are a refresh token's claims (upstream RefreshTokenClaims);
// UserID is the Logto user id.
type RefreshClaims struct {
	TokenType string `json:"token_type"`
	UserID    string `json:"user_id"`
	jwt.RegisteredClaims
}

// SessionConfig configures session token minting and verification.
type SessionConfig struct {
	// Secret is the HS256 key (JWT_SECRET), shared with the upstream backend.
	Secret []byte
	// Issuer and Audience are written into minted tokens; like the upstream,
	// they are not checked on verification, so tokens of either backend pass.
	Issuer, Audience string
	// AccessTTL (default 30m, the upstream's) and RefreshTTL (default 168h).
	AccessTTL, RefreshTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Sessions mints and verifies the dashboard's session tokens. It holds no
// per-session state: revocation and one-shot refresh live in Redis.
type Sessions struct {
	cfg    SessionConfig
	parser *jwt.Parser
}

// ErrSessionSecret is returned for a secret too short to be safe.
var ErrSessionSecret = errors.New("proxy: session secret must be at least 32 bytes")

// NewSessions validates cfg and applies defaults.
func NewSessions(cfg SessionConfig) (*Sessions, error) {
	if len(cfg.Secret) < 32 {
		return nil, ErrSessionSecret
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 30 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 168 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sessions{cfg: cfg, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithIssuedAt(),
	)}, nil
}

// AccessTTL is the lifetime of minted access tokens (`expires_in`).
func (s *Sessions) AccessTTL() time.Duration { return s.cfg.AccessTTL }

// RefreshTTL is the lifetime of minted refresh tokens, which is also how
// long a user-wide revocation must be remembered.
func (s *Sessions) RefreshTTL() time.Duration { return s.cfg.RefreshTTL }

func (s *Sessions) registered(subject string, ttl time.Duration) jwt.RegisteredClaims {
	now := s.cfg.Now()
	rc := jwt.RegisteredClaims{
		ID:        uuid.NewString(),
		Issuer:    s.cfg.Issuer,
		Subject:   subject,
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
	}
	if s.cfg.Audience != "" {
		rc.Audience = jwt.ClaimStrings{s.cfg.Audience}
	}
	return rc
}

// MintAccess signs an access token for u.
func (s *Sessions) MintAccess(u SessionUser) (string, *AccessClaims, error) {
	c := &AccessClaims{TokenType: tokenTypeAccess, User: u, RegisteredClaims: s.registered(u.ID, s.cfg.AccessTTL)}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.cfg.Secret)
	if err != nil {
		return "", nil, fmt.Errorf("sign access token: %w", err)
	}
	return tok, c, nil
}

// MintRefresh signs a refresh token for the Logto user id.
func (s *Sessions) MintRefresh(logtoUserID string) (string, *RefreshClaims, error) {
	c := &RefreshClaims{TokenType: tokenTypeRefresh, UserID: logtoUserID, RegisteredClaims: s.registered(logtoUserID, s.cfg.RefreshTTL)}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.cfg.Secret)
	if err != nil {
		return "", nil, fmt.Errorf("sign refresh token: %w", err)
	}
	return tok, c, nil
}

// VerifyAccess checks an access token: HS256 with the shared secret only (an
// RS/ES token or alg "none" never reaches the key), exp/nbf/iat, and a
// token_type of "access" or absent (older upstream tokens).
func (s *Sessions) VerifyAccess(token string) (*AccessClaims, error) {
	c := &AccessClaims{}
	if _, err := s.parser.ParseWithClaims(token, c, s.key); err != nil {
		return nil, err
	}
	if c.TokenType != "" && c.TokenType != tokenTypeAccess {
		return nil, fmt.Errorf("token type %q is not an access token", c.TokenType)
	}
	return c, nil
}

// VerifyRefresh checks a refresh token the same way, requiring
// token_type "refresh" (or absent) and a user id.
func (s *Sessions) VerifyRefresh(token string) (*RefreshClaims, error) {
	c := &RefreshClaims{}
	if _, err := s.parser.ParseWithClaims(token, c, s.key); err != nil {
		return nil, err
	}
	if c.TokenType != "" && c.TokenType != tokenTypeRefresh {
		return nil, fmt.Errorf("token type %q is not a refresh token", c.TokenType)
	}
	if c.UserID == "" {
		return nil, errors.New("refresh token has no user_id")
	}
	return c, nil
}

func (s *Sessions) key(*jwt.Token) (any, error) { return s.cfg.Secret, nil }
