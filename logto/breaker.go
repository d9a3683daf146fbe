package logto

import (
	"errors"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Endpoint groups: each has its own circuit breaker, so that trouble on one
// part of Logto (say, slow user searches) does not cut off the others, and
// they label metrics.
const (
	GroupOrganizations = "organizations" // /api/organizations/...
	GroupUsers         = "users"         // /api/users/...
	GroupRoles         = "roles"         // /api/roles/..., /api/organization-roles/...
	GroupToken         = "token"         // POST /oidc/token
	GroupOIDC          = "oidc"          // /oidc/me, discovery, JWKS
)

// Groups lists every endpoint group, for callers that pre-register metrics.
func Groups() []string {
	return []string{GroupOrganizations, GroupUsers, GroupRoles, GroupToken, GroupOIDC}
}

// BreakerState is a circuit breaker's state, exported so that metrics and
// readiness checks need not import gobreaker.
type BreakerState int

// Breaker states; the numeric values suit a gauge (0 closed, 1 half-open, 2 open).
const (
	BreakerClosed BreakerState = iota
	BreakerHalfOpen
	BreakerOpen
)

// String names the state ("closed", "half-open", "open").
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	default:
		return "unknown"
	}
}

func stateOf(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	case gobreaker.StateOpen:
		return BreakerOpen
	default:
		return BreakerClosed
	}
}

// BreakerConfig tunes the per-group circuit breakers. Only failures that
// indicate Logto trouble count: 5xx, 429, transport errors and timeouts; a
// 404 or 400 is a healthy answer, and a caller's own cancellation is ignored.
type BreakerConfig struct {
	// ConsecutiveFailures trips the breaker open; default 5.
	ConsecutiveFailures uint32
	// OpenTimeout is how long the breaker stays open, failing fast, before
	// letting probe requests through (half-open); default 30 s.
	OpenTimeout time.Duration
	// HalfOpenRequests is how many probes are let through while half-open;
	// that many consecutive successes close it, one failure reopens it. Default 1.
	HalfOpenRequests uint32
	// Interval clears the failure counts periodically while closed; default 60 s.
	Interval time.Duration
}

// Breaker defaults applied to zero BreakerConfig fields.
const (
	DefaultBreakerFailures         = 5
	DefaultBreakerOpenTimeout      = 30 * time.Second
	DefaultBreakerHalfOpenRequests = 1
	DefaultBreakerInterval         = 60 * time.Second
)

func (b BreakerConfig) withDefaults() BreakerConfig {
	setDefault(&b.ConsecutiveFailures, DefaultBreakerFailures)
	setDefault(&b.OpenTimeout, DefaultBreakerOpenTimeout)
	setDefault(&b.HalfOpenRequests, DefaultBreakerHalfOpenRequests)
	setDefault(&b.Interval, DefaultBreakerInterval)
	return b
}

// breaker is the two-step gobreaker used around each attempt: Allow before
// sending, then report the outcome.
type breaker = gobreaker.TwoStepCircuitBreaker[struct{}]

// newBreakers builds one breaker per group, reporting transitions to obs and log.
func newBreakers(cfg BreakerConfig, obs Observer, log *slog.Logger) map[string]*breaker {
	m := make(map[string]*breaker)
	for _, g := range Groups() {
		m[g] = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        g,
			MaxRequests: cfg.HalfOpenRequests,
			Interval:    cfg.Interval,
			Timeout:     cfg.OpenTimeout,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= cfg.ConsecutiveFailures
			},
			OnStateChange: func(name string, from, to gobreaker.State) {
				log.Warn("logto: circuit breaker state change",
					"group", name, "from", stateOf(from).String(), "to", stateOf(to).String())
				obs.ObserveBreaker(name, stateOf(to))
			},
			IsSuccessful: func(err error) bool { return !isLogtoTrouble(err) },
			IsExcluded:   isCallerAbort,
		})
		obs.ObserveBreaker(g, BreakerClosed)
	}
	return m
}

// isLogtoTrouble reports whether err says Logto is unwell: the failures a
// breaker counts.
func isLogtoTrouble(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Kind {
	case KindServer, KindRateLimited, KindTransport:
		return true
	}
	return false
}

// isCallerAbort reports whether err is the caller giving up (its context
// ended) rather than an answer from Logto; such attempts are not counted.
// Every answer or transport failure is an *Error; the caller's context error
// is returned bare (wrapped), so that is the test.
func isCallerAbort(err error) bool {
	var e *Error
	return err != nil && !errors.As(err, &e)
}
