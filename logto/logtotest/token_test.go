package logtotest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// jwksKeys fetches the JWKS and decodes its EC keys by kid.
func jwksKeys(t testing.TB, s *logtotest.Server) map[string]*ecdsa.PublicKey {
	t.Helper()
	res := must(t, send(t, newRequest(t, http.MethodGet, s.URL()+"/oidc/jwks", nil)), http.StatusOK)
	var set struct {
		Keys []struct {
			Kty, Use, Kid, Alg, Crv, X, Y string
		} `json:"keys"`
	}
	res.json(t, &set)
	out := map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-384" || k.Alg != "ES384" || k.Use != "sig" {
			t.Fatalf("unexpected key %+v", k)
		}
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad coordinates in %+v", k)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P384(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatalf("parse key %s: %v", k.Kid, err)
		}
		out[k.Kid] = pub
	}
	return out
}

// verifyJWT checks token's ES384 signature against the JWKS and returns its
// header and claims.
func verifyJWT(t testing.TB, s *logtotest.Server, token string) (map[string]any, jwt.MapClaims) {
	t.Helper()
	keys := jwksKeys(t, s)
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if k := keys[kid]; k != nil {
			return k, nil
		}
		return nil, errors.New("kid not in JWKS")
	}, jwt.WithValidMethods([]string{"ES384"}), jwt.WithIssuer(s.Issuer()))
	if err != nil {
		t.Fatalf("verify token: %v", err)
	}
	return tok.Header, claims
}

type tokenBody struct {
	AccessToken string  `json:"access_token"`
	ExpiresIn   int     `json:"expires_in"`
	TokenType   string  `json:"token_type"`
	Scope       *string `json:"scope"`
}

func TestTokenClientSecretBasic(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	id, secret := s.M2MCredentials()
	res := must(t, tokenForm(t, s, url.Values{
		"grant_type": {"client_credentials"}, "resource": {s.ManagementResource()}, "scope": {"all"},
	}, id, secret), http.StatusOK)
	if got := keys(t, res.body); strings.Join(got, ",") != "access_token,expires_in,token_type,scope" {
		t.Errorf("body keys = %v", got)
	}
	var body tokenBody
	res.json(t, &body)
	if body.ExpiresIn != 3600 || body.TokenType != "Bearer" || body.Scope == nil || *body.Scope != "all" {
		t.Errorf("body = %+v", body)
	}
	if res.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", res.header.Get("Cache-Control"))
	}
	header, claims := verifyJWT(t, s, body.AccessToken)
	if header["typ"] != "at+jwt" || header["alg"] != "ES384" || header["kid"] == "" {
		t.Errorf("header = %v", header)
	}
	for _, k := range []string{"jti", "iat", "exp"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("claim %s missing", k)
		}
	}
	if claims["sub"] != id || claims["client_id"] != id || claims["aud"] != "https://default.logto.app/api" ||
		claims["iss"] != s.URL()+"/oidc" || claims["scope"] != "all" {
		t.Errorf("claims = %v", claims)
	}
}

func TestTokenClientSecretPostAndJSONBody(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	id, secret := s.M2MCredentials()
	must(t, tokenForm(t, s, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret},
		"resource": {s.ManagementResource()}, "scope": {"all"},
	}, "", ""), http.StatusOK)

	req := newRequest(t, http.MethodPost, s.URL()+"/oidc/token", map[string]string{
		"grant_type": "client_credentials", "client_id": id, "client_secret": secret,
		"resource": s.ManagementResource(), "scope": "all",
	})
	var body tokenBody
	must(t, send(t, req), http.StatusOK).json(t, &body)
	if body.Scope == nil || *body.Scope != "all" {
		t.Errorf("JSON body token scope = %v", body.Scope)
	}
}

