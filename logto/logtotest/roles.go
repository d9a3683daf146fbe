package logtotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// This file holds tenant-wide roles and API resources with their scopes.

// RoleSpec describes a global role to create.
type RoleSpec struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Type is RoleTypeUser (default) or RoleTypeMachineToMachine.
	Type string `json:"type,omitempty"`
	// ScopeIDs are API resource scope ids granted by the role.
	ScopeIDs []string `json:"scopeIds,omitempty"`
}

// roleWithCounts is an item of GET /api/roles.
type roleWithCounts struct {
	Role
	UsersCount           int            `json:"usersCount"`
	FeaturedUsers        []featuredUser `json:"featuredUsers"`
	ApplicationsCount    int            `json:"applicationsCount"`
	FeaturedApplications []featuredApp  `json:"featuredApplications"`
}

type featuredApp struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// scopeWithResource is an item of GET /api/roles/{id}/scopes.
type scopeWithResource struct {
	Scope
	Resource Resource `json:"resource"`
}

// roleSearchFields are the searchable columns of roles.
func roleSearchFields() []string { return []string{"id", "name", "description"} }

func roleField(r *Role, field string) *string {
	switch field {
	case "id":
		return &r.ID
	case "name":
		return &r.Name
	case "description":
		return &r.Description
	}
	return nil
}

// createRole is POST /api/roles.
func (s *Server) createRole(body []byte) (Role, error) {
	g := newGuard(body)
	name, _ := g.str("name", true, false, 1, 128)
	desc, _ := g.str("description", true, false, 1, 128)
	typ, _ := g.str("type", false, false, 0, 0)
	scopeIDs, _ := g.strings("scopeIds", false, false)
	isDefault, _ := g.boolean("isDefault", false)
	if typ != nil && *typ != RoleTypeUser && *typ != RoleTypeMachineToMachine {
		g.issues = append(g.issues, zodIssue{Code: "invalid_enum_value", Path: []any{"type"},
			Message: fmt.Sprintf("Invalid enum value. Expected 'User' | 'MachineToMachine', received '%s'", *typ)})
	}
	if err := g.err(); err != nil {
		return Role{}, err
	}
	roleType := RoleTypeUser
	if typ != nil {
		roleType = *typ
	}
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	for _, r := range s.data.roles {
		if r.role.Name == *name {
			return Role{}, newAPIError(http.StatusUnprocessableEntity, "role.name_in_use",
				fmt.Sprintf("This role name %s is already in use", *name))
		}
	}
	for _, id := range scopeIDs {
		if s.data.scopes[id] == nil {
			return Role{}, errNotExistsWithID("scopes", id)
		}
	}
	role := Role{TenantID: tenantID, ID: s.data.newID(), Name: *name, Description: *desc,
		Type: roleType, IsDefault: isDefault}
	s.data.roles[role.ID] = &roleEntry{role: role, scopeIDs: setOf(scopeIDs...)}
	return role, nil
}

// CreateRole creates a global role as POST /api/roles does.
func (s *Server) CreateRole(spec RoleSpec) (Role, error) {
	if spec.Description == "" {
		spec.Description = spec.Name
	}
	b, err := marshalBody(spec)
	if err != nil {
		return Role{}, fmt.Errorf("create role: %w", err)
	}
	return s.createRole(b)
}

// assignUserRoles is POST (add) or PUT (replace) /api/users/{id}/roles. No
// webhook, as Logto.
func (s *Server) assignUserRoles(userID string, roleIDs []string, replace bool) error {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	u := s.data.users[userID]
	if u == nil {
		return errEntityNotFound()
	}
	for _, id := range roleIDs {
		r := s.data.roles[id]
		if r == nil {
			return errNotExistsWithID("roles", id)
		}
		if r.role.Type != RoleTypeUser {
			return newAPIError(http.StatusUnprocessableEntity, "user.invalid_role_type",
				"Invalid role type, can not assign machine-to-machine role to user.")
		}
		if _, held := u.roles[id]; held && !replace {
			return newAPIError(http.StatusUnprocessableEntity, "user.role_exists",
				fmt.Sprintf("The role id %s is already been added to this user", id))
		}
	}
	if replace {
		u.roles = setOf(roleIDs...)
		return nil
	}
	for _, id := range roleIDs {
		u.roles[id] = struct{}{}
	}
	return nil
}

// AssignUserRoles gives a user global roles as POST /api/users/{id}/roles
// does.
func (s *Server) AssignUserRoles(userID string, roleIDs ...string) error {
	return s.assignUserRoles(userID, roleIDs, false)
}

