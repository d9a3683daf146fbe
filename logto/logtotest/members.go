package logtotest

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
)

// userSearchFields are the columns Logto's q and general search cover.
func userSearchFields() []string {
	return []string{"id", "primary_email", "primary_phone", "username", "name"}
}

// userField returns a user column by its snake_case name (nil for NULL).
func userField(u *User, field string) *string {
	switch field {
	case "id":
		return &u.ID
	case "primary_email":
		return u.PrimaryEmail
	case "primary_phone":
		return u.PrimaryPhone
	case "username":
		return u.Username
	case "name":
		return u.Name
	}
	return nil
}

// membershipEvent builds Organization.Membership.Updated with its deltas.
func (s *Server) membershipEvent(c caller, method, path, route string, status int, p params,
	orgID string, added, removed []string) hookEvent {
	ev := s.newEvent(c, EventOrganizationMembershipUpdated, method, path, route, status, p)
	ev.organizationID = orgID
	ev.addedUserIDs, ev.removedUserIDs = added, removed
	return ev
}

// userIDsBody is the {userIds} body of the membership routes.
func userIDsBody(body []byte, nonEmpty bool) ([]string, error) {
	g := newGuard(body)
	ids, _ := g.strings("userIds", true, nonEmpty)
	return ids, g.err()
}

// addMembers is POST /api/organizations/{id}/users: unknown organization or
// user → 422 foreign key; existing members are left alone.
func (s *Server) addMembers(c caller, orgID string, userIDs []string) ([]hookEvent, error) {
	s.data.mu.Lock()
	o := s.data.orgs[orgID]
	if o == nil {
		s.data.mu.Unlock()
		return nil, errForeignKey()
	}
	for _, id := range userIDs {
		if s.data.users[id] == nil {
			s.data.mu.Unlock()
			return nil, errForeignKey()
		}
	}
	var added []string
	for _, id := range userIDs {
		if _, ok := o.members[id]; ok {
			continue
		}
		o.members[id] = make(map[string]struct{})
		s.data.users[id].orgs[orgID] = struct{}{}
		added = append(added, id)
	}
	s.data.mu.Unlock()
	ev := s.membershipEvent(c, http.MethodPost, "/organizations/"+orgID+"/users", "/organizations/:id/users",
		http.StatusCreated, idParams(orgID), orgID, added, nil)
	return []hookEvent{ev}, nil
}

// replaceMembers is PUT /api/organizations/{id}/users.
func (s *Server) replaceMembers(c caller, orgID string, userIDs []string) ([]hookEvent, error) {
	s.data.mu.Lock()
	o := s.data.orgs[orgID]
	if o == nil {
		s.data.mu.Unlock()
		return nil, errForeignKey()
	}
	want := setOf(userIDs...)
	for id := range want {
		if s.data.users[id] == nil {
			s.data.mu.Unlock()
			return nil, errForeignKey()
		}
	}
	var added, removed []string
	for _, id := range sortedKeys(want) {
		if _, ok := o.members[id]; !ok {
			o.members[id] = make(map[string]struct{})
			s.data.users[id].orgs[orgID] = struct{}{}
			added = append(added, id)
		}
	}
	for _, id := range sortedKeys(setOfKeys(o.members)) {
		if _, keep := want[id]; !keep {
			delete(o.members, id)
			delete(s.data.users[id].orgs, orgID)
			removed = append(removed, id)
		}
	}
	s.data.mu.Unlock()
	ev := s.membershipEvent(c, http.MethodPut, "/organizations/"+orgID+"/users", "/organizations/:id/users",
		http.StatusNoContent, idParams(orgID), orgID, added, removed)
	return []hookEvent{ev}, nil
}

// removeMember is DELETE /api/organizations/{id}/users/{userId}: 204 even
// when there was nothing to remove, and the event always names the user.
func (s *Server) removeMember(c caller, orgID, userID string) []hookEvent {
	s.data.mu.Lock()
	if o := s.data.orgs[orgID]; o != nil {
		delete(o.members, userID)
	}
	if u := s.data.users[userID]; u != nil {
		delete(u.orgs, orgID)
	}
	s.data.mu.Unlock()
	ev := s.membershipEvent(c, http.MethodDelete, "/organizations/"+orgID+"/users/"+userID,
		"/organizations/:id/users/:userId", http.StatusNoContent,
		params{{"id", orgID}, {"userId", userID}}, orgID, nil, []string{userID})
	return []hookEvent{ev}
}

