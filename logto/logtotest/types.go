package logtotest

import "encoding/json"

// The types below are the JSON shapes a Logto 1.42 Management API answers with,
// field for field and in the same key order (logto-contract.md §2, §3). They are
// exported so that tests can decode simulator answers and so that the in-process
// helpers can return what the HTTP API would have returned; the project's own
// client defines its own types and never imports these.

// Organization is a Logto organization (logto-contract.md §2.1). CustomData,
// Color and Branding are always JSON objects; CreatedAt is epoch milliseconds.
type Organization struct {
	TenantID      string          `json:"tenantId"`
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	Description   *string         `json:"description"`
	CustomData    json.RawMessage `json:"customData"`
	IsMfaRequired bool            `json:"isMfaRequired"`
	Color         json.RawMessage `json:"color"`
	Branding      json.RawMessage `json:"branding"`
	CustomCSS     *string         `json:"customCss"`
	CreatedAt     int64           `json:"createdAt"`
}

// UserInfo holds the user fields Logto calls "user info" (logto-contract.md
// §3.1 without hasPassword). It is what organization member lists and webhook
// snapshots carry, which is why it is separate from User.
type UserInfo struct {
	ID            string          `json:"id"`
	Username      *string         `json:"username"`
	PrimaryEmail  *string         `json:"primaryEmail"`
	PrimaryPhone  *string         `json:"primaryPhone"`
	Name          *string         `json:"name"`
	Avatar        *string         `json:"avatar"`
	CustomData    json.RawMessage `json:"customData"`
	Identities    json.RawMessage `json:"identities"`
	LastSignInAt  *int64          `json:"lastSignInAt"`
	CreatedAt     int64           `json:"createdAt"`
	UpdatedAt     int64           `json:"updatedAt"`
	Profile       json.RawMessage `json:"profile"`
	ApplicationID *string         `json:"applicationId"`
	CimdClientID  *string         `json:"cimdClientId"`
	IsSuspended   bool            `json:"isSuspended"`
}

// User is the body of GET /api/users/{id} and of user list items.
type User struct {
	UserInfo
	HasPassword bool `json:"hasPassword"`
}

// RoleRef is the {id, name} pair Logto attaches to memberships as
// organizationRoles.
type RoleRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// OrganizationWithRoles is an item of GET /api/users/{id}/organizations.
type OrganizationWithRoles struct {
	Organization
	OrganizationRoles []RoleRef `json:"organizationRoles"`
}

// Member is an item of GET /api/organizations/{id}/users.
type Member struct {
	UserInfo
	OrganizationRoles []RoleRef `json:"organizationRoles"`
}

// Role types, as Logto spells them.
const (
	RoleTypeUser             = "User"
	RoleTypeMachineToMachine = "MachineToMachine"
)

// OrganizationRole is a role of the organization template (base fields, as
// GET /api/organization-roles/{id} returns them).
type OrganizationRole struct {
	TenantID    string  `json:"tenantId"`
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	Type        string  `json:"type"`
}

// OrganizationScope is a permission of the organization template.
type OrganizationScope struct {
	TenantID    string  `json:"tenantId"`
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
}

// Role is a tenant-wide (global) role, for users or for M2M applications.
type Role struct {
	TenantID    string `json:"tenantId"`
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        string `json:"type"`
	IsDefault   bool   `json:"isDefault"`
}

// Resource is an API resource: its Indicator is the audience of the access
// tokens issued for it.
type Resource struct {
	TenantID       string `json:"tenantId"`
	ID             string `json:"id"`
	Name           string `json:"name"`
	Indicator      string `json:"indicator"`
	IsDefault      bool   `json:"isDefault"`
	AccessTokenTTL int64  `json:"accessTokenTtl"`
}

// Scope is a permission of an API resource.
type Scope struct {
	TenantID    string  `json:"tenantId"`
	ID          string  `json:"id"`
	ResourceID  string  `json:"resourceId"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	CreatedAt   int64   `json:"createdAt"`
}

// HookConfig is where and how a webhook is delivered.
type HookConfig struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

// Hook is a registered webhook (logto-contract.md §5.3). SigningKey is the HMAC
// key of the logto-signature-sha-256 header.
type Hook struct {
	TenantID   string     `json:"tenantId"`
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Event      *string    `json:"event"`
	Events     []string   `json:"events"`
	Config     HookConfig `json:"config"`
	SigningKey string     `json:"signingKey"`
	Enabled    bool       `json:"enabled"`
	CreatedAt  int64      `json:"createdAt"`
}

// M2MApp is the identity of a machine-to-machine application: what a service
// needs to call the token endpoint with client credentials.
type M2MApp struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}
