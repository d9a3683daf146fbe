package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// serviceAlgs is the signature allow-list of service tokens: what Logto signs
// access tokens with (EC keys, or RSA ones from older installations). HS*
// and "none" are never accepted, so a token "signed" with the public key as
// an HMAC secret (the algorithm-confusion attack) fails before any key is
// looked at.
var serviceAlgs = []string{"ES256", "ES384", "ES512", "RS256"}

// ServiceTokenConfig configures ServiceTokens.
type ServiceTokenConfig struct {
	// Issuer is the exact `iss` Logto writes: its endpoint + "/oidc".
	Issuer string
	// Audience is this service's API resource indicator (LOGTO_API_RESOURCE),
	// the only `aud` accepted: a token Logto issued for another API, or for
	// the Management API, is refused.
	Audience string
	// JWKSURL is where Logto publishes its signing keys (default Issuer +
	// "/jwks").
	JWKSURL string
	// HTTPClient fetches the JWKS (default: a client bounded by FetchTimeout
	// that reads at most 1 MiB).
	HTTPClient *http.Client
	// FetchTimeout bounds one JWKS fetch (default 5s).
	FetchTimeout time.Duration
	// RefreshInterval re-reads the JWKS in the background (default 1h).
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between two JWKS re-reads caused
	// by a token whose `kid` is not known (default 30s): after a key
	// rotation new tokens verify at once, and a flood of made-up kids costs
	// Logto one read per interval.
	UnknownKIDInterval time.Duration
	// KeyWait bounds how long one request may wait for keys (default 2s).
	KeyWait time.Duration
	// CacheSize bounds how many verified tokens are remembered (default
	// 10,000), so that a hot caller pays one signature check per token
	// rather than one per request.
	CacheSize int
	// Logger receives JWKS fetch failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ServiceClaims are the claims of a Logto access token this service reads.
type ServiceClaims struct {
	// ClientID is the application the token was issued to.
	ClientID string `json:"client_id"`
	// Scope is the space-separated list of granted permissions.
	Scope string `json:"scope"`
	// OrganizationID, when present, limits the token to that organization
	// (Logto's organization-scoped API tokens).
	OrganizationID string `json:"organization_id,omitempty"`
	jwt.RegisteredClaims
}

// Principal is what the hierarchy needs: a service, with the token's scopes
// as permissions, limited to an organization's subtree when the token names
// one and tree-wide otherwise.
func (c *ServiceClaims) Principal() hierarchy.Principal {
	return hierarchy.Principal{
		Service:     true,
		OrgID:       c.OrganizationID,
		TreeWide:    c.OrganizationID == "",
		Permissions: slices.Clip(strings.Fields(c.Scope)),
	}
}

// ServiceTokens verifies Logto-issued access tokens for this service's API
// resource, which other services use for their lookups. Keys come from
// Logto's JWKS, fetched on first use, refreshed periodically and whenever a
// token names an unknown key (rate-limited). Verified tokens are remembered
// until they expire, keyed by a SHA-256 of the token (never the token). All
// methods are safe for concurrent use.
type ServiceTokens struct {
	cfg    ServiceTokenConfig
	parser *jwt.Parser
	memo   *verifiedTokens

	// The key set is built on first use (or Warm), so that constructing a
	// server does no I/O; ctx ends its background refresh (Close).
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	keys   keyfunc.Keyfunc
	keyErr error

	// idle closes the default client's idle connections (nil for a
	// caller's client, which its owner closes).
	idle func()
}

// maxJWKSBytes bounds the JWKS document read by the default client.
const maxJWKSBytes = 1 << 20

// NewServiceTokens validates cfg and returns a verifier; it does no I/O.
// Close it to stop its background key refresh.
func NewServiceTokens(cfg ServiceTokenConfig) (*ServiceTokens, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("proxy: service tokens: Issuer and Audience are required")
	}
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = strings.TrimRight(cfg.Issuer, "/") + "/jwks"
	}
	if u, err := url.ParseRequestURI(cfg.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("proxy: service tokens: JWKS URL %q is not an http(s) URL", cfg.JWKSURL)
	}
	setDuration(&cfg.FetchTimeout, 5*time.Second)
	setDuration(&cfg.RefreshInterval, time.Hour)
	setDuration(&cfg.UnknownKIDInterval, 30*time.Second)
	setDuration(&cfg.KeyWait, 2*time.Second)
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 10_000
	}
	var idle func()
	if cfg.HTTPClient == nil {
		// Its own transport, so that Close can close its connections
		// without touching anyone else's.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		cfg.HTTPClient = &http.Client{Timeout: cfg.FetchTimeout, Transport: limitedBodies{base: tr, max: maxJWKSBytes}}
		idle = tr.CloseIdleConnections
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &ServiceTokens{
		cfg: cfg,
		parser: jwt.NewParser(
			jwt.WithValidMethods(serviceAlgs),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(cfg.Now),
		),
		memo: newVerifiedTokens(cfg.CacheSize),
		idle: idle,
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	return v, nil
}

// Close stops the background key refresh and closes the connections kept
// to Logto's JWKS endpoint.
func (v *ServiceTokens) Close() {
	v.cancel()
	if v.idle != nil {
		v.idle()
	}
}

// Warm fetches Logto's signing keys now rather than on the first service
// token, so that a replica started while Logto answers keeps verifying
// service tokens through a Logto outage that begins before the first one
// arrives. A failed fetch is logged and retried by the next token naming an
// unknown key, as on first use; the error is only that of building the key
// set.
func (v *ServiceTokens) Warm() error {
	_, err := v.keySet()
	return err
}

// Errors of Verify beyond golang-jwt's own.
var (
	errNoKID     = errors.New("token header has no kid")
	errTokenType = errors.New("token type is not at+jwt")
)

// Verify checks a service token: signature by a key of Logto's JWKS with an
// allowed algorithm, exact issuer, this service's audience, exp (required),
// nbf and iat, and a `typ` of at+jwt when present. The error says why, for
// logs; it never contains the token.
func (v *ServiceTokens) Verify(ctx context.Context, token string) (*ServiceClaims, error) {
	digest := tokenSum(token)
	now := v.cfg.Now()
	if c, ok := v.memo.get(digest, now); ok {
		return c, nil
	}
	keys, err := v.keySet()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.KeyWait)
	defer cancel()
	lookup := keys.KeyfuncCtx(ctx)
	claims := &ServiceClaims{}
	tok, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid == "" {
			return nil, errNoKID
		}
		return lookup(t)
	})
	if err != nil {
		return nil, fmt.Errorf("service token: %w", err)
	}
	if typ, ok := tok.Header["typ"].(string); ok && !isAccessTokenType(typ) {
		return nil, fmt.Errorf("service token: %w", errTokenType)
	}
	v.memo.put(digest, claims, claims.ExpiresAt.Time, now)
	return claims, nil
}

