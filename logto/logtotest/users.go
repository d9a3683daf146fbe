package logtotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
)

// Logto core-kit's identifier patterns.
const (
	usernamePattern = `^[A-Z_a-z]\w*$`
	emailPattern    = `^\S+@\S+\.\S+$`
	phonePattern    = `^\d+$`
)

// userFields is a validated user body. A field is applied when its has* flag
// is set; a nil pointer then means null.
type userFields struct {
	username, email, phone, name, avatar *string
	hasUsername, hasEmail, hasPhone      bool
	hasName, hasAvatar                   bool
	customData, profile                  json.RawMessage
	password                             bool
}

// parseUserFields validates POST /api/users (create) or PATCH
// /api/users/{id} bodies.
func parseUserFields(body []byte, create bool) (userFields, error) {
	g := newGuard(body)
	var f userFields
	f.username, f.hasUsername = g.str("username", false, !create, 0, 0)
	f.email, f.hasEmail = g.str("primaryEmail", false, !create, 0, 0)
	f.phone, f.hasPhone = g.str("primaryPhone", false, !create, 0, 0)
	f.name, f.hasName = g.str("name", false, !create, 0, 0)
	f.avatar, f.hasAvatar = g.str("avatar", false, true, 0, 0)
	f.customData, _ = g.object("customData", false)
	f.profile, _ = g.object("profile", false)
	checkPattern(g, "username", f.username, usernamePattern, !create)
	checkPattern(g, "primaryEmail", f.email, emailPattern, !create)
	checkPattern(g, "primaryPhone", f.phone, phonePattern, !create)
	if create {
		pw, hasPW := g.str("password", false, false, 1, 0)
		f.password = hasPW && pw != nil
	}
	if err := g.err(); err != nil {
		return userFields{}, err
	}
	// Logto stores an empty identifier as no identifier.
	for _, p := range []**string{&f.username, &f.email, &f.phone, &f.name, &f.avatar} {
		if *p != nil && **p == "" {
			*p = nil
		}
	}
	return f, nil
}

func checkPattern(g *guard, key string, v *string, pattern string, allowEmpty bool) {
	if v == nil || (allowEmpty && *v == "") {
		return
	}
	if !regexp.MustCompile(pattern).MatchString(*v) {
		g.issues = append(g.issues, zodIssue{Code: "invalid_string", Path: []any{key}, Message: "Invalid"})
	}
}

// checkUnique refuses an identifier another user already holds
// (case-insensitively). Callers hold a lock.
func (s *Server) checkUnique(f userFields, selfID string) error {
	for _, u := range s.data.users {
		if u.user.ID == selfID {
			continue
		}
		if f.hasUsername && sameFold(f.username, u.user.Username) {
			return errUserConflict("user.username_already_in_use", "This username is already in use.")
		}
		if f.hasEmail && sameFold(f.email, u.user.PrimaryEmail) {
			return errUserConflict("user.email_already_in_use", "This email is associated with an existing account.")
		}
		if f.hasPhone && f.phone != nil && u.user.PrimaryPhone != nil && *f.phone == *u.user.PrimaryPhone {
			return errUserConflict("user.phone_already_in_use", "This phone number is associated with an existing account.")
		}
	}
	return nil
}

func sameFold(a, b *string) bool { return a != nil && b != nil && strings.EqualFold(*a, *b) }

func (f userFields) apply(u *User) {
	if f.hasUsername {
		u.Username = f.username
	}
	if f.hasEmail {
		u.PrimaryEmail = f.email
	}
	if f.hasPhone {
		u.PrimaryPhone = f.phone
	}
	if f.hasName {
		u.Name = f.name
	}
	if f.hasAvatar {
		u.Avatar = f.avatar
	}
	if f.customData != nil {
		u.CustomData = f.customData
	}
	if f.profile != nil {
		u.Profile = f.profile
	}
}

func userParams(id string) params { return params{{"userId", id}} }

