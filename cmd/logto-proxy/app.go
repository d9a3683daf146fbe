package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
	"github.com/logto-proxy/logto-proxy/proxy"
)

// app is one replica: every long-lived part of the process, built from a
// config by newApp. Tests build several in one process to act as replicas.
type app struct {
	cfg      config
	log      *slog.Logger
	registry *prometheus.Registry
	metrics  *proxy.Metrics
	logto    *logto.Client
	redis    redis.UniversalClient
	view     *cache.HierarchyView
	users    *cache.UsersView     // the users view behind /users
	service  *proxy.ServiceTokens // nil when service tokens are disabled
	store    *cache.SessionStore  // session state; follows revocations in memory once started
	server   *proxy.Server
	http     *http.Server
	listener net.Listener
	debug    *debugServer // nil unless DEBUG_ADDR is set

	// What keeps the views fresh between listings (freshness below).
	webhooks   *proxy.Webhooks // nil without LOGTO_WEBHOOK_SIGNING_KEY
	reconciler *proxy.Reconciler
}

// newApp builds a replica without doing any I/O; start brings it up.
func newApp(cfg config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = proxy.NewMetrics(a.registry, time.Now)

	lc, err := logto.New(logto.Config{
		Endpoint:  cfg.LogtoEndpoint,
		AppID:     cfg.LogtoAppID,
		AppSecret: cfg.LogtoAppSecret,
		Resource:  cfg.LogtoManagementResource,
		Timeout:   cfg.LogtoTimeout,
		Breaker:   logto.BreakerConfig{OpenTimeout: cfg.Tuning.BreakerOpenTimeout},
		Logger:    log.With("component", "logto"),
		Observer:  a.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("logto client: %w", err)
	}
	a.logto = lc

	a.redis, err = redisClient(cfg)
	if err != nil {
		return nil, err
	}
	a.view, err = cache.NewHierarchyView(cache.HierarchyConfig{
		Client:        a.redis,
		Prefix:        cfg.RedisPrefix,
		Source:        proxy.OrganizationSource(lc),
		Options:       hierarchy.Options{OwnerID: cfg.OwnerOrgID},
		SoftTTL:       cfg.SnapshotSoftTTL,
		HardTTL:       cfg.SnapshotHardTTL,
		RetryBackoff:  cfg.Tuning.RetryBackoff,
		CheckInterval: cfg.Tuning.CheckInterval,
		Logger:        log.With("component", "cache"),
		Observer:      a.metrics,
	})
	if err != nil {
		_ = a.redis.Close()
		return nil, fmt.Errorf("hierarchy view: %w", err)
	}
	a.users, err = cache.NewUsersView(cache.UsersConfig{
		Client:        a.redis,
		Prefix:        cfg.RedisPrefix,
		Source:        proxy.UserSource(lc, proxy.UserSourceConfig{Logger: log.With("component", "users")}),
		SoftTTL:       cfg.SnapshotSoftTTL,
		HardTTL:       cfg.SnapshotHardTTL,
		RetryBackoff:  cfg.Tuning.RetryBackoff,
		CheckInterval: cfg.Tuning.CheckInterval,
		Logger:        log.With("component", "cache"),
		Observer:      a.metrics,
	})
	if err != nil {
		_ = a.redis.Close()
		return nil, fmt.Errorf("users view: %w", err)
	}
	sessions, err := proxy.NewSessions(proxy.SessionConfig{
		Secret:   []byte(cfg.JWTSecret),
		Issuer:   cfg.LogtoEndpoint,
		Audience: cfg.LogtoEndpoint + "/api",
	})
	if err != nil {
		_ = a.redis.Close()
		return nil, fmt.Errorf("JWT_SECRET: %w", err)
	}
	auth, err := a.newAuth(lc, log)
	if err != nil {
		_ = a.redis.Close()
		return nil, err
	}
	if err := a.newFreshness(lc, auth.Profiles, log); err != nil {
		_ = a.redis.Close()
		return nil, err
	}
	a.server, err = proxy.New(proxy.Config{
		Hierarchy: a.view,
		Logto:     lc,
		Sessions:  sessions,
		Auth:      auth,
		Users:     proxy.UsersConfig{View: a.users},
		Webhooks:  a.webhooks,
		Metrics:   a.metrics,
		Gatherer:  a.registry,
		Logger:    log.With("component", "http"),
	})
	if err != nil {
		_ = a.redis.Close()
		return nil, err
	}
	a.http = &http.Server{
		Handler:           a.server.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return a, nil
}

// redisClient builds go-redis's universal client: one server from REDIS_URL,
// or from REDIS_ADDRS a Sentinel-watched master (with REDIS_MASTER_NAME;
// the addresses are the Sentinels', followed across failovers) or a Cluster
// (the addresses are seed nodes; one is enough, since the client discovers
// the others: without IsClusterMode go-redis would take a single address
// for a plain server and fail on every MOVED). REDIS_PASSWORD authenticates
// to the data nodes (the Sentinels themselves are reached without one, as
// Sentinel is configured by default). Socket timeouts follow the context,
// so the cache's per-call timeouts bound network I/O too; the read and
// write timeouts cover calls made without a deadline.
func redisClient(cfg config) (redis.UniversalClient, error) {
	if cfg.RedisMasterName != "" && len(cfg.RedisAddrs) == 0 {
		// go-redis would take REDIS_URL's server for a Sentinel.
		return nil, errors.New("REDIS_MASTER_NAME: needs REDIS_ADDRS, the Sentinels' addresses")
	}
	opts := &redis.UniversalOptions{
		Addrs:                 cfg.RedisAddrs,
		MasterName:            cfg.RedisMasterName,
		Password:              cfg.RedisPassword,
		IsClusterMode:         len(cfg.RedisAddrs) > 0 && cfg.RedisMasterName == "",
		DialTimeout:           2 * time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
	}
	if cfg.RedisURL != "" {
		u, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		opts.Addrs, opts.DB, opts.Username, opts.Password, opts.TLSConfig = []string{u.Addr}, u.DB, u.Username, u.Password, u.TLSConfig
	}
	return redis.NewUniversalClient(opts), nil
}

// start loads (or builds) the hierarchy and starts serving HTTP. The view's
// first load happens in the background: /readyz says "loading" until then,
// and a start with Logto down still brings the process up.
func (a *app) start(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	a.listener = ln
	fail := func(err error) error {
		_ = ln.Close()
		_ = a.debug.close()
		return err
	}
	if a.cfg.DebugAddr != "" {
		if a.debug, err = startDebug(a.cfg.DebugAddr, a.log); err != nil {
			return fail(err)
		}
	}
	if err := a.view.Start(ctx); err != nil {
		return fail(fmt.Errorf("start hierarchy view: %w", err))
	}
	if err := a.users.Start(ctx); err != nil {
		return fail(fmt.Errorf("start users view: %w", err))
	}
	if err := a.store.Start(); err != nil {
		return fail(fmt.Errorf("start session store: %w", err))
	}
	a.startFreshness()
	go func() {
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "error", err)
		}
	}()
	go a.warm(ctx)
	return nil
}

