// Package logtotest is a contract-faithful Logto 1.42 simulator: an HTTP
// server that answers the Management API, the OIDC token, discovery, JWKS and
// userinfo endpoints, and sends webhooks, the way a self-hosted Logto does
// (see reference/logto-contract.md), from an in-memory tenant.
//
// It exists so that the Logto client, the proxy's end-to-end tests, the demo
// mode and the benchmarks can run against Logto's real wire behaviour —
// status codes, error bodies, paging headers, ETags, unstable organization
// order, fire-and-forget webhooks — without a Logto and a Postgres. Faults
// (latency, errors, 429s, outages, hangs, slow bodies, listing anomalies) can
// be switched on at run time, and every route counts its calls.
//
// It never imports the project's client: it is tested against the contract.
package logtotest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a simulator. The zero value is usable.
type Options struct {
	// Addr is the listen address (default "127.0.0.1:0", a free loopback port).
	Addr string
	// Endpoint is the public base URL (Logto's ENDPOINT) that the issuer and
	// discovery document are built from; default "http://" + the listen address.
	Endpoint string
	// Seed makes ids, secrets and the organization order deterministic
	// (default 1).
	Seed uint64
	// Clock is the time source for timestamps and token validity (default
	// time.Now).
	Clock func() time.Time
	// Logger receives the simulator's own logs (default: discarded).
	Logger *slog.Logger
	// M2MAppID and M2MAppSecret fix the credentials of the pre-made
	// management M2M application (default: generated from Seed).
	M2MAppID, M2MAppSecret string
	// WebhookConcurrency bounds concurrent webhook deliveries (default 10, as
	// Logto).
	WebhookConcurrency int
	// WebhookTimeout bounds one webhook delivery (default 10 s, as Logto).
	WebhookTimeout time.Duration
}

// Server is a running simulator. It is safe for concurrent use.
type Server struct {
	log      *slog.Logger
	clock    func() time.Time
	endpoint string

	ln      net.Listener
	srv     *http.Server
	mux     *http.ServeMux
	closing chan struct{}
	closed  sync.Once

	data     *tenant
	keys     *keyring
	tokens   *tokenRegistry
	verified *verifyCache
	faults   *Faults
	hooks    *dispatcher
	calls    map[string]*atomic.Int64 // fixed after New: read without a lock

	m2m M2MApp

	seedMu   sync.Mutex // serializes EnsureTemplate
	template *Template
}

// New starts a simulator listening on opts.Addr and returns once it accepts
// connections. Close it when done.
func New(opts Options) (*Server, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("logtotest: listen on %s: %w", addr, err)
	}
	s, err := newServer(opts, "http://"+ln.Addr().String())
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("logtotest: serve", "err", err)
		}
	}()
	return s, nil
}

func newServer(opts Options, listenURL string) (*Server, error) {
	seed := opts.Seed
	if seed == 0 {
		seed = 1
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	endpoint := strings.TrimSuffix(opts.Endpoint, "/")
	if endpoint == "" {
		endpoint = listenURL
	}
	keys, err := newKeyring()
	if err != nil {
		return nil, fmt.Errorf("logtotest: %w", err)
	}
	s := &Server{
		log:      log,
		clock:    clock,
		endpoint: endpoint,
		mux:      http.NewServeMux(),
		closing:  make(chan struct{}),
		data:     newTenant(seed),
		keys:     keys,
		tokens:   &tokenRegistry{tokens: make(map[string]userToken)},
		verified: &verifyCache{},
		calls:    make(map[string]*atomic.Int64),
	}
	s.faults = newFaults(seed, s.shuffleOrganizations)
	s.hooks = newDispatcher(log, s.faults, opts.WebhookConcurrency, opts.WebhookTimeout)
	if err := s.seedManagementAPI(opts.M2MAppID, opts.M2MAppSecret); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// URL is the simulator's endpoint (Logto's ENDPOINT): no /api, no trailing
// slash. The Management API is at URL()+"/api", OIDC at URL()+"/oidc".
func (s *Server) URL() string { return s.endpoint }

// Issuer is the iss of every token the simulator issues: URL()+"/oidc".
func (s *Server) Issuer() string { return s.endpoint + "/oidc" }

// ManagementResource is the Management API's resource indicator, the
// audience a management token must be requested for.
func (s *Server) ManagementResource() string { return managementResource }

// M2MCredentials returns the pre-made machine-to-machine application holding
// the "Logto Management API access" role (scope all).
func (s *Server) M2MCredentials() (appID, secret string) { return s.m2m.ID, s.m2m.Secret }

// Handler is the simulator's HTTP handler, for embedding in another server.
// Tokens keep URL()'s issuer, so set Options.Endpoint to the embedding
// server's URL.
func (s *Server) Handler() http.Handler { return s.mux }

// Faults returns the fault switches.
func (s *Server) Faults() *Faults { return s.faults }

// Calls returns how many requests a route received, keyed by its pattern,
// e.g. "GET /api/organizations/{id}" or "POST /oidc/token". Requests answered
// by a fault count too.
func (s *Server) Calls(key string) int64 {
	if c := s.calls[key]; c != nil {
		return c.Load()
	}
	return 0
}

// CallCounts returns the non-zero call counters by route pattern.
func (s *Server) CallCounts() map[string]int64 {
	out := make(map[string]int64)
	for k, c := range s.calls {
		if n := c.Load(); n > 0 {
			out[k] = n
		}
	}
	return out
}

// ResetCalls zeroes every call counter.
func (s *Server) ResetCalls() {
	for c := range maps.Values(s.calls) {
		c.Store(0)
	}
}

// Close stops the simulator: hung requests are released, the listener and
// connections are closed, and in-flight webhook deliveries are waited for.
func (s *Server) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.closing)
		if s.srv != nil {
			// In-flight requests get a short grace. A client connection that
			// was opened but never used counts as active for five seconds in
			// net/http, which would stall every test's cleanup; once the grace
			// is over such connections are simply closed, as a stopping Logto
			// would.
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if shutdownErr := s.srv.Shutdown(ctx); shutdownErr != nil {
				if closeErr := s.srv.Close(); closeErr != nil {
					err = fmt.Errorf("logtotest: close: %w", closeErr)
				}
			}
		}
		s.hooks.wait()
	})
	return err
}