func setOfKeys[V any](m map[string]V) map[string]struct{} {
	out := make(map[string]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

// resolveOrgRoles turns role ids and names into role ids: unknown ids are a
// 422 foreign key, unknown names 422 organization.role_names_not_found.
// Callers hold a lock.
func (s *Server) resolveOrgRoles(ids, names []string) ([]string, error) {
	out := make([]string, 0, len(ids)+len(names))
	for _, id := range ids {
		if s.data.orgRoles[id] == nil {
			return nil, errForeignKey()
		}
		out = append(out, id)
	}
	var missing []string
	for _, name := range names {
		r := s.data.orgRoleByName(name)
		if r == nil {
			missing = append(missing, name)
			continue
		}
		out = append(out, r.role.ID)
	}
	if len(missing) > 0 {
		return nil, errRoleNamesNotFound(missing)
	}
	return out, nil
}

// assignMemberRoles adds (or with replace, sets) a member's organization
// roles. Logto sends no webhook for it.
func (s *Server) assignMemberRoles(orgID, userID string, ids, names []string, replace bool) error {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	o := s.data.orgs[orgID]
	if o == nil || o.members[userID] == nil {
		return errRequireMembership()
	}
	roleIDs, err := s.resolveOrgRoles(ids, names)
	if err != nil {
		return err
	}
	if replace {
		o.members[userID] = setOf(roleIDs...)
		return nil
	}
	for _, id := range roleIDs {
		o.members[userID][id] = struct{}{}
	}
	return nil
}

// orgRoleBody reads {organizationRoleIds?, organizationRoleNames?}.
func orgRoleBody(body []byte) (ids, names []string, err error) {
	g := newGuard(body)
	ids, _ = g.strings("organizationRoleIds", false, false)
	names, _ = g.strings("organizationRoleNames", false, false)
	return ids, names, g.err()
}

// handleListMembers is GET /api/organizations/{id}/users: mandatory
// pagination, q, organizationRoleId, ordered by user id; an unknown
// organization is an empty list.
func (s *Server) handleListMembers(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query().Get("q")
	roleID := r.URL.Query().Get("organizationRoleId")
	var match func(string) bool
	if q != "" {
		match = likeMatcher("%"+q+"%", true)
	}

	s.data.mu.RLock()
	var members []Member
	if o := s.data.orgs[r.PathValue("id")]; o != nil {
		for uid, roles := range o.members {
			u := s.data.users[uid]
			if u == nil {
				continue
			}
			if roleID != "" {
				if _, ok := roles[roleID]; !ok {
					continue
				}
			}
			if match != nil && !matchesAny(&u.user, match) {
				continue
			}
			members = append(members, Member{UserInfo: u.user.UserInfo, OrganizationRoles: s.data.memberRoles(roles)})
		}
	}
	s.data.mu.RUnlock()

	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	writePage(s, w, r, p, members)
}

// matchesAny applies q to the user search columns.
func matchesAny(u *User, match func(string) bool) bool {
	for _, f := range userSearchFields() {
		if v := userField(u, f); v != nil && match(*v) {
			return true
		}
	}
	return false
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// memberOrgRoles returns a member's organization roles as full role objects
// sorted by name. Callers hold a lock.
func (s *Server) memberOrgRoles(roleIDs map[string]struct{}) []OrganizationRole {
	out := make([]OrganizationRole, 0, len(roleIDs))
	for id := range roleIDs {
		if r := s.data.orgRoles[id]; r != nil {
			out = append(out, r.role)
		}
	}
	slices.SortFunc(out, func(a, b OrganizationRole) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	return out
}

func (s *Server) memberRoutes() {
	s.api("GET /api/organizations/{id}/users", s.handleListMembers)
	s.api("POST /api/organizations/{id}/users", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		ids, err := userIDsBody(body, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		events, err := s.addMembers(callerOf(r), r.PathValue("id"), ids)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusCreated, struct {
			UserIDs []string `json:"userIds"`
		}{ids})
		s.emitAfter(w, events...)
	})
	s.api("PUT /api/organizations/{id}/users", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		ids, err := userIDsBody(body, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		events, err := s.replaceMembers(callerOf(r), r.PathValue("id"), ids)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeNoContent(w, http.StatusNoContent)
		s.emitAfter(w, events...)
	})
	s.api("DELETE /api/organizations/{id}/users/{userId}", func(w http.ResponseWriter, r *http.Request) {
		events := s.removeMember(callerOf(r), r.PathValue("id"), r.PathValue("userId"))
		writeNoContent(w, http.StatusNoContent)
		s.emitAfter(w, events...)
	})
	s.api("POST /api/organizations/{id}/users/roles", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		g := newGuard(body)
		userIDs, _ := g.strings("userIds", true, true)
		roleIDs, _ := g.strings("organizationRoleIds", true, true)
		if err := g.err(); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.assignRolesToMembers(r.PathValue("id"), userIDs, roleIDs); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeNoContent(w, http.StatusCreated)
	})
	s.api("GET /api/organizations/{id}/users/{userId}/roles", func(w http.ResponseWriter, r *http.Request) {
		p, err := parsePage(r, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.data.mu.RLock()
		o := s.data.orgs[r.PathValue("id")]
		var roles []OrganizationRole
		member := o != nil && o.members[r.PathValue("userId")] != nil
		if member {
			roles = s.memberOrgRoles(o.members[r.PathValue("userId")])
		}
		s.data.mu.RUnlock()
		if !member {
			s.writeError(w, r, errRequireMembership())
			return
		}
		writePage(s, w, r, p, roles)
	})
	memberRoles := func(replace bool, status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, err := readBody(r)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			ids, names, err := orgRoleBody(body)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if err := s.assignMemberRoles(r.PathValue("id"), r.PathValue("userId"), ids, names, replace); err != nil {
				s.writeError(w, r, err)
				return
			}
			writeNoContent(w, status)
		}
	}
	s.api("POST /api/organizations/{id}/users/{userId}/roles", memberRoles(false, http.StatusCreated))
	s.api("PUT /api/organizations/{id}/users/{userId}/roles", memberRoles(true, http.StatusNoContent))
	s.api("DELETE /api/organizations/{id}/users/{userId}/roles/{organizationRoleId}",
		func(w http.ResponseWriter, r *http.Request) {
			if err := s.RemoveOrganizationUserRole(r.PathValue("id"), r.PathValue("userId"),
				r.PathValue("organizationRoleId")); err != nil {
				s.writeError(w, r, err)
				return
			}
			writeNoContent(w, http.StatusNoContent)
		})
	s.api("GET /api/organizations/{id}/users/{userId}/scopes", func(w http.ResponseWriter, r *http.Request) {
		s.data.mu.RLock()
		o := s.data.orgs[r.PathValue("id")]
		roles := map[string]struct{}(nil)
		if o != nil {
			roles = o.members[r.PathValue("userId")]
		}
		var scopes []OrganizationScope
		if roles != nil {
			seen := map[string]struct{}{}
			for rid := range roles {
				if role := s.data.orgRoles[rid]; role != nil {
					for sid := range role.scopeIDs {
						if sc := s.data.orgScopes[sid]; sc != nil {
							if _, dup := seen[sid]; !dup {
								seen[sid] = struct{}{}
								scopes = append(scopes, *sc)
							}
						}
					}
				}
			}
		}
		s.data.mu.RUnlock()
		if roles == nil {
			s.writeError(w, r, errRequireMembership())
			return
		}
		slices.SortFunc(scopes, func(a, b OrganizationScope) int { return strings.Compare(a.Name, b.Name) })
		s.writeJSON(w, r, http.StatusOK, nonNil(scopes))
	})
	s.applicationMemberRoutes()
}

// assignRolesToMembers is POST /api/organizations/{id}/users/roles: every
// user must be a member and every role must exist (422 foreign key).
func (s *Server) assignRolesToMembers(orgID string, userIDs, roleIDs []string) error {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	o := s.data.orgs[orgID]
	if o == nil {
		return errForeignKey()
	}
	for _, uid := range userIDs {
		if o.members[uid] == nil {
			return errForeignKey()
		}
	}
	for _, rid := range roleIDs {
		if s.data.orgRoles[rid] == nil {
			return errForeignKey()
		}
	}
	for _, uid := range userIDs {
		for _, rid := range roleIDs {
			o.members[uid][rid] = struct{}{}
		}
	}
	return nil
}

// AddOrganizationMembers adds users to an organization as
// POST /api/organizations/{id}/users does (webhook included).
func (s *Server) AddOrganizationMembers(orgID string, userIDs ...string) error {
	events, err := s.addMembers(inProcess(), orgID, userIDs)
	if err != nil {
		return err
	}
	s.emit(events...)
	return nil
}

// SetOrganizationMembers replaces an organization's members as
// PUT /api/organizations/{id}/users does.
func (s *Server) SetOrganizationMembers(orgID string, userIDs ...string) error {
	events, err := s.replaceMembers(inProcess(), orgID, userIDs)
	if err != nil {
		return err
	}
	s.emit(events...)
	return nil
}

// RemoveOrganizationMember removes a user from an organization as
// DELETE /api/organizations/{id}/users/{userId} does.
func (s *Server) RemoveOrganizationMember(orgID, userID string) {
	s.emit(s.removeMember(inProcess(), orgID, userID)...)
}

// AssignOrganizationUserRoles gives a member organization roles (by id), as
// POST /api/organizations/{id}/users/{userId}/roles does: no webhook.
func (s *Server) AssignOrganizationUserRoles(orgID, userID string, roleIDs ...string) error {
	return s.assignMemberRoles(orgID, userID, roleIDs, nil, false)
}

// RemoveOrganizationUserRole takes an organization role from a member (no
// webhook, as Logto).
func (s *Server) RemoveOrganizationUserRole(orgID, userID, roleID string) error {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	o := s.data.orgs[orgID]
	if o == nil || o.members[userID] == nil {
		return errRequireMembership()
	}
	delete(o.members[userID], roleID)
	return nil
}
