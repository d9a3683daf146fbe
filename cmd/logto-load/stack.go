package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// This file starts what the load runs against when no -target is given:
// the Logto simulator (in this process, so its call counters are read
// directly), Redis, and the real logto-proxy binary as a subprocess. The
// proxy is configured the way an operator would, through its environment,
// so that nothing of its wiring is duplicated here.

// tree is a simulator seeded with a generated hierarchy.
type tree struct {
	sim  *logtotest.Server
	bulk *logtotest.Bulk
	tpl  *logtotest.Template
}

// treeShape sizes a generated hierarchy: distributors × (1 + resellers ×
// (1 + customers)) organizations, plus the Owner.
type treeShape struct{ distributors, resellers, customers int }

// orgs is the number of organizations the shape generates, Owner included.
func (s treeShape) orgs() int { return 1 + s.distributors*(1+s.resellers*(1+s.customers)) }

// shapeFor is a shape of at least n organizations: up to ten distributors
// of ten resellers each, with as many customers per reseller as it takes.
func shapeFor(n int) treeShape {
	const r = 10
	d := max(1, min(10, n/211))
	perReseller := (n/d - 1 - r + r - 1) / r // rounded up
	return treeShape{distributors: d, resellers: r, customers: max(1, perReseller)}
}

// startTree starts a simulator and seeds it; latency is switched on after
// seeding, for every Management API call from then on.
func startTree(shape treeShape, seed uint64, latency time.Duration) (*tree, error) {
	sim, err := logtotest.New(logtotest.Options{Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	bulk, err := sim.SeedBulk(logtotest.BulkOptions{Distributors: shape.distributors,
		ResellersPerDistributor: shape.resellers, CustomersPerReseller: shape.customers, Seed: seed})
	if err != nil {
		_ = sim.Close()
		return nil, fmt.Errorf("seed simulator: %w", err)
	}
	tpl, err := sim.EnsureTemplate()
	if err != nil {
		_ = sim.Close()
		return nil, fmt.Errorf("seed simulator template: %w", err)
	}
	sim.Faults().SetLatency(latency)
	return &tree{sim: sim, bulk: bulk, tpl: tpl}, nil
}

// calls is the total of the simulator's call counters.
func (t *tree) calls() int64 {
	var n int64
	for _, c := range t.sim.CallCounts() {
		n += c
	}
	return n
}

// distributor picks a distributor that is neither suspended nor deleted,
// whose session the load uses.
func (t *tree) distributor() (string, error) {
	skip := map[string]bool{}
	for _, id := range append(append([]string(nil), t.bulk.Suspended...), t.bulk.Deleted...) {
		skip[id] = true
	}
	for _, id := range t.bulk.Distributors {
		if !skip[id] {
			return id, nil
		}
	}
	return "", errors.New("every generated distributor is suspended or deleted")
}

// customer picks a customer that is not deleted, for the cold start's
// first request.
func (t *tree) customer() (string, error) {
	deleted := map[string]bool{}
	for _, id := range t.bulk.Deleted {
		deleted[id] = true
	}
	for _, id := range t.bulk.Customers {
		if !deleted[id] {
			return id, nil
		}
	}
	return "", errors.New("every generated customer is deleted")
}

// addDistributorUser creates the user the load signs in as: a member of
// orgID holding the Distributor organization role and the Admin user role,
// as the upstream's own users are.
func (t *tree) addDistributorUser(orgID string) (string, error) {
	u, err := t.sim.CreateUser(map[string]any{"username": "load_distributor", "name": "Load Distributor",
		"primaryEmail": "load.distributor@example.com", "customData": map[string]any{"organizationId": orgID}})
	if err != nil {
		return "", fmt.Errorf("create user: %w", err)
	}
	if err := t.sim.AddOrganizationMembers(orgID, u.ID); err != nil {
		return "", fmt.Errorf("add member: %w", err)
	}
	if err := t.sim.AssignOrganizationUserRoles(orgID, u.ID, t.tpl.OrgRoles[logtotest.RoleDistributor]); err != nil {
		return "", fmt.Errorf("assign organization role: %w", err)
	}
	if err := t.sim.AssignUserRoles(u.ID, t.tpl.UserRoles[logtotest.RoleAdmin]); err != nil {
		return "", fmt.Errorf("assign user role: %w", err)
	}
	return u.ID, nil
}

func (t *tree) close() { _ = t.sim.Close() }

// redisEnv is the Redis the proxies use: REDIS_URL's server under a key
// prefix private to this run (deleted at the end), else an embedded one.
type redisEnv struct {
	url      string
	embedded *cache.Embedded
	client   redis.UniversalClient
	prefixes []string
}

func startRedis(getenv func(string) string) (*redisEnv, error) {
	if url := getenv("REDIS_URL"); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, errors.New("REDIS_URL does not parse as a redis:// URL") // it may hold a password
		}
		return &redisEnv{url: url, client: redis.NewClient(opts)}, nil
	}
	e, err := cache.StartEmbedded()
	if err != nil {
		return nil, err
	}
	return &redisEnv{url: e.URL(), embedded: e}, nil
}

// describe names the Redis without its credentials.
func (r *redisEnv) describe() string {
	if r.embedded != nil {
		return "embedded Redis (miniredis, in this process)"
	}
	opts, err := redis.ParseURL(r.url)
	if err != nil {
		return "Redis from REDIS_URL"
	}
	return "Redis at " + opts.Addr + " (REDIS_URL)"
}