// handle registers a route with its call counter, the faults of its scope
// and, when auth is set, the Management API's bearer-token check.
func (s *Server) handle(pattern string, scope FaultScope, auth bool, h http.HandlerFunc) {
	counter := new(atomic.Int64)
	s.calls[pattern] = counter
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		counter.Add(1)
		w, ok := s.applyFaults(w, r, scope)
		if !ok {
			return
		}
		if auth {
			if err := s.authorizeManagement(r); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		h(w, r)
	})
}

// api registers an authenticated Management API route.
func (s *Server) api(pattern string, h http.HandlerFunc) { s.handle(pattern, ScopeAPI, true, h) }

// oidc registers an OIDC route.
func (s *Server) oidc(pattern string, h http.HandlerFunc) { s.handle(pattern, ScopeOIDC, false, h) }

func (s *Server) routes() {
	s.oidc("GET /oidc/.well-known/openid-configuration", s.handleDiscovery)
	s.oidc("GET /oidc/.well-known/oauth-authorization-server", s.handleDiscovery)
	s.oidc("GET /oidc/jwks", s.handleJWKS)
	s.oidc("POST /oidc/token", s.handleToken)
	s.oidc("GET /oidc/me", s.handleUserinfo)
	s.oidc("POST /oidc/me", s.handleUserinfo)

	s.handle("GET /api/status", ScopeAPI, false, func(w http.ResponseWriter, _ *http.Request) {
		writeNoContent(w, http.StatusNoContent)
	})

	s.organizationRoutes()
	s.memberRoutes()
	s.userRoutes()
	s.templateRoutes()
	s.roleRoutes()
	s.hookRoutes()

	s.mux.HandleFunc("/", s.handleUnmatched)
}

// handleUnmatched answers like Koa when no route matches: a plain-text 404.
// Faults still apply, so an outage drops every connection.
func (s *Server) handleUnmatched(w http.ResponseWriter, r *http.Request) {
	scope := ScopeAPI
	if strings.HasPrefix(r.URL.Path, "/oidc") {
		scope = ScopeOIDC
	}
	w, ok := s.applyFaults(w, r, scope)
	if !ok {
		return
	}
	writeKoaText(w, http.StatusNotFound)
}

// shuffleOrganizations permutes the organizations' listing order.
func (s *Server) shuffleOrganizations() {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	s.data.shuffleOrgs()
}

// seedManagementAPI creates what `logto db seed` creates for the Management
// API (its resource, the all scope, the "Logto Management API access" role)
// and one M2M application holding that role.
func (s *Server) seedManagementAPI(appID, secret string) error {
	t := s.data
	t.mu.Lock()
	defer t.mu.Unlock()
	now := s.clock().UnixMilli()
	t.resources["management-api"] = &Resource{
		TenantID: tenantID, ID: "management-api", Name: "Logto Management API",
		Indicator: managementResource, AccessTokenTTL: int64(defaultTokenTTL / time.Second),
	}
	desc := "Default scope for Management API, allows all permissions."
	t.scopes["management-api-all"] = &Scope{
		TenantID: tenantID, ID: "management-api-all", ResourceID: "management-api",
		Name: "all", Description: &desc, CreatedAt: now,
	}
	role := &roleEntry{
		role: Role{TenantID: tenantID, ID: t.newID(), Name: "Logto Management API access",
			Description: "This default role grants access to the Logto management API.",
			Type:        RoleTypeMachineToMachine},
		scopeIDs: setOf("management-api-all"),
	}
	t.roles[role.role.ID] = role
	if appID == "" {
		appID = t.newID()
	}
	if secret == "" {
		secret = t.newSecret()
	}
	if t.idTaken(appID) {
		return fmt.Errorf("logtotest: M2M app id %q collides with a seeded id", appID)
	}
	t.apps[appID] = &appEntry{id: appID, name: "logtotest management", secret: secret, roles: setOf(role.role.ID)}
	s.m2m = M2MApp{ID: appID, Secret: secret}
	return nil
}
