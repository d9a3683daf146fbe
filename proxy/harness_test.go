package proxy

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// harness is one replica of the whole service under test — the real Logto
// client against the simulator, the real Redis (REDIS_URL) or the embedded
// one, the real hierarchy view and the real HTTP stack — plus session tokens
// for the fixture's personas. End-to-end tests of every route use it.
type harness struct {
	sim      *logtotest.Server
	fixture  *logtotest.Fixture
	logto    *logto.Client
	view     *cache.HierarchyView
	sessions *Sessions
	server   *Server
	http     *httptest.Server
	secret   []byte

	// Authentication state (auth_test.go): the session store, the cached
	// profiles and the service-token verifier the server uses.
	store    *cache.SessionStore
	profiles *Profiles
	service  *ServiceTokens

	// users is the users view behind /users (users_test.go).
	users *cache.UsersView
}

// harnessOptions shape the tree behind the fixture.
type harnessOptions struct {
	// Bulk, when set, adds a generated tree beside the fixture.
	Bulk *logtotest.BulkOptions

	// Response conventions tests (conditional_test.go, orgs_*_test.go):
	// Cold leaves the view unloaded, so the first read waits (X-Cache: MISS);
	// View adjusts the hierarchy view's configuration (clock, TTLs);
	// Logger receives the server's logs (default: discarded).
	Cold   bool
	View   func(*cache.HierarchyConfig)
	Logger *slog.Logger

	// Authentication tests (auth_test.go): Clock drives session tokens,
	// refresh rotation and service tokens (default time.Now); Auth adjusts
	// the authentication configuration.
	Clock func() time.Time
	Auth  func(*AuthConfig)
}

// personas are the fixture's organizations; each has one user holding the
// organization role that matches its type and the Admin user role.
var personas = []string{"owner", "d1", "d2", "d1r1", "d1r2", "d2r1", "d1r1c1", "d1r1c2", "d1r2c1", "d2r1c1", "d1c1"}

