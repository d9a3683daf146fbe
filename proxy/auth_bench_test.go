package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// BenchmarkServiceTokenVerify measures what a service token costs per
// request: "remembered" is a token already verified (a hot caller), "cold"
// a full ES384 signature check and claims validation every time.
func BenchmarkServiceTokenVerify(b *testing.B) {
	sim, err := logtotest.New(logtotest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sim.Close() })
	f, err := sim.SeedFixture()
	if err != nil {
		b.Fatal(err)
	}
	issue := func() string {
		tok, err := sim.IssueUserToken(f.Users["d1"], logtotest.UserTokenOptions{Resource: f.APIResource.Indicator,
			Scopes: []string{"read:customers"}})
		if err != nil {
			b.Fatal(err)
		}
		return tok
	}
	tokens := []string{issue(), issue()}
	for _, bc := range []struct {
		name  string
		cache int
	}{{"remembered", 100}, {"cold", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			v, err := NewServiceTokens(ServiceTokenConfig{Issuer: sim.Issuer(), Audience: f.APIResource.Indicator,
				CacheSize: bc.cache, Logger: discardLogger()})
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			ctx := context.Background()
			for _, tok := range tokens {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// Alternating two tokens through a one-entry memory misses every time.
				if _, err := v.Verify(ctx, tokens[i%2]); err != nil {
					b.Fatal(err)
				}
				if bc.cache == 1 {
					i++
				}
			}
		})
	}
}

// BenchmarkSessionAuthenticate measures the authentication middleware on a
// session token: HS256 verification plus the revocation check, one Redis
// round trip (REDIS_URL, else the embedded server).
func BenchmarkSessionAuthenticate(b *testing.B) {
	client, prefix := cachetest.Client(b)
	store, err := cache.NewSessionStore(cache.SessionStoreConfig{Client: client, Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	sessions, err := NewSessions(SessionConfig{Secret: []byte(strings.Repeat("k", 40))})
	if err != nil {
		b.Fatal(err)
	}
	a := &authenticator{sessions: sessions, store: store, now: time.Now, log: discardLogger()}
	id := "user1"
	token, _, err := sessions.MintAccess(SessionUser{ID: UserUUID(id), LogtoID: &id, OrgRole: "Distributor",
		OrganizationID: "org1", UserPermissions: []string{"read:users"}, OrgPermissions: []string{"read:customers"}})
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	handler := a.authenticate(func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	req := httptest.NewRequest(http.MethodGet, "/api/customers", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		c := e.NewContext(req, rec)
		c.SetPath("/api/customers")
		if err := handler(c); err != nil || rec.Code != http.StatusNoContent {
			b.Fatalf("%v %d", err, rec.Code)
		}
	}
}
