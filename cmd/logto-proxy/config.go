package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// config is everything the process needs from its environment. Each field has
// one environment variable and one flag; the flag wins when both are given, so
// an operator can override a deployment's environment for one run.
type config struct {
	Demo       bool
	DemoTokens string

	ListenAddr string
	LogLevel   string
	// DebugAddr is where net/http/pprof listens ("" = off), never on the
	// public listener: profiles are for operators (debug.go).
	DebugAddr string

	LogtoEndpoint           string
	LogtoAppID              string
	LogtoAppSecret          string
	LogtoManagementResource string
	LogtoAPIResource        string
	LogtoWebhookSigningKey  string
	LogtoTimeout            time.Duration

	RedisURL        string
	RedisAddrs      []string
	RedisMasterName string
	RedisPassword   string
	RedisPrefix     string

	JWTSecret  string
	OwnerOrgID string

	SnapshotSoftTTL time.Duration
	SnapshotHardTTL time.Duration

	// ReconcileInterval is how old a snapshot's listing gets before a
	// replica reconciles it with a full listing (default 4/5 of
	// SnapshotSoftTTL, and always shorter; see proxy/reconcile.go).
	ReconcileInterval time.Duration

	// Tuning has no setting; see tuning.
	Tuning tuning
}

// tuning holds protection timings that are not settings: the packages'
// defaults suit production (a breaker stays open 30 s, a failed rebuild is
// retried after 15 s, Redis is polled every 5 s), and tests of whole replicas
// shorten them so that a breaker half-opens, a rebuild is retried or a
// snapshot is written back within a test's time. Zero fields keep the
// defaults.
type tuning struct {
	BreakerOpenTimeout time.Duration // logto.BreakerConfig.OpenTimeout
	RetryBackoff       time.Duration // the views' pause after a failed rebuild
	CheckInterval      time.Duration // the views' Redis generation poll and write-back
}

// setting describes one configuration knob: where it comes from, its default,
// and how it is parsed. Keeping them in one table is what lets every error name
// the variable and lets the README's configuration table be checked against it.
type setting struct {
	env, flag, def, usage string
	secret                bool
	parse                 func(c *config, v string) error
}

// settings is the single source of truth for configuration.
func settings() []setting {
	str := func(dst func(*config) *string) func(*config, string) error {
		return func(c *config, v string) error { *dst(c) = v; return nil }
	}
	dur := func(dst func(*config) *time.Duration) func(*config, string) error {
		return func(c *config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("must be a positive duration such as 30s or 5m, got %q", v)
			}
			*dst(c) = d
			return nil
		}
	}
	return []setting{
		{env: "LISTEN_ADDR", flag: "listen", def: ":8080", usage: "address the HTTP server listens on", parse: func(c *config, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("must be host:port, got %q", v)
			}
			c.ListenAddr = v
			return nil
		}},
		{env: "DEBUG_ADDR", flag: "debug-addr", usage: "address of a second listener serving Go's profiler (/debug/pprof/); off when empty; keep it private", parse: func(c *config, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("must be host:port, got %q", v)
			}
			c.DebugAddr = v
			return nil
		}},
		{env: "LOG_LEVEL", flag: "log-level", def: "info", usage: "debug, info, warn or error", parse: func(c *config, v string) error {
			switch strings.ToLower(v) {
			case "debug", "info", "warn", "error":
				c.LogLevel = strings.ToLower(v)
				return nil
			}
			return fmt.Errorf("must be debug, info, warn or error, got %q", v)
		}},
		{env: "LOGTO_ENDPOINT", flag: "logto-endpoint", usage: "Logto base URL, e.g. https://tenant.logto.app (required)", parse: func(c *config, v string) error {
			if err := httpURL(v); err != nil {
				return err
			}
			c.LogtoEndpoint = strings.TrimRight(v, "/")
			return nil
		}},
		{env: "LOGTO_M2M_APP_ID", flag: "logto-m2m-app-id", usage: "machine-to-machine app id holding the Management API role (required)", parse: str(func(c *config) *string { return &c.LogtoAppID })},
		{env: "LOGTO_M2M_APP_SECRET", flag: "logto-m2m-app-secret", usage: "that app's secret (required)", secret: true, parse: str(func(c *config) *string { return &c.LogtoAppSecret })},
		{env: "LOGTO_MANAGEMENT_RESOURCE", flag: "logto-management-resource", def: "https://default.logto.app/api", usage: "Management API resource indicator", parse: str(func(c *config) *string { return &c.LogtoManagementResource })},
		{env: "LOGTO_API_RESOURCE", flag: "logto-api-resource", usage: "this service's API resource indicator; enables Logto-issued service tokens", parse: str(func(c *config) *string { return &c.LogtoAPIResource })},
		{env: "LOGTO_WEBHOOK_SIGNING_KEY", flag: "logto-webhook-signing-key", usage: "signing key of the Logto webhook pointing at /api/webhooks/logto", secret: true, parse: str(func(c *config) *string { return &c.LogtoWebhookSigningKey })},
		{env: "LOGTO_TIMEOUT", flag: "logto-timeout", def: "5s", usage: "timeout of one call to Logto", parse: dur(func(c *config) *time.Duration { return &c.LogtoTimeout })},
		{env: "REDIS_URL", flag: "redis-url", usage: "redis://[:password@]host:port/db of a single Redis", secret: true, parse: func(c *config, v string) error {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
				return errors.New("must be a redis:// or rediss:// URL with a host")
			}
			c.RedisURL = v
			return nil
		}},
		{env: "REDIS_ADDRS", flag: "redis-addrs", usage: "comma-separated host:port list of a Redis Cluster or Sentinel", parse: func(c *config, v string) error {
			for _, a := range strings.Split(v, ",") {
				a = strings.TrimSpace(a)
				if _, _, err := net.SplitHostPort(a); err != nil {
					return fmt.Errorf("must be a comma-separated list of host:port, got %q", a)
				}
				c.RedisAddrs = append(c.RedisAddrs, a)
			}
			return nil
		}},
		{env: "REDIS_MASTER_NAME", flag: "redis-master-name", usage: "Sentinel master name (with REDIS_ADDRS)", parse: str(func(c *config) *string { return &c.RedisMasterName })},
		{env: "REDIS_PASSWORD", flag: "redis-password", usage: "password for REDIS_ADDRS", secret: true, parse: str(func(c *config) *string { return &c.RedisPassword })},
		{env: "REDIS_PREFIX", flag: "redis-prefix", def: "logto-proxy:", usage: "prefix of every Redis key and channel", parse: str(func(c *config) *string { return &c.RedisPrefix })},
		{env: "JWT_SECRET", flag: "jwt-secret", usage: "HS256 secret of session tokens, shared with the upstream backend (required, at least 32 bytes)", secret: true, parse: func(c *config, v string) error {
			if len(v) < 32 {
				return fmt.Errorf("must be at least 32 bytes, got %d", len(v))
			}
			c.JWTSecret = v
			return nil
		}},
		{env: "OWNER_ORG_ID", flag: "owner-org-id", usage: "Logto id of the Owner organization (default: the one named Owner with no type)", parse: str(func(c *config) *string { return &c.OwnerOrgID })},
		{env: "SNAPSHOT_SOFT_TTL", flag: "snapshot-soft-ttl", def: "10m", usage: "age after which a read triggers one background rebuild (a fallback: webhooks and the reconcile keep snapshots younger)", parse: dur(func(c *config) *time.Duration { return &c.SnapshotSoftTTL })},
		{env: "SNAPSHOT_HARD_TTL", flag: "snapshot-hard-ttl", def: "1h", usage: "age after which answers are marked X-Cache: STALE", parse: dur(func(c *config) *time.Duration { return &c.SnapshotHardTTL })},
		{env: "RECONCILE_INTERVAL", flag: "reconcile-interval", usage: "age at which a snapshot is reconciled with a full listing of Logto, repairing missed webhooks (default 4/5 of SNAPSHOT_SOFT_TTL; must be shorter than it)", parse: dur(func(c *config) *time.Duration { return &c.ReconcileInterval })},
	}
}

