package logto

import "time"

// Observer receives the client's measurements, so that metrics live with the
// caller (a Prometheus registry in proxy) and this package keeps no global
// state. Implementations must be safe for concurrent use and must not block
// or call back into the Client: ObserveBreaker runs inside the breaker's lock.
type Observer interface {
	// ObserveCall reports one attempt: its endpoint group, its route template
	// ("GET /api/organizations/{id}"), the HTTP status (0 when no answer was
	// received) and how long it took, body included.
	ObserveCall(group, endpoint string, status int, d time.Duration)
	// ObserveBreaker reports a group's breaker state: once per group when the
	// Client is built, then on every transition.
	ObserveBreaker(group string, state BreakerState)
}

type nopObserver struct{}

func (nopObserver) ObserveCall(string, string, int, time.Duration) {}
func (nopObserver) ObserveBreaker(string, BreakerState)            {}
