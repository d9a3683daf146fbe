package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
	"github.com/logto-proxy/logto-proxy/proxy"
)

// demoEnv is what -demo starts around the proxy: a Logto simulator seeded
// with the upstream's authorization fixture plus a bulk tree, and an embedded
// Redis unless REDIS_URL points at a real one.
type demoEnv struct {
	sim     *logtotest.Server
	fixture *logtotest.Fixture
	redis   *cache.Embedded
	hookURL string // where the simulator's webhook posts
}

// startDemo starts the simulator (and Redis) and points cfg at them.
func startDemo(_ context.Context, cfg *config, getenv func(string) string, log *slog.Logger) (*demoEnv, error) {
	sim, err := logtotest.New(logtotest.Options{Logger: log.With("component", "logto-sim")})
	if err != nil {
		return nil, err
	}
	d := &demoEnv{sim: sim}
	if d.fixture, err = sim.SeedFixture(); err != nil {
		d.close()
		return nil, fmt.Errorf("seed fixture: %w", err)
	}
	if _, err := sim.SeedBulk(logtotest.BulkOptions{Distributors: 20, ResellersPerDistributor: 10, CustomersPerReseller: 10}); err != nil {
		d.close()
		return nil, fmt.Errorf("seed bulk tree: %w", err)
	}
	cfg.LogtoEndpoint = sim.URL()
	cfg.LogtoAppID, cfg.LogtoAppSecret = sim.M2MCredentials()
	cfg.LogtoManagementResource = sim.ManagementResource()
	if cfg.LogtoAPIResource == "" {
		cfg.LogtoAPIResource = d.fixture.APIResource.Indicator
	}
	if cfg.RedisURL == "" && len(cfg.RedisAddrs) == 0 {
		if d.redis, err = cache.StartEmbedded(); err != nil {
			d.close()
			return nil, fmt.Errorf("embedded redis: %w", err)
		}
		cfg.RedisURL = d.redis.URL()
	}
	if cfg.JWTSecret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		cfg.JWTSecret = hex.EncodeToString(b)
	}
	if getenv("LISTEN_ADDR") == "" && cfg.ListenAddr == ":8080" {
		cfg.ListenAddr = "127.0.0.1:8080"
	}
	if err := d.registerHook(cfg); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// registerHook points a simulator webhook at the proxy, so that changes
// made through the simulator reach the demo within a second, as Logto's
// would. The hook's URL must be known before the proxy listens, so a port
// 0 is resolved to a free port first.
func (d *demoEnv) registerHook(cfg *config) error {
	host, port, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	if port == "0" {
		ln, err := net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			return fmt.Errorf("LISTEN_ADDR: %w", err)
		}
		cfg.ListenAddr = ln.Addr().String()
		_ = ln.Close()
		_, port, _ = net.SplitHostPort(cfg.ListenAddr)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	d.hookURL = "http://" + net.JoinHostPort(host, port) + proxy.WebhookPath
	hook, err := d.sim.CreateHook("logto-proxy demo", d.hookURL, proxy.WebhookEvents()...)
	if err != nil {
		return fmt.Errorf("register the simulator's webhook: %w", err)
	}
	cfg.LogtoWebhookSigningKey = hook.SigningKey
	return nil
}