// newPrefix returns a key prefix no one has used: an empty Redis, as far as
// a proxy using it can tell.
func (r *redisEnv) newPrefix() string {
	p := "logto-load:" + randomHex(6) + ":"
	r.prefixes = append(r.prefixes, p)
	return p
}

// close deletes the run's keys from a shared Redis (never FLUSHDB: others
// use it) or stops the embedded one.
func (r *redisEnv) close(ctx context.Context) error {
	if r.embedded != nil {
		r.embedded.Close()
		return nil
	}
	defer func() { _ = r.client.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, p := range r.prefixes {
		iter := r.client.Scan(ctx, 0, p+"*", 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) == 1000 {
				if err := r.client.Unlink(ctx, batch...).Err(); err != nil {
					return fmt.Errorf("delete keys under %s: %w", p, err)
				}
				batch = batch[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("scan keys under %s: %w", p, err)
		}
		if len(batch) > 0 {
			if err := r.client.Unlink(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("delete keys under %s: %w", p, err)
			}
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// buildProxy builds cmd/logto-proxy into dir with the go command that is
// running this module's tests and tools.
func buildProxy(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "logto-proxy")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/logto-proxy/logto-proxy/cmd/logto-proxy")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/logto-proxy: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// proxyProcess is a running logto-proxy.
type proxyProcess struct {
	cmd  *exec.Cmd
	addr string // host:port it listens on
	done chan struct{}
	err  error // the process's exit, once done is closed
}

// runtimeEnv are the Go runtime's settings an operator may give the proxy
// (the garbage collector's target and memory limit, GOMAXPROCS, GODEBUG's
// gctrace); set in the load generator's environment, they are passed on,
// so that their effect can be measured.
var runtimeEnv = []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"}

// proxyRuntimeEnv is the part of runtimeEnv set in getenv's environment, as
// NAME=value pairs.
func proxyRuntimeEnv(getenv func(string) string) []string {
	var env []string
	for _, name := range runtimeEnv {
		if v := getenv(name); v != "" {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// proxyEnv is the environment of a proxy serving t's tenant from Redis
// under prefix. Nothing of the caller's environment leaks in but PATH, HOME
// and the Go runtime's settings (runtimeEnv), so a REDIS_ADDRS or LOG_LEVEL
// set in the shell cannot change what is measured.
func proxyEnv(t *tree, redisURL, prefix, jwtSecret string, softTTL time.Duration) []string {
	appID, appSecret := t.sim.M2MCredentials()
	return append(proxyRuntimeEnv(os.Getenv), []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"LISTEN_ADDR=127.0.0.1:0",
		"LOG_LEVEL=info",
		"LOGTO_ENDPOINT=" + t.sim.URL(),
		"LOGTO_M2M_APP_ID=" + appID,
		"LOGTO_M2M_APP_SECRET=" + appSecret,
		"LOGTO_MANAGEMENT_RESOURCE=" + t.sim.ManagementResource(),
		"LOGTO_API_RESOURCE=" + t.tpl.APIResource.Indicator,
		"REDIS_URL=" + redisURL,
		"REDIS_PREFIX=" + prefix,
		"JWT_SECRET=" + jwtSecret,
		"SNAPSHOT_SOFT_TTL=" + softTTL.String(),
		"SNAPSHOT_HARD_TTL=" + (2 * softTTL).String(),
	}...)
}

// startProxy starts bin with env, its logs going to logPath, and returns once
// it listens (its "listening" log line names the address).
func startProxy(ctx context.Context, bin string, env []string, logPath string) (*proxyProcess, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("proxy log: %w", err)
	}
	cmd := exec.Command(bin)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("proxy stderr: %w", err)
	}
	cmd.Stdout = logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proxyProcess{cmd: cmd, done: make(chan struct{})}
	listening := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		watchLog(stderr, logFile, listening)
	}()
	go func() {
		<-copied
		p.err = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	select {
	case p.addr = <-listening:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("proxy exited before listening (%v); see %s", p.err, logPath)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	case <-time.After(time.Minute):
		p.stop()
		return nil, fmt.Errorf("proxy did not listen within a minute; see %s", logPath)
	}
}

// watchLog copies the proxy's log lines to w and sends the address of its
// "listening" line on listening.
func watchLog(r io.Reader, w io.Writer, listening chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = w.Write(append(line, '\n'))
		if sent {
			continue
		}
		var entry struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &entry) == nil && entry.Msg == "listening" && entry.Addr != "" {
			listening <- entry.Addr
			sent = true
		}
	}
	_, _ = io.Copy(w, r) // a line too long for the scanner: keep draining
}

// base is the proxy's base URL.
func (p *proxyProcess) base() string { return "http://" + p.addr }

// cpu is the CPU time (user + system) the process has used so far, read
// from /proc; ok is false where there is no /proc.
func (p *proxyProcess) cpu() (time.Duration, bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; fields are counted after
	// its closing parenthesis: utime and stime are fields 14 and 15.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const ticksPerSecond = 100 // USER_HZ, 100 on every Linux platform Go supports
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, true
}

// stop asks the proxy to shut down (SIGTERM) and kills it if it has not
// within 20 s.
func (p *proxyProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
