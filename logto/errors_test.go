package logto

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDecodeErrorBothNotFoundCodes(t *testing.T) {
	now := time.Now()
	for _, body := range []string{
		"{\"code\":\"entity.not_exists_with_id\",\"message\":\"The organizations with ID `x` does not exist.\"}",
		`{"code":"entity.not_found","message":"The resource does not exist."}`,
	} {
		e := decodeError("GET /x", http.StatusNotFound, http.Header{}, []byte(body), now)
		wrapped := fmt.Errorf("outer: %w", e)
		if !errors.Is(wrapped, ErrNotFound) {
			t.Errorf("%s: errors.Is(ErrNotFound) = false", body)
		}
		if errors.Is(wrapped, ErrServer) || errors.Is(wrapped, ErrBadRequest) {
			t.Errorf("%s: matches a sentinel of another kind", body)
		}
		if e.Code == "" || e.Message == "" || e.Status != 404 {
			t.Errorf("%s: decoded %+v", body, e)
		}
	}
}

func TestDecodeErrorKinds(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   error
		code   string
	}{
		{401, `{"code":"auth.unauthorized","message":"Unauthorized."}`, ErrUnauthorized, "auth.unauthorized"},
		{403, `{"code":"auth.forbidden","message":"Forbidden."}`, ErrForbidden, "auth.forbidden"},
		{400, `{"code":"guard.invalid_pagination","message":"bad"}`, ErrBadRequest, "guard.invalid_pagination"},
		{422, `{"code":"organization.require_membership","message":"x"}`, ErrBadRequest, "organization.require_membership"},
		{429, `{"code":"auth.exceed_token_limit","message":"x"}`, ErrRateLimited, "auth.exceed_token_limit"},
		{500, `{"message":"Internal server error."}`, ErrServer, ""},
		{502, `<html>bad gateway</html>`, ErrServer, ""},
		{401, `{"error":"invalid_client","error_description":"client authentication failed"}`, ErrUnauthorized, "oidc.invalid_client"},
	}
	for _, tc := range cases {
		e := decodeError("POST /oidc/token", tc.status, http.Header{}, []byte(tc.body), time.Now())
		if !errors.Is(e, tc.want) {
			t.Errorf("%d %s: kind %v, want %v", tc.status, tc.body, e.Kind, tc.want)
		}
		if e.Code != tc.code {
			t.Errorf("%d %s: code %q, want %q", tc.status, tc.body, e.Code, tc.code)
		}
	}
}

func TestDecodeErrorSanitisesMessage(t *testing.T) {
	long := strings.Repeat("a", 5000) + "\n\x1b[31m"
	e := decodeError("GET /x", 400, http.Header{}, []byte(`{"code":"c","message":"`+long+`"}`), time.Now())
	if n := len([]rune(e.Message)); n > maxMessageRunes+1 {
		t.Errorf("message kept %d runes", n)
	}
	if strings.ContainsAny(e.Error(), "\n\x1b") {
		t.Errorf("control characters reached the error string: %q", e.Error())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 8, 21, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 7 ":                           7 * time.Second,
		"0":                             0,
		"-4":                            0,
		"soon":                          0,
		"Fri, 21 Aug 2026 12:00:05 GMT": 5 * time.Second,
		"Fri, 21 Aug 2026 11:59:00 GMT": 0,
		"99999999999999999999":          0, // overflows int64: malformed
		"9999999999":                    24 * time.Hour,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRetryAfterOnlyOnRateLimitAndUnavailable(t *testing.T) {
	h := http.Header{"Retry-After": {"2"}}
	if e := decodeError("GET /x", 429, h, nil, time.Now()); e.RetryAfter != 2*time.Second {
		t.Errorf("429 RetryAfter = %s", e.RetryAfter)
	}
	if e := decodeError("GET /x", 503, h, nil, time.Now()); e.RetryAfter != 2*time.Second {
		t.Errorf("503 RetryAfter = %s", e.RetryAfter)
	}
	if e := decodeError("GET /x", 404, h, nil, time.Now()); e.RetryAfter != 0 {
		t.Errorf("404 RetryAfter = %s", e.RetryAfter)
	}
}

func TestBreakerClassification(t *testing.T) {
	trouble := []error{
		&Error{Kind: KindServer}, &Error{Kind: KindRateLimited}, &Error{Kind: KindTransport},
		fmt.Errorf("wrapped: %w", &Error{Kind: KindTransport}),
	}
	for _, err := range trouble {
		if !isLogtoTrouble(err) || isCallerAbort(err) {
			t.Errorf("%v: trouble=%t abort=%t", err, isLogtoTrouble(err), isCallerAbort(err))
		}
	}
	healthy := []error{nil, &Error{Kind: KindNotFound}, &Error{Kind: KindBadRequest}, &Error{Kind: KindUnauthorized}}
	for _, err := range healthy {
		if isLogtoTrouble(err) || isCallerAbort(err) {
			t.Errorf("%v: trouble=%t abort=%t", err, isLogtoTrouble(err), isCallerAbort(err))
		}
	}
	for _, err := range []error{context.Canceled, fmt.Errorf("x: %w", context.DeadlineExceeded), errNotSent} {
		if !isCallerAbort(err) || isLogtoTrouble(err) {
			t.Errorf("%v should be excluded from breaker counts", err)
		}
	}
}

func TestFullJitterBounds(t *testing.T) {
	base, cap := 10*time.Millisecond, 80*time.Millisecond
	for retry := range 40 {
		ceiling := min(cap, base<<min(retry, 30))
		for range 50 {
			d := fullJitter(base, cap, retry)
			if d < 0 || d >= ceiling {
				t.Fatalf("retry %d: %s outside [0, %s)", retry, d, ceiling)
			}
		}
	}
}

// FuzzDecodeError feeds arbitrary bodies and Retry-After values to the error
// decoder: it must never panic and must keep messages printable and short.
func FuzzDecodeError(f *testing.F) {
	f.Add(404, `{"code":"entity.not_found","message":"The resource does not exist."}`, "")
	f.Add(429, `{"message":1}`, "Fri, 21 Aug 2026 12:00:05 GMT")
	f.Add(500, "\xff\xfe<html>", "-1")
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		e := decodeError("GET /x", status, http.Header{"Retry-After": {retryAfter}}, []byte(body), time.Now())
		if len([]rune(e.Message)) > maxMessageRunes+1 || e.RetryAfter < 0 {
			t.Fatalf("decoded %+v", e)
		}
		if strings.ContainsAny(e.Message+e.Code, "\n\r\x00") {
			t.Fatalf("control characters kept: %q %q", e.Code, e.Message)
		}
		_ = e.Error()
	})
}

// FuzzPathSegment checks that any accepted id stays inside one path segment.
func FuzzPathSegment(f *testing.F) {
	for _, s := range []string{"abc", "", "..", "a/b", "%2F", "a?b#c", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		seg, err := pathSegment("GET /x/{id}", id)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "/?#") {
			t.Fatalf("id %q escaped to %q", id, seg)
		}
	})
}