// loadConfig reads the environment (through getenv, so tests need not touch
// the process environment) and the command line. The returned error is one
// line that names the offending variable.
func loadConfig(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("logto-proxy", flag.ContinueOnError)
	fs.BoolVar(&c.Demo, "demo", false, "run with a seeded Logto simulator and an embedded Redis (nothing else needed)")
	fs.StringVar(&c.DemoTokens, "demo-tokens", "", "with -demo: write the personas' session tokens to this JSON file")
	all := settings()
	vals := make([]*string, len(all))
	for i, s := range all {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		usage := s.usage + " (" + s.env + ")"
		if s.secret {
			// Never print a secret's value as a flag default in -help.
			vals[i] = fs.String(s.flag, "", usage)
			if def != "" {
				*vals[i] = def
			}
			continue
		}
		vals[i] = fs.String(s.flag, def, usage)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for i, s := range all {
		if *vals[i] == "" {
			continue
		}
		if err := s.parse(&c, *vals[i]); err != nil {
			return c, fmt.Errorf("%s: %v", s.env, err)
		}
	}
	if c.SnapshotHardTTL < c.SnapshotSoftTTL {
		return c, fmt.Errorf("SNAPSHOT_HARD_TTL: must not be shorter than SNAPSHOT_SOFT_TTL (%s)", c.SnapshotSoftTTL)
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = c.SnapshotSoftTTL * 4 / 5
	}
	if c.ReconcileInterval >= c.SnapshotSoftTTL {
		// Reads would rebuild before the reconcile is due: two timers doing
		// one job, and the differences of those rebuilds never counted.
		return c, fmt.Errorf("RECONCILE_INTERVAL: must be shorter than SNAPSHOT_SOFT_TTL (%s)", c.SnapshotSoftTTL)
	}
	if c.RedisURL != "" && len(c.RedisAddrs) > 0 {
		return c, errors.New("REDIS_ADDRS: set either REDIS_URL or REDIS_ADDRS, not both")
	}
	if c.Demo {
		// The demo brings its own Logto, Redis and secret; everything else is optional.
		return c, nil
	}
	for _, req := range []struct{ env, val string }{
		{"LOGTO_ENDPOINT", c.LogtoEndpoint},
		{"LOGTO_M2M_APP_ID", c.LogtoAppID},
		{"LOGTO_M2M_APP_SECRET", c.LogtoAppSecret},
		{"JWT_SECRET", c.JWTSecret},
	} {
		if req.val == "" {
			return c, fmt.Errorf("%s: required (or run with -demo)", req.env)
		}
	}
	if c.RedisURL == "" && len(c.RedisAddrs) == 0 {
		return c, errors.New("REDIS_URL: required, or REDIS_ADDRS for a Cluster or Sentinel (or run with -demo)")
	}
	return c, nil
}

func httpURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an absolute http(s) URL, got %q", v)
	}
	return nil
}
