package logto

import "context"

// RoleScopes returns every API-resource scope granted by a tenant (global)
// role; ErrNotFound when the role does not exist.
func (c *Client) RoleScopes(ctx context.Context, roleID string) ([]Scope, error) {
	const route = "GET /api/roles/{id}/scopes"
	seg, err := pathSegment(route, roleID)
	if err != nil {
		return nil, err
	}
	return listAll(ctx, c, listing[Scope]{
		req: request{group: GroupRoles, route: route, path: "/api/roles/" + seg + "/scopes"},
		id:  func(s Scope) string { return s.ID },
	})
}

// ListOrganizationRoles returns every organization-template role with its
// organization scopes and resource scopes, so that permissions can be
// resolved without one request per role.
func (c *Client) ListOrganizationRoles(ctx context.Context) ([]OrganizationRole, error) {
	return listAll(ctx, c, listing[OrganizationRole]{
		req: request{group: GroupRoles, route: "GET /api/organization-roles", path: "/api/organization-roles"},
		id:  func(r OrganizationRole) string { return r.ID },
	})
}

// OrganizationRoleScopes returns the organization scopes (permissions such as
// read:customers) an organization role grants; ErrNotFound when the role does
// not exist.
func (c *Client) OrganizationRoleScopes(ctx context.Context, roleID string) ([]OrganizationScope, error) {
	const route = "GET /api/organization-roles/{id}/scopes"
	seg, err := pathSegment(route, roleID)
	if err != nil {
		return nil, err
	}
	return listAll(ctx, c, listing[OrganizationScope]{
		req: request{group: GroupRoles, route: route, path: "/api/organization-roles/" + seg + "/scopes"},
		id:  func(s OrganizationScope) string { return s.ID },
	})
}

// ListRoles returns every tenant (global) role, of users and of machine-to-
// machine applications alike, so that the role ids users carry in their
// customData (userRoleIds) can be named without one request per role.
func (c *Client) ListRoles(ctx context.Context) ([]Role, error) {
	return listAll(ctx, c, listing[Role]{
		req: request{group: GroupRoles, route: "GET /api/roles", path: "/api/roles"},
		id:  func(r Role) string { return r.ID },
	})
}
