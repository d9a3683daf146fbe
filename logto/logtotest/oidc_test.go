package logtotest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

func TestDiscovery(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	res := must(t, send(t, newRequest(t, http.MethodGet, s.URL()+"/oidc/.well-known/openid-configuration", nil)), http.StatusOK)
	doc := res.object(t)
	want := map[string]string{
		"issuer":                 s.URL() + "/oidc",
		"jwks_uri":               s.URL() + "/oidc/jwks",
		"token_endpoint":         s.URL() + "/oidc/token",
		"userinfo_endpoint":      s.URL() + "/oidc/me",
		"introspection_endpoint": s.URL() + "/oidc/token/introspection",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %s", k, doc[k], v)
		}
	}
	if s.Issuer() != s.URL()+"/oidc" || strings.HasSuffix(s.URL(), "/") || strings.Contains(s.URL(), "/api") {
		t.Errorf("URL %q / Issuer %q", s.URL(), s.Issuer())
	}
}

func TestIssuerFollowsEndpointOption(t *testing.T) {
	s := newSim(t, logtotest.Options{Endpoint: "http://logto.example:3001/"})
	if s.URL() != "http://logto.example:3001" || s.Issuer() != "http://logto.example:3001/oidc" {
		t.Errorf("URL %q Issuer %q", s.URL(), s.Issuer())
	}
}

func TestJWKSHeadersAndRotation(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	res := must(t, send(t, newRequest(t, http.MethodGet, s.URL()+"/oidc/jwks", nil)), http.StatusOK)
	if got := res.header.Get("Cache-Control"); got != "no-cache, max-age=0, must-revalidate" {
		t.Errorf("Cache-Control = %q", got)
	}
	if len(jwksKeys(t, s)) != 1 {
		t.Fatalf("want one key")
	}
	old := managementToken(t, s)
	verifyJWT(t, s, old)

	if err := s.RotateSigningKey(true); err != nil {
		t.Fatal(err)
	}
	keys := jwksKeys(t, s)
	if len(keys) != 2 {
		t.Fatalf("after rotation keeping the previous key: %d keys", len(keys))
	}
	fresh := managementToken(t, s)
	freshHeader, _ := verifyJWT(t, s, fresh)
	oldHeader, _ := verifyJWT(t, s, old)
	if freshHeader["kid"] == oldHeader["kid"] || freshHeader["kid"] != s.SigningKeyIDs()[0] {
		t.Errorf("new tokens must use the new key: %v vs %v", freshHeader["kid"], oldHeader["kid"])
	}
	a := &api{t: t, s: s, token: old}
	must(t, a.get("/organizations"), http.StatusOK)

	if err := s.RotateSigningKey(false); err != nil {
		t.Fatal(err)
	}
	if len(jwksKeys(t, s)) != 1 {
		t.Fatalf("rotation without keeping: want one key")
	}
	res = a.get("/organizations")
	must(t, res, http.StatusUnauthorized)
	if data, _ := res.object(t)["data"].(map[string]any); data["code"] != "ERR_JWKS_NO_MATCHING_KEY" {
		t.Errorf("old token after rotation: %s", res.body)
	}
	must(t, (&api{t: t, s: s, token: managementToken(t, s)}).get("/organizations"), http.StatusOK)
}

