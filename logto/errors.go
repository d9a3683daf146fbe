package logto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind classifies a failure so that callers can decide what to do (answer 404,
// serve stale data, back off) without parsing Logto's codes or status lines.
type Kind int

// The kinds of failure. Each has a sentinel error (ErrNotFound, ...) so that
// errors.Is works through any amount of wrapping.
const (
	// KindUnknown is a status this client does not classify (e.g. 3xx).
	KindUnknown Kind = iota
	// KindNotFound: 404, whichever of Logto's two codes it carries.
	KindNotFound
	// KindUnauthorized: 401, a missing, expired or rejected token or bad client credentials.
	KindUnauthorized
	// KindForbidden: 403, the token lacks the `all` scope (or a Cloud tenant guard).
	KindForbidden
	// KindRateLimited: 429; Error.RetryAfter carries the server's hint when sent.
	KindRateLimited
	// KindBadRequest: any other 4xx (400 guard errors, 422 relation errors, ...).
	KindBadRequest
	// KindServer: 5xx.
	KindServer
	// KindTransport: no usable answer (connection refused, reset, per-attempt timeout).
	KindTransport
	// KindBreakerOpen: the endpoint group's circuit breaker refused the call without sending it.
	KindBreakerOpen
	// KindInconsistentListing: a paged listing never reconciled with Total-Number.
	KindInconsistentListing
	// KindInvalidResponse: a 2xx answer whose body could not be decoded (version drift, a proxy's page).
	KindInvalidResponse
)

// Sentinels for errors.Is; an *Error matches the sentinel of its Kind.
var (
	ErrNotFound            = errors.New("logto: not found")
	ErrUnauthorized        = errors.New("logto: unauthorized")
	ErrForbidden           = errors.New("logto: forbidden")
	ErrRateLimited         = errors.New("logto: rate limited")
	ErrBadRequest          = errors.New("logto: bad request")
	ErrServer              = errors.New("logto: server error")
	ErrTransport           = errors.New("logto: transport error")
	ErrBreakerOpen         = errors.New("logto: circuit breaker open")
	ErrInconsistentListing = errors.New("logto: inconsistent listing")
	ErrInvalidResponse     = errors.New("logto: invalid response")
)

// String names the kind in error strings and logs.
func (k Kind) String() string {
	switch k {
	case KindNotFound:
		return "not found"
	case KindUnauthorized:
		return "unauthorized"
	case KindForbidden:
		return "forbidden"
	case KindRateLimited:
		return "rate limited"
	case KindBadRequest:
		return "bad request"
	case KindServer:
		return "server error"
	case KindTransport:
		return "transport error"
	case KindBreakerOpen:
		return "circuit breaker open"
	case KindInconsistentListing:
		return "inconsistent listing"
	case KindInvalidResponse:
		return "invalid response"
	default:
		return "unknown error"
	}
}

func (k Kind) sentinel() error {
	switch k {
	case KindNotFound:
		return ErrNotFound
	case KindUnauthorized:
		return ErrUnauthorized
	case KindForbidden:
		return ErrForbidden
	case KindRateLimited:
		return ErrRateLimited
	case KindBadRequest:
		return ErrBadRequest
	case KindServer:
		return ErrServer
	case KindTransport:
		return ErrTransport
	case KindBreakerOpen:
		return ErrBreakerOpen
	case KindInconsistentListing:
		return ErrInconsistentListing
	case KindInvalidResponse:
		return ErrInvalidResponse
	default:
		return nil
	}
}

// Error is the single error type returned for anything Logto (or the way to
// it) refused, so callers get the status, Logto's code and the retry hint in
// one place. It never carries credentials or tokens.
type Error struct {
	// Op is the call that failed, as a route template ("GET /api/users/{id}").
	Op string
	// Kind classifies the failure; errors.Is(err, ErrNotFound) and friends test it.
	Kind Kind
	// Status is the HTTP status, 0 when no answer was received.
	Status int
	// Code is Logto's error code ("entity.not_found", "oidc.invalid_client"), when sent.
	Code string
	// Message is Logto's human-readable message (truncated), or this client's explanation.
	Message string
	// RetryAfter is the server's Retry-After hint on 429/503, 0 when absent.
	RetryAfter time.Duration
	// Err is the underlying cause for transport and breaker failures.
	Err error
}

// Error formats the failure as "logto: <op>: <kind> (<status> <code>): <message>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("logto: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.String())
	if e.Status != 0 || e.Code != "" {
		b.WriteString(" (")
		if e.Status != 0 {
			b.WriteString(strconv.Itoa(e.Status))
		}
		if e.Code != "" {
			if e.Status != 0 {
				b.WriteByte(' ')
			}
			b.WriteString(e.Code)
		}
		b.WriteByte(')')
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes the cause (e.g. context.DeadlineExceeded for an attempt timeout).
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's Kind.
func (e *Error) Is(target error) bool {
	s := e.Kind.sentinel()
	return s != nil && target == s
}

// kindForStatus maps a non-2xx HTTP status to a Kind.
func kindForStatus(status int) Kind {
	switch {
	case status == http.StatusNotFound:
		return KindNotFound
	case status == http.StatusUnauthorized:
		return KindUnauthorized
	case status == http.StatusForbidden:
		return KindForbidden
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status >= 400 && status < 500:
		return KindBadRequest
	case status >= 500 && status < 600:
		return KindServer
	default:
		return KindUnknown
	}
}

// maxMessageRunes bounds how much of Logto's message reaches error strings and logs.
const maxMessageRunes = 200

// wireError is Logto's error body: RequestError fields plus the OAuth fields
// that the OIDC endpoints add.
type wireError struct {
	Code             string `json:"code"`
	Message          string `json:"message"`
	OAuthError       string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// decodeError builds the *Error for a non-2xx answer.
func decodeError(op string, status int, header http.Header, body []byte, now time.Time) *Error {
	e := &Error{Op: op, Kind: kindForStatus(status), Status: status}
	var w wireError
	if json.Unmarshal(bytes.TrimSpace(body), &w) == nil {
		e.Code = w.Code
		if e.Code == "" && w.OAuthError != "" {
			e.Code = "oidc." + w.OAuthError
		}
		e.Message = w.Message
		if e.Message == "" {
			e.Message = w.ErrorDescription
		}
	}
	e.Code = clean(e.Code, 64)
	e.Message = clean(e.Message, maxMessageRunes)
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), now)
	}
	return e
}

// clean keeps printable text only and truncates it, so that a hostile or
// broken body cannot inject control characters or huge strings into logs.
func clean(s string, maxRunes int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxRunes {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP-date; an
// absent, malformed or past value yields 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, 24*time.Hour)
		}
	}
	return 0
}
