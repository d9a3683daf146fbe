package cachetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// clusterNodeTimeout is the cluster-node-timeout of a test cluster: how
// long a master may be unreachable before the others flag it as failed
// (and, all slots being required, the whole cluster refuses commands). It
// is short so that a test can reach that state quickly.
const clusterNodeTimeout = time.Second

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Password, when set, is required by every node (requirepass), as a
	// production cluster would; clients must send it.
	Password string
}

// Cluster is a private three-master Redis Cluster of redis-server
// processes on loopback ports, for tests that must prove the code works
// on a real cluster (keys of one script in one slot, pub/sub across
// nodes, a master restart). It has no replicas: a stopped master's slots
// are unavailable until it is started again. Persistence is off, so a
// restarted master comes back empty, as one without persistence does.
type Cluster struct {
	t      testing.TB
	opts   ClusterOptions
	nodes  []*redisProc
	ranges [][2]int // the slots each node serves, first to last
}

// StartCluster starts a three-master cluster for t and waits until every
// node reports cluster_state:ok; the processes are killed and their
// directories removed at cleanup. Where redis-server is not installed it
// skips t.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	needRedisServer(t, "Redis Cluster")
	c := &Cluster{t: t, opts: opts}
	const masters = 3
	for i := range masters {
		dir := t.TempDir()
		c.nodes = append(c.nodes, startProc(t, dir, opts.Password, nil, func(port, busPort string) string {
			return clusterNodeConf(dir, port, busPort, opts.Password)
		}))
		first := i * clusterSlots / masters
		c.ranges = append(c.ranges, [2]int{first, (i+1)*clusterSlots/masters - 1})
	}
	c.create()
	c.WaitHealthy()
	return c
}

// clusterNodeConf is the config file of one node.
func clusterNodeConf(dir, port, busPort, password string) string {
	conf := []string{
		"port " + port,
		"bind 127.0.0.1",
		"dir " + dir,
		"logfile " + filepath.Join(dir, "redis.log"),
		"loglevel notice",
		`save ""`,
		"appendonly no",
		"cluster-enabled yes",
		"cluster-config-file " + filepath.Join(dir, "nodes.conf"),
		"cluster-port " + busPort,
		"cluster-node-timeout " + strconv.FormatInt(clusterNodeTimeout.Milliseconds(), 10),
	}
	if password != "" {
		conf = append(conf, "requirepass "+password, "masterauth "+password)
	}
	return strings.Join(conf, "\n") + "\n"
}

// create assigns each node its slots and a distinct config epoch, and
// introduces the nodes to each other, as redis-cli --cluster create does.
func (c *Cluster) create() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	for i, n := range c.nodes {
		cl := n.client()
		err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", c.ranges[i][0], c.ranges[i][1]).Err()
		if err == nil {
			err = cl.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err()
		}
		_ = cl.Close()
		if err != nil {
			c.t.Fatalf("cachetest: cluster node %s: %v", n.addr, err)
		}
	}
	first := c.nodes[0].client()
	defer first.Close()
	for _, n := range c.nodes[1:] {
		host, port, _ := strings.Cut(n.addr, ":")
		busPort := c.busPort(n)
		if err := first.Do(ctx, "CLUSTER", "MEET", host, port, busPort).Err(); err != nil {
			c.t.Fatalf("cachetest: cluster meet %s: %v", n.addr, err)
		}
	}
}

// busPort reads a node's cluster bus port back from its config file.
func (c *Cluster) busPort(n *redisProc) string {
	c.t.Helper()
	conf, err := os.ReadFile(n.conf)
	if err != nil {
		c.t.Fatalf("cachetest: %v", err)
	}
	for line := range strings.Lines(string(conf)) {
		if port, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster-port "); ok {
			return port
		}
	}
	c.t.Fatalf("cachetest: %s has no cluster-port", n.conf)
	return ""
}