func TestUserinfo(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	u := createUser(t, s, map[string]any{"username": "alice", "primaryEmail": "alice@example.com", "name": "Alice"})
	call := func(token string) response {
		req := newRequest(t, http.MethodGet, s.URL()+"/oidc/me", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return send(t, req)
	}
	opaque, err := s.IssueUserToken(u.ID, logtotest.UserTokenOptions{Opaque: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(opaque, ".") != 0 {
		t.Errorf("opaque token looks like a JWT: %s", opaque)
	}
	info := must(t, call(opaque), http.StatusOK).object(t)
	if info["sub"] != u.ID || info["username"] != "alice" || info["email"] != "alice@example.com" || info["name"] != "Alice" {
		t.Errorf("userinfo = %v", info)
	}
	jwtTok, err := s.IssueUserToken(u.ID, logtotest.UserTokenOptions{Resource: "https://svc.example/api", Scopes: []string{"read:x"}})
	if err != nil {
		t.Fatal(err)
	}
	if must(t, call(jwtTok), http.StatusOK).object(t)["sub"] != u.ID {
		t.Errorf("JWT user token refused")
	}

	expired, err := s.IssueUserToken(u.ID, logtotest.UserTokenOptions{Opaque: true, ExpiresAt: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"none": "", "unknown": "not-a-token", "expired": expired, "m2m": managementToken(t, s),
	} {
		res := call(tok)
		if res.status != http.StatusUnauthorized || res.object(t)["code"] != "oidc.invalid_token" {
			t.Errorf("%s token: %d %s", name, res.status, res.body)
		}
		if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("%s token: WWW-Authenticate = %q", name, res.header.Get("WWW-Authenticate"))
		}
	}
	if err := s.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	if res := call(opaque); res.status != http.StatusUnauthorized {
		t.Errorf("token of a deleted user: %d", res.status)
	}
	if _, err := s.IssueUserToken("nobody", logtotest.UserTokenOptions{}); err == nil {
		t.Errorf("IssueUserToken for an unknown user succeeded")
	}
}

func TestUserTokenClaims(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	u := createUser(t, s, map[string]any{"username": "bob"})
	tok, err := s.IssueUserToken(u.ID, logtotest.UserTokenOptions{
		Resource: "https://svc.example/api", Scopes: []string{"read:a", "read:b"}, OrganizationID: "org1",
	})
	if err != nil {
		t.Fatal(err)
	}
	header, claims := verifyJWT(t, s, tok)
	if header["typ"] != "at+jwt" || claims["sub"] != u.ID || claims["aud"] != "https://svc.example/api" ||
		claims["scope"] != "read:a read:b" || claims["organization_id"] != "org1" || claims["client_id"] == "" {
		t.Errorf("header %v claims %v", header, claims)
	}
	tok, err = s.IssueUserToken(u.ID, logtotest.UserTokenOptions{OrganizationID: "org1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, claims := verifyJWT(t, s, tok); claims["aud"] != "urn:logto:organization:org1" || claims["organization_id"] != nil {
		t.Errorf("organization token claims %v", claims)
	}
}

// TestManagementAuthErrors checks koa-auth's answers on /api.
func TestManagementAuthErrors(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	u := createUser(t, s, map[string]any{"username": "carol"})
	userToken := func(opts logtotest.UserTokenOptions) string {
		if opts.Resource == "" && opts.Audience == "" {
			opts.Resource = s.ManagementResource()
		}
		if opts.Scopes == nil {
			opts.Scopes = []string{"all"}
		}
		tok, err := s.IssueUserToken(u.ID, opts)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	call := func(authz string) response {
		req := newRequest(t, http.MethodGet, s.URL()+"/api/organizations", nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		return send(t, req)
	}

	res := must(t, call(""), http.StatusUnauthorized)
	if string(res.body) != `{"code":"auth.authorization_header_missing","message":"Authorization header is missing."}` {
		t.Errorf("missing header body = %s", res.body)
	}
	res = must(t, call("Basic abc"), http.StatusUnauthorized)
	if string(res.body) != `{"code":"auth.authorization_token_type_not_supported","data":{"supportedTypes":["Bearer"]},"message":"Authorization type is not supported."}` {
		t.Errorf("wrong scheme body = %s", res.body)
	}
	res = must(t, call("Bearer garbage"), http.StatusUnauthorized)
	if string(res.body) != `{"code":"auth.unauthorized","data":{"code":"ERR_JWS_INVALID","name":"JWSInvalid"},"message":"Unauthorized. Please check credentials and its scope."}` {
		t.Errorf("bad token body = %s", res.body)
	}

	cases := []struct {
		name, token, code, claim string
		status                   int
	}{
		{"expired", userToken(logtotest.UserTokenOptions{ExpiresAt: time.Now().Add(-time.Minute)}), "ERR_JWT_EXPIRED", "exp", 401},
		{"not yet valid", userToken(logtotest.UserTokenOptions{NotBefore: time.Now().Add(time.Hour)}), "ERR_JWT_CLAIM_VALIDATION_FAILED", "nbf", 401},
		{"wrong audience", userToken(logtotest.UserTokenOptions{Resource: "https://other/api"}), "ERR_JWT_CLAIM_VALIDATION_FAILED", "aud", 401},
		{"wrong issuer", userToken(logtotest.UserTokenOptions{Issuer: "http://evil/oidc"}), "ERR_JWT_CLAIM_VALIDATION_FAILED", "iss", 401},
		{"unknown key", userToken(logtotest.UserTokenOptions{UnknownKey: true}), "ERR_JWKS_NO_MATCHING_KEY", "", 401},
		{"tampered", tamper(userToken(logtotest.UserTokenOptions{})), "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", "", 401},
		{"no all scope", userToken(logtotest.UserTokenOptions{Scopes: []string{"read"}}), "", "", 403},
		{"valid user token", userToken(logtotest.UserTokenOptions{}), "", "", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := call("Bearer " + c.token)
			if res.status != c.status {
				t.Fatalf("status %d, want %d: %s", res.status, c.status, res.body)
			}
			switch c.status {
			case 401:
				body := res.object(t)
				data, _ := body["data"].(map[string]any)
				if body["code"] != "auth.unauthorized" || data["code"] != c.code {
					t.Errorf("body = %s", res.body)
				}
				if c.claim != "" && data["claim"] != c.claim {
					t.Errorf("claim = %v, want %s", data["claim"], c.claim)
				}
			case 403:
				if string(res.body) != `{"code":"auth.forbidden","message":"Forbidden. Please check your user roles and permissions."}` {
					t.Errorf("body = %s", res.body)
				}
			}
		})
	}
}

// tamper flips a character of the signature.
func tamper(tok string) string {
	b := []byte(tok)
	i := len(b) - 5
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestStatusAndUnknownRoutes(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	res := send(t, newRequest(t, http.MethodGet, s.URL()+"/api/status", nil))
	if res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Errorf("status: %d %q", res.status, res.body)
	}
	res = send(t, newRequest(t, http.MethodGet, s.URL()+"/api/nope", nil))
	if res.status != http.StatusNotFound || string(res.body) != "Not Found" ||
		!strings.HasPrefix(res.header.Get("Content-Type"), "text/plain") {
		t.Errorf("unknown route: %d %q %q", res.status, res.body, res.header.Get("Content-Type"))
	}
}
