package logtotest

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenParams reads the token request parameters: a form body, or a JSON
// body rewritten into parameters as Logto does.
func tokenParams(r *http.Request) (url.Values, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return nil, newOIDCError(http.StatusBadRequest, "invalid_request", "failed to read the request body")
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mediaType == "application/json":
		var obj map[string]any
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, newOIDCError(http.StatusBadRequest, "invalid_request", "failed to parse the request body")
		}
		params := url.Values{}
		for k, v := range obj {
			switch v := v.(type) {
			case []any:
				for _, item := range v {
					params.Add(k, fmt.Sprint(item))
				}
			case nil:
			default:
				params.Set(k, fmt.Sprint(v))
			}
		}
		return params, nil
	case mediaType == "application/x-www-form-urlencoded" || len(body) == 0:
		params, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, newOIDCError(http.StatusBadRequest, "invalid_request", "failed to parse the request body")
		}
		return params, nil
	default:
		return nil, newOIDCError(http.StatusBadRequest, "invalid_request",
			"only application/x-www-form-urlencoded content-type bodies are supported")
	}
}

// clientCredentials is how the client authenticated at the token endpoint.
type clientCredentials struct {
	id, secret string
	hasSecret  bool
}

// authenticateClient extracts client_secret_basic or client_secret_post
// credentials, refusing a request that uses both or neither.
func authenticateClient(r *http.Request, params url.Values) (clientCredentials, error) {
	authz := r.Header.Get("Authorization")
	_, hasPostSecret := params["client_secret"]
	if strings.HasPrefix(strings.ToLower(authz), "basic ") {
		if hasPostSecret {
			return clientCredentials{}, newOIDCError(http.StatusBadRequest, "invalid_request",
				"client authentication must only be provided using one mechanism")
		}
		id, secret, ok := r.BasicAuth()
		if !ok {
			return clientCredentials{}, newOIDCError(http.StatusBadRequest, "invalid_request",
				"invalid authorization header value format")
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return clientCredentials{}, newOIDCError(http.StatusBadRequest, "invalid_request",
				"client_id and client_secret in the authorization header are not properly encoded")
		}
		if bodyID := params.Get("client_id"); bodyID != "" && bodyID != id {
			return clientCredentials{}, newOIDCError(http.StatusBadRequest, "invalid_request",
				"mismatch in body and authorization client ids")
		}
		return clientCredentials{id: id, secret: secret, hasSecret: true}, nil
	}
	id := params.Get("client_id")
	if id == "" {
		return clientCredentials{}, newOIDCError(http.StatusBadRequest, "invalid_request",
			"no client authentication mechanism provided")
	}
	return clientCredentials{id: id, secret: params.Get("client_secret"), hasSecret: hasPostSecret}, nil
}

