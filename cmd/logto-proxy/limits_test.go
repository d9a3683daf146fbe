package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// The request limits of the real http.Server newApp builds: bodies of the
// POST routes, header size, and timeouts that cut off clients that send
// slowly or not at all, so that no client can hold a replica's memory or
// goroutines for ever.

// smallBulk is a small tree for the suites that do not need many
// organizations.
var smallBulk = logtotest.BulkOptions{Distributors: 2, ResellersPerDistributor: 2, CustomersPerReseller: 2, UsersPerOrganization: 1}

func TestRequestLimits(t *testing.T) {
	checkNoLeaks(t)
	front := newLogtoFront(t, logtotest.Options{}, smallBulk)
	redisURL, prefix := testRedisURL(t)
	cfg := faultConfig(t, front, redisURL, prefix, "LOGTO_WEBHOOK_SIGNING_KEY", "limits-test-signing-key")
	a, _ := startLoggedReplica(t, cfg)
	c := newClient(t, a)
	service := newTokens(t, cfg, front).service(t, "")
	eventually(t, "the replica is ready", func() bool { s, _ := c.ready(t); return s == http.StatusOK })

	t.Run("server timeouts", func(t *testing.T) {
		s := a.http
		if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 ||
			s.MaxHeaderBytes <= 0 || s.MaxHeaderBytes > 1<<20 || s.ReadHeaderTimeout > s.ReadTimeout {
			t.Errorf("unbounded server: ReadHeaderTimeout %s, ReadTimeout %s, WriteTimeout %s, IdleTimeout %s, MaxHeaderBytes %d",
				s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.MaxHeaderBytes)
		}
	})

	t.Run("POST bodies", func(t *testing.T) {
		big := append(append([]byte(`{"access_token":"`), bytes.Repeat([]byte("a"), 1<<20)...), `"}`...)
		for _, tc := range []struct {
			path    string
			headers map[string]string
			status  int
			message string
		}{
			{"/api/auth/exchange", nil, http.StatusBadRequest, "invalid request body: http: request body too large"},
			{"/api/auth/refresh", nil, http.StatusBadRequest, "invalid request body: http: request body too large"},
			{"/api/webhooks/logto", map[string]string{"logto-signature-sha-256": strings.Repeat("0", 64)}, http.StatusRequestEntityTooLarge, ""},
		} {
			r := post(c, tc.path, bytes.NewReader(big), tc.headers)
			if r.err != nil || r.status != tc.status || (tc.message != "" && r.message() != tc.message) {
				t.Errorf("POST %s with 1 MiB: %v %d %s", tc.path, r.err, r.status, r.body)
			}
			// A body that never ends is cut off too: the answer comes (or
			// the connection is closed) instead of the server reading on.
			r = post(c, tc.path, endless{}, tc.headers)
			if r.err == nil && r.status != tc.status {
				t.Errorf("POST %s with an endless body: %d %s", tc.path, r.status, r.body)
			}
			if r.err != nil && isTimeout(r.err) {
				t.Errorf("POST %s with an endless body: the server kept reading (%v)", tc.path, r.err)
			}
		}
	})

	t.Run("header size", func(t *testing.T) {
		huge := strings.Repeat("x", 2*a.http.MaxHeaderBytes)
		for name, req := range map[string]func() *http.Request{
			"header": func() *http.Request {
				req, _ := http.NewRequest(http.MethodGet, c.base+"/api/customers", nil)
				req.Header.Set("X-Padding", huge)
				return req
			},
			"URL": func() *http.Request {
				req, _ := http.NewRequest(http.MethodGet, c.base+"/api/customers?search="+huge, nil)
				return req
			},
		} {
			r := req()
			r.Header.Set("Authorization", "Bearer "+service)
			resp, err := c.http.Do(r)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("a %d-byte %s: status %d, want 431", len(huge), name, resp.StatusCode)
			}
		}
	})

	t.Run("slow loris", func(t *testing.T) {
		// Clients that send their headers a byte at a time for ever, or
		// connect and send nothing, are cut off once ReadHeaderTimeout has
		// passed; the replica keeps answering everyone else meanwhile.
		const trickling, silent = 20, 5
		bound := a.http.ReadHeaderTimeout + 2*time.Second
		var wg sync.WaitGroup
		cut := make(chan time.Duration, trickling+silent)
		for i := range trickling + silent {
			conn, err := net.Dial("tcp", a.addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			wg.Go(func() { cut <- waitClosed(conn, bound+time.Second) })
			if i < trickling {
				wg.Go(func() {
					trickle(conn, "GET /api/customers HTTP/1.1\r\nHost: proxy\r\nX-Slow: "+strings.Repeat("z", 1<<20))
				})
			}
		}
		for range 20 {
			served(t, c.get("/api/customers?page_size=5", service), "", cfg.LogtoTimeout+answerBoundSlack)
			time.Sleep(50 * time.Millisecond)
		}
		wg.Wait()
		close(cut)
		for d := range cut {
			if d > bound {
				t.Errorf("a slow client held its connection for %s, more than ReadHeaderTimeout (%s) and slack", d, a.http.ReadHeaderTimeout)
			}
		}
	})
}

// post sends a JSON POST and reads the answer.
func post(c *client, path string, body io.Reader, headers map[string]string) answer {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, body)
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// endless is a request body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// trickle writes s one byte every 50 ms until a write fails (the server
// closed the connection).
func trickle(conn net.Conn, s string) {
	for i := range len(s) {
		if _, err := conn.Write([]byte{s[i]}); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitClosed reads conn until the server closes it and returns how long
// that took; it gives up after limit (and returns more than limit).
func waitClosed(conn net.Conn, limit time.Duration) time.Duration {
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return limit + time.Second
			}
			return time.Since(start)
		}
	}
}
