package logto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client reads Logto on behalf of the whole service. It is safe for concurrent
// use; build one per process with New and share it.
type Client struct {
	cfg      Config
	base     *url.URL
	http     *http.Client
	log      *slog.Logger
	obs      Observer
	tokens   *tokenSource
	breakers map[string]*breaker
	slots    chan struct{} // bounded concurrency: one token per in-flight request
}

// New validates cfg, applies defaults and returns a Client. It performs no I/O:
// the first call fetches the management token.
func New(cfg Config) (*Client, error) {
	cfg, base, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:   cfg,
		base:  base,
		http:  cfg.HTTPClient,
		log:   cfg.Logger,
		obs:   cfg.Observer,
		slots: make(chan struct{}, cfg.MaxInFlight),
	}
	if c.http == nil {
		c.http = defaultHTTPClient(cfg.MaxInFlight)
	}
	c.breakers = newBreakers(cfg.Breaker, c.obs, c.log)
	// A renewal waits for a slot and then makes one attempt.
	c.tokens = newTokenSource(c.fetchToken, 2*cfg.Timeout, c.log)
	return c, nil
}

// Close closes the idle connections the client keeps to Logto, so that a
// stopping replica leaves none behind (Logto would otherwise hold them until
// their idle timeout). A client given its own Config.HTTPClient leaves that
// client alone: its owner closes it. Calls after Close still work; they open
// new connections.
func (c *Client) Close() {
	if c.cfg.HTTPClient == nil {
		c.http.CloseIdleConnections()
	}
}

// defaultHTTPClient keeps enough idle connections for MaxInFlight requests.
func defaultHTTPClient(maxInFlight int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = maxInFlight
	return &http.Client{Transport: t}
}

// BreakerStates reports each endpoint group's breaker state, for readiness
// checks and debugging. Reading a state also moves an open breaker whose
// timeout has passed to half-open.
func (c *Client) BreakerStates() map[string]BreakerState {
	m := make(map[string]BreakerState, len(c.breakers))
	for g, b := range c.breakers {
		m[g] = stateOf(b.State())
	}
	return m
}

// authMode says how a request authenticates.
type authMode int

const (
	authNone   authMode = iota // discovery, JWKS
	authM2M                    // the cached management token
	authClient                 // client_secret_basic, for the token endpoint
	authBearer                 // a caller-supplied token (userinfo)
)

// request describes one logical call; do turns it into attempts.
type request struct {
	group  string
	method string
	route  string // template for errors and metrics: "GET /api/users/{id}"
	path   string // escaped path below the endpoint
	query  url.Values
	form   url.Values // form body (token endpoint)
	auth   authMode
	bearer string // token for authBearer
}

// response is a 2xx answer, fully read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// maxBodyBytes bounds any answer read into memory (a page of 100 large
// organizations is well under 1 MiB).
const maxBodyBytes = 16 << 20

// do runs r with the protection policy: reads (GET) are retried on 429, 5xx
// and transport failures with full-jitter backoff or the server's Retry-After;
// a 401 on the management token drops it and retries once with a fresh one;
// nothing else is retried. A caller's cancelled context ends it promptly with
// the context's error wrapped.
func (c *Client) do(ctx context.Context, r *request) (*response, error) {
	refreshed := false
	for retry := 0; ; {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("logto: %s: %w", r.route, err)
		}
		resp, rejected, err := c.attempt(ctx, r)
		if err == nil {
			return resp, nil
		}
		if rejected && !refreshed {
			refreshed = true
			c.log.InfoContext(ctx, "logto: management token rejected, retrying with a fresh one", "op", r.route)
			continue
		}
		delay, ok := c.retryDelay(ctx, r, err, retry)
		if !ok {
			return nil, err
		}
		retry++
		c.log.DebugContext(ctx, "logto: retrying", "op", r.route, "retry", retry, "delay", delay, "error", err)
		if err := sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("logto: %s: %w", r.route, err)
		}
	}
}

