package logtotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// APIError is a Logto RequestError: the status and the JSON body
// {code, data?, details?, message} Logto answers with (logto-contract.md §4).
// The in-process helpers return it too, so a test can assert on the same code
// the HTTP API would have answered with.
type APIError struct {
	Status  int             `json:"-"`
	Code    string          `json:"code,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Details string          `json:"details,omitempty"`
	Message string          `json:"message"`
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("logto %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("logto %d %s: %s", e.Status, e.Code, e.Message)
}

func newAPIError(status int, code, message string) *APIError {
	return &APIError{Status: status, Code: code, Message: message}
}

func (e *APIError) withData(v any) *APIError {
	b, err := json.Marshal(v)
	if err == nil {
		e.Data = b
	}
	return e
}

// The errors below carry Logto's English messages verbatim.

func errOrgNotFound(id string) *APIError {
	return errNotExistsWithID("organizations", id)
}

func errNotExistsWithID(table, id string) *APIError {
	return newAPIError(http.StatusNotFound, "entity.not_exists_with_id",
		fmt.Sprintf("The %s with ID `%s` does not exist.", table, id))
}

func errEntityNotFound() *APIError {
	return newAPIError(http.StatusNotFound, "entity.not_found", "The resource does not exist.")
}

func errForeignKey() *APIError {
	return newAPIError(http.StatusUnprocessableEntity, "entity.relation_foreign_key_not_found",
		"Cannot find one or more foreign keys. Please check the input and ensure that all referenced entities exist.")
}

func errUniqueViolation() *APIError {
	return newAPIError(http.StatusUnprocessableEntity, "entity.unique_integrity_violation",
		"The entity already exists. Please check the input and try again.")
}

func errRequireMembership() *APIError {
	return newAPIError(http.StatusUnprocessableEntity, "organization.require_membership",
		"The user must be a member of the organization to proceed.")
}

func errRoleNamesNotFound(names []string) *APIError {
	return newAPIError(http.StatusUnprocessableEntity, "organization.role_names_not_found",
		fmt.Sprintf("Cannot find organization roles with names: %s.", strings.Join(names, ", ")))
}

func errInvalidPagination() *APIError {
	return newAPIError(http.StatusBadRequest, "guard.invalid_pagination",
		"The request pagination value is invalid.")
}

func errInvalidSearch(details string) *APIError {
	e := newAPIError(http.StatusBadRequest, "request.invalid_input", "Input is invalid. "+details)
	e.Details = details
	return e
}

func errUserConflict(code, message string) *APIError {
	return newAPIError(http.StatusUnprocessableEntity, code, message)
}

func errAuthHeaderMissing() *APIError {
	return newAPIError(http.StatusUnauthorized, "auth.authorization_header_missing",
		"Authorization header is missing.")
}

func errAuthTypeNotSupported() *APIError {
	return newAPIError(http.StatusUnauthorized, "auth.authorization_token_type_not_supported",
		"Authorization type is not supported.").withData(map[string][]string{"supportedTypes": {"Bearer"}})
}

func errUnauthorized(jose any) *APIError {
	return newAPIError(http.StatusUnauthorized, "auth.unauthorized",
		"Unauthorized. Please check credentials and its scope.").withData(jose)
}

func errSubMissing() *APIError {
	return newAPIError(http.StatusUnauthorized, "auth.jwt_sub_missing", "Missing `sub` in JWT.")
}

func errForbidden() *APIError {
	return newAPIError(http.StatusForbidden, "auth.forbidden",
		"Forbidden. Please check your user roles and permissions.")
}

// zodIssue is one entry of a ZodError, the data Logto attaches to
// guard.invalid_input.
type zodIssue struct {
	Code      string `json:"code"`
	Expected  string `json:"expected,omitempty"`
	Received  string `json:"received,omitempty"`
	Minimum   *int   `json:"minimum,omitempty"`
	Maximum   *int   `json:"maximum,omitempty"`
	Type      string `json:"type,omitempty"`
	Inclusive *bool  `json:"inclusive,omitempty"`
	Exact     *bool  `json:"exact,omitempty"`
	Path      []any  `json:"path"`
	Message   string `json:"message"`
}

// detail renders the issue the way Logto's formatZodError does.
func (z zodIssue) detail() string {
	parts := make([]string, len(z.Path))
	for i, p := range z.Path {
		parts[i] = fmt.Sprint(p)
	}
	base := fmt.Sprintf("Error in key path %q: (%s) ", strings.Join(parts, "."), z.Code)
	if z.Code == "invalid_type" {
		return base + fmt.Sprintf("Expected %s but received %s.", z.Expected, z.Received)
	}
	return base + z.Message
}

// errGuard is the 400 guard.invalid_input Logto answers when a body, query or
// path parameter fails its zod guard; where names the part ("body", "query").
func errGuard(where string, issues []zodIssue) *APIError {
	e := newAPIError(http.StatusBadRequest, "guard.invalid_input",
		fmt.Sprintf("The request %s is invalid.", where))
	e.withData(struct {
		Issues []zodIssue `json:"issues"`
		Name   string     `json:"name"`
	}{issues, "ZodError"})
	details := make([]string, len(issues))
	for i, is := range issues {
		details[i] = is.detail()
	}
	e.Details = strings.Join(details, "\n")
	return e
}

// oidcError is the body of an error from Logto's OIDC provider: Logto prefixes
// the OAuth error with its own code and message (logto-contract.md §1).
type oidcError struct {
	status      int
	Code        string `json:"code"`
	Message     string `json:"message"`
	ErrorURI    string `json:"error_uri,omitempty"`
	Err         string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// oidcMessage is Logto's English message for the OAuth errors it knows; other
// errors get the provider_error_fallback message.
func oidcMessage(oauthErr string) (string, bool) {
	switch oauthErr {
	case "invalid_scope":
		return "Invalid scope: %s.", true
	case "invalid_token":
		return "Invalid token provided.", true
	case "invalid_request":
		return "Request is invalid.", true
	case "invalid_grant":
		return "Grant request is invalid.", true
	case "access_denied":
		return "Access denied.", true
	case "invalid_target":
		return "Invalid resource indicator.", true
	case "unsupported_grant_type":
		return "Unsupported `grant_type` requested.", true
	}
	return "", false
}

func newOIDCError(status int, oauthErr, description string) *oidcError {
	code := "oidc." + oauthErr
	msg, ok := oidcMessage(oauthErr)
	switch {
	case !ok:
		msg = fmt.Sprintf("An OIDC error occurred: %s.", code)
	case strings.Contains(msg, "%s"):
		msg = fmt.Sprintf(msg, description)
	}
	e := &oidcError{status: status, Code: code, Message: msg, Err: oauthErr, Description: description}
	if oauthErr == "invalid_grant" {
		e.ErrorURI = "https://openid.sh/debug/invalid_grant"
	}
	return e
}

func (e *oidcError) Error() string {
	return fmt.Sprintf("oidc %d %s: %s", e.status, e.Err, e.Description)
}
