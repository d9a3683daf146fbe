// Command logto-load measures logto-proxy. It drives a proxy with named
// scenarios, each for a fixed duration with a fixed number of connections
// (or at a fixed rate), and prints a table: requests/s, p50/p90/p99/max
// latency, errors, the Logto calls the run caused, the proxy's CPU time per
// request, and each scenario's throughput as a share of `ceiling` — GET
// /healthz, the same HTTP stack doing nothing — measured in the same run, so
// that the figures mean something on any machine.
//
// By default it starts everything itself, so that one command reproduces the
// README's performance table:
//
//	go run ./cmd/logto-load
//
// That is: the Logto simulator in this process (20 ms a Management API call,
// like a real Logto) seeded with a ~100,000-organization tree, Redis
// (REDIS_URL under a private key prefix, else an embedded one) and the real
// proxy binary as a subprocess, wired by nothing but its environment. A
// distributor signs in through the real login exchange and a service gets a
// Logto-issued token from the simulator's token endpoint. The cold-start
// scenario starts a second, fresh proxy process against an empty key prefix
// and a 10,000-organization tree.
//
// With -target it drives a proxy that already runs instead, with the tokens
// given by -token and -service-token; the Logto calls are then the delta of
// the proxy's logto_proxy_logto_requests_total.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Scenario names, as -scenarios takes them and the table prints them.
const (
	scCeiling     = "ceiling"
	scGetCustomer = "get-customer"
	scGetService  = "get-customer-service"
	scList        = "list-customers"
	scListFresh   = "list-customers-uncached"
	scSearch      = "organizations-search"
	scColdStart   = "cold-start"
)

// allScenarios is the default -scenarios, in the order they run: ceiling
// first, since every other throughput is reported as a share of it.
var allScenarios = []string{scCeiling, scGetCustomer, scGetService, scList, scListFresh, scSearch, scColdStart}

// config is the command line.
type config struct {
	scenarios   []string
	duration    time.Duration
	warmup      time.Duration
	settle      time.Duration
	connections int
	rate        float64
	halfRate    bool
	gzip        bool
	seed        uint64
	gcHeadroom  int64

	// Driving a proxy that already runs.
	target       string
	token        string
	serviceToken string

	// Starting everything.
	proxyBin      string
	distributors  int
	resellers     int
	customers     int
	coldOrgs      int
	logtoLatency  time.Duration
	softTTL       time.Duration
	keepArtifacts bool
	cpuProfiles   string // directory for the proxy's CPU profiles, one per scenario ("" = none)
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var scenarios string
	fs := flag.NewFlagSet("logto-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run, in this order")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured duration of each scenario")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before each scenario's measurement")
	fs.DurationVar(&c.settle, "settle", 10*time.Second, "unmeasured ceiling load before the first scenario, so that the start-up's garbage is collected and the processes are warm")
	fs.IntVar(&c.connections, "connections", 32, "concurrent connections (and workers)")
	fs.Float64Var(&c.rate, "rate", 0, "fixed total request rate per second (0: each connection sends as fast as answers come)")
	fs.BoolVar(&c.halfRate, "half-rate", true, "after get-customer, run it again at half its measured rate (the p99 target)")
	fs.BoolVar(&c.gzip, "gzip", false, "send Accept-Encoding: gzip, as browsers do (the client's decompression then shares the CPU)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the generated trees and of the random ids asked for")
	fs.Int64Var(&c.gcHeadroom, "gc-headroom-mb", 2048, "MiB this process may allocate between its own garbage collections while it measures (0: Go's defaults), so that its collections do not stall the connections")
	fs.StringVar(&c.target, "target", "", "base URL of a running proxy to drive (default: start everything here)")
	fs.StringVar(&c.token, "token", "", "with -target: a distributor's session token")
	fs.StringVar(&c.serviceToken, "service-token", "", "with -target: a Logto-issued service token")
	fs.StringVar(&c.proxyBin, "proxy-bin", "", "logto-proxy binary to start (default: go build ./cmd/logto-proxy into a temporary directory)")
	fs.IntVar(&c.distributors, "distributors", 20, "tree: distributors")
	fs.IntVar(&c.resellers, "resellers", 50, "tree: resellers per distributor")
	fs.IntVar(&c.customers, "customers", 100, "tree: customers per reseller")
	fs.IntVar(&c.coldOrgs, "cold-orgs", 10000, "cold-start: organizations of its tree")
	fs.DurationVar(&c.logtoLatency, "logto-latency", 20*time.Millisecond, "latency the simulator adds to every Management API call")
	fs.DurationVar(&c.softTTL, "soft-ttl", 10*time.Minute, "the proxy's SNAPSHOT_SOFT_TTL: longer than the run, so that no periodic refresh lands in a measurement")
	fs.BoolVar(&c.keepArtifacts, "keep", false, "leave the built proxy binary and the proxies' logs in the temporary directory")
	fs.StringVar(&c.cpuProfiles, "cpuprofile", "", "write a CPU profile of the proxy during each scenario's measured window to DIR/<scenario>.pprof (through its DEBUG_ADDR; needs the tool to start the proxy)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, name := range strings.Split(scenarios, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !known(name) {
			return c, fmt.Errorf("-scenarios: unknown scenario %q (known: %s)", name, strings.Join(allScenarios, ", "))
		}
		c.scenarios = append(c.scenarios, name)
	}
	switch {
	case len(c.scenarios) == 0:
		return c, errors.New("-scenarios: none given")
	case c.duration <= 0 || c.warmup < 0 || c.settle < 0:
		return c, errors.New("-duration must be positive, -warmup and -settle not negative")
	case c.connections < 1 || c.connections > 10000:
		return c, errors.New("-connections must be between 1 and 10000")
	case c.rate < 0:
		return c, errors.New("-rate must not be negative")
	case c.gcHeadroom < 0 || c.gcHeadroom > 1<<20:
		return c, errors.New("-gc-headroom-mb must be between 0 and 1048576")
	case c.distributors < 1 || c.resellers < 1 || c.customers < 1 || c.coldOrgs < 10:
		return c, errors.New("tree sizes must be positive, -cold-orgs at least 10")
	case c.logtoLatency < 0 || c.softTTL <= 0:
		return c, errors.New("-logto-latency must not be negative and -soft-ttl must be positive")
	case c.target == "" && (c.token != "" || c.serviceToken != ""):
		return c, errors.New("-token and -service-token need -target")
	case c.target != "" && c.cpuProfiles != "":
		return c, errors.New("-cpuprofile needs the tool to start the proxy (no -target): profile a running proxy through its DEBUG_ADDR")
	case c.cpuProfiles != "" && c.duration < time.Second:
		return c, errors.New("-cpuprofile needs a -duration of at least 1s (profiles are taken in whole seconds)")
	}
	c.gcHeadroom <<= 20 // MiB → bytes
	return c, nil
}

func known(name string) bool {
	for _, s := range allScenarios {
		if s == name {
			return true
		}
	}
	return false
}

// run is main without the process, so that tests can drive it. It returns
// the exit code: 0 when every scenario ran, even with errors counted in the
// table (they are figures), 1 when the run itself failed, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "logto-load:", err)
		}
		return 2
	}
	if err := runSuite(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "logto-load:", err)
		return 1
	}
	return 0
}