// retryDelay decides whether the failed call r is retried after its retry-th
// retry, and after how long.
func (c *Client) retryDelay(ctx context.Context, r *request, err error, retry int) (time.Duration, bool) {
	var e *Error
	if r.method != http.MethodGet || retry+1 >= c.cfg.MaxAttempts || !errors.As(err, &e) || !isLogtoTrouble(e) {
		return 0, false
	}
	delay := fullJitter(c.cfg.BackoffBase, c.cfg.BackoffCap, retry)
	if e.RetryAfter > 0 {
		if e.RetryAfter > c.cfg.MaxRetryAfter {
			return 0, false
		}
		delay = e.RetryAfter
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= delay {
		return 0, false // the caller would be gone before the retry could start
	}
	return delay, true
}

// fullJitter returns a random delay in [0, min(cap, base·2^retry)).
func fullJitter(base, cap time.Duration, retry int) time.Duration {
	ceiling := cap
	if retry < 32 && base<<retry > 0 && base<<retry < cap {
		ceiling = base << retry
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt makes one try through the group's breaker and a concurrency slot.
// rejected reports a 401 answered to the management token, which attempt has
// already dropped from the cache.
func (c *Client) attempt(ctx context.Context, r *request) (resp *response, rejected bool, err error) {
	done, err := c.breakers[r.group].Allow()
	if err != nil {
		return nil, false, &Error{Op: r.route, Kind: KindBreakerOpen, Err: err}
	}
	var token string
	switch r.auth {
	case authM2M:
		token, err = c.tokens.Token(ctx)
		if err != nil {
			done(errNotSent) // the token's own breaker judged that call
			return nil, false, err
		}
	case authBearer:
		token = r.bearer
	}
	if err := c.acquire(ctx); err != nil {
		done(errNotSent)
		return nil, false, fmt.Errorf("logto: %s: waiting for a connection slot: %w", r.route, err)
	}
	resp, err = c.send(ctx, r, token)
	c.release()
	done(err)

	var e *Error
	if r.auth == authM2M && errors.As(err, &e) && e.Kind == KindUnauthorized {
		c.tokens.Invalidate(token)
		return nil, true, err
	}
	return resp, false, err
}

// errNotSent tells the breaker an attempt never reached Logto; it is neither
// a success nor a failure (isCallerAbort holds for it).
var errNotSent = errors.New("logto: attempt not sent")

func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) release() { <-c.slots }

// send performs the HTTP exchange under the per-attempt timeout and reads the
// whole body. Non-2xx answers become *Error.
func (c *Client) send(ctx context.Context, r *request, token string) (*response, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := c.newHTTPRequest(actx, r, token)
	if err != nil {
		return nil, &Error{Op: r.route, Kind: KindBadRequest, Message: "cannot build request", Err: err}
	}

	start := time.Now()
	res, err := c.http.Do(req)
	if err != nil {
		c.obs.ObserveCall(r.group, r.route, 0, time.Since(start))
		return nil, c.transportError(ctx, r, err)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBodyBytes+1))
	res.Body.Close()
	c.obs.ObserveCall(r.group, r.route, res.StatusCode, time.Since(start))
	if err != nil {
		return nil, c.transportError(ctx, r, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, decodeError(r.route, res.StatusCode, res.Header, body, time.Now())
	}
	if len(body) > maxBodyBytes {
		return nil, &Error{Op: r.route, Kind: KindInvalidResponse, Status: res.StatusCode,
			Message: fmt.Sprintf("body larger than %d bytes", maxBodyBytes)}
	}
	return &response{status: res.StatusCode, header: res.Header, body: body}, nil
}

// transportError classifies a failed exchange: the caller's own context
// ending is returned as its context error; anything else, including the
// per-attempt timeout, is a KindTransport *Error.
func (c *Client) transportError(ctx context.Context, r *request, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("logto: %s: %w", r.route, ctxErr)
	}
	msg := "no answer"
	if errors.Is(err, context.DeadlineExceeded) {
		msg = fmt.Sprintf("no answer within %s", c.cfg.Timeout)
	}
	return &Error{Op: r.route, Kind: KindTransport, Message: msg, Err: err}
}

// newHTTPRequest builds the wire request for r, authenticated per r.auth.
func (c *Client) newHTTPRequest(ctx context.Context, r *request, token string) (*http.Request, error) {
	u := *c.base
	u.Path = c.base.Path + r.path
	u.RawQuery = r.query.Encode()

	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "logto-proxy")
	if r.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch r.auth {
	case authM2M, authBearer:
		req.Header.Set("Authorization", "Bearer "+token)
	case authClient:
		// RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(c.cfg.AppID), url.QueryEscape(c.cfg.AppSecret))
	}
	return req, nil
}

// getJSON performs a GET on the Management API and decodes the answer into out.
func (c *Client) getJSON(ctx context.Context, r *request, out any) (*response, error) {
	if r.method == "" {
		r.method = http.MethodGet
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := decodeBody(r.route, resp, out); err != nil {
		return nil, err
	}
	return resp, nil
}

// decodeBody decodes a JSON body, tolerating unknown fields; numbers inside
// free-form objects (customData) are kept as json.Number so they pass through
// exactly.
func decodeBody(op string, resp *response, out any) error {
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return &Error{Op: op, Kind: KindInvalidResponse, Status: resp.status, Message: "cannot decode body", Err: err}
	}
	return nil
}

// tokenResponse is the token endpoint's success body.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	TokenType   string `json:"token_type"`
	Scope       string `json:"scope"`
}

// defaultTokenTTL is assumed when the token endpoint omits expires_in; a
// wrong guess is corrected by the 401 retry.
const defaultTokenTTL = 5 * time.Minute

// fetchToken asks the token endpoint for a management token (client
// credentials, client_secret_basic, the Management API resource, scope all).
// It is a POST and so never retried by do; the reads that need the token are.
func (c *Client) fetchToken(ctx context.Context) (string, time.Duration, error) {
	const route = "POST /oidc/token"
	resp, err := c.do(ctx, &request{
		group:  GroupToken,
		method: http.MethodPost,
		route:  route,
		path:   "/oidc/token",
		form: url.Values{
			"grant_type": {"client_credentials"},
			"resource":   {c.cfg.Resource},
			"scope":      {"all"},
		},
		auth: authClient,
	})
	if err != nil {
		return "", 0, err
	}
	var tr tokenResponse
	if err := decodeBody(route, resp, &tr); err != nil {
		return "", 0, err
	}
	if tr.AccessToken == "" || (tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer")) {
		return "", 0, &Error{Op: route, Kind: KindInvalidResponse, Status: resp.status,
			Message: "token response without a bearer access_token"}
	}
	ttl := time.Duration(tr.ExpiresIn) * time.Second
	if tr.ExpiresIn <= 0 || tr.ExpiresIn > int64(365*24*time.Hour/time.Second) {
		ttl = defaultTokenTTL
	}
	return tr.AccessToken, ttl, nil
}
