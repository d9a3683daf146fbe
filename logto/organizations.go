package logto

import (
	"context"
	"net/url"
	"strings"
	"unicode"
)

// ListOrganizations returns every organization, read at page_size=100 with
// the pages after the first fetched in parallel, de-duplicated by id and
// reconciled with Total-Number. Logto lists organizations in no stable
// order, so a listing disturbed by concurrent writes is read again; one that
// never reconciles fails with ErrInconsistentListing rather than returning a
// partial list.
func (c *Client) ListOrganizations(ctx context.Context) ([]Organization, error) {
	return listAll(ctx, c, listing[Organization]{
		req: request{group: GroupOrganizations, route: "GET /api/organizations", path: "/api/organizations"},
		id:  func(o Organization) string { return o.ID },
	})
}

// GetOrganization returns one organization; ErrNotFound when it does not exist.
func (c *Client) GetOrganization(ctx context.Context, id string) (Organization, error) {
	const route = "GET /api/organizations/{id}"
	var org Organization
	seg, err := pathSegment(route, id)
	if err != nil {
		return org, err
	}
	_, err = c.getJSON(ctx, &request{group: GroupOrganizations, route: route,
		path: "/api/organizations/" + seg, auth: authM2M}, &org)
	return org, err
}

// ListOrganizationMembers returns every member of an organization with the
// organization roles each holds. Logto answers an unknown organization with
// an empty list, not 404.
func (c *Client) ListOrganizationMembers(ctx context.Context, orgID string) ([]Member, error) {
	const route = "GET /api/organizations/{id}/users"
	seg, err := pathSegment(route, orgID)
	if err != nil {
		return nil, err
	}
	return listAll(ctx, c, listing[Member]{
		req: request{group: GroupOrganizations, route: route, path: "/api/organizations/" + seg + "/users"},
		id:  func(m Member) string { return m.ID },
	})
}

// MemberOrganizationRoles returns the organization roles a user holds in an
// organization; ErrBadRequest (422 organization.require_membership) when the
// user is not a member.
func (c *Client) MemberOrganizationRoles(ctx context.Context, orgID, userID string) ([]OrganizationRole, error) {
	const route = "GET /api/organizations/{id}/users/{userId}/roles"
	org, err := pathSegment(route, orgID)
	if err != nil {
		return nil, err
	}
	user, err := pathSegment(route, userID)
	if err != nil {
		return nil, err
	}
	return listAll(ctx, c, listing[OrganizationRole]{
		req: request{group: GroupOrganizations, route: route,
			path: "/api/organizations/" + org + "/users/" + user + "/roles"},
		id: func(r OrganizationRole) string { return r.ID },
	})
}

// maxIDLength bounds ids accepted into request paths; Logto's are 12 to 21 characters.
const maxIDLength = 256

// pathSegment validates an id and escapes it for use as one path segment.
// An empty id would silently turn a read into a listing, and "." or ".."
// would change the route, so they are refused without a request.
func pathSegment(op, id string) (string, error) {
	bad := id == "" || id == "." || id == ".." || len(id) > maxIDLength ||
		strings.ContainsFunc(id, unicode.IsControl)
	if bad {
		return "", &Error{Op: op, Kind: KindBadRequest, Message: "invalid id"}
	}
	return url.PathEscape(id), nil
}