// createResource is POST /api/resources.
func (s *Server) createResource(body []byte) (Resource, error) {
	g := newGuard(body)
	name, _ := g.str("name", true, false, 1, 128)
	indicator, _ := g.str("indicator", true, false, 1, 0)
	ttl := int64(defaultTokenTTL / time.Second)
	if raw, ok := g.fields["accessTokenTtl"]; ok {
		var n int64
		if err := json.Unmarshal(raw, &n); err != nil || n <= 0 {
			g.typeIssue("accessTokenTtl", "number", raw)
		} else {
			ttl = n
		}
	}
	if err := g.err(); err != nil {
		return Resource{}, err
	}
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	if s.data.resourceByIndicator(*indicator) != nil {
		return Resource{}, newAPIError(http.StatusUnprocessableEntity, "resource.resource_identifier_in_use",
			fmt.Sprintf("The API identifier %s is already in use.", *indicator))
	}
	res := &Resource{TenantID: tenantID, ID: s.data.newID(), Name: *name, Indicator: *indicator, AccessTokenTTL: ttl}
	s.data.resources[res.ID] = res
	return *res, nil
}

// createScope is POST /api/resources/{resourceId}/scopes.
func (s *Server) createScope(resourceID string, body []byte) (Scope, error) {
	g := newGuard(body)
	name, _ := g.str("name", true, false, 1, 256)
	desc, _ := g.str("description", false, true, 0, 0)
	if err := g.err(); err != nil {
		return Scope{}, err
	}
	if name != nil && strings.ContainsAny(*name, " \t\n") {
		return Scope{}, newAPIError(http.StatusBadRequest, "scope.name_with_space",
			"The name of the scope cannot contain any spaces.")
	}
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	if s.data.resources[resourceID] == nil {
		return Scope{}, errNotExistsWithID("resources", resourceID)
	}
	for _, sc := range s.data.scopes {
		if sc.ResourceID == resourceID && sc.Name == *name {
			return Scope{}, newAPIError(http.StatusUnprocessableEntity, "scope.name_exists",
				fmt.Sprintf("The scope name %s is already in use", *name))
		}
	}
	sc := &Scope{TenantID: tenantID, ID: s.data.newID(), ResourceID: resourceID, Name: *name,
		Description: desc, CreatedAt: s.clock().UnixMilli()}
	s.data.scopes[sc.ID] = sc
	return *sc, nil
}

// CreateAPIResource creates an API resource and its scopes (by name), as
// POST /api/resources and POST /api/resources/{id}/scopes do.
func (s *Server) CreateAPIResource(name, indicator string, scopes ...string) (Resource, []Scope, error) {
	b, err := marshalBody(map[string]string{"name": name, "indicator": indicator})
	if err != nil {
		return Resource{}, nil, fmt.Errorf("create API resource: %w", err)
	}
	res, err := s.createResource(b)
	if err != nil {
		return Resource{}, nil, err
	}
	out := make([]Scope, 0, len(scopes))
	for _, sc := range scopes {
		b, err := marshalBody(map[string]string{"name": sc})
		if err != nil {
			return Resource{}, nil, fmt.Errorf("create API resource scope: %w", err)
		}
		created, err := s.createScope(res.ID, b)
		if err != nil {
			return Resource{}, nil, err
		}
		out = append(out, created)
	}
	return res, out, nil
}

func (s *Server) roleRoutes() {
	s.api("GET /api/roles", func(w http.ResponseWriter, r *http.Request) {
		p, err := parsePage(r, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		srch, err := parseSearch(r.URL.RawQuery, roleSearchFields())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		cs, err := srch.compile(roleSearchFields())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		typ := r.URL.Query().Get("type")
		s.data.mu.RLock()
		var items []roleWithCounts
		for _, e := range s.data.roles {
			role := e.role
			if typ != "" && role.Type != typ {
				continue
			}
			if !cs.match(func(f string) *string { return roleField(&role, f) }) {
				continue
			}
			items = append(items, s.roleCounts(role))
		}
		s.data.mu.RUnlock()
		orderByName(items, func(i roleWithCounts) string { return i.Name })
		writePage(s, w, r, p, items)
	})
	s.api("POST /api/roles", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		role, err := s.createRole(body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, role)
	})
	s.api("GET /api/roles/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.data.mu.RLock()
		e := s.data.roles[r.PathValue("id")]
		var role Role
		if e != nil {
			role = e.role
		}
		s.data.mu.RUnlock()
		if e == nil {
			s.writeError(w, r, errNotExistsWithID("roles", r.PathValue("id")))
			return
		}
		s.writeJSON(w, r, http.StatusOK, role)
	})
	s.api("GET /api/roles/{id}/scopes", func(w http.ResponseWriter, r *http.Request) {
		p, err := parsePage(r, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.data.mu.RLock()
		e := s.data.roles[r.PathValue("id")]
		var items []scopeWithResource
		if e != nil {
			for id := range e.scopeIDs {
				sc := s.data.scopes[id]
				if sc == nil {
					continue
				}
				item := scopeWithResource{Scope: *sc}
				if res := s.data.resources[sc.ResourceID]; res != nil {
					item.Resource = *res
				}
				items = append(items, item)
			}
		}
		s.data.mu.RUnlock()
		if e == nil {
			s.writeError(w, r, errNotExistsWithID("roles", r.PathValue("id")))
			return
		}
		orderByName(items, func(i scopeWithResource) string { return i.Name + "\x00" + i.ID })
		writePage(s, w, r, p, items)
	})
	s.api("GET /api/resources", func(w http.ResponseWriter, r *http.Request) {
		p, err := parsePage(r, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.data.mu.RLock()
		items := make([]Resource, 0, len(s.data.resources))
		for _, res := range s.data.resources {
			items = append(items, *res)
		}
		s.data.mu.RUnlock()
		orderByName(items, func(res Resource) string { return res.Name + "\x00" + res.ID })
		writePage(s, w, r, p, items)
	})
	s.api("POST /api/resources", s.createHandler(func(b []byte) (any, error) { return s.createResource(b) }))
	s.api("GET /api/resources/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.data.mu.RLock()
		res := s.data.resources[r.PathValue("id")]
		var out Resource
		if res != nil {
			out = *res
		}
		s.data.mu.RUnlock()
		if res == nil {
			s.writeError(w, r, errNotExistsWithID("resources", r.PathValue("id")))
			return
		}
		s.writeJSON(w, r, http.StatusOK, out)
	})
	s.api("GET /api/resources/{id}/scopes", func(w http.ResponseWriter, r *http.Request) {
		p, err := parsePage(r, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		id := r.PathValue("id")
		s.data.mu.RLock()
		_, ok := s.data.resources[id]
		var items []Scope
		for _, sc := range s.data.scopes {
			if sc.ResourceID == id {
				items = append(items, *sc)
			}
		}
		s.data.mu.RUnlock()
		if !ok {
			s.writeError(w, r, errNotExistsWithID("resources", id))
			return
		}
		orderByName(items, func(sc Scope) string { return sc.Name })
		writePage(s, w, r, p, items)
	})
	s.api("POST /api/resources/{id}/scopes", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		sc, err := s.createScope(r.PathValue("id"), body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusCreated, sc)
	})
}