// WaitHealthy waits until every node answers and reports cluster_state:ok
// with three known nodes and every slot served.
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	for _, n := range c.nodes {
		cl := n.client()
		err := poll(context.Background(), func(ctx context.Context) (bool, error) {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return false, err
			}
			ok := strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:3\r") &&
				strings.Contains(info, "cluster_slots_ok:"+strconv.Itoa(clusterSlots)+"\r")
			return ok, fmt.Errorf("not healthy yet:\n%s", info)
		})
		_ = cl.Close()
		if err != nil {
			c.t.Fatalf("cachetest: cluster node %s: %v", n.addr, err)
		}
	}
}

// Addrs are the nodes' host:port addresses (REDIS_ADDRS of the cluster).
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

// Stopped reports an error naming every node process still running; call
// it after the test that started the cluster has ended (and its cleanups
// have run), to prove that nothing was left behind.
func (c *Cluster) Stopped() error { return leftovers(c.nodes) }

// Client returns a cluster client of every node, configured as production
// configures one (socket deadlines from the context, a short dial), and
// closed at the test's cleanup.
func (c *Cluster) Client() redis.UniversalClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 c.Addrs(),
		Password:              c.opts.Password,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	})
	c.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// Master returns the index (in Addrs) of the master serving key's slot.
func (c *Cluster) Master(key string) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	cl := c.nodes[0].client()
	defer cl.Close()
	slot, err := cl.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.t.Fatalf("cachetest: cluster keyslot: %v", err)
	}
	for i, r := range c.ranges {
		if int(slot) >= r[0] && int(slot) <= r[1] {
			return i
		}
	}
	c.t.Fatalf("cachetest: slot %d of %q is served by no node", slot, key)
	return -1
}

// StopMaster kills master i (a crash: nothing is saved).
func (c *Cluster) StopMaster(i int) { c.nodes[i].stop() }

// WaitMasterFailed waits until every other master flags master i as
// failed (after about the one-second cluster-node-timeout), from when on
// the cluster refuses every command (CLUSTERDOWN), not only those of i's
// slots.
func (c *Cluster) WaitMasterFailed(i int) {
	c.t.Helper()
	id := c.nodeID(i)
	for j, n := range c.nodes {
		if j == i {
			continue
		}
		cl := n.client()
		err := poll(context.Background(), func(ctx context.Context) (bool, error) {
			nodes, err := cl.ClusterNodes(ctx).Result()
			if err != nil {
				return false, err
			}
			for line := range strings.Lines(nodes) {
				if f := strings.Fields(line); len(f) > 2 && f[0] == id {
					return strings.Contains(f[2], "fail") && !strings.Contains(f[2], "fail?"), fmt.Errorf("flags %s", f[2])
				}
			}
			return false, fmt.Errorf("node %s unknown", id)
		})
		_ = cl.Close()
		if err != nil {
			c.t.Fatalf("cachetest: %s never saw master %s fail: %v", n.addr, c.nodes[i].addr, err)
		}
	}
}

// nodeID reads master i's cluster node id from its nodes.conf (the
// process may be stopped).
func (c *Cluster) nodeID(i int) string {
	c.t.Helper()
	conf, err := os.ReadFile(filepath.Join(c.nodes[i].dir, "nodes.conf"))
	if err != nil {
		c.t.Fatalf("cachetest: %v", err)
	}
	for line := range strings.Lines(string(conf)) {
		if f := strings.Fields(line); len(f) > 2 && strings.Contains(f[2], "myself") {
			return f[0]
		}
	}
	c.t.Fatalf("cachetest: no node id in %s", c.nodes[i].dir)
	return ""
}

// StartMaster starts a stopped master again on its port with its config
// and nodes.conf, so that it rejoins as itself (empty: persistence is
// off), and waits until the whole cluster is healthy again.
func (c *Cluster) StartMaster(i int) {
	c.t.Helper()
	if err := c.nodes[i].run(); err != nil {
		c.t.Fatalf("cachetest: restart cluster master: %v", err)
	}
	c.WaitHealthy()
}
