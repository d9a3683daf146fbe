// Package logto is the only way logto-proxy talks to Logto: a small client for
// the Management API, the OIDC token endpoint, userinfo, discovery and JWKS.
//
// It exists to read Logto correctly and to protect it:
//
//   - Correctly: typed wire objects with Logto's exact JSON names; every list
//     is paged at page_size=100 until Total-Number is reached, de-duplicated by
//     id and reconciled with Total-Number (Logto has no ORDER BY on
//     organizations, so offset paging is unstable under writes). A listing that
//     does not reconcile after a few passes fails with ErrInconsistentListing
//     instead of returning a partial list, so callers never build half a tree.
//     Both of Logto's 404 codes map to ErrNotFound.
//   - Protectively: a machine-to-machine token cached and renewed before it
//     expires, with one renewal at a time however many callers wait; a timeout
//     on every attempt; full-jitter exponential retries for reads only, with
//     Retry-After honoured on 429; bounded concurrency; and a circuit breaker
//     per endpoint group that fails fast while Logto is in trouble.
//
// The package depends only on the standard library and sony/gobreaker, so it
// stays a leaf of the architecture. Tests run it against the contract-faithful
// simulator in logto/logtotest.
package logto
