package logto

import "encoding/json"

// Wire objects, with Logto 1.42's exact JSON names. Unknown fields are
// ignored so that newer Logto versions keep decoding; nullable strings are
// pointers so that null and "" stay distinct; timestamps are epoch
// milliseconds as Logto sends them (time.UnixMilli converts). Free-form
// objects (customData) decode with json.Number for numbers, so they pass
// through unchanged.

// Organization is an organization as GET /api/organizations returns it. Its
// customData carries the hierarchy (type, createdBy, suspendedAt, ...). It is
// kept as the raw JSON Logto sent: the hierarchy parses the few keys it reads
// once per rebuild and passes the object through verbatim, so decoding a
// 100,000-organization listing into maps only to encode them again would be
// pure waste.
type Organization struct {
	TenantID      string               `json:"tenantId"`
	ID            string               `json:"id"`
	Name          string               `json:"name"`
	Description   *string              `json:"description"`
	CustomData    json.RawMessage      `json:"customData"`
	IsMFARequired bool                 `json:"isMfaRequired"`
	Color         OrganizationColor    `json:"color"`
	Branding      OrganizationBranding `json:"branding"`
	CustomCSS     *string              `json:"customCss"`
	CreatedAt     int64                `json:"createdAt"`
	// IsTrustedDeviceAllowed is only sent when Logto's dev features are on.
	IsTrustedDeviceAllowed *bool `json:"isTrustedDeviceAllowed,omitempty"`
}

// OrganizationColor is an organization's sign-in colour scheme.
type OrganizationColor struct {
	PrimaryColor      string `json:"primaryColor,omitempty"`
	IsDarkModeEnabled bool   `json:"isDarkModeEnabled,omitempty"`
	DarkPrimaryColor  string `json:"darkPrimaryColor,omitempty"`
}

// OrganizationBranding is an organization's sign-in logos.
type OrganizationBranding struct {
	LogoURL     string `json:"logoUrl,omitempty"`
	DarkLogoURL string `json:"darkLogoUrl,omitempty"`
	Favicon     string `json:"favicon,omitempty"`
	DarkFavicon string `json:"darkFavicon,omitempty"`
}

// OrganizationRoleRef is the {id, name} form of an organization role that
// membership listings attach to users and organizations.
type OrganizationRoleRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// UserOrganization is one of a user's organizations, with the roles the user
// holds in it (GET /api/users/{id}/organizations).
type UserOrganization struct {
	Organization
	OrganizationRoles []OrganizationRoleRef `json:"organizationRoles"`
}

// User is a Logto user (GET /api/users/{id}). Its customData carries the
// home organization (organizationId), userRoleIds and createdBy.
type User struct {
	ID            string                  `json:"id"`
	Username      *string                 `json:"username"`
	PrimaryEmail  *string                 `json:"primaryEmail"`
	PrimaryPhone  *string                 `json:"primaryPhone"`
	Name          *string                 `json:"name"`
	Avatar        *string                 `json:"avatar"`
	CustomData    map[string]any          `json:"customData"`
	Identities    map[string]UserIdentity `json:"identities"`
	LastSignInAt  *int64                  `json:"lastSignInAt"`
	CreatedAt     int64                   `json:"createdAt"`
	UpdatedAt     int64                   `json:"updatedAt"`
	Profile       UserProfile             `json:"profile"`
	ApplicationID *string                 `json:"applicationId"`
	CIMDClientID  *string                 `json:"cimdClientId"`
	IsSuspended   bool                    `json:"isSuspended"`
	HasPassword   bool                    `json:"hasPassword"`
	// SSOIdentities is only sent when asked for (GetUser with includeSSO).
	SSOIdentities []SSOIdentity `json:"ssoIdentities,omitempty"`
}

// UserIdentity is a social identity linked to a user, keyed by connector target.
type UserIdentity struct {
	UserID  string         `json:"userId"`
	Details map[string]any `json:"details,omitempty"`
}

// UserProfile holds the OIDC standard profile claims Logto stores.
type UserProfile struct {
	FamilyName        string       `json:"familyName,omitempty"`
	GivenName         string       `json:"givenName,omitempty"`
	MiddleName        string       `json:"middleName,omitempty"`
	Nickname          string       `json:"nickname,omitempty"`
	PreferredUsername string       `json:"preferredUsername,omitempty"`
	Profile           string       `json:"profile,omitempty"`
	Website           string       `json:"website,omitempty"`
	Gender            string       `json:"gender,omitempty"`
	Birthdate         string       `json:"birthdate,omitempty"`
	Zoneinfo          string       `json:"zoneinfo,omitempty"`
	Locale            string       `json:"locale,omitempty"`
	Address           *UserAddress `json:"address,omitempty"`
}

