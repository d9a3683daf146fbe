package logto

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultResource is the Management API resource indicator of a self-hosted
// Logto; it is fixed and does not follow the endpoint (Cloud uses
// https://{tenant}.logto.app/api).
const DefaultResource = "https://default.logto.app/api"

// Defaults applied by New to zero Config fields. They are sized for one
// self-hosted Logto, which serves about 570 requests/s on two cores and whose
// latency degrades past a few dozen concurrent connections.
const (
	DefaultTimeout         = 5 * time.Second
	DefaultMaxAttempts     = 3
	DefaultBackoffBase     = 100 * time.Millisecond
	DefaultBackoffCap      = 2 * time.Second
	DefaultMaxRetryAfter   = 10 * time.Second
	DefaultMaxInFlight     = 8
	DefaultListParallelism = 4
	DefaultListAttempts    = 4
)

// Config is everything New needs. Only Endpoint, AppID and AppSecret are
// required; every other zero field takes the documented default.
type Config struct {
	// Endpoint is Logto's base URL (e.g. http://localhost:3001), without /api.
	// Tokens are requested and the Management API called through it, so it
	// must be the URL Logto's issuer was configured with.
	Endpoint string
	// AppID and AppSecret are the machine-to-machine application's
	// credentials. The secret never appears in logs or errors.
	AppID     string
	AppSecret string
	// Resource is the Management API resource indicator; default DefaultResource.
	Resource string

	// HTTPClient sends the requests; default a client with its own transport.
	// Its Timeout should be zero: the per-attempt Timeout is applied through
	// the request context.
	HTTPClient *http.Client
	// Timeout bounds each attempt, including reading the body; default 5 s.
	Timeout time.Duration
	// MaxAttempts is the number of attempts for a read (GET), first one
	// included; default 3; 1 disables retries.
	MaxAttempts int
	// BackoffBase and BackoffCap shape the full-jitter exponential backoff
	// between attempts: a random delay in [0, min(cap, base·2^retry)).
	// Defaults 100 ms and 2 s.
	BackoffBase time.Duration
	BackoffCap  time.Duration
	// MaxRetryAfter is the longest Retry-After this client waits for before
	// retrying; a longer hint fails the call at once with ErrRateLimited.
	// Default 10 s.
	MaxRetryAfter time.Duration
	// MaxInFlight bounds concurrent requests to Logto from this client; default 8.
	MaxInFlight int
	// ListParallelism is how many pages of one listing are fetched at once; default 4.
	ListParallelism int
	// ListAttempts is how many full passes a listing gets to reconcile with
	// Total-Number before failing with ErrInconsistentListing; default 4.
	ListAttempts int
	// Breaker configures the per-endpoint-group circuit breakers.
	Breaker BreakerConfig

	// Logger receives retries, breaker transitions and token renewals; default slog.Default().
	Logger *slog.Logger
	// Observer receives per-attempt and breaker metrics; nil means none.
	Observer Observer
}

// String describes the configuration with the secret redacted, so that
// logging a Config (fmt, slog) never leaks it.
func (c Config) String() string {
	secret := ""
	if c.AppSecret != "" {
		secret = "[redacted]"
	}
	return fmt.Sprintf("logto.Config{Endpoint:%q AppID:%q AppSecret:%s Resource:%q Timeout:%s MaxAttempts:%d MaxInFlight:%d}",
		c.Endpoint, c.AppID, secret, c.Resource, c.Timeout, c.MaxAttempts, c.MaxInFlight)
}

// GoString redacts the secret for %#v as well.
func (c Config) GoString() string { return c.String() }

// LogValue redacts the secret in structured logs, including JSON handlers
// that would otherwise marshal every field.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// withDefaults validates c and fills in defaults, returning the parsed endpoint.
func (c Config) withDefaults() (Config, *url.URL, error) {
	base, err := parseEndpoint(c.Endpoint)
	if err != nil {
		return c, nil, err
	}
	if strings.TrimSpace(c.AppID) == "" {
		return c, nil, errors.New("logto: config: AppID is required")
	}
	if c.AppSecret == "" {
		return c, nil, errors.New("logto: config: AppSecret is required")
	}
	if c.Resource == "" {
		c.Resource = DefaultResource
	}
	if u, err := url.Parse(c.Resource); err != nil || !u.IsAbs() {
		return c, nil, fmt.Errorf("logto: config: Resource %q must be an absolute URI", c.Resource)
	}
	if err := checkNonNegative(c); err != nil {
		return c, nil, err
	}
	setDefault(&c.Timeout, DefaultTimeout)
	setDefault(&c.MaxAttempts, DefaultMaxAttempts)
	setDefault(&c.BackoffBase, DefaultBackoffBase)
	setDefault(&c.BackoffCap, DefaultBackoffCap)
	setDefault(&c.MaxRetryAfter, DefaultMaxRetryAfter)
	setDefault(&c.MaxInFlight, DefaultMaxInFlight)
	setDefault(&c.ListParallelism, DefaultListParallelism)
	setDefault(&c.ListAttempts, DefaultListAttempts)
	c.BackoffCap = max(c.BackoffCap, c.BackoffBase)
	c.Breaker = c.Breaker.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c, base, nil
}

// parseEndpoint accepts an absolute http(s) URL without credentials, query,
// fragment or a trailing /api, and returns it without a trailing slash.
func parseEndpoint(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("logto: config: Endpoint is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("logto: config: Endpoint is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("logto: config: Endpoint scheme must be http or https, not %q", u.Scheme)
	case u.Host == "":
		return nil, errors.New("logto: config: Endpoint has no host")
	case u.User != nil:
		return nil, errors.New("logto: config: Endpoint must not carry credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("logto: config: Endpoint must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if strings.HasSuffix(u.Path, "/api") {
		return nil, errors.New("logto: config: Endpoint must be Logto's base URL, without /api")
	}
	return u, nil
}

func checkNonNegative(c Config) error {
	durations := map[string]time.Duration{
		"Timeout": c.Timeout, "BackoffBase": c.BackoffBase, "BackoffCap": c.BackoffCap,
		"MaxRetryAfter": c.MaxRetryAfter, "Breaker.OpenTimeout": c.Breaker.OpenTimeout,
		"Breaker.Interval": c.Breaker.Interval,
	}
	for name, d := range durations {
		if d < 0 {
			return fmt.Errorf("logto: config: %s must not be negative", name)
		}
	}
	ints := map[string]int{
		"MaxAttempts": c.MaxAttempts, "MaxInFlight": c.MaxInFlight,
		"ListParallelism": c.ListParallelism, "ListAttempts": c.ListAttempts,
	}
	for name, n := range ints {
		if n < 0 {
			return fmt.Errorf("logto: config: %s must not be negative", name)
		}
	}
	return nil
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}
