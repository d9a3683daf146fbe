package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
	"github.com/logto-proxy/logto-proxy/proxy"
)

// TestSecretsNeverReachLogsOrAnswers runs the real process (run, as main
// does) at debug level through a day in its life — logins, refreshes,
// logouts, service tokens, webhooks, every kind of bad token, secrets sent
// where tokens belong, Logto failing and down, Redis down — and then greps
// everything it logged and answered for its secrets: JWT_SECRET, the M2M
// secret, the webhook signing key, the service application's secret, and
// every token that went through it (session and refresh tokens, Logto user
// and service tokens, the management token it got from Logto). A token may
// only appear in the answer that issued it.
func TestSecretsNeverReachLogsOrAnswers(t *testing.T) {
	checkNoLeaks(t)
	s := &secretScan{}
	jwtSecret := s.secret("jwt-secret-" + rand.Text() + rand.Text())
	m2mSecret := s.secret("m2m-secret-" + rand.Text())
	webhookKey := s.secret("webhook-key-" + rand.Text())
	front := newLogtoFront(t, logtotest.Options{M2MAppSecret: m2mSecret}, smallBulk)
	appID, _ := front.sim.M2MCredentials()
	s.secret(base64.StdEncoding.EncodeToString([]byte(appID + ":" + m2mSecret)))
	s.secret(front.fixture.ServiceApp.Secret)
	redisSrv := cachetest.StartServer(t)

	logs := &syncBuffer{}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"-listen", "127.0.0.1:0"}, envOf(map[string]string{
			"LOG_LEVEL":                 "debug",
			"LOGTO_ENDPOINT":            front.sim.URL(),
			"LOGTO_M2M_APP_ID":          appID,
			"LOGTO_M2M_APP_SECRET":      m2mSecret,
			"LOGTO_API_RESOURCE":        front.fixture.APIResource.Indicator,
			"LOGTO_WEBHOOK_SIGNING_KEY": webhookKey,
			"LOGTO_TIMEOUT":             testLogtoTimeout.String(),
			"JWT_SECRET":                jwtSecret,
			"REDIS_URL":                 "redis://" + redisSrv.Addr(),
			"REDIS_PREFIX":              cachetest.Prefix(t),
		}), io.Discard, logs)
	}()
	c := clientAt(t, listeningAddr(t, logs))
	eventually(t, "the process is ready", func() bool { return s.keep(c.get("/readyz", "")).status == http.StatusOK })

	// Logins, reads, a refresh, and a service token.
	pair := s.exchange(t, c, front, "d1", http.StatusOK)
	session := pair.Token
	for _, path := range []string{"/api/me", "/api/customers", "/api/users", "/api/organizations", "/api/customers?token=" + url.QueryEscape(session)} {
		s.keep(c.get(path, session))
	}
	refreshed := s.refresh(t, c, pair.RefreshToken, http.StatusOK)
	s.refresh(t, c, pair.RefreshToken, 0) // reused: tolerated within the grace, or refused
	service := s.serviceToken(t, c, front)
	s.keep(c.get("/api/customers", service))
	s.keep(c.get("/api/me", service))
	limited := s.token(mustToken(t)(front.sim.IssueUserToken(front.fixture.Users["d1"], logtotest.UserTokenOptions{
		Resource: front.fixture.APIResource.Indicator, OrganizationID: front.fixture.Orgs["d1"], Scopes: []string{"read:customers"}})))
	s.keep(c.get("/api/customers", limited))

	// Bad tokens of every kind, and secrets where tokens belong.
	forged, err := proxy.NewSessions(proxy.SessionConfig{Secret: []byte(strings.Repeat("f", 40)), Issuer: front.sim.URL(), Audience: front.sim.URL() + "/api"})
	if err != nil {
		t.Fatal(err)
	}
	forgedToken, _, err := forged.MintAccess(pair.User)
	if err != nil {
		t.Fatal(err)
	}
	s.token(forgedToken)
	expired := s.token(mustToken(t)(front.sim.IssueUserToken(front.fixture.Users["d1"], logtotest.UserTokenOptions{
		Resource: front.fixture.APIResource.Indicator, ExpiresAt: time.Now().Add(-time.Hour), IssuedAt: time.Now().Add(-2 * time.Hour)})))
	for _, bad := range []string{jwtSecret, m2mSecret, webhookKey, session + "x", session[:len(session)-4], forgedToken, expired,
		service[:len(service)/2], "Basic " + base64.StdEncoding.EncodeToString([]byte(appID+":"+m2mSecret))} {
		s.keep(c.get("/api/customers", bad))
	}
	s.keep(c.get("/api/customers", ""))
	s.keepRaw(t, c, "/api/customers", "Basic "+base64.StdEncoding.EncodeToString([]byte(appID+":"+m2mSecret)))
	s.keepRaw(t, c, "/api/customers", "Token "+jwtSecret)
	s.post(c, "/api/auth/exchange", map[string]string{"access_token": m2mSecret})
	s.post(c, "/api/auth/exchange", map[string]string{"access_token": s.token("not-a-logto-token-" + rand.Text())})
	s.post(c, "/api/auth/refresh", map[string]string{"refresh_token": jwtSecret})
	s.post(c, "/api/auth/refresh", map[string]string{"refresh_token": session})

	// Webhooks: signed with the key, with another key, unsigned.
	event, _ := json.Marshal(map[string]any{"event": "Organization.Data.Updated", "createdAt": time.Now().Format(time.RFC3339),
		"params": map[string]string{"id": front.fixture.Orgs["d1r1"]}, "data": map[string]string{"id": front.fixture.Orgs["d1r1"], "name": "d1r1"}})
	for _, key := range []string{webhookKey, "another-key"} {
		s.keep(postRaw(c, "/api/webhooks/logto", event, map[string]string{"logto-signature-sha-256": logtotest.Sign(key, event)}))
	}
	s.keep(postRaw(c, "/api/webhooks/logto", event, nil))

	// Logto failing, then down, during logins and reads.
	front.sim.Faults().SetScope(logtotest.ScopeAll)
	front.sim.Faults().SetErrorRate(1, http.StatusInternalServerError)
	s.exchange(t, c, front, "d2", http.StatusServiceUnavailable)
	s.keep(c.get("/api/customers", session))
	front.sim.Faults().Reset()
	front.down()
	s.exchange(t, c, front, "d2", http.StatusServiceUnavailable)
	s.keep(c.get("/api/users", session))
	front.up()

	// Redis down: sessions fail closed, logouts cannot be recorded.
	redisSrv.Stop()
	eventually(t, "session tokens fail closed with Redis down", func() bool {
		return s.keep(c.get("/api/customers", refreshed.Token)).status == http.StatusServiceUnavailable
	})
	s.keep(c.do(context.Background(), http.MethodPost, "/api/auth/logout", refreshed.Token, nil))
	s.refresh(t, c, refreshed.RefreshToken, 0)
	redisSrv.Start()
	eventually(t, "session tokens work again", func() bool {
		return s.keep(c.get("/api/customers", refreshed.Token)).status == http.StatusOK
	})

	// A logout, and the revoked token used again.
	s.keep(c.do(context.Background(), http.MethodPost, "/api/auth/logout", session, nil))
	s.keep(c.get("/api/customers", session))
	s.keep(c.get("/metrics", ""))
	s.keep(c.get("/readyz", ""))

	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("the process exited with %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the process did not stop within 20s of its signal")
	}

	for _, tok := range front.seenTokens() { // the management token, the Logto user tokens
		s.token(tok)
	}
	t.Logf("scan: %d answers, %d tokens, %d secrets, %d log bytes", len(s.answers), len(s.tokens), len(s.secrets), len(logs.String()))
	s.check(t, logs.String())
}

