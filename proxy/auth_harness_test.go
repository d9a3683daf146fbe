package proxy

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// newAuth builds the harness's authentication: a session store and cached
// profiles in the test's Redis prefix, and a service-token verifier for the
// fixture's API resource that refetches Logto's keys as soon as a token
// names an unknown one.
func (h *harness) newAuth(t testing.TB, rdb redis.UniversalClient, prefix string, metrics *Metrics, log *slog.Logger, opts harnessOptions) AuthConfig {
	t.Helper()
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	var err error
	if h.store, err = cache.NewSessionStore(cache.SessionStoreConfig{Client: rdb, Prefix: prefix, Observer: metrics, Now: clock}); err != nil {
		t.Fatal(err)
	}
	if h.profiles, err = NewProfiles(ProfilesConfig{Logto: h.logto, Now: clock,
		Loader: cache.LoaderConfig[Profile]{Client: rdb, Prefix: prefix, Logger: log, Observer: metrics}}); err != nil {
		t.Fatal(err)
	}
	if h.service, err = NewServiceTokens(ServiceTokenConfig{Issuer: h.sim.Issuer(), Audience: h.fixture.APIResource.Indicator,
		UnknownKIDInterval: time.Millisecond, Logger: log, Now: clock}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.service.Close)
	cfg := AuthConfig{Store: h.store, Profiles: h.profiles, Service: h.service, Now: clock}
	if opts.Auth != nil {
		opts.Auth(&cfg)
	}
	return cfg
}

// sessionPair is the data of an exchange or refresh answer.
type sessionPair struct {
	Token        string      `json:"token"`
	RefreshToken string      `json:"refresh_token"`
	ExpiresIn    int64       `json:"expires_in"`
	User         SessionUser `json:"user"`
}

// exchange signs a persona's user in the way the dashboard does: an opaque
// Logto access token from the simulator, POSTed to /api/auth/exchange.
func (h *harness) exchange(t *testing.T, persona string) sessionPair {
	t.Helper()
	logtoToken, err := h.sim.IssueUserToken(h.fixture.Users[h.fixtureUserName(persona)], logtotest.UserTokenOptions{Opaque: true})
	if err != nil {
		t.Fatal(err)
	}
	r := h.postJSON(t, "/api/auth/exchange", map[string]string{"access_token": logtoToken})
	if r.Status != http.StatusOK || r.Env.Message != "token exchange successful" {
		t.Fatalf("exchange for %s: %d %s", persona, r.Status, r.Body)
	}
	return decodePair(t, r)
}

// postJSON sends a JSON body without a bearer token.
func (h *harness) postJSON(t *testing.T, path string, body any) reply {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return h.do(t, http.MethodPost, path, "", strings.NewReader(string(raw)), "Content-Type", "application/json")
}

func decodePair(t *testing.T, r reply) sessionPair {
	t.Helper()
	var p sessionPair
	if err := json.Unmarshal(r.Env.Data, &p); err != nil {
		t.Fatalf("session pair: %v\n%s", err, r.Body)
	}
	if p.Token == "" || p.RefreshToken == "" {
		t.Fatalf("session pair without tokens: %s", r.Body)
	}
	return p
}

// skewClock is real time plus an offset a test can move forward, so that
// time-dependent rules (the refresh grace period) are crossed without
// sleeping while tokens issued by the simulator stay valid.
type skewClock struct{ offset atomic.Int64 }

func (c *skewClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *skewClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
