package proxy

import (
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/logto"
)

// Config is what the HTTP layer needs from the rest of the process. Every
// dependency is passed in, so a test can stand up several servers (replicas)
// in one process, each with its own registry.
type Config struct {
	// Hierarchy is the cached organization view every read is answered from.
	Hierarchy *cache.HierarchyView
	// Logto is the Management API client: readiness reads its breaker
	// states, the login exchange builds profiles through it.
	Logto *logto.Client
	// Sessions mints and verifies the dashboard's session tokens.
	Sessions *Sessions
	// Auth configures the login exchange and service tokens (authroutes.go).
	Auth AuthConfig
	// Users configures the user reads (users.go).
	Users UsersConfig
	// Webhooks receives Logto's webhooks at POST /api/webhooks/logto
	// (webhook.go); nil when no signing key is configured, and the route
	// then answers like an unknown one.
	Webhooks *Webhooks
	// Metrics records requests; Gatherer is what /metrics exposes.
	Metrics  *Metrics
	Gatherer prometheus.Gatherer
	// Logger receives one line per request, with its request id.
	Logger *slog.Logger
	// Now is the clock used for ages reported by /readyz (default time.Now).
	Now func() time.Time
}

// Server is the configured echo instance. It holds no state of its own beyond
// its dependencies, which is what makes replicas interchangeable.
type Server struct {
	cfg  Config
	echo *echo.Echo
	auth *authenticator
	conv *conventions
}

// New wires the routes and middleware.
func New(cfg Config) (*Server, error) {
	if cfg.Hierarchy == nil || cfg.Sessions == nil || cfg.Metrics == nil || cfg.Gatherer == nil {
		return nil, errors.New("proxy: Hierarchy, Sessions, Metrics and Gatherer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	auth, err := newAuthenticator(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Metrics.watchHierarchy(cfg.Hierarchy)
	s := &Server{cfg: cfg, echo: e, auth: auth}
	e.HTTPErrorHandler = s.handleError
	// The response conventions (ETag/304, gzip, Cache-Control) sit inside
	// observe, so it logs and counts what they answer, and outside Recover,
	// so a recovered panic is answered through them too (conditional.go).
	conv, err := newConventions()
	if err != nil {
		return nil, err
	}
	s.conv = conv
	e.Use(middleware.RequestID(), s.observe, conv.middleware, middleware.Recover())

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))

	// Each area of the API registers its own routes, in its own file.
	api := e.Group("/api")
	authed := api.Group("", s.auth.authenticate)
	s.authRoutes(api, authed)
	s.orgRoutes(authed)
	s.userRoutes(authed)
	s.openAPIRoutes(api) // the OpenAPI document, unauthenticated (openapi.go)
	s.webhookRoutes(api) // Logto's webhooks, HMAC-signed rather than authenticated (webhook.go)
	return s, nil
}

// Handler is the server's http.Handler, for an http.Server or httptest.
func (s *Server) Handler() http.Handler { return s.echo }

// observe logs and measures every request under its route template (never the
// raw path, which would explode the metrics' cardinality and could carry ids).
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := s.cfg.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		d := s.cfg.Now().Sub(start)
		s.cfg.Metrics.ObserveHTTP(route, c.Request().Method, status, d)
		// Successful requests log at debug level, usually off: check before
		// reading the request id out of the headers.
		ctx, level := c.Request().Context(), levelFor(status)
		if !s.cfg.Logger.Enabled(ctx, level) {
			return nil
		}
		s.cfg.Logger.LogAttrs(ctx, level, "request",
			slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
			slog.String("method", c.Request().Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Duration("duration", d))
		return nil
	}
}