// secretScan collects the secrets of a run and everything the process
// said, and checks that no secret is in what it said.
type secretScan struct {
	mu      sync.Mutex
	secrets []string // never said anywhere
	tokens  []string // said only by the answer that issued them
	answers []scanned
}

type scanned struct {
	what    string
	text    string   // status line, headers and body
	allowed []string // tokens this answer issued
}

func (s *secretScan) secret(v string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, v)
	return v
}

func (s *secretScan) token(v string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = append(s.tokens, v)
	return v
}

// keep records an answer for the final check and returns it.
func (s *secretScan) keep(r answer, allowed ...string) answer {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %v\n", r.status, r.err)
	for k, v := range r.header {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(v, ", "))
	}
	b.Write(r.body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers = append(s.answers, scanned{what: fmt.Sprintf("answer #%d", len(s.answers)+1), text: b.String(), allowed: allowed})
	return r
}

// keepRaw sends a request with a raw Authorization header.
func (s *secretScan) keepRaw(t *testing.T, c *client, path, authorization string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", authorization)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	s.keep(answer{status: resp.StatusCode, header: resp.Header, body: body})
}

func (s *secretScan) post(c *client, path string, body any) answer {
	raw, _ := json.Marshal(body)
	return s.keep(c.do(context.Background(), http.MethodPost, path, "", raw))
}

