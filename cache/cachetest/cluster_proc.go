package cachetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file holds what the Cluster and Sentinel helpers share: one
// redis-server process a test owns (a config file and a log in the test's
// temporary directory, a fixed loopback port so that it can be restarted
// where the others expect it), and the bounded polling that waits for
// Redis to reach a state.

// liveness bounds every wait of these helpers: a server that does not
// reach the awaited state within it fails the test instead of hanging it.
// It is a liveness bound, never a measurement.
const liveness = 20 * time.Second

// redisProc is one redis-server process owned by a test. Its config file
// and log live in dir; run may be called again after stop, and the
// process comes back with the same config (and, for a cluster node, the
// same nodes.conf, so that it rejoins as itself).
type redisProc struct {
	addr     string
	dir      string
	conf     string   // path of the config file
	extra    []string // arguments after the config file ("--sentinel")
	password string   // what a client must AUTH with ("" for none)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the running process has exited
	pids   []int         // every process started, for leak checks
}

// needRedisServer skips t where redis-server is not installed; what names
// the tests that need it.
func needRedisServer(t testing.TB, what string) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skipf("redis-server not found: %s tests need it; CI has it", what)
	}
}

// startProc writes the config that conf returns for a fresh pair of free
// loopback ports into dir and starts the server, trying other ports if
// one was taken between choosing it and binding it. The process is
// killed at the test's cleanup.
func startProc(t testing.TB, dir, password string, extra []string, conf func(port, busPort string) string) *redisProc {
	t.Helper()
	p := &redisProc{dir: dir, conf: filepath.Join(dir, "redis.conf"), extra: extra, password: password}
	t.Cleanup(p.stop)
	var err error
	for range 3 {
		port, busPort := freePort(t), freePort(t)
		p.addr = net.JoinHostPort("127.0.0.1", port)
		if err = os.WriteFile(p.conf, []byte(conf(port, busPort)), 0o600); err != nil {
			t.Fatalf("cachetest: write %s: %v", p.conf, err)
		}
		if err = p.run(); err == nil {
			return p
		}
		if !strings.Contains(p.logTail(), "already in use") {
			break
		}
	}
	t.Fatalf("cachetest: %v", err)
	return nil
}

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) string {
	t.Helper()
	_, port, err := net.SplitHostPort(freeLoopbackAddr(t))
	if err != nil {
		t.Fatalf("cachetest: %v", err)
	}
	return port
}

// run starts the process and waits until it answers PING; it returns an
// error naming the log's last lines when the process exits or does not
// answer first.
func (p *redisProc) run() error {
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		return nil
	}
	cmd := exec.Command("redis-server", append([]string{p.conf}, p.extra...)...)
	cmd.SysProcAttr = procAttr()
	var out bytes.Buffer // redis-server writes here only before its log file is open
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	p.pids = append(p.pids, cmd.Process.Pid)
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	c := p.client()
	defer c.Close()
	err := poll(context.Background(), func(ctx context.Context) (bool, error) {
		select {
		case <-exited:
			return false, permanent{fmt.Errorf("exited: %s%s", out.String(), p.logTail())}
		default:
		}
		// Dial first: go-redis would log every refused dial.
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return false, err
		}
		_ = conn.Close()
		err = c.Ping(ctx).Err()
		return err == nil, err
	})
	if err != nil {
		p.stop()
		return fmt.Errorf("redis-server on %s: %w", p.addr, err)
	}
	return nil
}

// stop kills the process (SIGKILL: a crash, nothing is saved) and waits
// for it to exit. Stopping a stopped process does nothing.
func (p *redisProc) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// startedPIDs are the ids of every process started so far.
func (p *redisProc) startedPIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.pids)
}

// leftovers reports which of procs' servers still run: pgrep finds a
// redis-server by the address in its process title ("redis-server
// 127.0.0.1:port [cluster]"), and every process ever started is probed
// with signal 0.
func leftovers(procs []*redisProc) error {
	out, err := exec.Command("pgrep", "-a", "-f", "redis").Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) { // 1: nothing matched
		return fmt.Errorf("pgrep: %w", err)
	}
	var left []string
	for line := range strings.Lines(string(out)) {
		for _, p := range procs {
			if slices.Contains(strings.Fields(line), p.addr) {
				left = append(left, strings.TrimSpace(line))
			}
		}
	}
	for _, p := range procs {
		for _, pid := range p.startedPIDs() {
			if proc, err := os.FindProcess(pid); err == nil && proc.Signal(syscall.Signal(0)) == nil {
				left = append(left, fmt.Sprintf("pid %d (%s)", pid, p.addr))
			}
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("redis servers still running: %s", strings.Join(left, "; "))
	}
	return nil
}

// client returns a plain client of this one server, for administration:
// no retries, a short dial, deadlines from the context. The caller closes
// it.
func (p *redisProc) client() *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  p.addr,
		Password:              p.password,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		DialerRetries:         1,
		MaxRetries:            -1,
	})
}

// logTail returns the last lines of the server's log file, for failure
// messages.
func (p *redisProc) logTail() string {
	b, err := os.ReadFile(filepath.Join(p.dir, "redis.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "\n" + strings.Join(lines[max(0, len(lines)-8):], "\n")
}

// permanent is an error after which polling is pointless (the process
// exited).
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// poll calls check every 20 ms, each call bounded by one second, until it
// reports done, for at most liveness; it then returns check's last error
// (or that it never held). A permanent error ends it at once.
func poll(ctx context.Context, check func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, liveness)
	defer cancel()
	return pollUntil(ctx, check)
}

// pollUntil is poll bounded by ctx's deadline instead of liveness.
func pollUntil(ctx context.Context, check func(ctx context.Context) (bool, error)) error {
	start := time.Now()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		done, err := check(cctx)
		ccancel()
		if done {
			return nil
		}
		if errors.As(err, new(permanent)) {
			return err
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = errors.New("condition never held")
			}
			return fmt.Errorf("after %s: %w", time.Since(start).Round(time.Second), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
