package logtotest

import (
	"net/http"
	"time"
)

// This file holds machine-to-machine applications and their organization
// memberships (which organization-scoped M2M tokens rely on).

// M2MAppSpec describes a machine-to-machine application to create.
type M2MAppSpec struct {
	Name string
	// RoleIDs are MachineToMachine global roles granted to the app.
	RoleIDs []string
	// SecretExpiresAt makes the secret expire (zero: never), to test the
	// token endpoint's "client secret has expired".
	SecretExpiresAt time.Time
}

// CreateM2MApp creates a machine-to-machine application holding the given
// (MachineToMachine) roles, usable at the token endpoint.
func (s *Server) CreateM2MApp(spec M2MAppSpec) (M2MApp, error) {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	for _, id := range spec.RoleIDs {
		r := s.data.roles[id]
		if r == nil {
			return M2MApp{}, errNotExistsWithID("roles", id)
		}
		if r.role.Type != RoleTypeMachineToMachine {
			return M2MApp{}, newAPIError(http.StatusUnprocessableEntity, "application.invalid_role_type",
				"Can not assign user type role to machine to machine application.")
		}
	}
	app := &appEntry{id: s.data.newID(), name: spec.Name, secret: s.data.newSecret(), roles: setOf(spec.RoleIDs...)}
	if !spec.SecretExpiresAt.IsZero() {
		app.secretExpires = spec.SecretExpiresAt.UnixMilli()
	}
	s.data.apps[app.id] = app
	return M2MApp{ID: app.id, Secret: app.secret}, nil
}

// addOrgApps is POST /api/organizations/{id}/applications.
func (s *Server) addOrgApps(c caller, orgID string, appIDs []string) ([]hookEvent, error) {
	s.data.mu.Lock()
	o := s.data.orgs[orgID]
	if o == nil {
		s.data.mu.Unlock()
		return nil, errForeignKey()
	}
	for _, id := range appIDs {
		if s.data.apps[id] == nil {
			s.data.mu.Unlock()
			return nil, errForeignKey()
		}
	}
	var added []string
	for _, id := range appIDs {
		if _, ok := o.apps[id]; !ok {
			o.apps[id] = make(map[string]struct{})
			added = append(added, id)
		}
	}
	s.data.mu.Unlock()
	ev := s.newEvent(c, EventOrganizationMembershipUpdated, http.MethodPost, "/organizations/"+orgID+"/applications",
		"/organizations/:id/applications", http.StatusCreated, idParams(orgID))
	ev.organizationID, ev.addedApplicationIDs = orgID, added
	return []hookEvent{ev}, nil
}

// removeOrgApp is DELETE /api/organizations/{id}/applications/{applicationId}.
func (s *Server) removeOrgApp(c caller, orgID, appID string) []hookEvent {
	s.data.mu.Lock()
	if o := s.data.orgs[orgID]; o != nil {
		delete(o.apps, appID)
	}
	s.data.mu.Unlock()
	ev := s.newEvent(c, EventOrganizationMembershipUpdated, http.MethodDelete,
		"/organizations/"+orgID+"/applications/"+appID, "/organizations/:id/applications/:applicationId",
		http.StatusNoContent, params{{"id", orgID}, {"applicationId", appID}})
	ev.organizationID, ev.removedApplicationIDs = orgID, []string{appID}
	return []hookEvent{ev}
}

// assignOrgAppRoles gives a member application organization roles.
func (s *Server) assignOrgAppRoles(orgID, appID string, roleIDs []string) error {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	o := s.data.orgs[orgID]
	if o == nil || o.apps[appID] == nil {
		return newAPIError(http.StatusUnprocessableEntity, "organization.require_membership",
			"The application must be a member of the organization to proceed.")
	}
	for _, id := range roleIDs {
		if s.data.orgRoles[id] == nil {
			return errForeignKey()
		}
	}
	for _, id := range roleIDs {
		o.apps[appID][id] = struct{}{}
	}
	return nil
}

// orgApp is an item of GET /api/organizations/{id}/applications.
type orgApp struct {
	TenantID          string    `json:"tenantId"`
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	Description       *string   `json:"description"`
	Type              string    `json:"type"`
	OrganizationRoles []RoleRef `json:"organizationRoles"`
}

func (s *Server) applicationMemberRoutes() {
	s.api("GET /api/organizations/{id}/applications", func(w http.ResponseWriter, r *http.Request) {
		p, err := parsePage(r, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.data.mu.RLock()
		var items []orgApp
		if o := s.data.orgs[r.PathValue("id")]; o != nil {
			for _, id := range sortedKeys(setOfKeys(o.apps)) {
				if a := s.data.apps[id]; a != nil {
					items = append(items, orgApp{TenantID: tenantID, ID: a.id, Name: a.name,
						Type: RoleTypeMachineToMachine, OrganizationRoles: s.data.memberRoles(o.apps[id])})
				}
			}
		}
		s.data.mu.RUnlock()
		writePage(s, w, r, p, items)
	})
	s.api("POST /api/organizations/{id}/applications", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		g := newGuard(body)
		ids, _ := g.strings("applicationIds", true, true)
		if err := g.err(); err != nil {
			s.writeError(w, r, err)
			return
		}
		events, err := s.addOrgApps(callerOf(r), r.PathValue("id"), ids)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeNoContent(w, http.StatusCreated)
		s.emitAfter(w, events...)
	})
	s.api("DELETE /api/organizations/{id}/applications/{applicationId}", func(w http.ResponseWriter, r *http.Request) {
		events := s.removeOrgApp(callerOf(r), r.PathValue("id"), r.PathValue("applicationId"))
		writeNoContent(w, http.StatusNoContent)
		s.emitAfter(w, events...)
	})
	s.api("POST /api/organizations/{id}/applications/{applicationId}/roles", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		g := newGuard(body)
		ids, _ := g.strings("organizationRoleIds", true, true)
		if err := g.err(); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.assignOrgAppRoles(r.PathValue("id"), r.PathValue("applicationId"), ids); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeNoContent(w, http.StatusCreated)
	})
}

// AddOrganizationApplications adds M2M applications to an organization as
// POST /api/organizations/{id}/applications does (webhook included).
func (s *Server) AddOrganizationApplications(orgID string, appIDs ...string) error {
	events, err := s.addOrgApps(inProcess(), orgID, appIDs)
	if err != nil {
		return err
	}
	s.emit(events...)
	return nil
}

// AssignOrganizationApplicationRoles gives a member application organization
// roles (no webhook).
func (s *Server) AssignOrganizationApplicationRoles(orgID, appID string, roleIDs ...string) error {
	return s.assignOrgAppRoles(orgID, appID, roleIDs)
}
