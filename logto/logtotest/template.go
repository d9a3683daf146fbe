package logtotest

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
)

// This file holds the organization template: organization roles and
// organization scopes (logto-contract.md §2.5).

// OrganizationRoleSpec describes an organization role to create.
type OrganizationRoleSpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Type is RoleTypeUser (default) or RoleTypeMachineToMachine.
	Type string `json:"type,omitempty"`
	// ScopeIDs are organization scope ids; ResourceScopeIDs API resource
	// scope ids (carried into organization-scoped API tokens).
	ScopeIDs         []string `json:"organizationScopeIds,omitempty"`
	ResourceScopeIDs []string `json:"resourceScopeIds,omitempty"`
}

// scopeRef is {id, name} in organization role list items.
type scopeRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// resourceScopeRef is a resource scope in organization role list items.
type resourceScopeRef struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Resource scopeRef `json:"resource"`
}

// orgRoleListItem is an item of GET /api/organization-roles.
type orgRoleListItem struct {
	OrganizationRole
	Scopes         []scopeRef         `json:"scopes"`
	ResourceScopes []resourceScopeRef `json:"resourceScopes"`
}

func orderByName[T any](items []T, name func(T) string) {
	slices.SortStableFunc(items, func(a, b T) int { return cmp.Compare(name(a), name(b)) })
}

// createOrgRole is POST /api/organization-roles.
func (s *Server) createOrgRole(body []byte) (OrganizationRole, error) {
	g := newGuard(body)
	name, _ := g.str("name", true, false, 1, 128)
	desc, _ := g.str("description", false, true, 0, 256)
	typ, hasType := g.str("type", false, false, 0, 0)
	scopeIDs, _ := g.strings("organizationScopeIds", false, false)
	resourceScopeIDs, _ := g.strings("resourceScopeIds", false, false)
	if hasType && typ != nil && *typ != RoleTypeUser && *typ != RoleTypeMachineToMachine {
		g.issues = append(g.issues, zodIssue{Code: "invalid_enum_value", Path: []any{"type"},
			Message: fmt.Sprintf("Invalid enum value. Expected 'User' | 'MachineToMachine', received '%s'", *typ)})
	}
	if err := g.err(); err != nil {
		return OrganizationRole{}, err
	}
	roleType := RoleTypeUser
	if typ != nil {
		roleType = *typ
	}
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	if s.data.orgRoleByName(*name) != nil {
		return OrganizationRole{}, errUniqueViolation()
	}
	for _, id := range scopeIDs {
		if s.data.orgScopes[id] == nil {
			return OrganizationRole{}, newAPIError(http.StatusUnprocessableEntity,
				"organization.roles.invalid_scope_ids", "The organization scope IDs are not valid.")
		}
	}
	for _, id := range resourceScopeIDs {
		if s.data.scopes[id] == nil {
			return OrganizationRole{}, newAPIError(http.StatusUnprocessableEntity,
				"organization.roles.invalid_resource_scope_ids", "The resource scope IDs are not valid.")
		}
	}
	role := OrganizationRole{TenantID: tenantID, ID: s.data.newID(), Name: *name, Description: desc, Type: roleType}
	s.data.orgRoles[role.ID] = &orgRoleEntry{role: role, scopeIDs: setOf(scopeIDs...),
		resourceScopes: setOf(resourceScopeIDs...)}
	return role, nil
}

// createOrgScope is POST /api/organization-scopes.
func (s *Server) createOrgScope(body []byte) (OrganizationScope, error) {
	g := newGuard(body)
	name, _ := g.str("name", true, false, 1, 128)
	desc, _ := g.str("description", false, true, 0, 256)
	if err := g.err(); err != nil {
		return OrganizationScope{}, err
	}
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	for _, sc := range s.data.orgScopes {
		if sc.Name == *name {
			return OrganizationScope{}, errUniqueViolation()
		}
	}
	sc := &OrganizationScope{TenantID: tenantID, ID: s.data.newID(), Name: *name, Description: desc}
	s.data.orgScopes[sc.ID] = sc
	return *sc, nil
}