// tokenResponse is the token endpoint's success body. Scope is a pointer
// because organization tokens echo an empty scope while resource tokens omit
// it.
type tokenResponse struct {
	AccessToken string  `json:"access_token"`
	ExpiresIn   int64   `json:"expires_in"`
	TokenType   string  `json:"token_type"`
	Scope       *string `json:"scope,omitempty"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	resp, err := s.token(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// token runs the client_credentials grant (logto-contract.md §1, §6).
func (s *Server) token(r *http.Request) (tokenResponse, error) {
	params, err := tokenParams(r)
	if err != nil {
		return tokenResponse{}, err
	}
	cred, err := authenticateClient(r, params)
	if err != nil {
		return tokenResponse{}, err
	}
	now := s.clock()

	s.data.mu.RLock()
	defer s.data.mu.RUnlock()
	app := s.data.apps[cred.id]
	if app == nil {
		return tokenResponse{}, newOIDCError(http.StatusBadRequest, "invalid_client", "invalid client "+cred.id)
	}
	if !cred.hasSecret || subtle.ConstantTimeCompare([]byte(cred.secret), []byte(app.secret)) != 1 {
		return tokenResponse{}, newOIDCError(http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	if app.secretExpires != 0 && now.UnixMilli() >= app.secretExpires {
		return tokenResponse{}, newOIDCError(http.StatusBadRequest, "invalid_request", "client secret has expired")
	}
	switch grant := params.Get("grant_type"); grant {
	case "client_credentials":
	case "":
		return tokenResponse{}, newOIDCError(http.StatusBadRequest, "invalid_request",
			"missing required parameter 'grant_type'")
	case "authorization_code", "refresh_token", "implicit", "urn:ietf:params:oauth:grant-type:token-exchange":
		return tokenResponse{}, newOIDCError(http.StatusBadRequest, "unauthorized_client",
			"requested grant type is not allowed for this client")
	default:
		return tokenResponse{}, newOIDCError(http.StatusBadRequest, "unsupported_grant_type",
			"unsupported grant_type requested")
	}
	return s.clientCredentialsGrant(app, params, now)
}

// clientCredentialsGrant issues an M2M token. Callers hold the read lock.
func (s *Server) clientCredentialsGrant(app *appEntry, params url.Values, now time.Time) (tokenResponse, error) {
	resources := params["resource"]
	if len(resources) > 1 {
		return tokenResponse{}, newOIDCError(http.StatusBadRequest, "invalid_target",
			"only a single resource indicator value is supported for this grant type")
	}
	indicator := ""
	if len(resources) == 1 {
		indicator = resources[0]
	}
	orgID := params.Get("organization_id")
	var org *orgEntry
	if orgID != "" {
		org = s.data.orgs[orgID]
		if org == nil || org.apps[app.id] == nil {
			return tokenResponse{}, newOIDCError(http.StatusForbidden, "access_denied",
				"app has not associated with the organization")
		}
	}
	var res *Resource
	switch {
	case indicator != "":
		res = s.data.resourceByIndicator(indicator)
		if res == nil {
			return tokenResponse{}, newOIDCError(http.StatusBadRequest, "invalid_target",
				"resource indicator is missing, or unknown")
		}
	case org == nil:
		res = s.data.defaultResource()
		if res == nil {
			return tokenResponse{}, newOIDCError(http.StatusBadRequest, "invalid_target",
				"both `resource` and `organization_id` are not provided")
		}
	}

	requested := strings.Fields(params.Get("scope"))
	ttl := defaultTokenTTL
	claims := jwt.MapClaims{"jti": base64.RawURLEncoding.EncodeToString(randomBytes(16)),
		"sub": app.id, "client_id": app.id, "iss": s.Issuer()}
	var granted map[string]struct{}
	switch {
	case res != nil && org != nil:
		granted = s.orgRoleResourceScopes(org.apps[app.id], res.ID)
		claims["organization_id"] = org.org.ID
	case res != nil:
		granted = s.appResourceScopes(app, res.ID)
	default:
		granted = s.orgRoleScopes(org.apps[app.id])
	}
	if res != nil {
		claims["aud"] = res.Indicator
		ttl = time.Duration(res.AccessTokenTTL) * time.Second
	} else {
		claims["aud"] = organizationURNPrefix + org.org.ID
	}
	scope := intersectScopes(requested, granted)
	if scope != "" || res == nil {
		claims["scope"] = scope
	}
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(ttl).Unix()
	tok, err := s.keys.signer().sign(claims)
	if err != nil {
		return tokenResponse{}, err
	}
	resp := tokenResponse{AccessToken: tok, ExpiresIn: int64(ttl / time.Second), TokenType: "Bearer"}
	if _, ok := claims["scope"]; ok {
		resp.Scope = &scope
	}
	return resp, nil
}

// intersectScopes keeps the requested scopes that are granted, in request
// order, without duplicates.
func intersectScopes(requested []string, granted map[string]struct{}) string {
	seen := make(map[string]struct{}, len(requested))
	var out []string
	for _, sc := range requested {
		if _, ok := granted[sc]; !ok {
			continue
		}
		if _, dup := seen[sc]; dup {
			continue
		}
		seen[sc] = struct{}{}
		out = append(out, sc)
	}
	return strings.Join(out, " ")
}

// appResourceScopes are the scope names of resourceID granted to an app by
// its global roles. Callers hold a lock.
func (s *Server) appResourceScopes(app *appEntry, resourceID string) map[string]struct{} {
	names := make(map[string]struct{})
	for rid := range app.roles {
		if role := s.data.roles[rid]; role != nil {
			for n := range s.data.scopeNames(role.scopeIDs, resourceID) {
				names[n] = struct{}{}
			}
		}
	}
	return names
}

// orgRoleResourceScopes are the scope names of resourceID carried by the
// given organization roles. Callers hold a lock.
func (s *Server) orgRoleResourceScopes(roleIDs map[string]struct{}, resourceID string) map[string]struct{} {
	names := make(map[string]struct{})
	for rid := range roleIDs {
		if role := s.data.orgRoles[rid]; role != nil {
			for n := range s.data.scopeNames(role.resourceScopes, resourceID) {
				names[n] = struct{}{}
			}
		}
	}
	return names
}

// orgRoleScopes are the organization scope names carried by the given
// organization roles. Callers hold a lock.
func (s *Server) orgRoleScopes(roleIDs map[string]struct{}) map[string]struct{} {
	names := make(map[string]struct{})
	for rid := range roleIDs {
		if role := s.data.orgRoles[rid]; role != nil {
			for sid := range role.scopeIDs {
				if sc := s.data.orgScopes[sid]; sc != nil {
					names[sc.Name] = struct{}{}
				}
			}
		}
	}
	return names
}