// exchange signs a fixture user in through the login exchange, expecting
// status; a 200's tokens are recorded as secrets of this answer only.
func (s *secretScan) exchange(t *testing.T, c *client, front *logtoFront, name string, status int) sessionTokens {
	t.Helper()
	logtoToken := s.token(mustToken(t)(front.sim.IssueUserToken(front.fixture.Users[name], logtotest.UserTokenOptions{Opaque: true})))
	raw, _ := json.Marshal(map[string]string{"access_token": logtoToken})
	return s.issued(t, c.do(context.Background(), http.MethodPost, "/api/auth/exchange", "", raw), status)
}

// refresh presents a refresh token, expecting status (0: any).
func (s *secretScan) refresh(t *testing.T, c *client, refreshToken string, status int) sessionTokens {
	t.Helper()
	raw, _ := json.Marshal(map[string]string{"refresh_token": refreshToken})
	return s.issued(t, c.do(context.Background(), http.MethodPost, "/api/auth/refresh", "", raw), status)
}

// sessionTokens is the data of an exchange or refresh answer.
type sessionTokens struct {
	Token        string            `json:"token"`
	RefreshToken string            `json:"refresh_token"`
	User         proxy.SessionUser `json:"user"`
}

func (s *secretScan) issued(t *testing.T, r answer, status int) sessionTokens {
	t.Helper()
	if status != 0 && r.status != status {
		t.Fatalf("login answered %v %d %s, want %d", r.err, r.status, r.body, status)
	}
	var pair sessionTokens
	if r.status == http.StatusOK {
		if err := r.data(&pair); err != nil || pair.Token == "" || pair.RefreshToken == "" {
			t.Fatalf("login answer: %v %s", err, r.body)
		}
		s.token(pair.Token)
		s.token(pair.RefreshToken)
	}
	s.keep(r, pair.Token, pair.RefreshToken)
	return pair
}

// serviceToken gets a service token the way another service does.
func (s *secretScan) serviceToken(t *testing.T, c *client, front *logtoFront) string {
	t.Helper()
	app := front.fixture.ServiceApp
	resp, err := c.http.PostForm(front.sim.URL()+"/oidc/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {app.ID}, "client_secret": {app.Secret},
		"resource": {front.fixture.APIResource.Indicator}, "scope": {serviceTokenScopes},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("client_credentials: %d %v", resp.StatusCode, err)
	}
	return s.token(body.AccessToken)
}

// check looks for every secret and token, whole and by its most telling
// part (a JWT's signature), in the logs and the answers.
func (s *secretScan) check(t *testing.T, logs string) {
	t.Helper()
	if !strings.Contains(logs, `"level":"DEBUG"`) {
		t.Fatal("no debug line was logged: the scan would prove little")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range append(append([]string{}, s.secrets...), s.tokens...) {
		for _, needle := range needles(v) {
			if strings.Contains(logs, needle) {
				t.Errorf("the logs contain a secret (%.12s…)", needle)
			}
		}
	}
	for _, a := range s.answers {
		for _, v := range append(append([]string{}, s.secrets...), s.tokens...) {
			if contains(a.allowed, v) {
				continue
			}
			for _, needle := range needles(v) {
				if strings.Contains(a.text, needle) {
					t.Errorf("%s contains a secret (%.12s…):\n%.500s", a.what, needle, a.text)
				}
			}
		}
	}
	if len(s.answers) < 40 || len(s.tokens) < 10 {
		t.Fatalf("the scan covered %d answers and %d tokens only", len(s.answers), len(s.tokens))
	}
}

// needles is what gives a secret away: itself and, for a JWT, its
// signature.
func needles(v string) []string {
	out := []string{v}
	if parts := strings.Split(v, "."); len(parts) == 3 && len(parts[2]) >= 16 {
		out = append(out, parts[2])
	}
	return out
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v && v != "" {
			return true
		}
	}
	return false
}

func mustToken(t *testing.T) func(string, error) string {
	return func(tok string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

// postRaw posts a body with extra headers.
func postRaw(c *client, path string, body []byte, headers map[string]string) answer {
	return post(c, path, strings.NewReader(string(body)), headers)
}

// listeningAddr waits for the process's "listening" log line and returns
// its address.
func listeningAddr(t *testing.T, logs *syncBuffer) string {
	t.Helper()
	var addr string
	eventually(t, "the process logs where it listens", func() bool {
		for _, l := range logs.lines() {
			if l["msg"] == "listening" {
				addr, _ = l["addr"].(string)
			}
		}
		return addr != ""
	})
	return addr
}

// clientAt is newClient for a process known by its address.
func clientAt(t testing.TB, addr string) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{base: "http://" + addr, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}