// isAccessTokenType accepts RFC 9068's at+jwt, with or without its
// application/ prefix, in any case.
func isAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == "at+jwt" || typ == "application/at+jwt"
}

// keySet builds the JWKS-backed key function once. jwkset fetches the set
// (a failed first fetch is logged, not fatal: the next unknown kid retries),
// refreshes it every RefreshInterval, and on an unknown kid refetches at
// most once per UnknownKIDInterval.
func (v *ServiceTokens) keySet() (keyfunc.Keyfunc, error) {
	v.once.Do(func() {
		onError := func(ctx context.Context, err error) {
			v.cfg.Logger.Warn("JWKS refresh failed", slog.String("url", v.cfg.JWKSURL), slog.Any("error", err))
		}
		remote, err := jwkset.NewStorageFromHTTP(v.cfg.JWKSURL, jwkset.HTTPClientStorageOptions{
			Client:                    v.cfg.HTTPClient,
			Ctx:                       v.ctx,
			HTTPTimeout:               v.cfg.FetchTimeout,
			NoErrorReturnFirstHTTPReq: true,
			RefreshErrorHandler:       onError,
			RefreshInterval:           v.cfg.RefreshInterval,
		})
		if err != nil {
			v.keyErr = fmt.Errorf("service tokens: JWKS storage: %w", err)
			return
		}
		storage, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
			HTTPURLs:          map[string]jwkset.Storage{v.cfg.JWKSURL: remote},
			RateLimitWaitMax:  v.cfg.KeyWait,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(v.cfg.UnknownKIDInterval), 1),
		})
		if err != nil {
			v.keyErr = fmt.Errorf("service tokens: JWKS client: %w", err)
			return
		}
		v.keys, v.keyErr = keyfunc.New(keyfunc.Options{Ctx: v.ctx, Storage: storage})
	})
	return v.keys, v.keyErr
}

// verifiedTokens remembers verified service tokens until they expire. It is
// bounded: when full, expired entries are dropped, and if that is not
// enough, arbitrary ones (a dropped token is simply verified again).
type verifiedTokens struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	claims  *ServiceClaims
	expires time.Time
}

func newVerifiedTokens(max int) *verifiedTokens {
	return &verifiedTokens{max: max, entries: make(map[[sha256.Size]byte]verifiedToken)}
}

func (m *verifiedTokens) get(digest [sha256.Size]byte, now time.Time) (*ServiceClaims, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[digest]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(m.entries, digest)
		return nil, false
	}
	return e.claims, true
}

func (m *verifiedTokens) put(digest [sha256.Size]byte, c *ServiceClaims, expires, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) >= m.max {
		m.shrink(now)
	}
	m.entries[digest] = verifiedToken{claims: c, expires: expires}
}

// shrink drops expired entries, then arbitrary ones down to 90% of max.
func (m *verifiedTokens) shrink(now time.Time) {
	for k, e := range m.entries {
		if !now.Before(e.expires) {
			delete(m.entries, k)
		}
	}
	for k := range m.entries {
		if len(m.entries) < m.max*9/10 || len(m.entries) == 0 {
			break
		}
		delete(m.entries, k)
	}
}

// limitedBodies bounds every response body read through it, so that a
// misbehaving JWKS endpoint cannot make the verifier read without end.
type limitedBodies struct {
	base http.RoundTripper
	max  int64
}

// RoundTrip implements http.RoundTripper.
func (l limitedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(r)
	if err == nil {
		resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, l.max), Closer: resp.Body}
	}
	return resp, err
}

type limitedBody struct {
	io.Reader
	io.Closer
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}
