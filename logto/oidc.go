package logto

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// UserInfo asks Logto who a user's access token belongs to (GET /oidc/me,
// authenticated with that token, not the management one). It is how a
// dashboard login is checked; a token Logto does not accept yields
// ErrUnauthorized.
func (c *Client) UserInfo(ctx context.Context, userAccessToken string) (UserInfo, error) {
	const route = "GET /oidc/me"
	var info UserInfo
	if strings.TrimSpace(userAccessToken) == "" || strings.ContainsAny(userAccessToken, " \t\r\n") {
		return info, &Error{Op: route, Kind: KindUnauthorized, Message: "malformed access token"}
	}
	resp, err := c.getJSON(ctx, &request{group: GroupOIDC, route: route, path: "/oidc/me",
		auth: authBearer, bearer: userAccessToken}, &info)
	if err != nil {
		return UserInfo{}, err
	}
	if err := decodeBody(route, resp, &info.Claims); err != nil {
		return UserInfo{}, err
	}
	if info.Sub == "" {
		return UserInfo{}, &Error{Op: route, Kind: KindInvalidResponse, Status: resp.status, Message: "userinfo without sub"}
	}
	return info, nil
}

// Discovery reads Logto's OpenID configuration (issuer, jwks_uri, endpoints),
// which token verification needs.
func (c *Client) Discovery(ctx context.Context) (OIDCConfiguration, error) {
	const route = "GET /oidc/.well-known/openid-configuration"
	var conf OIDCConfiguration
	_, err := c.getJSON(ctx, &request{group: GroupOIDC, route: route,
		path: "/oidc/.well-known/openid-configuration"}, &conf)
	if err == nil && conf.Issuer == "" {
		err = &Error{Op: route, Kind: KindInvalidResponse, Status: http.StatusOK, Message: "discovery document without issuer"}
	}
	return conf, err
}

// FetchJWKS returns Logto's JSON Web Key Set (GET /oidc/jwks) as raw bytes,
// for the token verifier to parse with its JOSE library. The document is
// checked to be a JSON object with a "keys" array, so an HTML error page
// never reaches the verifier.
func (c *Client) FetchJWKS(ctx context.Context) ([]byte, error) {
	const route = "GET /oidc/jwks"
	resp, err := c.do(ctx, &request{group: GroupOIDC, method: http.MethodGet, route: route, path: "/oidc/jwks"})
	if err != nil {
		return nil, err
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil || doc.Keys == nil {
		return nil, &Error{Op: route, Kind: KindInvalidResponse, Status: resp.status, Message: "not a JWKS document"}
	}
	return resp.body, nil
}