func levelFor(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

// handleError answers every error in the upstream's envelope. An unknown path
// or a wrong method is 404 "api not found" (the upstream's gin router has no
// 405), anything unexpected a 500 whose details go to the log only.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			_ = fail(c, http.StatusNotFound, "api not found")
			return
		}
		if he.Code < 500 {
			msg, ok := he.Message.(string)
			if !ok {
				msg = http.StatusText(he.Code)
			}
			_ = fail(c, he.Code, strings.ToLower(msg))
			return
		}
	}
	s.cfg.Logger.Error("request failed", slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
		slog.String("route", c.Path()), slog.Any("error", err))
	_ = fail(c, http.StatusInternalServerError, "internal server error")
}

// healthz is liveness: the process answers. It never looks at dependencies,
// so a Logto or Redis outage does not get healthy replicas restarted.
func (s *Server) healthz(c echo.Context) error {
	return answerJSON(c, []byte(healthzBody))
}

// healthzBody is /healthz's answer, encoded once: probes (and the load
// generator's ceiling) hit it constantly.
const healthzBody = `{"status":"ok"}` + "\n"

// readiness is /readyz's body.
type readiness struct {
	Status   string            `json:"status"` // ready, degraded or loading
	Snapshot *snapshotHealth   `json:"snapshot,omitempty"`
	Users    *usersHealth      `json:"users,omitempty"`
	Redis    string            `json:"redis"` // ok or unreachable
	Breakers map[string]string `json:"logto_breakers,omitempty"`
	Problems []string          `json:"problems,omitempty"`
}

type snapshotHealth struct {
	Generation    uint64  `json:"generation"`
	AgeSeconds    float64 `json:"age_seconds"`
	Organizations int     `json:"organizations"`
}

type usersHealth struct {
	Generation uint64  `json:"generation"`
	AgeSeconds float64 `json:"age_seconds"`
	Users      int     `json:"users"`
}

// readyz is readiness: 503 until a snapshot is loaded (nothing could be
// answered), then 200. Once loaded a replica stays ready through Redis or
// Logto trouble, because it keeps answering from memory; the body then says
// "degraded" and why, for operators and dashboards.
func (s *Server) readyz(c echo.Context) error {
	h := s.cfg.Hierarchy.Health()
	r := readiness{Status: "ready", Redis: "ok"}
	if !h.RedisOK {
		r.Redis = "unreachable"
		r.Problems = append(r.Problems, "redis unreachable")
	}
	if h.LastError != nil {
		r.Problems = append(r.Problems, "last hierarchy rebuild failed")
	}
	if s.cfg.Users.View != nil {
		// The user routes load their view on first use, so a replica is
		// ready without it; until then it says so.
		uh := s.cfg.Users.View.Health()
		switch {
		case !uh.Loaded:
			r.Problems = append(r.Problems, "users view not loaded yet")
		default:
			r.Users = &usersHealth{Generation: uh.Generation, AgeSeconds: s.cfg.Now().Sub(uh.BuiltAt).Seconds(), Users: uh.Users}
		}
		if uh.LastError != nil {
			r.Problems = append(r.Problems, "last users rebuild failed")
		}
		if !uh.RedisOK && h.RedisOK {
			r.Redis = "unreachable"
			r.Problems = append(r.Problems, "redis unreachable")
		}
	}
	if s.cfg.Logto != nil {
		r.Breakers = map[string]string{}
		states := s.cfg.Logto.BreakerStates()
		for _, group := range slices.Sorted(maps.Keys(states)) {
			st := states[group]
			r.Breakers[group] = st.String()
			if st != logto.BreakerClosed {
				r.Problems = append(r.Problems, "logto "+group+" breaker "+st.String())
			}
		}
	}
	if !h.Loaded {
		r.Status = "loading"
		return c.JSON(http.StatusServiceUnavailable, r)
	}
	r.Snapshot = &snapshotHealth{Generation: h.Generation, AgeSeconds: s.cfg.Now().Sub(h.BuiltAt).Seconds(), Organizations: h.Orgs}
	if len(r.Problems) > 0 {
		r.Status = "degraded"
	}
	return c.JSON(http.StatusOK, r)
}
