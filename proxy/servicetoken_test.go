package proxy

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// serviceToken gets a service token the way a client service does: the
// client_credentials grant of the fixture's service application for the
// proxy's API resource.
func (h *harness) serviceToken(t *testing.T, scopes ...string) string {
	t.Helper()
	app := h.fixture.ServiceApp
	resp, err := h.http.Client().PostForm(h.sim.URL()+"/oidc/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {app.ID}, "client_secret": {app.Secret},
		"resource": {h.fixture.APIResource.Indicator}, "scope": {strings.Join(scopes, " ")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		t.Fatalf("client_credentials: %d %v", resp.StatusCode, err)
	}
	return body.AccessToken
}

// logtoToken issues an access token for the proxy's API resource with the
// simulator's keys, shaped by opts (Resource defaults to the proxy's).
func (h *harness) logtoToken(t *testing.T, opts logtotest.UserTokenOptions) string {
	t.Helper()
	if opts.Resource == "" && opts.Audience == "" {
		opts.Resource = h.fixture.APIResource.Indicator
	}
	tok, err := h.sim.IssueUserToken(h.fixture.Users["d1"], opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// totalCount reads pagination.total_count from a list answer.
func totalCount(t *testing.T, r reply) int {
	t.Helper()
	var data struct {
		Pagination struct {
			TotalCount int `json:"total_count"`
		} `json:"pagination"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Env.Data, &data) != nil {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	return data.Pagination.TotalCount
}

// TestServiceTokenScope checks that a Logto service token sees the whole
// tree, or an organization's subtree when it names one, through the
// permissions its scope grants.
func TestServiceTokenScope(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	treeWide := h.serviceToken(t, "read:customers", "read:resellers", "read:distributors", "read:users")
	if n := totalCount(t, h.do(t, http.MethodGet, "/api/customers", treeWide, nil)); n != 5 {
		t.Errorf("tree-wide token: %d customers, want all 5", n)
	}
	if n := totalCount(t, h.do(t, http.MethodGet, "/api/organizations", treeWide, nil)); n != 10 {
		t.Errorf("tree-wide token: %d organizations, want all 10", n)
	}
	if r := h.do(t, http.MethodGet, "/api/distributors/"+h.orgID(t, "d2"), treeWide, nil); r.Status != http.StatusOK {
		t.Errorf("tree-wide token reading d2: %d %s", r.Status, r.Body)
	}

	d1 := h.logtoToken(t, logtotest.UserTokenOptions{OrganizationID: h.orgID(t, "d1"), Scopes: []string{"read:customers"}})
	if n := totalCount(t, h.do(t, http.MethodGet, "/api/customers", d1, nil)); n != 4 {
		t.Errorf("token for d1: %d customers, want d1's 4", n)
	}
	if n := totalCount(t, h.do(t, http.MethodGet, "/api/organizations", d1, nil)); n != 7 {
		t.Errorf("token for d1: %d organizations, want d1's subtree of 7", n)
	}
	if r := h.do(t, http.MethodGet, "/api/customers/"+h.orgID(t, "d2r1c1"), d1, nil); r.Status != http.StatusNotFound {
		t.Errorf("token for d1 reading d2's customer: %d %s", r.Status, r.Body)
	}

	noScope := h.logtoToken(t, logtotest.UserTokenOptions{Scopes: []string{"read:users"}})
	if r := h.do(t, http.MethodGet, "/api/customers", noScope, nil); r.Status != http.StatusForbidden || r.Env.Message != "insufficient permissions" {
		t.Errorf("token without read:customers: %d %s", r.Status, r.Body)
	}

	// A service has no session: /me and logout are not for it.
	for _, route := range []struct{ method, path string }{{http.MethodGet, "/api/me"}, {http.MethodPost, "/api/auth/logout"}} {
		if r := h.do(t, route.method, route.path, treeWide, nil); r.Status != http.StatusForbidden ||
			r.Env.Message != "this endpoint cannot be accessed with a service token" {
			t.Errorf("%s %s with a service token: %d %s", route.method, route.path, r.Status, r.Body)
		}
	}
}

// TestServiceTokenRefusals sends every kind of bad token; each must be a 401
// "invalid token" in the upstream's shape, whatever went wrong.
func TestServiceTokenRefusals(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	now := time.Now()
	valid := h.logtoToken(t, logtotest.UserTokenOptions{Scopes: []string{"read:customers"}})
	if r := h.do(t, http.MethodGet, "/api/customers", valid, nil); r.Status != http.StatusOK {
		t.Fatalf("valid token: %d %s", r.Status, r.Body)
	}
	header, payload, _ := splitJWT(t, valid)
	var head map[string]any
	if err := json.Unmarshal(decodeSegment(t, header), &head); err != nil {
		t.Fatal(err)
	}
	kid, _ := head["kid"].(string)
	var claims jwt.MapClaims
	if err := json.Unmarshal(decodeSegment(t, payload), &claims); err != nil {
		t.Fatal(err)
	}

	jwks := h.fetch(t, h.sim.Issuer()+"/jwks")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// Tampered: the payload gains a scope and loses nothing else; the
	// signature is the original one.
	claims["scope"] = "read:customers read:distributors"
	tampered := header + "." + encodeSegment(t, claims) + "." + strings.SplitN(valid, ".", 3)[2]
	delete(claims, "scope")

	cases := map[string]string{
		"alg none":              encodeSegment(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + payload + ".",
		"HS256 with the JWKS":   signWith(t, jwt.SigningMethodHS256, kid, claims, jwks),
		"HS256 with a key's x":  signWith(t, jwt.SigningMethodHS256, kid, claims, []byte(jwkX(t, jwks))),
		"RS256 under EC kid":    signWith(t, jwt.SigningMethodRS256, kid, claims, rsaKey),
		"tampered payload":      tampered,
		"expired":               h.logtoToken(t, logtotest.UserTokenOptions{ExpiresAt: now.Add(-time.Minute)}),
		"not yet valid":         h.logtoToken(t, logtotest.UserTokenOptions{NotBefore: now.Add(time.Hour)}),
		"issued in the future":  h.logtoToken(t, logtotest.UserTokenOptions{IssuedAt: now.Add(time.Hour)}),
		"wrong issuer":          h.logtoToken(t, logtotest.UserTokenOptions{Issuer: "https://evil.example/oidc"}),
		"wrong audience":        h.logtoToken(t, logtotest.UserTokenOptions{Resource: "https://other.example/api"}),
		"management audience":   h.logtoToken(t, logtotest.UserTokenOptions{Resource: h.sim.ManagementResource()}),
		"organization URN":      h.logtoToken(t, logtotest.UserTokenOptions{Audience: "urn:logto:organization:" + h.orgID(t, "d1")}),
		"unknown kid":           h.logtoToken(t, logtotest.UserTokenOptions{UnknownKey: true}),
		"garbage":               "a.b.c",
		"one segment":           "abc",
		"header only":           encodeSegment(t, map[string]any{"alg": "ES384"}),
		"empty segments":        "..",
		"non-JSON header":       base64.RawURLEncoding.EncodeToString([]byte("not json")) + "." + payload + ".sig",
		"HS256 header, ES body": encodeSegment(t, map[string]any{"alg": "HS256", "kid": kid}) + "." + payload + "." + strings.SplitN(valid, ".", 3)[2],
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			r := h.do(t, http.MethodGet, "/api/customers", token, nil)
			if r.Status != http.StatusUnauthorized || r.Env.Message != "invalid token" || string(r.Env.Data) != "null" {
				t.Errorf("got %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestServiceTokenKeyRotation: a token signed by a key published after the
// verifier loaded the JWKS verifies at once (the unknown kid triggers a
// refetch); one signed by a key Logto withdrew does not.
func TestServiceTokenKeyRotation(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	before := h.logtoToken(t, logtotest.UserTokenOptions{Scopes: []string{"read:customers"}})
	unused := h.logtoToken(t, logtotest.UserTokenOptions{Scopes: []string{"read:customers"}, ClientID: "another"})
	if r := h.do(t, http.MethodGet, "/api/customers", before, nil); r.Status != http.StatusOK {
		t.Fatalf("before rotation: %d %s", r.Status, r.Body)
	}
	fetches := h.sim.Calls("GET /oidc/jwks")
	if err := h.sim.RotateSigningKey(false); err != nil {
		t.Fatal(err)
	}
	after := h.logtoToken(t, logtotest.UserTokenOptions{Scopes: []string{"read:customers"}})
	if r := h.do(t, http.MethodGet, "/api/customers", after, nil); r.Status != http.StatusOK {
		t.Errorf("token signed by the new key: %d %s", r.Status, r.Body)
	}
	if h.sim.Calls("GET /oidc/jwks") <= fetches {
		t.Errorf("the new kid did not make the verifier refetch the JWKS")
	}
	if r := h.do(t, http.MethodGet, "/api/customers", unused, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("unseen token signed by a withdrawn key: %d %s", r.Status, r.Body)
	}
	// Hot callers are not re-verified: the same token twice is one check.
	fetches = h.sim.Calls("GET /oidc/jwks")
	for range 3 {
		if r := h.do(t, http.MethodGet, "/api/customers", after, nil); r.Status != http.StatusOK {
			t.Fatalf("repeated token: %d %s", r.Status, r.Body)
		}
	}
	if h.sim.Calls("GET /oidc/jwks") != fetches {
		t.Errorf("repeated verification of a known token fetched the JWKS")
	}
	first, err := h.service.Verify(context.Background(), after)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := h.service.Verify(context.Background(), after); err != nil || again != first {
		t.Errorf("a verified token is not remembered: %v", err)
	}
}

func TestServiceTokenPrincipal(t *testing.T) {
	c := &ServiceClaims{Scope: " read:customers  read:users ", OrganizationID: "org1"}
	p := c.Principal()
	if !p.Service || p.TreeWide || p.OrgID != "org1" || !p.Has("read:customers") || !p.Has("read:users") || len(p.Permissions) != 2 {
		t.Errorf("organization token principal: %+v", p)
	}
	p = (&ServiceClaims{}).Principal()
	if !p.Service || !p.TreeWide || p.OrgID != "" || len(p.Permissions) != 0 {
		t.Errorf("tree-wide token without scope: %+v", p)
	}
}

func TestServiceTokenConfig(t *testing.T) {
	for name, cfg := range map[string]ServiceTokenConfig{
		"no issuer":    {Audience: "https://api.example"},
		"no audience":  {Issuer: "https://logto.example/oidc"},
		"bad JWKS URL": {Issuer: "https://logto.example/oidc", Audience: "a", JWKSURL: "ftp://x/jwks"},
	} {
		if _, err := NewServiceTokens(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	v, err := NewServiceTokens(ServiceTokenConfig{Issuer: "https://logto.example/oidc/", Audience: "a"})
	if err != nil || v.cfg.JWKSURL != "https://logto.example/oidc/jwks" {
		t.Errorf("default JWKS URL: %v %q", err, v.cfg.JWKSURL)
	}
	v.Close()
}

func TestVerifiedTokensAreBounded(t *testing.T) {
	m := newVerifiedTokens(10)
	now := time.Now()
	key := func(i int) [sha256.Size]byte { return sha256.Sum256([]byte{byte(i)}) }
	for i := range 25 {
		m.put(key(i), &ServiceClaims{ClientID: "c"}, now.Add(time.Hour), now)
		if len(m.entries) > 10 {
			t.Fatalf("%d entries, bound is 10", len(m.entries))
		}
	}
	if _, ok := m.get(key(24), now); !ok {
		t.Error("the latest entry was dropped")
	}
	m.put(key(99), &ServiceClaims{}, now.Add(time.Second), now)
	if _, ok := m.get(key(99), now.Add(time.Second)); ok {
		t.Error("an expired entry was served")
	}
	if _, ok := m.get(key(99), now); ok {
		t.Error("an expired entry was not dropped when read")
	}
}

func (h *harness) fetch(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := h.http.Client().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func splitJWT(t *testing.T, token string) (header, payload, sig string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d segments", len(parts))
	}
	return parts[0], parts[1], parts[2]
}

func decodeSegment(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodeSegment(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func signWith(t *testing.T, m jwt.SigningMethod, kid string, claims jwt.MapClaims, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["kid"] = kid
	tok.Header["typ"] = "at+jwt"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwkX is the x coordinate of the first key of a JWKS document.
func jwkX(t *testing.T, jwks []byte) string {
	t.Helper()
	var set struct {
		Keys []struct {
			X string `json:"x"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS: %v", err)
	}
	return set.Keys[0].X
}