// createUser is POST /api/users (answered 200, not 201).
func (s *Server) createUser(c caller, body []byte) (User, []hookEvent, error) {
	f, err := parseUserFields(body, true)
	if err != nil {
		return User{}, nil, err
	}
	s.data.mu.Lock()
	if err := s.checkUnique(f, ""); err != nil {
		s.data.mu.Unlock()
		return User{}, nil, err
	}
	now := s.clock().UnixMilli()
	u := User{UserInfo: UserInfo{
		ID: s.data.newID(), CustomData: emptyObject(), Identities: emptyObject(),
		CreatedAt: now, UpdatedAt: now, Profile: emptyObject(),
	}, HasPassword: f.password}
	f.apply(&u)
	s.data.insertUser(&userEntry{user: u, roles: map[string]struct{}{}, orgs: map[string]struct{}{}})
	s.data.mu.Unlock()
	ev := s.newEvent(c, EventUserCreated, http.MethodPost, "/users", "/users", http.StatusOK, nil).withData(u)
	return u, []hookEvent{ev}, nil
}

// updateUser applies change to a user under the write lock, bumps
// updatedAt, and returns the result.
func (s *Server) updateUser(id string, change func(*User) error) (User, error) {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	e := s.data.users[id]
	if e == nil {
		return User{}, errEntityNotFound()
	}
	u := e.user
	if err := change(&u); err != nil {
		return User{}, err
	}
	u.UpdatedAt = max(s.clock().UnixMilli(), u.UpdatedAt)
	e.user = u
	return u, nil
}

// patchUser is PATCH /api/users/{userId}: jsonb fields replaced wholesale.
func (s *Server) patchUser(c caller, id string, body []byte) (User, []hookEvent, error) {
	f, err := parseUserFields(body, false)
	if err != nil {
		return User{}, nil, err
	}
	u, err := s.updateUser(id, func(u *User) error {
		if err := s.checkUnique(f, id); err != nil {
			return err
		}
		f.apply(u)
		return nil
	})
	if err != nil {
		return User{}, nil, err
	}
	ev := s.newEvent(c, EventUserDataUpdated, http.MethodPatch, "/users/"+id, "/users/:userId",
		http.StatusOK, userParams(id)).withData(u)
	return u, []hookEvent{ev}, nil
}

