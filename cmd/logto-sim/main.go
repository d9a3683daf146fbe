// Command logto-sim serves the Logto simulator (logto/logtotest) as a
// process, for end-to-end tests, the load generator and manual exploration:
//
//	go run ./cmd/logto-sim -addr 127.0.0.1:3001 -fixture=true -distributors 100 -resellers 10 -customers 10
//
// Once it accepts connections it prints one JSON line on stdout with the
// endpoint, the issuer, the management resource and the credentials of the
// management M2M application (plus the fixture's service application and API
// resource when seeded). Logs go to stderr as JSON. SIGINT or SIGTERM shuts
// it down cleanly.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "logto-sim:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	addr, endpoint                     string
	seed                               uint64
	fixture                            bool
	distributors, resellers, customers int
	usersPerOrg                        int
	latency                            time.Duration
	appID, appSecret                   string
	verbose                            bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("logto-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:3001", "listen address")
	fs.StringVar(&c.endpoint, "endpoint", "", "public base URL (Logto's ENDPOINT); default http://<addr>")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of ids, secrets and listing order")
	fs.BoolVar(&c.fixture, "fixture", false, "seed the upstream authorization fixture (Owner, d1, d2, d1r1, ...)")
	fs.IntVar(&c.distributors, "distributors", 0, "seed a bulk hierarchy with this many distributors (0: none)")
	fs.IntVar(&c.resellers, "resellers", 10, "bulk: resellers per distributor")
	fs.IntVar(&c.customers, "customers", 10, "bulk: customers per reseller")
	fs.IntVar(&c.usersPerOrg, "users", 0, "bulk: users per organization")
	fs.DurationVar(&c.latency, "latency", 0, "latency added to every Management API call")
	fs.StringVar(&c.appID, "m2m-app-id", "", "fixed id of the management M2M app (default: generated)")
	fs.StringVar(&c.appSecret, "m2m-app-secret", "", "fixed secret of the management M2M app (default: generated)")
	fs.BoolVar(&c.verbose, "v", false, "debug logs")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if c.distributors < 0 || c.resellers < 0 || c.customers < 0 || c.usersPerOrg < 0 || c.latency < 0 {
		return config{}, errors.New("sizes and -latency must not be negative")
	}
	return c, nil
}

// ready is the JSON line printed on stdout once the simulator serves.
type ready struct {
	Endpoint           string            `json:"endpoint"`
	Issuer             string            `json:"issuer"`
	ManagementResource string            `json:"management_resource"`
	M2MAppID           string            `json:"m2m_app_id"`
	M2MAppSecret       string            `json:"m2m_app_secret"`
	Organizations      int               `json:"organizations"`
	APIResource        string            `json:"api_resource,omitempty"`
	ServiceAppID       string            `json:"service_app_id,omitempty"`
	ServiceAppSecret   string            `json:"service_app_secret,omitempty"`
	OwnerOrgID         string            `json:"owner_org_id,omitempty"`
	FixtureOrgs        map[string]string `json:"fixture_orgs,omitempty"`
	FixtureUsers       map[string]string `json:"fixture_users,omitempty"`
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	s, err := logtotest.New(logtotest.Options{
		Addr: c.addr, Endpoint: c.endpoint, Seed: c.seed, Logger: log,
		M2MAppID: c.appID, M2MAppSecret: c.appSecret,
	})
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	info, err := seed(s, c)
	if err != nil {
		return errors.Join(err, s.Close())
	}
	s.Faults().SetLatency(c.latency)

	line, err := json.Marshal(info)
	if err != nil {
		return errors.Join(fmt.Errorf("encode ready line: %w", err), s.Close())
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return errors.Join(fmt.Errorf("write ready line: %w", err), s.Close())
	}
	log.Info("logto-sim ready", "endpoint", s.URL(), "organizations", info.Organizations)

	<-ctx.Done()
	log.Info("logto-sim shutting down")
	if err := s.Close(); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// seed fills the tenant as the flags ask and builds the ready line.
func seed(s *logtotest.Server, c config) (ready, error) {
	id, secret := s.M2MCredentials()
	info := ready{Endpoint: s.URL(), Issuer: s.Issuer(), ManagementResource: s.ManagementResource(),
		M2MAppID: id, M2MAppSecret: secret}
	if c.fixture {
		f, err := s.SeedFixture()
		if err != nil {
			return ready{}, fmt.Errorf("seed fixture: %w", err)
		}
		info.FixtureOrgs, info.FixtureUsers = f.Orgs, f.Users
		info.OwnerOrgID = f.Orgs["Owner"]
	}
	if c.distributors > 0 {
		b, err := s.SeedBulk(logtotest.BulkOptions{
			Distributors: c.distributors, ResellersPerDistributor: noneIfZero(c.resellers),
			CustomersPerReseller: noneIfZero(c.customers),
			UsersPerOrganization: c.usersPerOrg, Seed: c.seed,
		})
		if err != nil {
			return ready{}, fmt.Errorf("seed bulk: %w", err)
		}
		info.OwnerOrgID = b.OwnerID
	}
	if c.fixture || c.distributors > 0 {
		tpl, err := s.EnsureTemplate()
		if err != nil {
			return ready{}, fmt.Errorf("seed template: %w", err)
		}
		info.APIResource = tpl.APIResource.Indicator
		info.ServiceAppID, info.ServiceAppSecret = tpl.ServiceApp.ID, tpl.ServiceApp.Secret
	}
	info.Organizations = s.OrganizationCount()
	return info, nil
}

// noneIfZero maps a flag's 0 ("none") to BulkOptions' negative count, whose
// zero means "the default".
func noneIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