func TestTokenScopeOmittedWhenNotRequested(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	id, secret := s.M2MCredentials()
	res := must(t, tokenForm(t, s, url.Values{
		"grant_type": {"client_credentials"}, "resource": {s.ManagementResource()},
	}, id, secret), http.StatusOK)
	if got := keys(t, res.body); strings.Join(got, ",") != "access_token,expires_in,token_type" {
		t.Errorf("body keys = %v", got)
	}
	var body tokenBody
	res.json(t, &body)
	if _, claims := verifyJWT(t, s, body.AccessToken); claims["scope"] != nil {
		t.Errorf("scope claim = %v, want absent", claims["scope"])
	}
	// Such a token is valid but lacks "all": 403 on the Management API.
	req := newRequest(t, http.MethodGet, s.URL()+"/api/organizations", nil)
	req.Header.Set("Authorization", "Bearer "+body.AccessToken)
	res = must(t, send(t, req), http.StatusForbidden)
	if res.object(t)["code"] != "auth.forbidden" {
		t.Errorf("body = %s", res.body)
	}
}

// oidcErr checks an error body of the token endpoint.
func oidcErr(t *testing.T, res response, status int, oauthErr, description string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status %d, want %d: %s", res.status, status, res.body)
	}
	body := res.object(t)
	if body["code"] != "oidc."+oauthErr || body["error"] != oauthErr || body["error_description"] != description {
		t.Errorf("body = %s, want %s / %q", res.body, oauthErr, description)
	}
	if msg, _ := body["message"].(string); msg == "" {
		t.Errorf("message missing: %s", res.body)
	}
}

