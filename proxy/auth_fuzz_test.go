package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
)

// FuzzAuthorizationHeader feeds arbitrary Authorization headers to the
// authentication middleware: whatever arrives, the answer is a clean 401 in
// the envelope (or the handler, for the one valid session token seeded), and
// nothing panics.
func FuzzAuthorizationHeader(f *testing.F) {
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	f.Cleanup(jwks.Close)
	client, prefix := cachetest.Client(f)
	store, err := cache.NewSessionStore(cache.SessionStoreConfig{Client: client, Prefix: prefix})
	if err != nil {
		f.Fatal(err)
	}
	sessions, err := NewSessions(SessionConfig{Secret: []byte(strings.Repeat("k", 40))})
	if err != nil {
		f.Fatal(err)
	}
	service, err := NewServiceTokens(ServiceTokenConfig{Issuer: jwks.URL + "/oidc", Audience: "https://api.example",
		JWKSURL: jwks.URL, Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(service.Close)
	a := &authenticator{sessions: sessions, store: store, service: service, now: time.Now, log: discardLogger()}
	id := "user1"
	valid, _, err := sessions.MintAccess(SessionUser{ID: UserUUID(id), LogtoID: &id, OrgRole: "Owner"})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"", "Bearer", "Bearer ", "bearer x", "Basic abc", "Bearer " + valid,
		"Bearer " + valid + "x", "Bearer a.b.c", "Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
		"Bearer eyJhbGciOiJFUzM4NCIsImtpZCI6ImsifQ.e30.x", "Bearer " + strings.Repeat("A", 5000) + ".e30.x"} {
		f.Add(seed)
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "/api/me", nil)
		req.Header["Authorization"] = []string{header}
		rec := httptest.NewRecorder()
		c := e.NewContext(req, rec)
		c.SetPath("/api/me")
		err := a.authenticate(func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })(c)
		if err != nil {
			t.Fatalf("middleware error: %v", err)
		}
		switch rec.Code {
		case http.StatusNoContent:
			// Accepted: a Bearer header whose token verifies under the
			// session secret. Not compared with valid itself: under -fuzz
			// each worker mints its own, and the coordinator's seed
			// reaches every worker.
			scheme, tok, _ := strings.Cut(header, " ")
			if _, err := sessions.VerifyAccess(strings.TrimSpace(tok)); scheme != "Bearer" || err != nil {
				t.Fatalf("accepted %q", header)
			}
		case http.StatusUnauthorized:
			if !strings.HasPrefix(rec.Body.String(), `{"code":401,"message":"`) {
				t.Fatalf("401 body %s", rec.Body)
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, header)
		}
	})
}