// warm asks for the hierarchy, then the users, once so that the first
// request does not pay for the cold start; meanwhile it fetches Logto's
// signing keys, so that service tokens keep verifying through a Logto
// outage that begins before the first one arrives.
func (a *app) warm(ctx context.Context) {
	var keys sync.WaitGroup
	if a.service != nil {
		keys.Go(func() {
			if err := a.service.Warm(); err != nil && ctx.Err() == nil {
				a.log.Warn("service-token keys not fetched; retrying on the first service token", "error", err)
			}
		})
	}
	a.warmViews(ctx)
	keys.Wait()
}

// warmViews loads the hierarchy, then the users.
func (a *app) warmViews(ctx context.Context) {
	snap, err := a.view.Current(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("initial hierarchy load failed; retrying on demand", "error", err)
		}
		return
	}
	if _, err := a.users.Current(ctx, snap.Tree); err != nil && ctx.Err() == nil {
		a.log.Warn("initial users load failed; retrying on demand", "error", err)
	}
}

// addr is where the replica listens (useful with port 0).
func (a *app) addr() string { return a.listener.Addr().String() }

// shutdown lets in-flight requests finish, then closes the view and Redis.
func (a *app) shutdown(ctx context.Context) error {
	err := errors.Join(a.http.Shutdown(ctx), a.debug.close())
	a.stopFreshness()
	if a.service != nil {
		a.service.Close()
	}
	a.store.Close()
	err = errors.Join(err, a.view.Close(), a.users.Close(), a.redis.Close())
	a.logto.Close() // once nothing calls Logto any more
	return err
}

