package logtotest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// managementResource is the Management API's resource indicator on a
// self-hosted Logto; it does not depend on the endpoint.
const managementResource = "https://default.logto.app/api"

// organizationURNPrefix prefixes the audience of organization tokens.
const organizationURNPrefix = "urn:logto:organization:"

// defaultTokenTTL is the access token lifetime of resources and organization
// tokens unless configured otherwise.
const defaultTokenTTL = 3600 * time.Second

// defaultUserClientID is the client_id claim of user tokens issued by
// IssueUserToken when none is given: the dashboard's SPA application.
const defaultUserClientID = "logtotest-spa"

// RotateSigningKey replaces the OIDC signing key: new tokens are signed with a
// new key. keepPrevious keeps the old key in the JWKS (Logto's rotation grace
// period) so that tokens it signed still verify; otherwise they stop
// verifying at once.
func (s *Server) RotateSigningKey(keepPrevious bool) error {
	if err := s.keys.rotate(keepPrevious); err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	return nil
}

// SigningKeyIDs returns the kid of every published signing key, the current
// one first.
func (s *Server) SigningKeyIDs() []string {
	keys := s.keys.all()
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.kid
	}
	return ids
}

// discovery is the OpenID provider metadata, as oidc-provider publishes it.
type discovery struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	ClaimsParameterSupported          bool     `json:"claims_parameter_supported"`
	RequestParameterSupported         bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	base := s.URL() + "/oidc"
	s.writeJSON(w, r, http.StatusOK, discovery{
		Issuer:                            s.Issuer(),
		AuthorizationEndpoint:             base + "/auth",
		TokenEndpoint:                     base + "/token",
		JWKSURI:                           base + "/jwks",
		UserinfoEndpoint:                  base + "/me",
		IntrospectionEndpoint:             base + "/token/introspection",
		RevocationEndpoint:                base + "/token/revocation",
		EndSessionEndpoint:                base + "/session/end",
		ResponseTypesSupported:            []string{"code", "id_token", "code id_token"},
		ResponseModesSupported:            []string{"form_post", "fragment", "query"},
		GrantTypesSupported:               []string{"implicit", "authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{"ES384"},
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_jwt", "client_secret_post", "private_key_jwt", "none"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		ScopesSupported: []string{"openid", "offline_access", "profile", "email", "phone", "custom_data",
			"identities", "roles", "urn:logto:scope:organizations", "urn:logto:scope:organization_roles"},
		ClaimsSupported: []string{"sub", "name", "picture", "username", "email", "email_verified", "phone_number",
			"phone_number_verified", "custom_data", "identities", "roles", "organizations", "organization_roles",
			"created_at", "updated_at", "iss", "auth_time", "sid"},
	})
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	keys := s.keys.all()
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(keys))}
	for _, k := range keys {
		j, err := k.jwk()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		set.Keys = append(set.Keys, j)
	}
	body, err := encodeJSON(set)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json; charset=utf-8")
	h.Set("Cache-Control", "no-cache, max-age=0, must-revalidate")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// userinfo is the /oidc/me body: Logto's standard claims.
type userinfo struct {
	Sub               string   `json:"sub"`
	Name              *string  `json:"name"`
	Picture           *string  `json:"picture"`
	Username          *string  `json:"username"`
	CreatedAt         int64    `json:"created_at"`
	UpdatedAt         int64    `json:"updated_at"`
	Email             *string  `json:"email"`
	EmailVerified     bool     `json:"email_verified"`
	PhoneNumber       *string  `json:"phone_number,omitempty"`
	PhoneVerified     *bool    `json:"phone_number_verified,omitempty"`
	Organizations     []string `json:"organizations,omitempty"`
	OrganizationRoles []string `json:"organization_roles,omitempty"`
}

func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	info, err := s.userinfo(r)
	if err != nil {
		var oe *oidcError
		if errors.As(err, &oe) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="invalid_token", error_description=%q`,
				s.Issuer(), oe.Description))
		}
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, info)
}

// userinfo answers for the user tokens the simulator issued (opaque or JWT),
// while they are unexpired, signed by a published key and their user exists.
func (s *Server) userinfo(r *http.Request) (userinfo, error) {
	invalid := newOIDCError(http.StatusUnauthorized, "invalid_token", "invalid token provided")
	authz := r.Header.Get("Authorization")
	if len(authz) < 7 || !strings.EqualFold(authz[:7], "bearer ") {
		return userinfo{}, newOIDCError(http.StatusUnauthorized, "invalid_token", "no access token provided")
	}
	value := strings.TrimSpace(authz[7:])
	key := value
	if strings.Count(value, ".") == 2 {
		claims, je := s.verifyUserJWT(value)
		if je != nil {
			return userinfo{}, invalid
		}
		key, _ = claims["jti"].(string)
	}
	tok, ok := s.tokens.get(key)
	if !ok || !s.clock().Before(tok.expiresAt) {
		return userinfo{}, invalid
	}

	s.data.mu.RLock()
	defer s.data.mu.RUnlock()
	u := s.data.users[tok.userID]
	if u == nil {
		return userinfo{}, invalid
	}
	info := userinfo{
		Sub: u.user.ID, Name: u.user.Name, Picture: u.user.Avatar, Username: u.user.Username,
		CreatedAt: u.user.CreatedAt, UpdatedAt: u.user.UpdatedAt,
		Email: u.user.PrimaryEmail, EmailVerified: u.user.PrimaryEmail != nil,
	}
	if u.user.PrimaryPhone != nil {
		verified := true
		info.PhoneNumber, info.PhoneVerified = u.user.PrimaryPhone, &verified
	}
	for _, sc := range tok.scopes {
		switch sc {
		case "urn:logto:scope:organizations":
			info.Organizations = sortedKeys(u.orgs)
		case "urn:logto:scope:organization_roles":
			for _, oid := range sortedKeys(u.orgs) {
				for _, ref := range s.data.memberRoles(s.data.orgs[oid].members[u.user.ID]) {
					info.OrganizationRoles = append(info.OrganizationRoles, oid+":"+ref.Name)
				}
			}
		}
	}
	return info, nil
}

// verifyUserJWT checks a user JWT's signature and times, whatever its
// audience (userinfo does not care which resource it was issued for).
func (s *Server) verifyUserJWT(token string) (jwt.MapClaims, *joseError) {
	claims := jwt.MapClaims{}
	aud := ""
	parser := jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithJSONNumber())
	if _, _, err := parser.ParseUnverified(token, claims); err == nil {
		switch a := claims["aud"].(type) {
		case string:
			aud = a
		case []any:
			if len(a) > 0 {
				aud, _ = a[0].(string)
			}
		}
	}
	return s.verifyAccessToken(token, aud)
}
