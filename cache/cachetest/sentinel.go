package cachetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMasterName is the name the test Sentinel monitors its master
// under (REDIS_MASTER_NAME).
const SentinelMasterName = "lptest-master"

// sentinelDownAfter is the test Sentinel's down-after-milliseconds: how
// long the master may be unreachable before the Sentinel starts a
// failover. Short, so that a test fails over in seconds, but not so short
// that a replica slow to answer on a loaded CI machine (-race, packages in
// parallel) is itself judged down, leaving no replica to promote.
const sentinelDownAfter = 1500 * time.Millisecond

// sentinelFailoverTimeout is the Sentinel's failover-timeout: an aborted
// failover is retried after twice this.
const sentinelFailoverTimeout = 3 * time.Second

// failoverLiveness bounds WaitFailover: longer than liveness, since a
// Sentinel that finds its own timer late (a starved machine) enters TILT
// mode and does nothing for 30 s.
const failoverLiveness = 45 * time.Second

// SentinelOptions configures StartSentinel.
type SentinelOptions struct {
	// Password, when set, is required by the master and the replica
	// (requirepass, masterauth); the Sentinel knows it (auth-pass) and
	// itself requires none, as in a common deployment.
	Password string
}

// Sentinel is a private Redis Sentinel setup of redis-server processes on
// loopback ports: a master, one replica of it, and one Sentinel
// monitoring them with a quorum of one, so that killing the master
// promotes the replica within seconds. Persistence is off.
type Sentinel struct {
	t        testing.TB
	opts     SentinelOptions
	servers  []*redisProc // the master at start, then its replica
	sentinel *redisProc
}

// StartSentinel starts the master, its replica and the Sentinel for t, and
// waits until the replica is in sync and the Sentinel knows it; every
// process is killed at cleanup. Where redis-server is not installed it
// skips t.
func StartSentinel(t testing.TB, opts SentinelOptions) *Sentinel {
	t.Helper()
	needRedisServer(t, "Redis Sentinel")
	s := &Sentinel{t: t, opts: opts}
	master := s.startServer("")
	replica := s.startServer(master.addr)
	s.servers = []*redisProc{master, replica}
	s.waitInSync(master, replica)

	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(master.addr)
	s.sentinel = startProc(t, dir, "", []string{"--sentinel"}, func(sport, _ string) string {
		conf := []string{
			"port " + sport,
			"bind 127.0.0.1",
			"dir " + dir,
			"logfile " + filepath.Join(dir, "redis.log"),
			fmt.Sprintf("sentinel monitor %s %s %s 1", SentinelMasterName, host, port),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", SentinelMasterName, sentinelDownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", SentinelMasterName, sentinelFailoverTimeout.Milliseconds()),
		}
		if opts.Password != "" {
			conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", SentinelMasterName, opts.Password))
		}
		return strings.Join(conf, "\n") + "\n"
	})
	s.waitSentinelSees(replica.addr)
	return s
}

// startServer starts a data node, a replica of replicaOf when it is set.
func (s *Sentinel) startServer(replicaOf string) *redisProc {
	s.t.Helper()
	dir := s.t.TempDir()
	return startProc(s.t, dir, s.opts.Password, nil, func(port, _ string) string {
		conf := []string{
			"port " + port,
			"bind 127.0.0.1",
			"dir " + dir,
			"logfile " + filepath.Join(dir, "redis.log"),
			`save ""`,
			"appendonly no",
			"repl-diskless-sync-delay 0", // a replica syncs at once, not 5 s later
		}
		if s.opts.Password != "" {
			conf = append(conf, "requirepass "+s.opts.Password, "masterauth "+s.opts.Password)
		}
		if replicaOf != "" {
			host, mport, _ := net.SplitHostPort(replicaOf)
			conf = append(conf, "replicaof "+host+" "+mport)
		}
		return strings.Join(conf, "\n") + "\n"
	})
}

// waitInSync waits until replica reports its link to master up.
func (s *Sentinel) waitInSync(master, replica *redisProc) {
	s.t.Helper()
	c := replica.client()
	defer c.Close()
	err := poll(context.Background(), func(ctx context.Context) (bool, error) {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return false, err
		}
		return strings.Contains(info, "master_link_status:up"), fmt.Errorf("replica not in sync:\n%s", info)
	})
	if err != nil {
		s.t.Fatalf("cachetest: replica %s of %s: %v", replica.addr, master.addr, err)
	}
}