// newAuth wires authentication: session state and cached profiles in
// Redis, and, when LOGTO_API_RESOURCE is set, the verifier of Logto-issued
// service tokens (issuer LOGTO_ENDPOINT/oidc, keys from its JWKS).
func (a *app) newAuth(lc *logto.Client, log *slog.Logger) (proxy.AuthConfig, error) {
	cfg := a.cfg
	store, err := cache.NewSessionStore(cache.SessionStoreConfig{Client: a.redis, Prefix: cfg.RedisPrefix,
		Logger: log.With("component", "sessions"), Observer: a.metrics})
	if err != nil {
		return proxy.AuthConfig{}, fmt.Errorf("session store: %w", err)
	}
	a.store = store
	profiles, err := proxy.NewProfiles(proxy.ProfilesConfig{Logto: lc, Loader: cache.LoaderConfig[proxy.Profile]{
		Client: a.redis, Prefix: cfg.RedisPrefix, Logger: log.With("component", "cache"), Observer: a.metrics,
	}})
	if err != nil {
		return proxy.AuthConfig{}, err
	}
	auth := proxy.AuthConfig{Store: store, Profiles: profiles}
	if cfg.LogtoAPIResource != "" {
		a.service, err = proxy.NewServiceTokens(proxy.ServiceTokenConfig{
			Issuer:   cfg.LogtoEndpoint + "/oidc",
			Audience: cfg.LogtoAPIResource,
			Logger:   log.With("component", "service-tokens"),
		})
		if err != nil {
			return proxy.AuthConfig{}, fmt.Errorf("LOGTO_API_RESOURCE: %w", err)
		}
		auth.Service = a.service
	}
	return auth, nil
}

// newFreshness wires what keeps the views fresh between full listings: the
// receiver of Logto's webhooks, when LOGTO_WEBHOOK_SIGNING_KEY is set, and
// the periodic reconcile (RECONCILE_INTERVAL), which repairs what webhooks
// missed.
func (a *app) newFreshness(lc *logto.Client, profiles *proxy.Profiles, log *slog.Logger) error {
	var err error
	if a.cfg.LogtoWebhookSigningKey != "" {
		a.webhooks, err = proxy.NewWebhooks(proxy.WebhooksConfig{
			SigningKey: a.cfg.LogtoWebhookSigningKey,
			Logto:      lc,
			Hierarchy:  a.view,
			Users:      a.users,
			Profiles:   profiles,
			Metrics:    a.metrics,
			Logger:     log,
		})
		if err != nil {
			return fmt.Errorf("LOGTO_WEBHOOK_SIGNING_KEY: %w", err)
		}
	}
	a.reconciler, err = proxy.NewReconciler(proxy.ReconcilerConfig{
		Hierarchy: a.view,
		Users:     a.users,
		Interval:  a.cfg.ReconcileInterval,
		Metrics:   a.metrics,
		Logger:    log,
	})
	if err != nil {
		return fmt.Errorf("RECONCILE_INTERVAL: %w", err)
	}
	return nil
}

// startFreshness starts the webhook workers and the reconcile loops.
func (a *app) startFreshness() {
	if a.webhooks != nil {
		a.webhooks.Start()
	}
	a.reconciler.Start()
}

// stopFreshness stops them, before the views they write to are closed.
func (a *app) stopFreshness() {
	a.reconciler.Close()
	if a.webhooks != nil {
		a.webhooks.Close()
	}
}