// userRoleRoutes serves a user's global roles.
func (s *Server) userRoleRoutes() {
	s.api("GET /api/users/{userId}/roles", func(w http.ResponseWriter, r *http.Request) {
		p, err := parsePage(r, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		srch, err := parseSearch(r.URL.RawQuery, roleSearchFields())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		cs, err := srch.compile(roleSearchFields())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.data.mu.RLock()
		u := s.data.users[r.PathValue("userId")]
		var roles []Role
		if u != nil {
			for id := range u.roles {
				e := s.data.roles[id]
				if e == nil || e.role.Type != RoleTypeUser {
					continue
				}
				role := e.role
				if cs.match(func(f string) *string { return roleField(&role, f) }) {
					roles = append(roles, role)
				}
			}
		}
		s.data.mu.RUnlock()
		if u == nil {
			s.writeError(w, r, errEntityNotFound())
			return
		}
		orderByName(roles, func(role Role) string { return role.Name + "\x00" + role.ID })
		writePage(s, w, r, p, roles)
	})
	assign := func(replace bool, status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, err := readBody(r)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			g := newGuard(body)
			ids, _ := g.strings("roleIds", true, !replace)
			if err := g.err(); err != nil {
				s.writeError(w, r, err)
				return
			}
			if err := s.assignUserRoles(r.PathValue("userId"), ids, replace); err != nil {
				s.writeError(w, r, err)
				return
			}
			writeNoContent(w, status)
		}
	}
	s.api("POST /api/users/{userId}/roles", assign(false, http.StatusCreated))
	s.api("PUT /api/users/{userId}/roles", assign(true, http.StatusOK))
	s.api("DELETE /api/users/{userId}/roles/{roleId}", func(w http.ResponseWriter, r *http.Request) {
		s.data.mu.Lock()
		u := s.data.users[r.PathValue("userId")]
		if u != nil {
			delete(u.roles, r.PathValue("roleId"))
		}
		s.data.mu.Unlock()
		if u == nil {
			s.writeError(w, r, errEntityNotFound())
			return
		}
		writeNoContent(w, http.StatusNoContent)
	})
}

// roleCounts builds a role list item. Callers hold a lock.
func (s *Server) roleCounts(role Role) roleWithCounts {
	item := roleWithCounts{Role: role, FeaturedUsers: []featuredUser{}, FeaturedApplications: []featuredApp{}}
	var userIDs []string
	for _, u := range s.data.users {
		if _, ok := u.roles[role.ID]; ok {
			userIDs = append(userIDs, u.user.ID)
		}
	}
	slices.Sort(userIDs)
	item.UsersCount = len(userIDs)
	for _, id := range userIDs[:min(3, len(userIDs))] {
		u := s.data.users[id].user
		item.FeaturedUsers = append(item.FeaturedUsers, featuredUser{ID: id, Avatar: u.Avatar, Name: u.Name})
	}
	var appIDs []string
	for _, a := range s.data.apps {
		if _, ok := a.roles[role.ID]; ok {
			appIDs = append(appIDs, a.id)
		}
	}
	slices.Sort(appIDs)
	item.ApplicationsCount = len(appIDs)
	for _, id := range appIDs[:min(3, len(appIDs))] {
		item.FeaturedApplications = append(item.FeaturedApplications,
			featuredApp{ID: id, Name: s.data.apps[id].name, Type: RoleTypeMachineToMachine})
	}
	return item
}