func newHarness(t testing.TB, opts harnessOptions) *harness {
	t.Helper()
	h := &harness{secret: []byte(strings.Repeat("harness-secret-", 3))}
	var err error
	if h.sim, err = logtotest.New(logtotest.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.sim.Close() })
	if h.fixture, err = h.sim.SeedFixture(); err != nil {
		t.Fatal(err)
	}
	if opts.Bulk != nil {
		if _, err := h.sim.SeedBulk(*opts.Bulk); err != nil {
			t.Fatal(err)
		}
	}
	appID, secret := h.sim.M2MCredentials()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, time.Now)
	if h.logto, err = logto.New(logto.Config{Endpoint: h.sim.URL(), AppID: appID, AppSecret: secret, Logger: quiet, Observer: metrics}); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := cachetest.Client(t)
	viewCfg := cache.HierarchyConfig{
		Client: rdb, Prefix: prefix, Source: OrganizationSource(h.logto), Logger: quiet, Observer: metrics,
	}
	if opts.View != nil {
		opts.View(&viewCfg)
	}
	if h.view, err = cache.NewHierarchyView(viewCfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.view.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.view.Close() })
	if !opts.Cold {
		if _, err := h.view.Current(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if h.sessions, err = NewSessions(SessionConfig{Secret: h.secret, Issuer: h.sim.URL(), Audience: h.sim.URL() + "/api", Now: opts.Clock}); err != nil {
		t.Fatal(err)
	}
	auth := h.newAuth(t, rdb, prefix, metrics, quiet, opts)
	users := h.newUsers(t, ctx, rdb, prefix, metrics, quiet, opts)
	if h.server, err = New(Config{Hierarchy: h.view, Logto: h.logto, Sessions: h.sessions, Auth: auth, Users: users, Metrics: metrics, Gatherer: reg, Logger: cmp.Or(opts.Logger, quiet)}); err != nil {
		t.Fatal(err)
	}
	h.http = httptest.NewServer(h.server.Handler())
	t.Cleanup(h.http.Close)
	return h
}

// orgID is the Logto id of a fixture organization by persona name.
func (h *harness) orgID(t *testing.T, persona string) string {
	t.Helper()
	name := persona
	if persona == "owner" {
		name = "Owner"
	}
	id, ok := h.fixture.Orgs[name]
	if !ok {
		t.Fatalf("no fixture organization %q", name)
	}
	return id
}

// personaUser is the session user of a persona, with the claims the upstream
// would put in its token: the fixture's organization role and its scopes
// (upstream-my-contract §2.12) and the Admin user role's scopes. It is what
// the login exchange builds for the persona's user (TestExchangeEveryPersona).
func (h *harness) personaUser(t *testing.T, persona string) SessionUser {
	t.Helper()
	orgID := h.orgID(t, persona)
	name := persona
	if persona == "owner" {
		name = "Owner"
	}
	userID := h.fixture.Users[name]
	var role string
	orgPerms := []string{} // the exchange answers [] (never null) for no permissions
	switch {
	case persona == "owner":
		role = "Owner"
		orgPerms = []string{"read:distributors", "manage:distributors", "destroy:distributors", "read:resellers",
			"manage:resellers", "destroy:resellers", "read:customers", "manage:customers", "destroy:customers"}
	case strings.Contains(persona, "c"):
		role = "Customer"
	case strings.Contains(persona, "r"):
		role, orgPerms = "Reseller", []string{"read:customers", "manage:customers"}
	default:
		role, orgPerms = "Distributor", []string{"read:resellers", "manage:resellers", "read:customers", "manage:customers"}
	}
	logtoID := userID
	return SessionUser{
		ID: UserUUID(userID), LogtoID: &logtoID, Username: strings.ToLower(name), Email: strings.ToLower(name) + "@example.com",
		Name: name + " Admin", UserRoles: []string{"Admin"}, UserRoleIDs: []string{h.fixture.UserRoles["Admin"]},
		UserPermissions: []string{"read:users", "manage:users", "read:systems", "manage:systems"},
		OrgRole:         role, OrgRoleID: h.fixture.OrgRoles[role], OrgPermissions: orgPerms,
		OrganizationID: orgID, OrganizationName: name,
	}
}

// token mints a session access token for a persona.
func (h *harness) token(t *testing.T, persona string) string {
	t.Helper()
	tok, _, err := h.sessions.MintAccess(h.personaUser(t, persona))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// reply is one HTTP answer, its envelope decoded when it is JSON.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
	Env    struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
}

// do sends a request with the given bearer token ("" for none) and extra
// headers as name, value pairs.
func (h *harness) do(t *testing.T, method, path, token string, body io.Reader, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, h.http.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := h.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{Status: resp.StatusCode, Header: resp.Header}
	if r.Body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	checkContract(t, req, r.Status, r.Header, r.Body) // every answer must match openapi.yaml (openapi_test.go)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(r.Body) > 0 {
		if err := json.Unmarshal(r.Body, &r.Env); err != nil {
			t.Fatalf("%s %s: body is not an envelope: %v\n%s", method, path, err, r.Body)
		}
		if r.Env.Code != r.Status && strings.HasPrefix(path, "/api/") {
			t.Errorf("%s %s: envelope code %d differs from status %d", method, path, r.Env.Code, r.Status)
		}
	}
	return r
}

// get is do for a GET as a persona ("" sends no token).
func (h *harness) get(t *testing.T, persona, path string, headers ...string) reply {
	t.Helper()
	tok := ""
	if persona != "" {
		tok = h.token(t, persona)
	}
	return h.do(t, http.MethodGet, path, tok, nil, headers...)
}

// tree is the hierarchy the harness's replica serves.
func (h *harness) tree(t *testing.T) *hierarchy.Tree {
	t.Helper()
	snap, err := h.view.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snap.Tree
}