// CreateOrganizationScope creates an organization permission as
// POST /api/organization-scopes does.
func (s *Server) CreateOrganizationScope(name, description string) (OrganizationScope, error) {
	body := map[string]any{"name": name}
	if description != "" {
		body["description"] = description
	}
	b, err := marshalBody(body)
	if err != nil {
		return OrganizationScope{}, fmt.Errorf("create organization scope: %w", err)
	}
	return s.createOrgScope(b)
}

// CreateOrganizationRole creates an organization role as
// POST /api/organization-roles does.
func (s *Server) CreateOrganizationRole(spec OrganizationRoleSpec) (OrganizationRole, error) {
	b, err := marshalBody(spec)
	if err != nil {
		return OrganizationRole{}, fmt.Errorf("create organization role: %w", err)
	}
	return s.createOrgRole(b)
}

// orgRoleItem builds the list item of a role. Callers hold a lock.
func (s *Server) orgRoleItem(e *orgRoleEntry) orgRoleListItem {
	item := orgRoleListItem{OrganizationRole: e.role, Scopes: []scopeRef{}, ResourceScopes: []resourceScopeRef{}}
	for id := range e.scopeIDs {
		if sc := s.data.orgScopes[id]; sc != nil {
			item.Scopes = append(item.Scopes, scopeRef{ID: sc.ID, Name: sc.Name})
		}
	}
	for id := range e.resourceScopes {
		if sc := s.data.scopes[id]; sc != nil {
			res := s.data.resources[sc.ResourceID]
			ref := resourceScopeRef{ID: sc.ID, Name: sc.Name}
			if res != nil {
				ref.Resource = scopeRef{ID: res.ID, Name: res.Name}
			}
			item.ResourceScopes = append(item.ResourceScopes, ref)
		}
	}
	orderByName(item.Scopes, func(r scopeRef) string { return r.Name })
	orderByName(item.ResourceScopes, func(r resourceScopeRef) string { return r.Name })
	return item
}

