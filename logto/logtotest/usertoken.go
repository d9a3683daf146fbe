package logtotest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// userToken records a user access token the simulator issued, so that
// /oidc/me can answer for it.
type userToken struct {
	userID    string
	scopes    []string
	expiresAt time.Time
}

// tokenRegistry remembers issued user tokens by opaque value or JWT id.
type tokenRegistry struct {
	mu     sync.Mutex
	tokens map[string]userToken
}

// maxUserTokens is the registry size past which expired tokens are pruned.
const maxUserTokens = 100_000

func (t *tokenRegistry) add(key string, tok userToken, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.tokens) >= maxUserTokens {
		for k, v := range t.tokens {
			if !now.Before(v.expiresAt) {
				delete(t.tokens, k)
			}
		}
	}
	t.tokens[key] = tok
}

func (t *tokenRegistry) get(key string) (userToken, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tok, ok := t.tokens[key]
	return tok, ok
}

// UserTokenOptions shapes a user access token issued by IssueUserToken. The
// zero value is an opaque token for /oidc/me that lives an hour.
type UserTokenOptions struct {
	// Opaque issues a random opaque token, good only for /oidc/me, like the
	// token a dashboard gets when it signs in without an API resource.
	Opaque bool
	// Resource is the API resource indicator (the JWT's aud).
	Resource string
	// Scopes are put in the scope claim as given (no intersection with the
	// user's roles: tests decide).
	Scopes []string
	// OrganizationID scopes the token to an organization: with a Resource it
	// adds the organization_id claim (organization-scoped API token); without
	// one the audience is urn:logto:organization:<id> (organization token).
	OrganizationID string
	// ClientID is the client_id claim (default "logtotest-spa").
	ClientID string
	// Lifetime is exp - iat (default one hour).
	Lifetime time.Duration
	// IssuedAt, NotBefore and ExpiresAt override iat, nbf (absent by default)
	// and exp, for negative tests.
	IssuedAt, NotBefore, ExpiresAt time.Time
	// Issuer overrides iss (default Issuer()).
	Issuer string
	// Audience overrides aud entirely.
	Audience string
	// UnknownKey signs with a fresh key that is not in the JWKS.
	UnknownKey bool
	// ExtraClaims are added to the JWT claims (overriding the defaults).
	ExtraClaims map[string]any
}

// IssueUserToken issues an access token for a user as if the user had
// signed in through an application, without the browser dance. The user
// must exist.
func (s *Server) IssueUserToken(userID string, opts UserTokenOptions) (string, error) {
	s.data.mu.RLock()
	_, ok := s.data.users[userID]
	s.data.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("issue user token: user %q does not exist", userID)
	}
	now := s.clock()
	iat := now
	if !opts.IssuedAt.IsZero() {
		iat = opts.IssuedAt
	}
	lifetime := opts.Lifetime
	if lifetime <= 0 {
		lifetime = defaultTokenTTL
	}
	exp := iat.Add(lifetime)
	if !opts.ExpiresAt.IsZero() {
		exp = opts.ExpiresAt
	}
	rec := userToken{userID: userID, scopes: opts.Scopes, expiresAt: exp}

	if opts.Opaque {
		tok := base64.RawURLEncoding.EncodeToString(randomBytes(32))
		s.tokens.add(tok, rec, now)
		return tok, nil
	}

	aud := opts.Audience
	if aud == "" {
		switch {
		case opts.Resource != "":
			aud = opts.Resource
		case opts.OrganizationID != "":
			aud = organizationURNPrefix + opts.OrganizationID
		default:
			return "", errors.New("issue user token: a JWT needs a Resource, an OrganizationID or an Audience")
		}
	}
	clientID := opts.ClientID
	if clientID == "" {
		clientID = defaultUserClientID
	}
	iss := opts.Issuer
	if iss == "" {
		iss = s.Issuer()
	}
	jti := base64.RawURLEncoding.EncodeToString(randomBytes(16))
	claims := jwt.MapClaims{
		"jti": jti, "sub": userID, "client_id": clientID,
		"iat": iat.Unix(), "exp": exp.Unix(), "iss": iss, "aud": aud,
	}
	if len(opts.Scopes) > 0 {
		claims["scope"] = strings.Join(opts.Scopes, " ")
	}
	if !opts.NotBefore.IsZero() {
		claims["nbf"] = opts.NotBefore.Unix()
	}
	if opts.OrganizationID != "" && opts.Resource != "" {
		claims["organization_id"] = opts.OrganizationID
	}
	for k, v := range opts.ExtraClaims {
		claims[k] = v
	}
	key := s.keys.signer()
	if opts.UnknownKey {
		k, err := newSigningKey()
		if err != nil {
			return "", fmt.Errorf("issue user token: %w", err)
		}
		key = k
	}
	tok, err := key.sign(claims)
	if err != nil {
		return "", fmt.Errorf("issue user token: %w", err)
	}
	s.tokens.add(jti, rec, now)
	return tok, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return b
}