// waitSentinelSees waits until the Sentinel monitors the replica at addr
// as a healthy replica, the condition for it to be promoted.
func (s *Sentinel) waitSentinelSees(addr string) {
	s.t.Helper()
	sc := s.sentinelClient()
	defer sc.Close()
	err := poll(context.Background(), func(ctx context.Context) (bool, error) {
		replicas, err := sc.Replicas(ctx, SentinelMasterName).Result()
		if err != nil {
			return false, err
		}
		for _, r := range replicas {
			if net.JoinHostPort(r["ip"], r["port"]) == addr && r["flags"] == "slave" {
				return true, nil
			}
		}
		return false, fmt.Errorf("replicas known: %v", replicas)
	})
	if err != nil {
		s.t.Fatalf("cachetest: sentinel never saw replica %s: %v", addr, err)
	}
}

func (s *Sentinel) sentinelClient() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{
		Addr: s.sentinel.addr, ContextTimeoutEnabled: true, DialTimeout: time.Second, MaxRetries: -1,
	})
}

// SentinelAddrs are the Sentinels' host:port addresses (REDIS_ADDRS of
// the setup, with SentinelMasterName as REDIS_MASTER_NAME).
func (s *Sentinel) SentinelAddrs() []string { return []string{s.sentinel.addr} }

// Stopped reports an error naming every process of the setup still
// running; call it after the test that started the setup has ended (and
// its cleanups have run), to prove that nothing was left behind.
func (s *Sentinel) Stopped() error { return leftovers(append(s.servers[:2:2], s.sentinel)) }

// Client returns a failover client (the master found through the
// Sentinel, followed across failovers), configured as production
// configures one, and closed at the test's cleanup.
func (s *Sentinel) Client() redis.UniversalClient {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            SentinelMasterName,
		SentinelAddrs:         s.SentinelAddrs(),
		Password:              s.opts.Password,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// MasterAddr is the master's address as the Sentinel names it now.
func (s *Sentinel) MasterAddr() string {
	s.t.Helper()
	addr, err := s.masterAddr()
	if err != nil {
		s.t.Fatalf("cachetest: %v", err)
	}
	return addr
}

func (s *Sentinel) masterAddr() (string, error) {
	sc := s.sentinelClient()
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hp, err := sc.GetMasterAddrByName(ctx, SentinelMasterName).Result()
	if err != nil {
		return "", fmt.Errorf("sentinel get-master-addr-by-name: %w", err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel get-master-addr-by-name: %v", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// server returns the process at addr.
func (s *Sentinel) server(addr string) *redisProc {
	s.t.Helper()
	for _, p := range s.servers {
		if p.addr == addr {
			return p
		}
	}
	s.t.Fatalf("cachetest: no server of this setup at %s", addr)
	return nil
}

// WaitReplicated waits until the replica has acknowledged every write the
// master took so far (WAIT), so that a failover loses none of them.
func (s *Sentinel) WaitReplicated() {
	s.t.Helper()
	c := s.server(s.MasterAddr()).client()
	defer c.Close()
	err := poll(context.Background(), func(ctx context.Context) (bool, error) {
		n, err := c.Wait(ctx, 1, 500*time.Millisecond).Result()
		return err == nil && n >= 1, err
	})
	if err != nil {
		s.t.Fatalf("cachetest: replica never acknowledged the master's writes: %v", err)
	}
}

// KillMaster kills the current master (a crash) and returns its address.
func (s *Sentinel) KillMaster() string {
	s.t.Helper()
	addr := s.MasterAddr()
	s.server(addr).stop()
	return addr
}

// WaitFailover waits until the Sentinel names a master other than old and
// that server answers as a master, and returns its address.
func (s *Sentinel) WaitFailover(old string) string {
	s.t.Helper()
	var addr string
	ctx, cancel := context.WithTimeout(context.Background(), failoverLiveness)
	defer cancel()
	err := pollUntil(ctx, func(ctx context.Context) (bool, error) {
		a, err := s.masterAddr()
		if err != nil {
			return false, err
		}
		if a == old {
			return false, errors.New("the sentinel still names the old master")
		}
		c := s.server(a).client()
		defer c.Close()
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil {
			return false, err
		}
		addr = a
		return len(role) > 0 && role[0] == "master", fmt.Errorf("%s has role %v", a, role)
	})
	if err != nil {
		s.t.Fatalf("cachetest: no failover from %s: %v\nthe Sentinel's log:%s", old, err, s.sentinel.logTail())
	}
	return addr
}

// ServerClient returns a plain client of the data node at addr (to look
// at what the new master holds, say), closed at the test's cleanup.
func (s *Sentinel) ServerClient(addr string) redis.UniversalClient {
	c := s.server(addr).client()
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}
