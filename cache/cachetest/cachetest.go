// Package cachetest gives tests of any package a Redis to talk to, the same
// way production does (go-redis over RESP): the server named by REDIS_URL
// when it is set (CI), else an embedded one, so that `go test ./...` passes
// with Go alone. It also offers a private server that a test may stop and
// restart, to exercise Redis outages.
package cachetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
)

// Client returns a Redis client for one test and a key prefix unique to it.
// With REDIS_URL set it connects there, and at cleanup deletes every key
// under the prefix (by SCAN, never FLUSHDB: other packages' tests share the
// server); otherwise it starts an embedded Redis that lives as long as the
// test. Tests must put every key they create under the prefix.
func Client(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	prefix := Prefix(t)
	url := os.Getenv("REDIS_URL")
	if url == "" {
		e, err := cache.StartEmbedded()
		if err != nil {
			t.Fatalf("cachetest: %v", err)
		}
		c := e.Client()
		t.Cleanup(func() {
			_ = c.Close()
			e.Close()
		})
		return c, prefix
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		// The URL may carry a password: name the variable, not its value.
		t.Fatalf("cachetest: REDIS_URL does not parse as a redis:// URL")
	}
	opts.ContextTimeoutEnabled = true
	c := redis.NewClient(opts)
	t.Cleanup(func() {
		if err := DeletePrefix(context.Background(), c, prefix); err != nil {
			t.Errorf("cachetest: %v", err)
		}
		_ = c.Close()
	})
	return c, prefix
}

// Prefix returns a key prefix unique to this test run of t: readable (it
// carries the test's name) and free of glob characters, so it can be used
// in SCAN MATCH as is.
func Prefix(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return "lptest:" + name + ":" + rand.Text()[:10] + ":"
}

// DeletePrefix deletes every key that starts with prefix, walking the
// keyspace with SCAN: on every master of a Redis Cluster (a SCAN sees one
// node's keys only), else on the one server. Keys are deleted one per
// command, since the keys of one batch may live in different cluster
// slots. prefix must not contain glob characters (see Prefix).
func DeletePrefix(ctx context.Context, c redis.UniversalClient, prefix string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return deleteScanned(ctx, node, prefix)
		})
	}
	return deleteScanned(ctx, c, prefix)
}

// deleteScanned deletes the keys under prefix that a SCAN of c finds.
func deleteScanned(ctx context.Context, c redis.Cmdable, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range batch {
				p.Del(ctx, k)
			}
			return nil
		})
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("delete test keys: %w", err)
		}
		return nil
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scan test keys: %w", err)
	}
	return flush()
}

// Server is a private Redis that a test can stop and restart on the same
// address, to exercise outages and recovery. It is a redis-server process
// when that binary is on PATH (started with persistence off), else an
// embedded server; in both cases a restart comes back empty, like a real
// server without persistence.
type Server struct {
	t    testing.TB
	addr string
	cmd  *exec.Cmd            // the redis-server process while running
	mini *miniredis.Miniredis // the embedded server, when no binary is found
}

// StartServer starts a private server for t, stopped at cleanup.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t}
	if _, err := exec.LookPath("redis-server"); err == nil {
		s.addr = freeLoopbackAddr(t)
	} else {
		s.mini = miniredis.NewMiniRedis()
		s.mini.ClockTTL(true)
		if err := s.mini.StartAddr("127.0.0.1:0"); err != nil {
			t.Fatalf("cachetest: start embedded redis: %v", err)
		}
		s.addr = s.mini.Addr()
	}
	if s.mini == nil {
		s.Start()
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port; it survives restarts.
func (s *Server) Addr() string { return s.addr }

// Client returns a client of the server, closed at the test's cleanup.
// It neither retries commands nor dials twice, which keeps a test quick
// while the server is down.
func (s *Server) Client() redis.UniversalClient {
	c := redis.NewClient(&redis.Options{
		Addr:                  s.addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		DialerRetries:         1,
		MaxRetries:            -1,
	})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop stops the server and drops its data. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	if s.mini != nil {
		s.mini.Close()
		s.mini.FlushAll()
		return
	}
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Start starts a stopped server again on the same address, empty, and
// waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	if s.mini != nil {
		if err := s.mini.Restart(); err != nil {
			s.t.Fatalf("cachetest: restart embedded redis: %v", err)
		}
		return
	}
	if s.cmd != nil {
		return
	}
	_, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("cachetest: start redis-server: %v", err)
	}
	s.cmd = cmd
	s.waitReady()
}

// waitReady polls the server with PING until it answers, for at most ten
// seconds (a liveness bound, not a measurement).
func (s *Server) waitReady() {
	c := redis.NewClient(&redis.Options{Addr: s.addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("cachetest: redis-server on %s did not answer: %v", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeLoopbackAddr asks the kernel for a free loopback port.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cachetest: find a free port: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
