package logto

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// GetUser returns one user; ErrNotFound when it does not exist. includeSSO
// asks Logto to add the user's enterprise-SSO identities.
func (c *Client) GetUser(ctx context.Context, id string, includeSSO bool) (User, error) {
	const route = "GET /api/users/{id}"
	var u User
	seg, err := pathSegment(route, id)
	if err != nil {
		return u, err
	}
	r := &request{group: GroupUsers, route: route, path: "/api/users/" + seg, auth: authM2M}
	if includeSSO {
		r.query = url.Values{"includeSsoIdentities": {"true"}}
	}
	_, err = c.getJSON(ctx, r, &u)
	return u, err
}

// ListUsers returns every user (Logto orders them by creation, newest first).
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	return listAll(ctx, c, listing[User]{
		req: request{group: GroupUsers, route: "GET /api/users", path: "/api/users"},
		id:  func(u User) string { return u.ID },
	})
}

// UserSearch is one page of Logto's advanced user search (GET /api/users),
// for lookups that should not read every user.
type UserSearch struct {
	// Search matches every searchable field (id, primaryEmail, primaryPhone,
	// username, name): search=<v>.
	Search string
	// Fields restricts values to one field each: search.<field>=<v>...; only
	// mode "exact" accepts several values for one field.
	Fields map[string][]string
	// Mode is the default match mode (like, exact, similar_to, posix); like
	// (the default) needs the caller to supply % wildcards.
	Mode string
	// FieldModes overrides the mode per field: mode.<field>=<mode>.
	FieldModes map[string]string
	// Joint combines the field groups: "and" or "or" (Logto's default).
	Joint string
	// CaseSensitive sets isCaseSensitive=true (required by similar_to).
	CaseSensitive bool
	// ExcludeRoleID and ExcludeOrganizationID drop users holding that role or
	// membership; Logto refuses both at once.
	ExcludeRoleID         string
	ExcludeOrganizationID string
	// Page is 1-based (default 1); PageSize at most 100 (default 100).
	Page     int
	PageSize int
}

// UserPage is one page of users with the total number of matches.
type UserPage struct {
	Users []User
	Total int
}

// SearchUsers runs one page of an advanced user search. Logto answers bad
// search syntax with ErrBadRequest.
func (c *Client) SearchUsers(ctx context.Context, s UserSearch) (UserPage, error) {
	const route = "GET /api/users"
	q, err := s.query()
	if err != nil {
		return UserPage{}, &Error{Op: route, Kind: KindBadRequest, Message: err.Error()}
	}
	var p UserPage
	resp, err := c.getJSON(ctx, &request{group: GroupUsers, route: route, path: "/api/users",
		query: q, auth: authM2M}, &p.Users)
	if err != nil {
		return UserPage{}, err
	}
	p.Total = len(p.Users)
	if v := resp.header.Get("Total-Number"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			p.Total = n
		}
	}
	return p, nil
}

// query encodes s as Logto's search parameters, refusing what Logto would.
func (s UserSearch) query() (url.Values, error) {
	if s.Page < 0 || s.PageSize < 0 || s.PageSize > pageSize {
		return nil, fmt.Errorf("page must not be negative and page size must be at most %d", pageSize)
	}
	if s.ExcludeRoleID != "" && s.ExcludeOrganizationID != "" {
		return nil, errors.New("ExcludeRoleID and ExcludeOrganizationID are mutually exclusive")
	}
	q := url.Values{}
	q.Set("page", strconv.Itoa(max(s.Page, 1)))
	q.Set("page_size", strconv.Itoa(cmp.Or(s.PageSize, pageSize)))
	setIf(q, "search", s.Search)
	setIf(q, "mode", s.Mode)
	setIf(q, "joint", s.Joint)
	setIf(q, "excludeRoleId", s.ExcludeRoleID)
	setIf(q, "excludeOrganizationId", s.ExcludeOrganizationID)
	if s.CaseSensitive {
		q.Set("isCaseSensitive", "true")
	}
	for field, values := range s.Fields {
		if field == "" || strings.ContainsAny(field, ".=&") {
			return nil, fmt.Errorf("invalid search field %q", field)
		}
		for _, v := range values {
			q.Add("search."+field, v)
		}
	}
	for field, mode := range s.FieldModes {
		if field == "" || strings.ContainsAny(field, ".=&") {
			return nil, fmt.Errorf("invalid search field %q", field)
		}
		q.Set("mode."+field, mode)
	}
	return q, nil
}

func setIf(q url.Values, key, value string) {
	if value != "" {
		q.Set(key, value)
	}
}

// UsersByIDs returns the users with the given ids, in the order asked, via
// Logto's exact-match batch search (search.id=..&mode.id=exact), at most 100
// ids per request and requests run in parallel. Ids that do not exist are
// simply absent from the result; duplicates and empty ids are ignored.
func (c *Client) UsersByIDs(ctx context.Context, ids []string) ([]User, error) {
	ids = uniqueIDs(ids)
	chunks := slices.Collect(slices.Chunk(ids, pageSize))
	found := make([][]User, len(chunks))
	err := forEachParallel(ctx, len(chunks), c.cfg.ListParallelism, func(ctx context.Context, i int) error {
		p, err := c.SearchUsers(ctx, UserSearch{
			Fields:     map[string][]string{"id": chunks[i]},
			FieldModes: map[string]string{"id": "exact"},
		})
		found[i] = p.Users
		return err
	})
	if err != nil {
		return nil, err
	}
	byID := make(map[string]User, len(ids))
	for _, users := range found {
		for _, u := range users {
			byID[strings.ToLower(u.ID)] = u
		}
	}
	out := make([]User, 0, len(byID))
	for _, id := range ids {
		if u, ok := byID[strings.ToLower(id)]; ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// uniqueIDs drops empty and repeated ids (Logto compares them lowercased),
// keeping the first occurrence's order.
func uniqueIDs(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		k := strings.ToLower(id)
		if _, dup := seen[k]; dup || id == "" {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, id)
	}
	return out
}

// UserOrganizations returns every organization a user belongs to, with the
// organization roles held in each (Logto does not page this list);
// ErrNotFound when the user does not exist.
func (c *Client) UserOrganizations(ctx context.Context, userID string) ([]UserOrganization, error) {
	const route = "GET /api/users/{id}/organizations"
	seg, err := pathSegment(route, userID)
	if err != nil {
		return nil, err
	}
	var orgs []UserOrganization
	_, err = c.getJSON(ctx, &request{group: GroupUsers, route: route,
		path: "/api/users/" + seg + "/organizations", auth: authM2M}, &orgs)
	return orgs, err
}

// UserRoles returns every tenant (global) role of a user; ErrNotFound when
// the user does not exist.
func (c *Client) UserRoles(ctx context.Context, userID string) ([]Role, error) {
	const route = "GET /api/users/{id}/roles"
	seg, err := pathSegment(route, userID)
	if err != nil {
		return nil, err
	}
	return listAll(ctx, c, listing[Role]{
		req: request{group: GroupUsers, route: route, path: "/api/users/" + seg + "/roles"},
		id:  func(r Role) string { return r.ID },
	})
}