func TestTokenErrors(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	id, secret := s.M2MCredentials()
	mgmt := s.ManagementResource()
	cc := func(extra ...string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Add(extra[i], extra[i+1])
		}
		return v
	}
	t.Run("wrong secret", func(t *testing.T) {
		res := tokenForm(t, s, cc("resource", mgmt, "scope", "all"), id, "wrong")
		oidcErr(t, res, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		if got := keys(t, res.body); strings.Join(got, ",") != "code,message,error,error_description" {
			t.Errorf("keys = %v", got)
		}
	})
	t.Run("unknown client", func(t *testing.T) {
		oidcErr(t, tokenForm(t, s, cc("client_id", "not-found", "client_secret", "not-found"), "", ""),
			http.StatusBadRequest, "invalid_client", "invalid client not-found")
	})
	t.Run("no client authentication", func(t *testing.T) {
		oidcErr(t, tokenForm(t, s, cc("resource", mgmt), "", ""),
			http.StatusBadRequest, "invalid_request", "no client authentication mechanism provided")
	})
	t.Run("neither resource nor organization", func(t *testing.T) {
		oidcErr(t, tokenForm(t, s, cc(), id, secret),
			http.StatusBadRequest, "invalid_target", "both `resource` and `organization_id` are not provided")
	})
	t.Run("unknown resource", func(t *testing.T) {
		oidcErr(t, tokenForm(t, s, cc("resource", "https://not-found"), id, secret),
			http.StatusBadRequest, "invalid_target", "resource indicator is missing, or unknown")
	})
	t.Run("two resources", func(t *testing.T) {
		res := tokenForm(t, s, cc("resource", mgmt, "resource", "https://other"), id, secret)
		if res.status != http.StatusBadRequest || res.object(t)["error"] != "invalid_target" {
			t.Errorf("got %d %s", res.status, res.body)
		}
	})
	t.Run("unsupported grant", func(t *testing.T) {
		res := tokenForm(t, s, url.Values{"grant_type": {"password"}, "resource": {mgmt}}, id, secret)
		oidcErr(t, res, http.StatusBadRequest, "unsupported_grant_type", "unsupported grant_type requested")
	})
	t.Run("expired secret", func(t *testing.T) {
		app, err := s.CreateM2MApp(logtotest.M2MAppSpec{Name: "old", SecretExpiresAt: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		oidcErr(t, tokenForm(t, s, cc("resource", mgmt), app.ID, app.Secret),
			http.StatusBadRequest, "invalid_request", "client secret has expired")
	})
	t.Run("organization the app is not in", func(t *testing.T) {
		oidcErr(t, tokenForm(t, s, cc("organization_id", "not-found"), id, secret),
			http.StatusForbidden, "access_denied", "app has not associated with the organization")
	})
}

func TestTokenCustomResourceScopes(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	res, scopes, err := s.CreateAPIResource("svc", "https://svc.example/api", "read:a", "read:b", "read:c")
	if err != nil {
		t.Fatal(err)
	}
	role, err := s.CreateRole(logtotest.RoleSpec{Name: "svc reader", Type: logtotest.RoleTypeMachineToMachine,
		ScopeIDs: []string{scopes[0].ID, scopes[1].ID}})
	if err != nil {
		t.Fatal(err)
	}
	app, err := s.CreateM2MApp(logtotest.M2MAppSpec{Name: "svc", RoleIDs: []string{role.ID}})
	if err != nil {
		t.Fatal(err)
	}
	r := must(t, tokenForm(t, s, url.Values{"grant_type": {"client_credentials"}, "resource": {res.Indicator},
		"scope": {"read:b read:c read:a unknown"}}, app.ID, app.Secret), http.StatusOK)
	var body tokenBody
	r.json(t, &body)
	if body.Scope == nil || *body.Scope != "read:b read:a" {
		t.Errorf("scope = %v, want requested ∩ granted in request order", body.Scope)
	}
	_, claims := verifyJWT(t, s, body.AccessToken)
	if claims["aud"] != res.Indicator || claims["scope"] != "read:b read:a" {
		t.Errorf("claims = %v", claims)
	}

	// The app does not hold the management role: "all" is not granted.
	r = must(t, tokenForm(t, s, url.Values{"grant_type": {"client_credentials"},
		"resource": {s.ManagementResource()}, "scope": {"all"}}, app.ID, app.Secret), http.StatusOK)
	var mgmt tokenBody
	r.json(t, &mgmt)
	if mgmt.Scope != nil {
		t.Errorf("management scope = %v, want none", *mgmt.Scope)
	}
}

func TestTokenOrganizationScoped(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	res, scopes, err := s.CreateAPIResource("svc", "https://svc.example/api", "read:x", "read:y")
	if err != nil {
		t.Fatal(err)
	}
	orgScope, err := s.CreateOrganizationScope("org:read", "")
	if err != nil {
		t.Fatal(err)
	}
	orgRole, err := s.CreateOrganizationRole(logtotest.OrganizationRoleSpec{Name: "m2m", Type: logtotest.RoleTypeMachineToMachine,
		ScopeIDs: []string{orgScope.ID}, ResourceScopeIDs: []string{scopes[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	app, err := s.CreateM2MApp(logtotest.M2MAppSpec{Name: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	org, err := s.CreateOrganization(map[string]any{"name": "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddOrganizationApplications(org.ID, app.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.AssignOrganizationApplicationRoles(org.ID, app.ID, orgRole.ID); err != nil {
		t.Fatal(err)
	}

	r := must(t, tokenForm(t, s, url.Values{"grant_type": {"client_credentials"}, "resource": {res.Indicator},
		"organization_id": {org.ID}, "scope": {"read:x read:y"}}, app.ID, app.Secret), http.StatusOK)
	var body tokenBody
	r.json(t, &body)
	_, claims := verifyJWT(t, s, body.AccessToken)
	if claims["organization_id"] != org.ID || claims["aud"] != res.Indicator || claims["scope"] != "read:x" {
		t.Errorf("organization-scoped API token claims = %v", claims)
	}

	// Organization token: no resource, audience is the organization URN and
	// the scope is echoed even when empty.
	r = must(t, tokenForm(t, s, url.Values{"grant_type": {"client_credentials"},
		"organization_id": {org.ID}}, app.ID, app.Secret), http.StatusOK)
	r.json(t, &body)
	if body.Scope == nil || *body.Scope != "" {
		t.Errorf("organization token scope = %v, want \"\"", body.Scope)
	}
	_, claims = verifyJWT(t, s, body.AccessToken)
	if claims["aud"] != "urn:logto:organization:"+org.ID || claims["organization_id"] != nil {
		t.Errorf("organization token claims = %v", claims)
	}
	r = must(t, tokenForm(t, s, url.Values{"grant_type": {"client_credentials"},
		"organization_id": {org.ID}, "scope": {"org:read other"}}, app.ID, app.Secret), http.StatusOK)
	r.json(t, &body)
	if body.Scope == nil || *body.Scope != "org:read" {
		t.Errorf("organization token scope = %v, want org:read", body.Scope)
	}
}