// patchUserCustomData is PATCH /api/users/{userId}/custom-data: a shallow
// merge (jsonb ||) answered with the resulting customData.
func (s *Server) patchUserCustomData(c caller, id string, body []byte) (json.RawMessage, []hookEvent, error) {
	g := newGuard(body)
	patch, _ := g.object("customData", true)
	if err := g.err(); err != nil {
		return nil, nil, err
	}
	u, err := s.updateUser(id, func(u *User) error {
		merged, err := mergeObjects(u.CustomData, patch)
		if err != nil {
			return err
		}
		u.CustomData = merged
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	ev := s.newEvent(c, EventUserDataUpdated, http.MethodPatch, "/users/"+id+"/custom-data",
		"/users/:userId/custom-data", http.StatusOK, userParams(id)).withData(u.CustomData)
	return u.CustomData, []hookEvent{ev}, nil
}

// mergeObjects is Postgres' jsonb || on two objects: top-level keys of b win.
func mergeObjects(a, b json.RawMessage) (json.RawMessage, error) {
	var left, right map[string]json.RawMessage
	if err := json.Unmarshal(a, &left); err != nil {
		return nil, fmt.Errorf("decode stored customData: %w", err)
	}
	if err := json.Unmarshal(b, &right); err != nil {
		return nil, fmt.Errorf("decode customData patch: %w", err)
	}
	if left == nil {
		left = map[string]json.RawMessage{}
	}
	maps.Copy(left, right)
	out, err := json.Marshal(left)
	if err != nil {
		return nil, fmt.Errorf("encode customData: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, out); err != nil {
		return nil, fmt.Errorf("compact customData: %w", err)
	}
	return buf.Bytes(), nil
}

// setUserSuspended is PATCH /api/users/{userId}/is-suspended.
func (s *Server) setUserSuspended(c caller, id string, body []byte) (User, []hookEvent, error) {
	g := newGuard(body)
	suspended, _ := g.boolean("isSuspended", true)
	if err := g.err(); err != nil {
		return User{}, nil, err
	}
	u, err := s.updateUser(id, func(u *User) error {
		u.IsSuspended = suspended
		return nil
	})
	if err != nil {
		return User{}, nil, err
	}
	ev := s.newEvent(c, EventUserSuspensionStatusUpdated, http.MethodPatch, "/users/"+id+"/is-suspended",
		"/users/:userId/is-suspended", http.StatusOK, userParams(id)).withData(u)
	return u, []hookEvent{ev}, nil
}

// deleteUser is DELETE /api/users/{userId}; the event carries the user as it
// was.
func (s *Server) deleteUser(c caller, id string) ([]hookEvent, error) {
	s.data.mu.Lock()
	e := s.data.users[id]
	if e == nil {
		s.data.mu.Unlock()
		return nil, errEntityNotFound()
	}
	snapshot := e.user.UserInfo
	s.data.removeUser(e)
	s.data.mu.Unlock()
	ev := s.newEvent(c, EventUserDeleted, http.MethodDelete, "/users/"+id, "/users/:userId",
		http.StatusNoContent, userParams(id)).withData(snapshot)
	return []hookEvent{ev}, nil
}

// userWithSSO is GET /api/users/{id}?includeSsoIdentities=true.
type userWithSSO struct {
	User
	SsoIdentities []json.RawMessage `json:"ssoIdentities"`
}

// handleListUsers is GET /api/users: advanced search, exclusions, mandatory
// pagination, newest first.
func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	excludeRole, excludeOrg := q.Get("excludeRoleId"), q.Get("excludeOrganizationId")
	if excludeRole != "" && excludeOrg != "" {
		s.writeError(w, r, errInvalidSearch("`excludeRoleId` and `excludeOrganizationId` cannot be used at the same time."))
		return
	}
	srch, err := parseSearch(r.URL.RawQuery, userSearchFields())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	cs, err := srch.compile(userSearchFields())
	if err != nil {
		s.writeError(w, r, err)
		return
	}

	s.data.mu.RLock()
	var matched []User
	for i := len(s.data.userOrder) - 1; i >= 0; i-- {
		e := s.data.userOrder[i]
		if excludeRole != "" {
			if _, ok := e.roles[excludeRole]; ok {
				continue
			}
		}
		if excludeOrg != "" {
			if _, ok := e.orgs[excludeOrg]; ok {
				continue
			}
		}
		u := &e.user
		if !cs.match(func(f string) *string { return userField(u, f) }) {
			continue
		}
		matched = append(matched, e.user)
	}
	s.data.mu.RUnlock()

	writePage(s, w, r, p, matched)
}

func (s *Server) userRoutes() {
	s.api("GET /api/users", s.handleListUsers)
	s.api("POST /api/users", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		u, events, err := s.createUser(callerOf(r), body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, u)
		s.emitAfter(w, events...)
	})
	s.api("GET /api/users/{userId}", func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.User(r.PathValue("userId"))
		if !ok {
			s.writeError(w, r, errEntityNotFound())
			return
		}
		if isTruthy(r.URL.Query().Get("includeSsoIdentities")) {
			s.writeJSON(w, r, http.StatusOK, userWithSSO{User: u, SsoIdentities: []json.RawMessage{}})
			return
		}
		s.writeJSON(w, r, http.StatusOK, u)
	})
	s.api("PATCH /api/users/{userId}", s.userMutation(s.patchUser))
	s.api("PATCH /api/users/{userId}/is-suspended", s.userMutation(s.setUserSuspended))
	s.api("GET /api/users/{userId}/custom-data", func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.User(r.PathValue("userId"))
		if !ok {
			s.writeError(w, r, errEntityNotFound())
			return
		}
		s.writeJSON(w, r, http.StatusOK, u.CustomData)
	})
	s.api("PATCH /api/users/{userId}/custom-data", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		data, events, err := s.patchUserCustomData(callerOf(r), r.PathValue("userId"), body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, data)
		s.emitAfter(w, events...)
	})
	s.api("DELETE /api/users/{userId}", func(w http.ResponseWriter, r *http.Request) {
		events, err := s.deleteUser(callerOf(r), r.PathValue("userId"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeNoContent(w, http.StatusNoContent)
		s.emitAfter(w, events...)
	})
	s.api("GET /api/users/{userId}/organizations", func(w http.ResponseWriter, r *http.Request) {
		orgs, err := s.UserOrganizations(r.PathValue("userId"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, orgs)
	})
	s.userRoleRoutes()
}

// userMutation adapts a user operation answered with the user to a handler.
func (s *Server) userMutation(op func(caller, string, []byte) (User, []hookEvent, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		u, events, err := op(callerOf(r), r.PathValue("userId"), body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, u)
		s.emitAfter(w, events...)
	}
}

// CreateUser creates a user exactly as POST /api/users does (validation,
// uniqueness, webhook), from fields such as
// map[string]any{"username": "alice", "primaryEmail": "a@example.com"}.
func (s *Server) CreateUser(fields any) (User, error) {
	body, err := marshalBody(fields)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	u, events, err := s.createUser(inProcess(), body)
	if err != nil {
		return User{}, err
	}
	s.emit(events...)
	return u, nil
}

// UpdateUser patches a user as PATCH /api/users/{userId} does (customData
// replaced wholesale).
func (s *Server) UpdateUser(id string, fields any) (User, error) {
	body, err := marshalBody(fields)
	if err != nil {
		return User{}, fmt.Errorf("update user: %w", err)
	}
	u, events, err := s.patchUser(inProcess(), id, body)
	if err != nil {
		return User{}, err
	}
	s.emit(events...)
	return u, nil
}

// MergeUserCustomData merges keys into a user's customData as
// PATCH /api/users/{userId}/custom-data does.
func (s *Server) MergeUserCustomData(id string, customData any) (json.RawMessage, error) {
	body, err := marshalBody(map[string]any{"customData": customData})
	if err != nil {
		return nil, fmt.Errorf("merge user custom data: %w", err)
	}
	data, events, err := s.patchUserCustomData(inProcess(), id, body)
	if err != nil {
		return nil, err
	}
	s.emit(events...)
	return data, nil
}

// SetUserSuspended suspends or reactivates a user as
// PATCH /api/users/{userId}/is-suspended does.
func (s *Server) SetUserSuspended(id string, suspended bool) (User, error) {
	body, err := marshalBody(map[string]bool{"isSuspended": suspended})
	if err != nil {
		return User{}, fmt.Errorf("set user suspended: %w", err)
	}
	u, events, err := s.setUserSuspended(inProcess(), id, body)
	if err != nil {
		return User{}, err
	}
	s.emit(events...)
	return u, nil
}

// DeleteUser deletes a user as DELETE /api/users/{userId} does.
func (s *Server) DeleteUser(id string) error {
	events, err := s.deleteUser(inProcess(), id)
	if err != nil {
		return err
	}
	s.emit(events...)
	return nil
}

// User returns a user by id.
func (s *Server) User(id string) (User, bool) {
	s.data.mu.RLock()
	defer s.data.mu.RUnlock()
	e := s.data.users[id]
	if e == nil {
		return User{}, false
	}
	return e.user, true
}

// UserOrganizations is GET /api/users/{id}/organizations: every membership,
// unpaged, with the user's organization roles; unknown user → 404
// entity.not_found.
func (s *Server) UserOrganizations(userID string) ([]OrganizationWithRoles, error) {
	s.data.mu.RLock()
	defer s.data.mu.RUnlock()
	u := s.data.users[userID]
	if u == nil {
		return nil, errEntityNotFound()
	}
	out := make([]OrganizationWithRoles, 0, len(u.orgs))
	for _, id := range sortedKeys(u.orgs) {
		if e := s.data.orgs[id]; e != nil {
			out = append(out, OrganizationWithRoles{Organization: e.org,
				OrganizationRoles: s.data.memberRoles(e.members[userID])})
		}
	}
	return out, nil
}