func (s *Server) templateRoutes() {
	s.api("GET /api/organization-roles", func(w http.ResponseWriter, r *http.Request) {
		p, err := parsePage(r, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var match func(string) bool
		if q := r.URL.Query().Get("q"); q != "" {
			match = likeMatcher("%"+q+"%", true)
		}
		s.data.mu.RLock()
		var items []orgRoleListItem
		for _, e := range s.data.orgRoles {
			desc := ""
			if e.role.Description != nil {
				desc = *e.role.Description
			}
			if match != nil && !match(e.role.ID) && !match(e.role.Name) && !match(desc) {
				continue
			}
			items = append(items, s.orgRoleItem(e))
		}
		s.data.mu.RUnlock()
		orderByName(items, func(i orgRoleListItem) string { return i.Name + "\x00" + i.ID })
		writePage(s, w, r, p, items)
	})
	s.api("POST /api/organization-roles", s.createHandler(func(b []byte) (any, error) { return s.createOrgRole(b) }))
	s.api("GET /api/organization-roles/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.data.mu.RLock()
		e := s.data.orgRoles[r.PathValue("id")]
		var role OrganizationRole
		if e != nil {
			role = e.role
		}
		s.data.mu.RUnlock()
		if e == nil {
			s.writeError(w, r, errNotExistsWithID("organization_roles", r.PathValue("id")))
			return
		}
		s.writeJSON(w, r, http.StatusOK, role)
	})
	s.api("DELETE /api/organization-roles/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		s.data.mu.Lock()
		_, ok := s.data.orgRoles[id]
		if ok {
			delete(s.data.orgRoles, id)
			for _, o := range s.data.orgs {
				for _, roles := range o.members {
					delete(roles, id)
				}
				for _, roles := range o.apps {
					delete(roles, id)
				}
			}
		}
		s.data.mu.Unlock()
		if !ok {
			s.writeError(w, r, errNotExistsWithID("organization_roles", id))
			return
		}
		writeNoContent(w, http.StatusNoContent)
	})
	s.api("GET /api/organization-roles/{id}/scopes", func(w http.ResponseWriter, r *http.Request) {
		listRoleScopes(s, w, r, func(e *orgRoleEntry) []OrganizationScope {
			out := []OrganizationScope{}
			for id := range e.scopeIDs {
				if sc := s.data.orgScopes[id]; sc != nil {
					out = append(out, *sc)
				}
			}
			orderByName(out, func(sc OrganizationScope) string { return sc.Name })
			return out
		})
	})
	s.api("GET /api/organization-roles/{id}/resource-scopes", func(w http.ResponseWriter, r *http.Request) {
		listRoleScopes(s, w, r, func(e *orgRoleEntry) []Scope {
			out := []Scope{}
			for id := range e.resourceScopes {
				if sc := s.data.scopes[id]; sc != nil {
					out = append(out, *sc)
				}
			}
			orderByName(out, func(sc Scope) string { return sc.Name })
			return out
		})
	})
	s.api("GET /api/organization-scopes", func(w http.ResponseWriter, r *http.Request) {
		p, err := parsePage(r, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var match func(string) bool
		if q := r.URL.Query().Get("q"); q != "" {
			match = likeMatcher("%"+q+"%", true)
		}
		s.data.mu.RLock()
		var items []OrganizationScope
		for _, sc := range s.data.orgScopes {
			if match == nil || match(sc.Name) {
				items = append(items, *sc)
			}
		}
		s.data.mu.RUnlock()
		orderByName(items, func(sc OrganizationScope) string { return sc.Name })
		writePage(s, w, r, p, items)
	})
	s.api("POST /api/organization-scopes", s.createHandler(func(b []byte) (any, error) { return s.createOrgScope(b) }))
	s.api("GET /api/organization-scopes/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.data.mu.RLock()
		sc := s.data.orgScopes[r.PathValue("id")]
		var out OrganizationScope
		if sc != nil {
			out = *sc
		}
		s.data.mu.RUnlock()
		if sc == nil {
			s.writeError(w, r, errNotExistsWithID("organization_scopes", r.PathValue("id")))
			return
		}
		s.writeJSON(w, r, http.StatusOK, out)
	})
}

// listRoleScopes answers one of a role's scope lists, pagination optional.
func listRoleScopes[T any](s *Server, w http.ResponseWriter, r *http.Request, build func(*orgRoleEntry) []T) {
	p, err := parsePage(r, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.data.mu.RLock()
	e := s.data.orgRoles[r.PathValue("id")]
	var list []T
	if e != nil {
		list = build(e)
	}
	s.data.mu.RUnlock()
	if e == nil {
		s.writeError(w, r, errNotExistsWithID("organization_roles", r.PathValue("id")))
		return
	}
	writePage(s, w, r, p, list)
}

// writePage answers one page of items with the paging headers (none when
// pagination is disabled).
func writePage[T any](s *Server, w http.ResponseWriter, r *http.Request, p page, items []T) {
	from, to := p.window(len(items))
	setPageHeaders(w, r, p, len(items))
	s.writeJSON(w, r, http.StatusOK, nonNil(items[from:to]))
}

// createHandler adapts a create operation to a handler answering 201.
func (s *Server) createHandler(create func([]byte) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		v, err := create(body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusCreated, v)
	}
}

// OrganizationRoleByName returns an organization role by its name.
func (s *Server) OrganizationRoleByName(name string) (OrganizationRole, bool) {
	s.data.mu.RLock()
	defer s.data.mu.RUnlock()
	if e := s.data.orgRoleByName(name); e != nil {
		return e.role, true
	}
	return OrganizationRole{}, false
}