// UserAddress is the OIDC address claim.
type UserAddress struct {
	Formatted     string `json:"formatted,omitempty"`
	StreetAddress string `json:"streetAddress,omitempty"`
	Locality      string `json:"locality,omitempty"`
	Region        string `json:"region,omitempty"`
	PostalCode    string `json:"postalCode,omitempty"`
	Country       string `json:"country,omitempty"`
}

// SSOIdentity is an enterprise-SSO identity linked to a user.
type SSOIdentity struct {
	TenantID       string         `json:"tenantId"`
	ID             string         `json:"id"`
	UserID         string         `json:"userId"`
	Issuer         string         `json:"issuer"`
	IdentityID     string         `json:"identityId"`
	Detail         map[string]any `json:"detail"`
	CreatedAt      int64          `json:"createdAt"`
	UpdatedAt      int64          `json:"updatedAt"`
	SSOConnectorID string         `json:"ssoConnectorId"`
}

// Member is a user as an organization's member listing returns it: the user
// fields plus the organization roles held there (sorted by name).
type Member struct {
	User
	OrganizationRoles []OrganizationRoleRef `json:"organizationRoles"`
}

// OrganizationRole is an organization-template role. Scopes and
// ResourceScopes are only filled by ListOrganizationRoles.
type OrganizationRole struct {
	TenantID       string                  `json:"tenantId"`
	ID             string                  `json:"id"`
	Name           string                  `json:"name"`
	Description    *string                 `json:"description"`
	Type           string                  `json:"type"` // "User" or "MachineToMachine"
	Scopes         []OrganizationScopeRef  `json:"scopes,omitempty"`
	ResourceScopes []OrganizationRoleScope `json:"resourceScopes,omitempty"`
}

// OrganizationScopeRef is the {id, name} form of an organization scope.
type OrganizationScopeRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// OrganizationRoleScope is an API-resource scope carried by an organization role.
type OrganizationRoleScope struct {
	ID       string      `json:"id"`
	Name     string      `json:"name"`
	Resource ResourceRef `json:"resource"`
}

// ResourceRef is the {id, name} form of an API resource.
type ResourceRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// OrganizationScope is an organization-template permission, e.g. read:customers.
type OrganizationScope struct {
	TenantID    string  `json:"tenantId"`
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
}

// Role is a tenant (global) role held by a user, unrelated to organization roles.
type Role struct {
	TenantID    string `json:"tenantId"`
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        string `json:"type"` // "User" or "MachineToMachine"
	IsDefault   bool   `json:"isDefault"`
}

// Scope is an API-resource permission granted through a global role.
type Scope struct {
	TenantID    string    `json:"tenantId"`
	ID          string    `json:"id"`
	ResourceID  string    `json:"resourceId"`
	Name        string    `json:"name"`
	Description *string   `json:"description"`
	CreatedAt   int64     `json:"createdAt"`
	Resource    *Resource `json:"resource,omitempty"`
}

// Resource is an API resource (the audience a scope belongs to).
type Resource struct {
	TenantID  string `json:"tenantId"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Indicator string `json:"indicator"`
	IsDefault bool   `json:"isDefault"`
}

// UserInfo is what GET /oidc/me answers for a user's access token: who the
// token belongs to, with the standard claims this service reads. Claims holds
// every claim as sent, for the ones not typed here.
type UserInfo struct {
	Sub                 string         `json:"sub"`
	Name                *string        `json:"name,omitempty"`
	Picture             *string        `json:"picture,omitempty"`
	Username            *string        `json:"username,omitempty"`
	Email               *string        `json:"email,omitempty"`
	EmailVerified       bool           `json:"email_verified,omitempty"`
	PhoneNumber         *string        `json:"phone_number,omitempty"`
	PhoneNumberVerified bool           `json:"phone_number_verified,omitempty"`
	Organizations       []string       `json:"organizations,omitempty"`
	OrganizationRoles   []string       `json:"organization_roles,omitempty"` // "<orgId>:<roleName>"
	Roles               []string       `json:"roles,omitempty"`
	CreatedAt           int64          `json:"created_at,omitempty"` // epoch ms
	UpdatedAt           int64          `json:"updated_at,omitempty"` // epoch ms
	Claims              map[string]any `json:"-"`
}

// OIDCConfiguration is the part of Logto's discovery document a resource
// server needs to validate tokens and reach the OIDC endpoints.
type OIDCConfiguration struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	AuthorizationEndpoint            string   `json:"authorization_endpoint"`
	TokenEndpoint                    string   `json:"token_endpoint"`
	UserinfoEndpoint                 string   `json:"userinfo_endpoint"`
	IntrospectionEndpoint            string   `json:"introspection_endpoint,omitempty"`
	EndSessionEndpoint               string   `json:"end_session_endpoint,omitempty"`
	ScopesSupported                  []string `json:"scopes_supported,omitempty"`
	ClaimsSupported                  []string `json:"claims_supported,omitempty"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported,omitempty"`
}