// announce waits for the first snapshot and prints how to talk to the demo.
func (d *demoEnv) announce(ctx context.Context, a *app, w io.Writer) error {
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	snap, err := a.view.Current(waitCtx)
	if err != nil {
		return fmt.Errorf("first hierarchy load: %w", err)
	}
	base := "http://" + strings.Replace(a.addr(), "0.0.0.0", "127.0.0.1", 1)
	fmt.Fprintf(w, "logto-proxy demo is up: %d organizations (generation %d) from the Logto simulator at %s\n",
		snap.Tree.Len(), snap.Generation, d.sim.URL())
	fmt.Fprintf(w, "  curl -s %s/readyz\n  curl -s %s/metrics | grep logto_proxy_\n", base, base)
	if err := d.announceTokens(waitCtx, a, base, w); err != nil && ctx.Err() == nil {
		return err // a stop signal during the announcement is not a failure
	}
	if err := d.announceLive(waitCtx, w); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// announceLive prints how to change Logto (the simulator's Management API)
// and watch the change arrive by webhook.
func (d *demoEnv) announceLive(ctx context.Context, w io.Writer) error {
	token, err := d.managementToken(ctx, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("management token: %w", err)
	}
	fmt.Fprintf(w, "changes made through the simulator's Management API reach the proxy by webhook (%s), e.g.:\n", d.hookURL)
	fmt.Fprintf(w, "    curl -s -X PATCH -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"name\":\"d1r1c1, renamed\"}' %s/api/organizations/%s\n",
		token, d.sim.URL(), d.fixture.Orgs["d1r1c1"])
	fmt.Fprintln(w, "  then read it back with the owner's token: /api/customers/"+d.fixture.Orgs["d1r1c1"])
	return nil
}

// demoPersonas are the fixture's organizations whose users the demo signs
// in, each holding the organization role of its level and the Admin role.
var demoPersonas = []string{"Owner", "d1", "d2", "d1r1", "d1r2", "d2r1", "d1r1c1", "d1r1c2", "d1r2c1", "d2r1c1", "d1c1"}

// demoToken is one persona's entry in the -demo-tokens file.
type demoToken struct {
	Token          string `json:"token"`
	OrganizationID string `json:"organization_id"`
}

// announceTokens signs every persona in through the real login exchange (a
// Logto user token from the simulator, POSTed to /api/auth/exchange, as the
// dashboard does), prints a curl line for each and one for a service token,
// and writes the session tokens to -demo-tokens when set.
func (d *demoEnv) announceTokens(ctx context.Context, a *app, base string, w io.Writer) error {
	client := &http.Client{Timeout: 10 * time.Second}
	tokens := make(map[string]demoToken, len(demoPersonas))
	fmt.Fprintln(w, "session tokens (through POST /api/auth/exchange):")
	for _, name := range demoPersonas {
		persona := strings.ToLower(name)
		tok, user, err := d.exchange(ctx, client, base, d.fixture.Users[name])
		if err != nil {
			return fmt.Errorf("sign in %s: %w", persona, err)
		}
		tokens[persona] = demoToken{Token: tok, OrganizationID: user.OrganizationID}
		fmt.Fprintf(w, "  %s (%s of %s):\n    curl -s -H 'Authorization: Bearer %s' %s%s\n",
			persona, user.OrgRole, user.OrganizationName, tok, base, demoRoute(user.OrgRole, user.OrganizationID))
	}
	if a.cfg.LogtoAPIResource != "" {
		svc, err := d.serviceToken(ctx, client, a.cfg.LogtoAPIResource)
		if err != nil {
			return fmt.Errorf("service token: %w", err)
		}
		fmt.Fprintf(w, "service token (Logto client_credentials for %s):\n    curl -s -H 'Authorization: Bearer %s' %s/api/customers\n",
			a.cfg.LogtoAPIResource, svc, base)
	}
	if a.cfg.DemoTokens == "" {
		return nil
	}
	raw, err := json.MarshalIndent(tokens, "", "  ")
	if err != nil {
		return fmt.Errorf("encode demo tokens: %w", err)
	}
	if err := os.WriteFile(a.cfg.DemoTokens, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("-demo-tokens: %w", err)
	}
	fmt.Fprintf(w, "session tokens written to %s\n", a.cfg.DemoTokens)
	return nil
}

// demoRoute is a route worth trying for each role.
func demoRoute(role, orgID string) string {
	switch role {
	case "Owner":
		return "/api/distributors"
	case "Distributor":
		return "/api/resellers"
	case "Reseller":
		return "/api/customers"
	}
	return "/api/customers/" + orgID
}

// exchange gets a session for a simulator user the way the dashboard does.
func (d *demoEnv) exchange(ctx context.Context, client *http.Client, base, userID string) (string, proxy.SessionUser, error) {
	var out struct {
		Token string            `json:"token"`
		User  proxy.SessionUser `json:"user"`
	}
	logtoToken, err := d.sim.IssueUserToken(userID, logtotest.UserTokenOptions{Opaque: true})
	if err != nil {
		return "", out.User, err
	}
	body, err := json.Marshal(map[string]string{"access_token": logtoToken})
	if err != nil {
		return "", out.User, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/auth/exchange", bytes.NewReader(body))
	if err != nil {
		return "", out.User, err
	}
	req.Header.Set("Content-Type", "application/json")
	var env struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := doJSON(client, req, &env); err != nil {
		return "", out.User, err
	}
	if err := json.Unmarshal(env.Data, &out); err != nil || out.Token == "" {
		return "", out.User, fmt.Errorf("exchange answered %q", env.Message)
	}
	return out.Token, out.User, nil
}

// serviceToken gets a service token from the simulator the way another
// service would: the client_credentials grant of the fixture's service app.
func (d *demoEnv) serviceToken(ctx context.Context, client *http.Client, resource string) (string, error) {
	app := d.fixture.ServiceApp
	return d.clientCredentials(ctx, client, app.ID, app.Secret, resource, "read:customers read:resellers read:distributors read:users")
}

// managementToken gets a Management API token from the simulator, as an
// administrator's tool would, to change organizations and users.
func (d *demoEnv) managementToken(ctx context.Context, client *http.Client) (string, error) {
	appID, secret := d.sim.M2MCredentials()
	return d.clientCredentials(ctx, client, appID, secret, d.sim.ManagementResource(), "all")
}

// clientCredentials runs the client_credentials grant at the simulator.
func (d *demoEnv) clientCredentials(ctx context.Context, client *http.Client, appID, secret, resource, scope string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {resource}, "scope": {scope}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.sim.URL()+"/oidc/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(appID, secret)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := doJSON(client, req, &out); err != nil {
		return "", err
	}
	if out.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered no access token")
	}
	return out.AccessToken, nil
}

// doJSON sends req and decodes a 200 JSON answer (at most 1 MiB) into out.
func doJSON(client *http.Client, req *http.Request, out any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d", req.Method, req.URL.Path, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

func (d *demoEnv) close() {
	if d.sim != nil {
		_ = d.sim.Close()
	}
	if d.redis != nil {
		d.redis.Close()
	}
}
