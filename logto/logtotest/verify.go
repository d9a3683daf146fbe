package logtotest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// joseError is the jose library error Logto serializes into the data of a
// 401 auth.unauthorized: own enumerable properties in their JavaScript order.
type joseError struct {
	Code    string          `json:"code"`
	Name    string          `json:"name"`
	Claim   string          `json:"claim,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	message string
}

func (e *joseError) Error() string { return e.message }

func joseInvalid() *joseError {
	return &joseError{Code: "ERR_JWS_INVALID", Name: "JWSInvalid", message: "Invalid Compact JWS"}
}

func joseNoMatchingKey() *joseError {
	return &joseError{Code: "ERR_JWKS_NO_MATCHING_KEY", Name: "JWKSNoMatchingKey",
		message: "no applicable key found in the JSON Web Key Set"}
}

func joseNotSupported() *joseError {
	return &joseError{Code: "ERR_JOSE_NOT_SUPPORTED", Name: "JOSENotSupported",
		message: `Unsupported "alg" value for a JSON Web Key Set`}
}

func joseBadSignature() *joseError {
	return &joseError{Code: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", Name: "JWSSignatureVerificationFailed",
		message: "signature verification failed"}
}

func joseClaim(payload json.RawMessage, claim, reason, message string) *joseError {
	e := &joseError{Code: "ERR_JWT_CLAIM_VALIDATION_FAILED", Name: "JWTClaimValidationFailed",
		Claim: claim, Reason: reason, Payload: payload, message: message}
	if claim == "exp" && reason == "check_failed" {
		e.Code, e.Name = "ERR_JWT_EXPIRED", "JWTExpired"
	}
	return e
}

// knownAlgs are JWS algorithms jose maps to a key type; a token using one of
// them that no published key matches is JWKSNoMatchingKey, anything else is
// JOSENotSupported.
func knownAlg(alg string) bool {
	switch alg {
	case "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"HS256", "HS384", "HS512", "EdDSA":
		return true
	}
	return false
}

// verifyAccessToken checks a JWT the way Logto's koa-auth does with jose's
// jwtVerify against the local JWKS: key by kid, ES384 signature, then iss,
// aud, nbf and exp in jose's order. It returns the claims or a joseError.
func (s *Server) verifyAccessToken(token, audience string) (jwt.MapClaims, *joseError) {
	keys := s.keys.all()
	v, ok := s.verified.get(token, keys)
	if !ok {
		var je *joseError
		v, je = verifySignature(token, keys)
		if je != nil {
			return nil, je
		}
		s.verified.put(token, v)
	}
	if je := checkClaims(v.claims, v.payload, s.Issuer(), audience, s.clock()); je != nil {
		return nil, je
	}
	return v.claims, nil
}

// verifiedToken is a token whose signature checked out: its claims (read
// only from then on), raw payload and signing key.
type verifiedToken struct {
	claims  jwt.MapClaims
	payload json.RawMessage
	kid     string
}

// verifySignature finds the token's key among the published ones and checks
// the ES384 signature.
func verifySignature(token string, keys []*signingKey) (verifiedToken, *joseError) {
	parser := jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithJSONNumber())
	claims := jwt.MapClaims{}
	var usedKid string
	_, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		alg, _ := t.Header["alg"].(string)
		if alg != jwt.SigningMethodES384.Alg() {
			if knownAlg(alg) {
				return nil, joseNoMatchingKey()
			}
			return nil, joseNotSupported()
		}
		kid, hasKid := t.Header["kid"].(string)
		var set jwt.VerificationKeySet
		for _, k := range keys {
			if !hasKid || k.kid == kid {
				set.Keys = append(set.Keys, &k.priv.PublicKey)
			}
		}
		if len(set.Keys) == 0 {
			return nil, joseNoMatchingKey()
		}
		usedKid = kid
		return set, nil
	})
	if err != nil {
		var je *joseError
		switch {
		case errors.As(err, &je):
			return verifiedToken{}, je
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return verifiedToken{}, joseBadSignature()
		case errors.Is(err, jwt.ErrTokenUnverifiable):
			return verifiedToken{}, joseNotSupported()
		default:
			return verifiedToken{}, joseInvalid()
		}
	}
	return verifiedToken{claims: claims, payload: rawPayload(token), kid: usedKid}, nil
}

// verifyCache remembers tokens whose signature verified, so that a client
// reusing its token does not pay an ECDSA P-384 verification per call. An
// entry counts only while its key is still published; time claims are
// checked on every use.
type verifyCache struct {
	mu sync.Mutex
	m  map[string]verifiedToken
}

// maxVerified bounds the cache; it is simply emptied when full.
const maxVerified = 4096

func (c *verifyCache) get(token string, keys []*signingKey) (verifiedToken, bool) {
	c.mu.Lock()
	v, ok := c.m[token]
	c.mu.Unlock()
	if !ok || v.kid == "" {
		return verifiedToken{}, false
	}
	for _, k := range keys {
		if k.kid == v.kid {
			return v, true
		}
	}
	return verifiedToken{}, false
}

func (c *verifyCache) put(token string, v verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[string]verifiedToken)
	}
	c.m[token] = v
}

// rawPayload returns the decoded payload segment, which jose echoes in claim
// validation errors.
func rawPayload(token string) json.RawMessage {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || !json.Valid(b) {
		return nil
	}
	return b
}

// checkClaims validates registered claims in jose's order: required iss/aud,
// iss, aud, then the timestamps with no clock tolerance.
func checkClaims(c jwt.MapClaims, payload json.RawMessage, issuer, audience string, now time.Time) *joseError {
	if _, ok := c["iss"]; !ok {
		return joseClaim(payload, "iss", "missing", `missing required "iss" claim`)
	}
	if _, ok := c["aud"]; !ok {
		return joseClaim(payload, "aud", "missing", `missing required "aud" claim`)
	}
	if iss, _ := c["iss"].(string); iss != issuer {
		return joseClaim(payload, "iss", "check_failed", `unexpected "iss" claim value`)
	}
	if !audienceMatches(c["aud"], audience) {
		return joseClaim(payload, "aud", "check_failed", `unexpected "aud" claim value`)
	}
	sec := now.Unix()
	for _, name := range []string{"iat", "nbf", "exp"} {
		v, ok := c[name]
		if !ok {
			continue
		}
		n, isNum := v.(json.Number)
		f, err := n.Float64()
		if !isNum || err != nil {
			return joseClaim(payload, name, "invalid", `"`+name+`" claim must be a number`)
		}
		switch {
		case name == "nbf" && f > float64(sec):
			return joseClaim(payload, "nbf", "check_failed", `"nbf" claim timestamp check failed`)
		case name == "exp" && f <= float64(sec):
			return joseClaim(payload, "exp", "check_failed", `"exp" claim timestamp check failed`)
		}
	}
	return nil
}

func audienceMatches(aud any, want string) bool {
	switch v := aud.(type) {
	case string:
		return v == want
	case []any:
		for _, a := range v {
			if s, ok := a.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// bearerToken extracts the token the way koa-auth does: the header must start
// with "Bearer" (case-sensitive) and the token follows the next character.
func bearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", errAuthHeaderMissing()
	}
	if !strings.HasPrefix(h, "Bearer") {
		return "", errAuthTypeNotSupported()
	}
	if len(h) <= len("Bearer ") {
		return "", nil
	}
	return h[len("Bearer "):], nil
}

// authorizeManagement enforces koa-auth on /api: a JWT for the management
// resource with a sub and the "all" scope.
func (s *Server) authorizeManagement(r *http.Request) error {
	token, err := bearerToken(r)
	if err != nil {
		return err
	}
	claims, je := s.verifyAccessToken(token, managementResource)
	if je != nil {
		return errUnauthorized(je)
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return errSubMissing()
	}
	scope, ok := claims["scope"]
	if !ok {
		scope = ""
	}
	str, isStr := scope.(string)
	if !isStr {
		return errUnauthorized(struct {
			Issues []zodIssue `json:"issues"`
			Name   string     `json:"name"`
		}{[]zodIssue{{Code: "invalid_type", Expected: "string", Received: jsonKindOf(scope), Path: []any{},
			Message: "Expected string, received " + jsonKindOf(scope)}}, "ZodError"})
	}
	for _, sc := range strings.Split(str, " ") {
		if sc == "all" {
			return nil
		}
	}
	return errForbidden()
}

func jsonKindOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "unknown"
	}
	return jsonKind(b)
}
